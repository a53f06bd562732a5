"""The test suite's own machinery: seeded keys, the seed in failure reports, the CI rule for missing needs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers import SEED_VARIABLE, missing, require_module, seeded_keys

ROOT = Path(__file__).resolve().parents[1]


def test_seeded_keys_repeat_per_label_and_differ_across_labels_and_seeds(monkeypatch):
    monkeypatch.setenv(SEED_VARIABLE, "5")
    first = [k.secret for k in map(seeded_keys("a"), ["kgw", "kgw", "gumbel"])]
    assert first == [k.secret for k in map(seeded_keys("a"), ["kgw", "kgw", "gumbel"])]
    assert len(set(first)) == 3 and seeded_keys("b")("kgw").secret not in first
    monkeypatch.setenv(SEED_VARIABLE, "6")
    assert seeded_keys("a")("kgw").secret not in first
    key = seeded_keys("a")("kgw", context_width=2)
    assert key.params["context_width"] == 2 and key.key_id.startswith("kgw-")


def test_a_bad_seed_is_a_usage_error(monkeypatch):
    monkeypatch.setenv(SEED_VARIABLE, "seven")
    with pytest.raises(pytest.UsageError, match=SEED_VARIABLE):
        seeded_keys("a")


@pytest.mark.parametrize("ci, outcome", [("true", pytest.fail.Exception), ("TRUE", pytest.fail.Exception), ("", pytest.skip.Exception), ("false", pytest.skip.Exception)])
def test_a_missing_module_or_service_fails_only_under_ci(monkeypatch, ci, outcome):
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="no_such_module_for_aimark"):
        require_module("no_such_module_for_aimark")
    with pytest.raises(outcome):
        missing("PostgreSQL")
    assert require_module("json").dumps(1) == "1"


def test_a_failing_test_reports_the_seed_and_the_header_names_it(tmp_path):
    (tmp_path / "conftest.py").write_text("from tests.conftest import pytest_report_header, pytest_runtest_makereport  # noqa: F401\n")
    (tmp_path / "test_fails.py").write_text(textwrap.dedent("""
        def test_passes():
            pass

        def test_fails():
            assert False
    """))
    env = {**os.environ, SEED_VARIABLE: "42", "PYTHONPATH": str(ROOT)}
    completed = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(tmp_path)], cwd=tmp_path,
                               capture_output=True, text=True, env=env, timeout=120, check=False)
    assert completed.returncode == 1, completed.stdout
    assert f"aimark test seed: {SEED_VARIABLE}=42" in completed.stdout
    assert completed.stdout.count(f"reproduce with: {SEED_VARIABLE}=42 pytest 'test_fails.py::test_fails'") == 1, completed.stdout


def test_commands_that_make_their_own_key_draw_it_from_the_seeded_stream(tmp_path):
    from typer.testing import CliRunner

    from aimark.cli import app
    from tests.helpers import seeded_generate_key

    ids = []
    for attempt in range(2):
        with seeded_generate_key("keygen-check"):
            result = CliRunner().invoke(app, ["keygen", "--scheme", "gumbel", "--out", str(tmp_path / f"{attempt}.json"), "--json"])
        assert result.exit_code == 0, result.output
        ids.append(json.loads(result.stdout)["key_id"])
    assert ids[0] == ids[1]
    result = CliRunner().invoke(app, ["keygen", "--scheme", "gumbel", "--out", str(tmp_path / "real.json"), "--json"])
    assert json.loads(result.stdout)["key_id"] != ids[0]  # outside the block: os.urandom again
