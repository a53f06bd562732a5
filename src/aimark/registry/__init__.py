"""Issued-content registry: what the service issued (content id = GB 45438 ProduceID), fingerprints, retention."""

from aimark.registry.fingerprint import TextFingerprint, content_text, fingerprint, sha256_text, winnow
from aimark.registry.store import (
    DEFAULT_RETENTION_DAYS, NEAR_COPY_THRESHOLD, IssuedRecord, Registry, RegistryError, RegistryMatch, default_db_url,
    redact_url,
)

__all__ = [
    "DEFAULT_RETENTION_DAYS", "NEAR_COPY_THRESHOLD", "IssuedRecord", "Registry", "RegistryError", "RegistryMatch",
    "TextFingerprint", "content_text", "default_db_url", "fingerprint", "redact_url", "sha256_text", "winnow",
]
