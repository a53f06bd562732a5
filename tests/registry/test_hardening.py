"""The registry keeps its promises: retention floor and periodic purge, no 5-gram membership oracle, keyed
fingerprints (with a path for registries from before keying), private files. SQLite and real PostgreSQL."""

from __future__ import annotations

import hashlib
import os
import stat
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from aimark.registry import (
    DEFAULT_MIN_EVIDENCE_TOKENS,
    MIN_RETENTION_DAYS,
    IssuedRecord,
    Registry,
    RegistryError,
)
from aimark.registry.fingerprint import fingerprint, normalised_tokens
from aimark.registry.store import content_fingerprints, issued_content

OUTPUT = ("The committee reviewed the proposal for the new library on the north side of the river and asked the "
          "architects to reduce the height of the reading room, to add a second entrance near the bus stop, and "
          "to keep the old oak trees that line the street. A revised plan is due before the end of the spring term.")
SENTENCE = ("asked the architects to reduce the height of the reading room, to add a second entrance near the bus "
            "stop, and to keep the old oak trees")


def _record(content_id: str, text: str = OUTPUT, *, days_ago: float = 0, key_id: str = "synthid-00aa") -> IssuedRecord:
    return IssuedRecord(content_id, text, key_id, "tiny", "all", datetime.now(UTC) - timedelta(days=days_ago))


def test_five_words_of_an_output_reveal_nothing_but_a_quoted_sentence_is_found(registry):
    registry.record(_record("aimark-lib"))
    words = OUTPUT.split()
    # Every 5-word window: winnowing keeps some of them as fingerprints, and each of those used to match.
    five_grams = [" ".join(words[i : i + 5]) for i in range(len(words) - 4)]
    assert len(normalised_tokens(SENTENCE)) >= DEFAULT_MIN_EVIDENCE_TOKENS > 5
    assert [gram for gram in five_grams if registry.lookup(gram)] == []
    assert registry.lookup_dict(five_grams[0]) == {"matches": []}
    (match,) = registry.lookup(SENTENCE)
    assert match.content_id == "aimark-lib" and match.match == "near"
    assert DEFAULT_MIN_EVIDENCE_TOKENS <= match.evidence_tokens <= len(normalised_tokens(SENTENCE))
    # A trusted caller may be given a lower floor by the service.
    trusted = [registry.lookup(gram, min_evidence=5) for gram in five_grams]
    assert any(trusted) and {m.evidence_tokens for found in trusted for m in found} == {5}


def test_an_exact_copy_of_a_whole_short_output_is_still_found(registry):
    registry.record(_record("aimark-short", "Yes, the parcel left on Monday."))
    (match,) = registry.lookup("Yes, the parcel left on Monday.")
    assert match.match == "exact" and match.evidence_tokens == 6


def test_retention_has_a_six_month_floor():
    assert MIN_RETENTION_DAYS >= 183
    for days in (1, 30, 182):
        with pytest.raises(RegistryError, match="at least 183 days"):
            Registry("sqlite://", retention_days=days)
    with pytest.raises(RegistryError, match="minimum evidence"):
        Registry("sqlite://", min_evidence=0)


def test_periodic_purge_runs_now_and_in_the_background_until_closed(db_url):
    first = Registry(db_url)
    first.record(_record("aimark-expired", OUTPUT + " one", days_ago=400))
    first.record(_record("aimark-kept", OUTPUT + " two", days_ago=100))
    first.purge_periodically(interval_s=0.05)
    assert first.get("aimark-expired") is None and first.get("aimark-kept") is not None  # purged on start
    first.record(_record("aimark-later", OUTPUT + " three", days_ago=300))
    deadline = time.monotonic() + 60  # a hang guard: the background purge runs every 50 ms
    while first.get("aimark-later") is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first.get("aimark-later") is None
    thread = first._purger
    first.close()
    assert thread is not None and not thread.is_alive()


