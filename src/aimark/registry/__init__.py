"""Issued-content registry: what the service issued (content id = GB 45438 ProduceID), fingerprints, retention.

The database layer loads on first use (PEP 562), so the CLI can show the policy constants without importing
SQLAlchemy. The fingerprint names are bound here eagerly: the function ``fingerprint`` shares its name with
its module, and a lazily imported submodule would take the name.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from aimark.registry.fingerprint import (
    TextFingerprint,
    content_text,
    fingerprint,
    sha256_text,
    winnow,
)
from aimark.registry.policy import (
    DEFAULT_MIN_EVIDENCE_TOKENS,
    DEFAULT_RETENTION_DAYS,
    MIN_RETENTION_DAYS,
    PURGE_INTERVAL_S,
)

if TYPE_CHECKING:  # what type checkers and editors see; at run time __getattr__ below loads these
    from aimark.registry.store import (
        NEAR_COPY_THRESHOLD,
        IssuedRecord,
        Registry,
        RegistryError,
        RegistryMatch,
        default_db_url,
        redact_url,
    )

_FROM_STORE = ("NEAR_COPY_THRESHOLD", "IssuedRecord", "Registry", "RegistryError", "RegistryMatch", "default_db_url",
               "redact_url")

__all__ = [
    "DEFAULT_MIN_EVIDENCE_TOKENS", "DEFAULT_RETENTION_DAYS", "MIN_RETENTION_DAYS", "NEAR_COPY_THRESHOLD",
    "PURGE_INTERVAL_S", "IssuedRecord", "Registry", "RegistryError", "RegistryMatch", "TextFingerprint",
    "content_text", "default_db_url", "fingerprint", "redact_url", "sha256_text", "winnow",
]


def __getattr__(name: str) -> Any:
    if name not in _FROM_STORE:
        raise AttributeError(f"module 'aimark.registry' has no attribute {name!r}")
    value = getattr(importlib.import_module("aimark.registry.store"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
