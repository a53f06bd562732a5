"""Registry back ends: a SQLite file, and the PostgreSQL server CI starts (scripts/ci_services.sh)."""

from __future__ import annotations

import pytest

from aimark.registry import Registry
from tests.services import postgres_url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.sqlite3'}"
    return postgres_url(tmp_path.name)


@pytest.fixture
def registry(db_url):
    registry = Registry(db_url)
    yield registry
    registry.close()
