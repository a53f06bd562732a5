"""Signing credentials a user supplies: a PEM certificate chain (leaf first) and its private key.

A service signs every answer, so the native signer is made once per thread and reused, and c2pa-rs's
verify-after-sign (a full COSE validation of each signature just made: ~0.8 ms of the ~1.4 ms an ES256
text manifest takes) runs on the first signature these credentials make, not on every one. What it
checks does not change from one signature to the next (the key matches the certificate, the certificate
profile, the algorithm), except time: the leaf certificate's validity period is checked before each
signature instead, so an expired certificate still fails every signature, as it did.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import c2pa
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from aimark.provenance.errors import ProvenanceError, first_line

_CURVE_ALGORITHM = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}


def _signing_context(verify_after_sign: bool) -> c2pa.Context:
    return c2pa.Context(c2pa.Settings.from_dict({"verify": {"verify_after_sign": verify_after_sign}}))


@dataclass(frozen=True, repr=False)
class SigningCredentials:
    """What c2pa-python needs to sign; the key never appears in repr, logs or errors."""

    certificate_chain_pem: bytes
    private_key_pem: bytes
    algorithm: str
    timestamp_authority_url: str | None = None
    # This thread's native signer and contexts (see signing()), and whether a signature was verified after signing.
    _per_thread: threading.local = field(default_factory=threading.local, init=False, compare=False)
    _verified: threading.Event = field(default_factory=threading.Event, init=False, compare=False)
    _validity: tuple[datetime, datetime] | None = field(default=None, init=False, compare=False)

    def __post_init__(self) -> None:
        try:
            leaf = x509.load_pem_x509_certificates(self.certificate_chain_pem)[0]
        except ValueError:
            return  # c2pa says what is wrong with the chain when it is given it (signing.signerRejected)
        object.__setattr__(self, "_validity", (leaf.not_valid_before_utc, leaf.not_valid_after_utc))

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
        """A fresh c2pa-python signer (the caller closes it); :meth:`signing` reuses one per thread."""
        info = c2pa.C2paSignerInfo(
            self.algorithm.encode(), self.certificate_chain_pem, self.private_key_pem,
            self.timestamp_authority_url.encode() if self.timestamp_authority_url else None,
        )
        try:
            return c2pa.Signer.from_info(info)
        except c2pa.C2paError as err:
            raise ProvenanceError("signing.signerRejected", f"c2pa rejected the signing credentials: {first_line(err)}") from err

    def _check_validity(self) -> None:
        if self._validity is None:
            return
        now = datetime.now(UTC)
        not_before, not_after = self._validity
        if not not_before <= now <= not_after:
            raise ProvenanceError("signing.certificateNotValidNow",
                                  f"the signing certificate is valid from {not_before:%Y-%m-%d %H:%M} to "
                                  f"{not_after:%Y-%m-%d %H:%M} UTC, not now")

    @contextmanager
    def signing(self) -> Iterator[tuple[c2pa.Signer, c2pa.Context]]:
        """This thread's signer and the c2pa context to build one manifest with: the first signature these
        credentials make is verified after signing by c2pa-rs, later ones are not (see the module's notes).

        The signer stays open for this thread's next signature; after a failure it is closed and made anew.
        """
        self._check_validity()
        local = self._per_thread
        if getattr(local, "signer", None) is None:
            local.signer = self.c2pa_signer()
            local.contexts = {}
        verify = not self._verified.is_set()
        if verify not in local.contexts:
            local.contexts[verify] = _signing_context(verify)
        try:
            yield local.signer, local.contexts[verify]
        except BaseException:
            local.signer.close()
            local.signer = None
            raise
        self._verified.set()
