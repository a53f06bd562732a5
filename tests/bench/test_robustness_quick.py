"""python -m bench.robustness --quick end to end on the embedded model (a few minutes; CI runs it).

Deselect locally with ``-m "not robustness_quick"``. In CI (CI=true) a missing bench extra is a
failure, not a skip, so the suite cannot silently stop running there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import require_module

pytestmark = [pytest.mark.robustness_quick, pytest.mark.embedded, pytest.mark.timeout(1200)]
ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_writes_a_report_with_sane_numbers(tmp_path):
    require_module("kiwipiepy", "the bench extra: pip install -e '.[test,bench]'")
    out = tmp_path / "results"
    completed = subprocess.run(
        [sys.executable, "-m", "bench.robustness", "--quick", "--out", str(out), "--cache", str(tmp_path / "cache")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = (out / "robustness.md").read_text(encoding="utf-8")
    for heading in ("## Targets", "## Detection power", "## Calibration", "## Quality", "## Localisation", "## Plots"):
        assert heading in report
    assert (out / "robustness-tpr-vs-length.png").stat().st_size > 1000
    assert (out / "robustness-calibration-qq.png").stat().st_size > 1000
    summary = json.loads((out / "robustness.json").read_text(encoding="utf-8"))
    clean = [r for r in summary["power"] if r["attack"] == "none" and r["length"] == 50]
    # Every language generated, watermarked and was scored; clean 50-token SynthID text is detected.
    assert {r["language"] for r in clean} == {"ko", "ja", "zh", "en"}
    assert all(r["tpr@0.01"] == 1.0 for r in clean), clean
    assert all(r["n"] >= 100 for r in summary["calibration"])
    # Human text must not look watermarked far beyond the nominal rate (exact p-values).
    assert all(r["fpr@0.05"] <= 0.2 for r in summary["calibration"]), summary["calibration"]
    local = summary["localisation"]
    assert {r["language"] for r in local} == {"ko", "ja", "zh", "en"}
    assert all(r["false_spans_in_human"] == 0 for r in local)
    assert sum(r["span_recall"] for r in local) / len(local) > 0.5