def test_fingerprints_are_keyed_per_registry(db_url, tmp_path):
    registry = Registry(db_url)
    other = Registry(f"sqlite:///{tmp_path / 'other.sqlite3'}")
    try:
        for each in (registry, other):
            each.record(_record("aimark-same"))
        stored = {}
        for name, each in (("one", registry), ("other", other)):
            with each.engine.connect() as connection:
                stored[name] = (set(connection.execute(sa.select(content_fingerprints.c.hash)).scalars()),
                                connection.execute(sa.select(issued_content.c.content_sha256)).scalar_one())
        unkeyed = fingerprint(OUTPUT)
        assert stored["one"][0].isdisjoint(unkeyed.hashes) and stored["one"][0].isdisjoint(stored["other"][0])
        canonical = " ".join(normalised_tokens(OUTPUT)).encode()
        assert stored["one"][1] not in (unkeyed.content_sha256, hashlib.sha256(canonical).hexdigest(), stored["other"][1])
        assert registry.lookup(OUTPUT)[0].match == "exact"
    finally:
        registry.close()
        other.close()


def test_the_secret_outlives_a_reopen_and_a_lost_or_foreign_secret_is_an_error(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.sqlite3'}"
    secret = tmp_path / "r.sqlite3.secret"
    first = Registry(url)
    first.record(_record("aimark-kept"))
    first.close()
    again = Registry(url)
    assert again.lookup(SENTENCE)[0].content_id == "aimark-kept"
    again.close()
    original = secret.read_bytes()
    secret.write_text(os.urandom(32).hex())
    with pytest.raises(RegistryError, match="does not belong"):
        Registry(url)
    secret.unlink()
    with pytest.raises(RegistryError, match="missing"):
        Registry(url)
    secret.write_bytes(original)
    Registry(url).close()


def _legacy_registry(url: str) -> None:
    """A registry as aimark wrote it before keying: unkeyed hashes, no meta table."""
    from aimark.registry.store import metadata, registry_meta

    engine = sa.create_engine(url)
    metadata.create_all(engine, tables=[issued_content, content_fingerprints])
    old = fingerprint(OUTPUT)
    with engine.begin() as connection:
        connection.execute(issued_content.insert().values(
            content_id="aimark-legacy", sha256="0" * 64, content_sha256=old.content_sha256,
            num_fingerprints=len(old.hashes), num_tokens=old.num_tokens, key_id="k", model="tiny", profile="all",
            issued_at=datetime.now(UTC) - timedelta(days=190)))
        connection.execute(content_fingerprints.insert(), [{"content_id": "aimark-legacy", "hash": h} for h in old.hashes])
    assert not sa.inspect(engine).has_table(registry_meta.name)
    engine.dispose()


def test_a_registry_from_before_keying_keeps_finding_its_records_until_retention_ends_them(db_url):
    _legacy_registry(db_url)
    registry = Registry(db_url)
    try:
        registry.record(_record("aimark-keyed", OUTPUT + " Signed, the board."))
        assert {m.content_id for m in registry.lookup(OUTPUT)} == {"aimark-legacy", "aimark-keyed"}
        assert registry.lookup(SENTENCE)[0].match == "near"
        assert registry.purge() == 1  # the legacy record is 190 days old
        assert registry._unkeyed_before is None
        assert {m.content_id for m in registry.lookup(OUTPUT)} == {"aimark-keyed"}
    finally:
        registry.close()
    reopened = Registry(db_url)
    assert reopened._unkeyed_before is None  # recorded in the database, not only in memory
    reopened.close()


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_sqlite_files_are_private_even_under_a_permissive_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        path = tmp_path / "new" / "registry.sqlite3"
        registry = Registry(f"sqlite:///{path}")
        registry.record(_record("aimark-private"))
        with registry.engine.connect() as connection:  # an open reader keeps the -wal and -shm files in place
            connection.execute(sa.text("select 1"))
            files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"),
                     path.with_name(path.name + ".secret")]
            assert all(f.exists() for f in files)
            assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}
        assert _mode(path.parent) == 0o700
        registry.close()
        # A registry made by an older aimark (0644) is tightened when opened.
        path.chmod(0o644)
        Registry(f"sqlite:///{path}").close()
        assert _mode(path) == 0o600
    finally:
        os.umask(previous)


def test_key_ids_of_the_outputs_held(registry):
    registry.record(_record("aimark-a", OUTPUT + " a", key_id="synthid-aa"))
    registry.record(IssuedRecord("aimark-b", OUTPUT + " b", "synthid-bb", "other-model", "all", datetime.now(UTC)))
    assert registry.key_ids() == {"synthid-aa", "synthid-bb"}
    assert registry.key_ids("tiny") == {"synthid-aa"}
