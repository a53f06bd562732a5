"""The registry of issued content: one row per output, its fingerprint hashes, lookup and retention.

SQLite (a file in aimark's data directory, see :func:`aimark.engines.models.aimark_data_dir`) by default;
any SQLAlchemy URL otherwise, e.g. ``postgresql+psycopg://user:pass@host/db``. The content id is the C2PA
content id and the GB 45438-2025 Annex E ``ProduceID``.

The file and its -wal/-shm/journal files are mode 0600, the default directory 0700. Fingerprints are keyed
with a per-registry secret (see :mod:`aimark.registry.fingerprint`): for a SQLite file, a file beside it
(``<db>.secret``, 0600); for a database server, a row of the database (replicas share it). The database
records a check value of the secret, so a lost or swapped secret file is an error, never silent misses.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from aimark.registry.fingerprint import TextFingerprint, fingerprint, sha256_text
from aimark.registry.policy import (
    DEFAULT_MIN_EVIDENCE_TOKENS,
    DEFAULT_RETENTION_DAYS,
    MIN_RETENTION_DAYS,
    PURGE_INTERVAL_S,
)

_log = logging.getLogger("aimark.registry")

# A near copy shares at least this fraction of its fingerprints with an issued text.
NEAR_COPY_THRESHOLD = 0.5
MAX_MATCHES = 5

metadata = sa.MetaData()

issued_content = sa.Table(
    "aimark_issued_content",
    metadata,
    sa.Column("content_id", sa.String(100), primary_key=True),
    sa.Column("sha256", sa.String(64), nullable=False, index=True),
    sa.Column("content_sha256", sa.String(64), nullable=False, index=True),
    sa.Column("num_fingerprints", sa.Integer, nullable=False),
    sa.Column("num_tokens", sa.Integer, nullable=False),
    sa.Column("key_id", sa.String(100)),
    sa.Column("model", sa.String(500), nullable=False),
    sa.Column("profile", sa.String(20), nullable=False),
    sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False, index=True),
)

content_fingerprints = sa.Table(
    "aimark_content_fingerprints",
    metadata,
    sa.Column("content_id", sa.String(100), sa.ForeignKey("aimark_issued_content.content_id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("hash", sa.BigInteger, primary_key=True),
    sa.Index("ix_aimark_content_fingerprints_hash", "hash"),
)


registry_meta = sa.Table(
    "aimark_registry_meta",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("value", sa.String(200), nullable=False),
)

_INSERT_ISSUED = issued_content.insert()
_INSERT_FINGERPRINT = content_fingerprints.insert()

_REGISTRY_FILE = "registry.sqlite3"
_SECRET_CHECK = b"aimark-registry-secret-check"
_SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def default_db_url() -> str:
    """``AIMARK_DB_URL``, else ``registry.sqlite3`` in aimark's data directory (moved there from the old cache)."""
    url = os.environ.get("AIMARK_DB_URL")
    if url:
        return url
    from aimark.engines.models import data_file

    return f"sqlite:///{data_file(_REGISTRY_FILE, _log.warning)}"


def redact_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<invalid database URL>"


class RegistryError(RuntimeError):
    """The registry database cannot be opened or used; messages never contain a password."""


def _private_file(path: Path) -> None:
    """Create ``path`` (if missing) and its SQLite companions' modes as 0600 before SQLite opens it.

    SQLite creates its files with 0644 less the umask and gives -wal/-shm/-journal the database file's
    mode, so a database file made 0600 first keeps all of them private. Existing files are tightened.
    """
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        for candidate in (path, *(path.with_name(path.name + suffix) for suffix in _SQLITE_COMPANIONS)):
            if candidate.exists() and candidate.stat().st_mode & 0o077:
                candidate.chmod(0o600)
    except OSError as err:
        raise RegistryError(f"cannot create the registry file {path} with mode 0600: {err.strerror}") from None


def _read_or_create_secret(path: Path, *, must_exist: bool) -> bytes:
    if path.exists():
        try:
            return bytes.fromhex(path.read_text(encoding="ascii").strip())
        except (OSError, ValueError, UnicodeDecodeError):
            raise RegistryError(f"the registry secret {path} is unreadable; restore it from a backup") from None
    if must_exist:
        raise RegistryError(f"the registry secret {path} is missing: its fingerprints cannot be matched without it; "
                            "restore it from a backup, or move the registry aside to start a new one")
    secret = secrets.token_bytes(32)
    scratch = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secret.hex() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(scratch, path)  # atomic and exclusive: a second process opening the registry reads the winner's
        except FileExistsError:
            return _read_or_create_secret(path, must_exist=True)
    finally:
        scratch.unlink(missing_ok=True)
    return secret


