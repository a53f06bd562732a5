"""The registry on SQLite and on a real PostgreSQL server: record, exact and near lookup, retention."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from aimark.labels import add_label_text, file_kind_for
from aimark.registry import IssuedRecord, Registry, RegistryError, redact_url

ISSUED = ("Dear customer, thank you for your patience while we looked into the delayed delivery of your order. "
          "The parcel left our warehouse on Monday and should reach you within three working days.")


def _record(content_id: str, text: str = ISSUED, *, days_ago: float = 0, generated: str | None = None) -> IssuedRecord:
    return IssuedRecord(content_id=content_id, text=text, key_id="synthid-0011223344556677", model="tiny",
                        profile="all", issued_at=datetime.now(UTC) - timedelta(days=days_ago), generated_text=generated)


def test_exact_copy_with_or_without_the_label_is_found_with_its_date(registry):
    issued = add_label_text(ISSUED, file_kind_for("out.txt"), "all", "zh")
    registry.record(_record("aimark-1", issued, generated=ISSUED))
    for pasted in (issued, ISSUED, ISSUED.upper()):
        (match,) = registry.lookup(pasted)
        assert match.content_id == "aimark-1" and match.match == "exact" and match.similarity == 1.0
        assert match.issued_at.tzinfo is not None
        assert abs((match.issued_at - datetime.now(UTC)).total_seconds()) < 3600
    assert registry.get("aimark-1")["sha256"] != registry.get("aimark-1")["content_sha256"]


def test_near_copy_is_found_and_unrelated_text_is_not(registry):
    registry.record(_record("aimark-near"))
    edited = ISSUED.replace("Dear customer", "Hello").replace("three working days", "3 working days")
    (match,) = registry.lookup(edited)
    assert match.match == "near" and 0.5 <= match.similarity < 1.0
    assert registry.lookup("Quarterly revenue rose by four percent on strong demand for memory chips in Asia.") == []
    assert registry.lookup("") == []


def test_a_short_text_is_found_exactly(registry):
    registry.record(_record("aimark-short", "네, 알겠습니다."))
    (match,) = registry.lookup("네, 알겠습니다.")
    assert match.content_id == "aimark-short" and match.match == "exact"


def test_purge_deletes_only_what_is_older_than_the_retention(registry):
    registry.record(_record("aimark-old", ISSUED + " old", days_ago=200))
    registry.record(_record("aimark-new", ISSUED + " new", days_ago=10))
    assert registry.count() == 2
    assert registry.purge() == 1
    assert registry.get("aimark-old") is None and registry.get("aimark-new") is not None
    assert {m.content_id for m in registry.lookup(ISSUED + " old")} == {"aimark-new"}  # near copy of the survivor


def test_concurrent_writers_lose_no_rows(registry):
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for i in range(10):
                registry.record(_record(f"aimark-{worker}-{i}", f"{ISSUED} worker {worker} item {i}"))
        except BaseException as err:  # noqa: BLE001 - collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert registry.count() == 60


def test_duplicate_content_id_is_refused(registry):
    registry.record(_record("aimark-dup"))
    import sqlalchemy as sa

    with pytest.raises(sa.exc.IntegrityError):  # the primary key refuses it, on SQLite and PostgreSQL alike
        registry.record(_record("aimark-dup"))
    assert registry.count() == 1


def test_bad_urls_and_retention_fail_without_showing_the_password():
    with pytest.raises(RegistryError) as err:
        Registry("postgresql+psycopg://user:s3cret@127.0.0.1:1/none")
    assert "s3cret" not in str(err.value)
    assert "s3cret" not in redact_url("postgresql://user:s3cret@host/db")
    with pytest.raises(RegistryError):
        Registry("not a url")
    with pytest.raises(RegistryError):
        Registry("sqlite://", retention_days=0)
