"""A throw-away certificate authority for tests and demos. TEST ONLY: never sign real content with it.

c2pa-rs accepts a signing certificate that is an end-entity (not a CA), has the digitalSignature key
usage and an extended key usage C2PA allows (here emailProtection), and chains to a trust anchor.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from aimark.files import PRIVATE_MODE, write_atomic

_VALIDITY = datetime.timedelta(days=3650)


@dataclass(frozen=True, repr=False)
class TestPki:
    """PEM material: the root to trust, the signer's chain (leaf first) and the signer's private key."""

    __test__ = False  # not a pytest test class

    trust_anchor_pem: bytes
    certificate_chain_pem: bytes
    private_key_pem: bytes

    def __repr__(self) -> str:  # never show the private key
        return "TestPki(<TEST ONLY certificates; private key hidden>)"

    def write(self, directory: Path) -> dict[str, Path]:
        """Write `trust_anchor.pem`, `signer_chain.pem` and `signer_key.pem` into `directory`."""
        directory.mkdir(parents=True, exist_ok=True)
        paths = {
            "trust_anchor": directory / "trust_anchor.pem",
            "certificate_chain": directory / "signer_chain.pem",
            "private_key": directory / "signer_key.pem",
        }
        write_atomic(paths["trust_anchor"], self.trust_anchor_pem)
        write_atomic(paths["certificate_chain"], self.certificate_chain_pem)
        write_atomic(paths["private_key"], self.private_key_pem, mode=PRIVATE_MODE)
        return paths


def _key_usage(*, signer: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, key_cert_sign=not signer, crl_sign=not signer, encipher_only=False, decipher_only=False,
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, common_name), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "aimark TEST ONLY")]
    )


_SIGNER_KEYS = {"es256": lambda: ec.generate_private_key(ec.SECP256R1()), "ed25519": ed25519.Ed25519PrivateKey.generate}


def generate_test_pki(signer_name: str = "aimark TEST ONLY signer", algorithm: str = "es256") -> TestPki:
    """A fresh root CA (P-256) and a signing certificate issued by it (valid for ten years) whose key signs
    with ``algorithm``: es256 (EC P-256) or ed25519."""
    if algorithm not in _SIGNER_KEYS:
        raise ValueError(f"test signer algorithm must be one of {sorted(_SIGNER_KEYS)}")
    now = datetime.datetime.now(datetime.timezone.utc)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = _name("aimark TEST ONLY root CA")
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name).issuer_name(root_name).public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(signer=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    signer_key = _SIGNER_KEYS[algorithm]()
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name(signer_name)).issuer_name(root_name).public_key(signer_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(signer=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(signer_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return TestPki(
        trust_anchor_pem=root.public_bytes(pem),
        certificate_chain_pem=leaf.public_bytes(pem) + root.public_bytes(pem),
        private_key_pem=signer_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