@dataclass(frozen=True)
class IssuedRecord:
    content_id: str
    text: str  # exactly as issued (notice, text and any C2PA wrapper)
    key_id: str | None
    model: str
    profile: str
    issued_at: datetime
    generated_text: str | None = None  # the model's own text, when it differs from `text`


@dataclass(frozen=True)
class RegistryMatch:
    content_id: str
    match: str  # "exact" (same content) or "near" (shares most of its fingerprints)
    # Share of the looked-up text's tokens that lie in n-grams it shares with the issued text: 1.0 for an exact
    # copy, below 1 whenever a token of the looked-up text is new (whatever the keyed winnowing kept).
    similarity: float
    issued_at: datetime
    key_id: str | None
    model: str
    profile: str
    evidence_tokens: int = 0  # tokens of the looked-up text in n-grams shared with the issued text

    def to_dict(self) -> dict[str, Any]:
        return {"content_id": self.content_id, "match": self.match, "similarity": round(self.similarity, 4),
                "evidence_tokens": self.evidence_tokens, "issued_at": self.issued_at.isoformat(),
                "key_id": self.key_id, "model": self.model, "profile": self.profile}


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets readers run while one writer writes; busy_timeout queues concurrent writers instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything the registry stores is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Registry:
    def __init__(self, url: str | None = None, *, retention_days: int = DEFAULT_RETENTION_DAYS,
                 min_evidence: int = DEFAULT_MIN_EVIDENCE_TOKENS):
        if retention_days < MIN_RETENTION_DAYS:
            raise RegistryError(f"retention must be at least {MIN_RETENTION_DAYS} days "
                                "(CN Measures Art. 9: logs are kept at least six months)")
        if min_evidence < 1:
            raise RegistryError("the minimum evidence must be at least one token")
        self.url = url or default_db_url()
        self.retention = timedelta(days=retention_days)
        self.min_evidence = min_evidence
        self._stop_purging = threading.Event()
        self._purger: threading.Thread | None = None
        try:
            parsed = sa.engine.make_url(self.url)
        except sa.exc.ArgumentError:
            raise RegistryError("invalid database URL") from None
        options: dict[str, Any] = {"pool_pre_ping": True}
        self._file: Path | None = None
        if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
            self._file = Path(parsed.database)
            _private_file(self._file)
        try:
            self.engine = sa.create_engine(parsed, **options)
        except (sa.exc.ArgumentError, ImportError) as err:
            raise RegistryError(f"cannot open the registry at {redact_url(self.url)}: {type(err).__name__}") from None
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            metadata.create_all(self.engine)
            self._secret, self._unkeyed_before = self._open_secret()
        except sa.exc.SQLAlchemyError as err:
            raise RegistryError(f"cannot open the registry at {redact_url(self.url)}: {type(err).__name__}") from None

    def __repr__(self) -> str:
        return f"Registry({redact_url(self.url)})"

    def close(self) -> None:
        self._stop_purging.set()
        if self._purger is not None:
            self._purger.join(timeout=30)
        self.engine.dispose()

    # --- the fingerprint secret --------------------------------------------------------------------

    def _meta(self, connection) -> dict[str, str]:
        return dict(connection.execute(sa.select(registry_meta.c.name, registry_meta.c.value)).all())

    def _open_secret(self) -> tuple[bytes, datetime | None]:
        """The registry's fingerprint secret, made on first use; and when unkeyed (legacy) records stop."""
        with self.engine.connect() as connection:
            meta = self._meta(connection)
        if self._file is not None:
            secret = _read_or_create_secret(self._file.with_name(self._file.name + ".secret"),
                                            must_exist="secret_check" in meta)
        else:
            secret = bytes.fromhex(meta["secret"]) if "secret" in meta else secrets.token_bytes(32)
        check = hmac.new(secret, _SECRET_CHECK, "sha256").hexdigest()
        if "secret_check" not in meta:
            # First keyed open: records already here were fingerprinted without a key, and the registry does not
            # keep the text to re-fingerprint them; they are matched by their old hashes until retention ends them.
            with self.engine.connect() as connection:
                legacy = connection.execute(sa.select(sa.func.count()).select_from(issued_content)).scalar_one()
            rows = [{"name": "secret_check", "value": check}]
            if self._file is None:
                rows.append({"name": "secret", "value": secret.hex()})
            if legacy:
                rows.append({"name": "unkeyed_before", "value": datetime.now(UTC).isoformat()})
            try:
                with self.engine.begin() as connection:
                    connection.execute(registry_meta.insert(), rows)
            except sa.exc.IntegrityError:  # another process keyed it first: use its secret
                return self._open_secret()
            if legacy:
                _log.warning("registry %s: %d record(s) have unkeyed fingerprints from before keying; they stay "
                             "findable until retention removes them", redact_url(self.url), legacy)
            meta = {row["name"]: row["value"] for row in rows}
        elif not hmac.compare_digest(meta["secret_check"], check):
            raise RegistryError(f"the fingerprint secret does not belong to the registry at {redact_url(self.url)}; "
                                "restore the registry's own secret file from a backup")
        unkeyed = meta.get("unkeyed_before")
        return secret, _aware(datetime.fromisoformat(unkeyed)) if unkeyed else None

    def fingerprint(self, text: str) -> TextFingerprint:
        """The text's fingerprint under this registry's secret."""
        return fingerprint(text, self._secret)

    # --- writing --------------------------------------------------------------------------------

    def record(self, record: IssuedRecord) -> None:
        """Store one issued output and its fingerprint hashes in one transaction."""
        with self.engine.begin() as connection:
            self._insert(connection, record)

    def replace(self, record: IssuedRecord) -> None:
        """Replace the record of ``record.content_id`` (or store it) in one transaction.

        A stream is recorded before its first byte leaves, with what is known then, and replaced with the
        whole output at its end: the registry never misses an output that a client has started to receive.
        """
        with self.engine.begin() as connection:
            connection.execute(content_fingerprints.delete().where(
                content_fingerprints.c.content_id == record.content_id))
            connection.execute(issued_content.delete().where(issued_content.c.content_id == record.content_id))
            self._insert(connection, record)

    def _insert(self, connection, record: IssuedRecord) -> None:
        text_print = self.fingerprint(record.generated_text if record.generated_text is not None else record.text)
        # The values go as parameters of the one INSERT statement (compiled once, then cached), not into a new
        # statement per record (`.values(...)`, which SQLAlchemy coerces and compiles each time).
        connection.execute(_INSERT_ISSUED, {
            "content_id": record.content_id, "sha256": sha256_text(record.text), "content_sha256": text_print.content_sha256,
            "num_fingerprints": len(text_print.hashes), "num_tokens": text_print.num_tokens, "key_id": record.key_id,
            "model": record.model, "profile": record.profile, "issued_at": _aware(record.issued_at),
        })
        if text_print.hashes:
            connection.execute(_INSERT_FINGERPRINT,
                               [{"content_id": record.content_id, "hash": h} for h in sorted(text_print.hashes)])

    def purge(self, *, now: datetime | None = None) -> int:
        """Delete records older than the retention period; returns how many."""
        cutoff = (now or datetime.now(UTC)) - self.retention
        with self.engine.begin() as connection:
            expired = sa.select(issued_content.c.content_id).where(issued_content.c.issued_at < cutoff)
            # Explicit child delete: SQLite enforces ON DELETE CASCADE only with foreign_keys on, other URLs may not.
            connection.execute(content_fingerprints.delete().where(content_fingerprints.c.content_id.in_(expired)))
            deleted = connection.execute(issued_content.delete().where(issued_content.c.issued_at < cutoff)).rowcount
            if self._unkeyed_before is not None and not connection.execute(
                    sa.select(sa.func.count()).select_from(issued_content)
                    .where(issued_content.c.issued_at < self._unkeyed_before)).scalar_one():
                connection.execute(registry_meta.delete().where(registry_meta.c.name == "unkeyed_before"))
                self._unkeyed_before = None
        return deleted

    def purge_periodically(self, interval_s: float = PURGE_INTERVAL_S) -> None:
        """Purge now and then every ``interval_s`` seconds in a background thread, until :meth:`close`."""
        if not interval_s > 0:
            raise RegistryError("the purge interval must be positive")
        self.purge()

        def run() -> None:
            while not self._stop_purging.wait(interval_s):
                try:
                    self.purge()
                except Exception as err:  # noqa: BLE001 - a database outage must not end retention for good
                    _log.warning("registry purge failed: %s", type(err).__name__)

        if self._purger is None:
            # A daemon: retention never keeps a stopping process alive.
            self._purger = threading.Thread(target=run, name="aimark-registry-purge", daemon=True)
            self._purger.start()

    # --- reading --------------------------------------------------------------------------------

    def count(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(sa.select(sa.func.count()).select_from(issued_content)).scalar_one())

    def key_ids(self, model: str | None = None) -> set[str]:
        """The watermark key ids of the outputs held (of one model, if given)."""
        query = sa.select(issued_content.c.key_id).distinct().where(issued_content.c.key_id.is_not(None))
        if model is not None:
            query = query.where(issued_content.c.model == model)
        with self.engine.connect() as connection:
            return set(connection.execute(query).scalars())

    def get(self, content_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(issued_content).where(issued_content.c.content_id == content_id)).mappings().first()
        if row is None:
            return None
        return {**row, "issued_at": _aware(row["issued_at"]).isoformat()}

    def lookup(self, text: str, *, threshold: float = NEAR_COPY_THRESHOLD,
               min_evidence: int | None = None) -> list[RegistryMatch]:
        """Issued outputs this text is an exact or near copy of, best first (exact copies first).

        A near match needs ``min_evidence`` tokens of ``text`` in shared n-grams (default: the registry's).
        """
        floor = self.min_evidence if min_evidence is None else min_evidence
        prints = [self.fingerprint(text)]
        if self._unkeyed_before is not None:
            prints.append(fingerprint(text))  # the unkeyed values records from before keying hold
        if not prints[0].num_tokens:
            return []
        with self.engine.connect() as connection:
            exact = connection.execute(
                sa.select(issued_content)
                .where(issued_content.c.content_sha256.in_([p.content_sha256 for p in prints]))
                .order_by(issued_content.c.issued_at.desc()).limit(MAX_MATCHES)
            ).mappings().all()
            matches = [_match(row, "exact", 1.0, prints[0].num_tokens) for row in exact]
            for text_print in prints:
                if len(matches) < MAX_MATCHES and text_print.hashes:
                    matches += self._near(connection, text_print, threshold, floor, {m.content_id for m in matches})
        return matches[:MAX_MATCHES]

    def _near(self, connection, text_print: TextFingerprint, threshold: float, floor: int,
              exclude: set[str]) -> list[RegistryMatch]:
        # Needed shared hashes: the looked-up text's share, so a quoted passage of a long output still counts.
        needed = max(1, int(threshold * len(text_print.hashes) + 0.9999))
        if text_print.covered_tokens(text_print.hashes) < floor:
            return []  # too little text to be evidence of anything, whatever it shares
        query_hashes = sorted(text_print.hashes)
        shared = sa.func.count().label("shared")
        candidates = connection.execute(
            sa.select(content_fingerprints.c.content_id, shared)
            .where(content_fingerprints.c.hash.in_(query_hashes))
            .group_by(content_fingerprints.c.content_id)
            .having(sa.func.count() >= needed)
            .order_by(shared.desc())
            .limit(MAX_MATCHES + len(exclude))
        ).all()
        wanted = [content_id for content_id, _count in candidates if content_id not in exclude]
        if not wanted:
            return []
        common: dict[str, set[int]] = {content_id: set() for content_id in wanted}
        for content_id, value in connection.execute(
                sa.select(content_fingerprints.c.content_id, content_fingerprints.c.hash)
                .where(content_fingerprints.c.content_id.in_(wanted), content_fingerprints.c.hash.in_(query_hashes))):
            common[content_id].add(value)
        evidence = {content_id: text_print.covered_tokens(values) for content_id, values in common.items()}
        kept = [content_id for content_id in wanted if evidence[content_id] >= floor]
        if not kept:
            return []
        rows = connection.execute(sa.select(issued_content).where(issued_content.c.content_id.in_(kept))).mappings()
        found = [_match(row, "near", min(evidence[row["content_id"]] / text_print.num_tokens, 1.0),
                        evidence[row["content_id"]]) for row in rows]
        return sorted(found, key=lambda m: (-m.similarity, -m.issued_at.timestamp()))

    def lookup_dict(self, text: str, *, min_evidence: int | None = None) -> dict[str, Any]:
        """The registry layer of a verification report."""
        return {"matches": [m.to_dict() for m in self.lookup(text, min_evidence=min_evidence)]}


def _match(row, kind: str, similarity: float, evidence: int) -> RegistryMatch:
    return RegistryMatch(row["content_id"], kind, similarity, _aware(row["issued_at"]), row["key_id"], row["model"],
                         row["profile"], evidence)
