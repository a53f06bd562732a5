"""bench/adversarial --quick end to end: every public entry answers every generator (no times asserted)."""

from __future__ import annotations

import pytest


@pytest.mark.timeout(600)
def test_every_entry_answers_every_adversarial_input(tmp_path):
    from bench.adversarial.entries import TEXT_KINDS
    from bench.adversarial.generators import ADVERSARIAL
    from bench.adversarial.run import QUICK_SIZES, main

    out = tmp_path / "adversarial.md"
    rows = main(["--quick", "--out", str(out)])
    escaped = [(row.entry, row.generator, row.size, row.outcome) for row in rows
               if row.outcome.startswith(("ESCAPED", "timeout", "skipped")) or row.ordinary_outcome != "ok"]
    assert not escaped
    # Every entry met every generator of a kind it takes, at every size.
    entries = {row.entry for row in rows}
    assert entries == {"detect", "code-language guess", "fingerprint", "label", "unlabel", "sign", "verify",
                       "HTTP /v1/detect", "HTTP /v1/verify"}
    text_generators = [name for name, (kind, make) in ADVERSARIAL.items() if make(16).filename.rsplit(".", 1)[-1] in TEXT_KINDS]
    assert sum(row.entry == "detect" for row in rows) == len(text_generators) * len(QUICK_SIZES)
    assert sum(row.entry == "verify" for row in rows) == len(ADVERSARIAL) * len(QUICK_SIZES)
    assert "## Worst ratio" in out.read_text() and out.with_suffix(".json").exists()
