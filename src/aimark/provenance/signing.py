"""Signing credentials a user supplies: a PEM certificate chain (leaf first) and its private key."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import c2pa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from aimark.provenance.errors import ProvenanceError, first_line

_CURVE_ALGORITHM = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}


@dataclass(frozen=True, repr=False)
class SigningCredentials:
    """What c2pa-python needs to sign; the key never appears in repr, logs or errors."""

    certificate_chain_pem: bytes
    private_key_pem: bytes
    algorithm: str
    timestamp_authority_url: str | None = None

    def __repr__(self) -> str:
        return f"SigningCredentials(algorithm={self.algorithm!r}, private key hidden)"

    @classmethod
    def from_pem(cls, certificate_chain_pem: bytes, private_key_pem: bytes, timestamp_authority_url: str | None = None):
        """Credentials with the algorithm chosen from the key type (EC P-256/384/521, Ed25519, RSA-PSS)."""
        try:
            key = serialization.load_pem_private_key(private_key_pem, password=None)
        except (ValueError, TypeError) as err:
            # The loader's message never contains key material; keep it short anyway.
            raise ProvenanceError("signing.keyUnreadable", "private key is not an unencrypted PEM key") from err
        if isinstance(key, ec.EllipticCurvePrivateKey):
            algorithm = _CURVE_ALGORITHM.get(key.curve.name)
        elif isinstance(key, ed25519.Ed25519PrivateKey):
            algorithm = "ed25519"
        elif isinstance(key, rsa.RSAPrivateKey):
            algorithm = "ps256"
        else:
            algorithm = None
        if algorithm is None:
            raise ProvenanceError("signing.keyUnsupported", f"unsupported private key type {type(key).__name__}")
        if b"-----BEGIN CERTIFICATE-----" not in certificate_chain_pem:
            raise ProvenanceError("signing.certificateUnreadable", "certificate chain is not PEM")
        return cls(certificate_chain_pem, private_key_pem, algorithm, timestamp_authority_url)

    @classmethod
    def from_files(cls, certificate_chain: str | Path, private_key: str | Path, timestamp_authority_url: str | None = None):
        try:
            chain = Path(certificate_chain).read_bytes()
            key = Path(private_key).read_bytes()
        except OSError as err:
            raise ProvenanceError("signing.credentialsUnreadable", f"cannot read {err.filename}: {err.strerror}") from err
        return cls.from_pem(chain, key, timestamp_authority_url)

    def c2pa_signer(self) -> c2pa.Signer:
        """A fresh c2pa-python signer (each Builder.sign consumes the builder, and a signer per call is cheap)."""
        info = c2pa.C2paSignerInfo(
            self.algorithm.encode(), self.certificate_chain_pem, self.private_key_pem,
            self.timestamp_authority_url.encode() if self.timestamp_authority_url else None,
        )
        try:
            return c2pa.Signer.from_info(info)
        except c2pa.C2paError as err:
            raise ProvenanceError("signing.signerRejected", f"c2pa rejected the signing credentials: {first_line(err)}") from err
