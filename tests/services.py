"""External services some tests need: PostgreSQL and Chromium.

CI (`CI=true`) starts them with scripts/ci_services.sh; there a missing service fails the test instead of
skipping it (tests.helpers.missing, the same rule as for missing packages), so the PostgreSQL and browser
tests can never pass by not running.
"""

from __future__ import annotations

import os
import re
import shutil

from tests.helpers import missing

CHROMIUM = os.environ.get("AIMARK_TEST_CHROMIUM", "/usr/bin/chromium")


def _missing(what: str) -> None:
    missing(what, "run scripts/ci_services.sh first")


def postgres_url(schema_hint: str) -> str:
    """A URL to a fresh, empty PostgreSQL schema (dropped tables from earlier runs cannot leak in)."""
    url = os.environ.get("AIMARK_TEST_PG_URL")
    if not url:
        _missing("PostgreSQL (AIMARK_TEST_PG_URL)")
    import sqlalchemy as sa

    schema = "t_" + re.sub(r"[^a-z0-9_]", "_", schema_hint.lower())[-40:]
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError as err:
        _missing(f"PostgreSQL at AIMARK_TEST_PG_URL ({type(err).__name__})")
    finally:
        engine.dispose()
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{schema}"


def chromium_path() -> str:
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        _missing(f"Chromium ({CHROMIUM})")
    try:
        import playwright  # noqa: F401
    except ImportError:
        _missing("the playwright package")
    return CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
