"""The registry of issued content: one row per output, its fingerprint hashes, lookup and retention.

SQLite (a file under ``AIMARK_HOME``) by default; any SQLAlchemy URL otherwise, e.g.
``postgresql+psycopg://user:pass@host/db``. The content id is the C2PA content id and the
GB 45438-2025 Annex E ``ProduceID``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from aimark.registry.fingerprint import TextFingerprint, fingerprint, sha256_text

# CN Measures for Labelling AI-Generated Content Art. 9: keep logs of implicit labelling for at least six months.
DEFAULT_RETENTION_DAYS = 183
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


def default_db_url() -> str:
    """``AIMARK_DB_URL``, else a SQLite file under ``AIMARK_HOME`` (default ``~/.cache/aimark``)."""
    url = os.environ.get("AIMARK_DB_URL")
    if url:
        return url
    home = Path(os.environ.get("AIMARK_HOME") or Path.home() / ".cache" / "aimark")
    return f"sqlite:///{home / 'registry.sqlite3'}"


def redact_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<invalid database URL>"


class RegistryError(RuntimeError):
    """The registry database cannot be opened or used; messages never contain a password."""


@dataclass(frozen=True)
class IssuedRecord:
    content_id: str
    text: str  # exactly as issued (notice, text and any C2PA wrapper)
    key_id: str | None
    model: str
    profile: str
    issued_at: datetime
    generated_text: str | None = None  # the model's own text, when it differs from `text`

    def fingerprint(self) -> TextFingerprint:
        return fingerprint(self.generated_text if self.generated_text is not None else self.text)


@dataclass(frozen=True)
class RegistryMatch:
    content_id: str
    match: str  # "exact" (same content) or "near" (shares most of its fingerprints)
    similarity: float  # share of the looked-up text's fingerprints found in the issued text
    issued_at: datetime
    key_id: str | None
    model: str
    profile: str

    def to_dict(self) -> dict[str, Any]:
        return {"content_id": self.content_id, "match": self.match, "similarity": round(self.similarity, 4),
                "issued_at": self.issued_at.isoformat(), "key_id": self.key_id, "model": self.model,
                "profile": self.profile}


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
    def __init__(self, url: str | None = None, *, retention_days: int = DEFAULT_RETENTION_DAYS):
        if retention_days < 1:
            raise RegistryError("retention must be at least one day")
        self.url = url or default_db_url()
        self.retention = timedelta(days=retention_days)
        try:
            parsed = sa.engine.make_url(self.url)
        except sa.exc.ArgumentError:
            raise RegistryError("invalid database URL") from None
        options: dict[str, Any] = {"pool_pre_ping": True}
        if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.engine = sa.create_engine(parsed, **options)
        except (sa.exc.ArgumentError, ImportError) as err:
            raise RegistryError(f"cannot open the registry at {redact_url(self.url)}: {type(err).__name__}") from None
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            metadata.create_all(self.engine)
        except sa.exc.SQLAlchemyError as err:
            raise RegistryError(f"cannot open the registry at {redact_url(self.url)}: {type(err).__name__}") from None

    def __repr__(self) -> str:
        return f"Registry({redact_url(self.url)})"

    def close(self) -> None:
        self.engine.dispose()

    # --- writing --------------------------------------------------------------------------------

    def record(self, record: IssuedRecord) -> None:
        """Store one issued output and its fingerprint hashes in one transaction."""
        text_print = record.fingerprint()
        with self.engine.begin() as connection:
            connection.execute(issued_content.insert().values(
                content_id=record.content_id, sha256=sha256_text(record.text), content_sha256=text_print.content_sha256,
                num_fingerprints=len(text_print.hashes), num_tokens=text_print.num_tokens, key_id=record.key_id,
                model=record.model, profile=record.profile, issued_at=_aware(record.issued_at),
            ))
            if text_print.hashes:
                connection.execute(content_fingerprints.insert(),
                                   [{"content_id": record.content_id, "hash": h} for h in sorted(text_print.hashes)])

    def purge(self, *, now: datetime | None = None) -> int:
        """Delete records older than the retention period; returns how many."""
        cutoff = (now or datetime.now(UTC)) - self.retention
        with self.engine.begin() as connection:
            expired = sa.select(issued_content.c.content_id).where(issued_content.c.issued_at < cutoff)
            # Explicit child delete: SQLite enforces ON DELETE CASCADE only with foreign_keys on, other URLs may not.
            connection.execute(content_fingerprints.delete().where(content_fingerprints.c.content_id.in_(expired)))
            return connection.execute(issued_content.delete().where(issued_content.c.issued_at < cutoff)).rowcount

    # --- reading --------------------------------------------------------------------------------

    def count(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(sa.select(sa.func.count()).select_from(issued_content)).scalar_one())

    def get(self, content_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(issued_content).where(issued_content.c.content_id == content_id)).mappings().first()
        if row is None:
            return None
        return {**row, "issued_at": _aware(row["issued_at"]).isoformat()}

    def lookup(self, text: str, *, threshold: float = NEAR_COPY_THRESHOLD) -> list[RegistryMatch]:
        """Issued outputs this text is an exact or near copy of, best first (exact copies first)."""
        text_print = fingerprint(text)
        if not text_print.num_tokens:
            return []
        with self.engine.connect() as connection:
            exact = connection.execute(
                sa.select(issued_content).where(issued_content.c.content_sha256 == text_print.content_sha256)
                .order_by(issued_content.c.issued_at.desc()).limit(MAX_MATCHES)
            ).mappings().all()
            matches = [_match(row, "exact", 1.0) for row in exact]
            if len(matches) < MAX_MATCHES and text_print.hashes:
                matches += self._near(connection, text_print, threshold, {m.content_id for m in matches})
        return matches[:MAX_MATCHES]

    def _near(self, connection, text_print: TextFingerprint, threshold: float, exclude: set[str]) -> list[RegistryMatch]:
        # Needed shared hashes: the looked-up text's share, so a quoted passage of a long output still counts.
        needed = max(1, int(threshold * len(text_print.hashes) + 0.9999))
        shared = sa.func.count().label("shared")
        candidates = connection.execute(
            sa.select(content_fingerprints.c.content_id, shared)
            .where(content_fingerprints.c.hash.in_(sorted(text_print.hashes)))
            .group_by(content_fingerprints.c.content_id)
            .having(sa.func.count() >= needed)
            .order_by(shared.desc())
            .limit(MAX_MATCHES + len(exclude))
        ).all()
        scored = {content_id: count / len(text_print.hashes) for content_id, count in candidates if content_id not in exclude}
        if not scored:
            return []
        rows = connection.execute(sa.select(issued_content).where(issued_content.c.content_id.in_(list(scored)))).mappings()
        found = [_match(row, "near", scored[row["content_id"]]) for row in rows]
        return sorted(found, key=lambda m: (-m.similarity, -m.issued_at.timestamp()))

    def lookup_dict(self, text: str) -> dict[str, Any]:
        """The registry layer of a verification report."""
        return {"matches": [m.to_dict() for m in self.lookup(text)]}


def _match(row, kind: str, similarity: float) -> RegistryMatch:
    return RegistryMatch(row["content_id"], kind, similarity, _aware(row["issued_at"]), row["key_id"], row["model"],
                         row["profile"])
