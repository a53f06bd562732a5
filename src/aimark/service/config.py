"""What `aimark serve` is configured with. Secrets (API keys, signing key) are held, never shown."""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from aimark.labels import LANGUAGES
from aimark.provenance import SigningCredentials
from aimark.registry import DEFAULT_MIN_EVIDENCE_TOKENS, DEFAULT_RETENTION_DAYS, PURGE_INTERVAL_S

LABEL_LAYERS = ("notice", "c2pa")
VERIFY_PROFILES = ("kr", "cn", "eu", "all")
API_KEYS_ENV = "AIMARK_API_KEYS"
DETECT_API_KEYS_ENV = "AIMARK_DETECT_API_KEYS"


class ServiceConfigError(ValueError):
    """A setting is invalid; messages never contain a secret."""


def api_key_digest(api_key: str) -> bytes:
    return hashlib.sha256(api_key.encode("utf-8")).digest()


@dataclass(frozen=True)
class ServiceConfig:
    model: str | None = None  # None: the embedded model
    key_paths: tuple[Path, ...] = ()  # first: the key outputs are watermarked with; all: keys detection tries
    profile: str = "all"  # kr | cn | eu | all: the notice wording and the default verification profile
    language: str = "en"  # notice language
    labels: tuple[str, ...] = ("notice",)  # any of LABEL_LAYERS
    credentials: SigningCredentials | None = field(default=None, repr=False)
    trust_anchors: bytes | None = None  # PEM roots a C2PA signer must chain to, for verification
    detection_endpoint: str | None = None  # the provider's verification URL, written into each C2PA manifest
    db_url: str | None = None  # None: AIMARK_DB_URL, else SQLite in aimark's data directory
    retention_days: int = DEFAULT_RETENTION_DAYS  # at least MIN_RETENTION_DAYS (the registry refuses less)
    purge_interval_s: float = PURGE_INTERVAL_S  # the service purges expired records on start and this often
    # Tokens of a looked-up text a near match must share before the public verifier reports it.
    registry_min_evidence: int = DEFAULT_MIN_EVIDENCE_TOKENS
    # SHA-256 digests of the accepted API keys; the keys themselves are not kept.
    api_key_digests: frozenset[bytes] = field(default=frozenset(), repr=False)
    require_api_key: bool = True
    # Digests of the detection keys: per-token scores, a prompt context, the full text cap, a larger work budget.
    # A generation key is a different scope and gets nothing here.
    detect_api_key_digests: frozenset[bytes] = field(default=frozenset(), repr=False)
    verify_rate_per_minute: float = 30.0  # requests a minute per anonymous client (address, IPv6 /64), detect/verify
    verify_burst: int = 10
    # The work budget counts characters scored (text + prompt), not requests; each request costs at least the minimum.
    verify_chars_per_minute: float = 60_000.0  # anonymous, per client
    verify_burst_chars: int = 120_000
    detect_key_chars_per_minute: float = 2_000_000.0  # per detection key
    detect_key_burst_chars: int = 4_000_000
    min_request_chars: int = 1_000
    anonymous_max_text_chars: int = 50_000  # the most an anonymous request may have scored
    max_prompt_chars: int = 4_000  # detection keys only: anonymous callers send no prompt context
    public_token_scores: bool = False  # True: anonymous callers get per-token scores too (internal deployments)
    max_request_bytes: int = 5 * 1024 * 1024
    max_text_chars: int = 200_000
    max_new_tokens: int = 1024  # the most a request may ask for
    default_max_tokens: int = 256
    max_choices: int = 4
    alpha: float = 1e-3
    generation_timeout_s: float = 600.0
    # Requests wait for the one model on the event loop, not in a worker thread; beyond this queue: 503.
    max_queued_generations: int = 16
    generation_queue_timeout_s: float = 120.0
    # Detection and verification in this many worker processes (0: in the server's threads, as in tests and
    # embedded use); a request running past the deadline is stopped, its worker replaced, and answered 503.
    detect_workers: int = 0
    detect_deadline_s: float = 30.0
    max_queued_checks: int = 64

    def __post_init__(self) -> None:
        if self.profile not in VERIFY_PROFILES:
            raise ServiceConfigError(f"unknown profile {self.profile!r}; choose from {', '.join(VERIFY_PROFILES)}")
        if self.language not in LANGUAGES:
            raise ServiceConfigError(f"unknown notice language {self.language!r}; choose from {', '.join(LANGUAGES)}")
        unknown = set(self.labels) - set(LABEL_LAYERS)
        if unknown:
            raise ServiceConfigError(f"unknown label layer(s) {', '.join(sorted(unknown))}; choose from notice, c2pa")
        if "c2pa" in self.labels and self.credentials is None:
            raise ServiceConfigError("C2PA labels need signing credentials (--cert and --private-key)")
        if self.require_api_key and not self.api_key_digests:
            raise ServiceConfigError(f"no API key configured: set {API_KEYS_ENV}, pass --api-key-file, or --no-auth")
        for name in ("max_request_bytes", "max_text_chars", "max_new_tokens", "default_max_tokens", "max_choices", "verify_burst",
                     "verify_burst_chars", "detect_key_burst_chars", "min_request_chars", "anonymous_max_text_chars",
                     "max_prompt_chars", "max_queued_generations", "max_queued_checks"):
            if getattr(self, name) < 1:
                raise ServiceConfigError(f"{name} must be at least 1")
        if self.verify_rate_per_minute <= 0:
            raise ServiceConfigError("the verification rate must be positive")
        for name in ("verify_chars_per_minute", "detect_key_chars_per_minute", "generation_queue_timeout_s", "detect_deadline_s"):
            if not getattr(self, name) > 0:
                raise ServiceConfigError(f"{name} must be positive")
        if self.detect_workers < 0:
            raise ServiceConfigError("detect_workers must be 0 (in-process) or more")
        if self.detect_api_key_digests & self.api_key_digests:
            raise ServiceConfigError("a key is both a generation and a detection key; give each scope its own keys")

    def accepts(self, api_key: str | None) -> bool:
        """Constant-time check of a presented generation API key against every configured digest."""
        return _matches(api_key, self.api_key_digests)

    def accepts_detection(self, api_key: str | None) -> bool:
        """Constant-time check of a presented detection API key."""
        return _matches(api_key, self.detect_api_key_digests)


def _matches(api_key: str | None, digests: frozenset[bytes]) -> bool:
    if not api_key:
        return False
    presented = api_key_digest(api_key)
    return any(secrets.compare_digest(presented, digest) for digest in digests)


def read_api_keys(path: Path | None, env: str = API_KEYS_ENV) -> frozenset[bytes]:
    """Digests of the keys in the ``env`` variable (comma-separated) and in ``path`` (one a line, # comments)."""
    keys = [k.strip() for k in os.environ.get(env, "").split(",") if k.strip()]
    if path is not None:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            raise ServiceConfigError(f"cannot read the API key file {path}") from None
        keys += [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return frozenset(api_key_digest(k) for k in keys)


def create_api_key_file(path: Path) -> str:
    """Write a fresh API key to ``path`` (mode 0600) and return it; an existing file is kept."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        return ""
    from aimark.files import PRIVATE_MODE, write_atomic

    api_key = "amk-" + secrets.token_urlsafe(32)
    try:  # atomic: a crash mid-write must not leave an empty key file that later starts lock everyone out
        write_atomic(path, (api_key + "\n").encode("utf-8"), mode=PRIVATE_MODE, overwrite=False)
    except FileExistsError:  # another start made it first: keep theirs
        return ""
    return api_key
