"""The committed demo files in examples/ verify exactly as examples/expected.json says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aimark.verify import verify

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXPECTED = json.loads((EXAMPLES / "expected.json").read_text(encoding="utf-8"))
ANCHORS = (EXAMPLES / "certs" / "trust_anchor.pem").read_bytes()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_committed_example_verifies_as_expected(name: str) -> None:
    expected = EXPECTED[name]
    report = verify((EXAMPLES / name).read_bytes(), name, "all", trust_anchors=ANCHORS)
    assert not report.input_errors
    assert {p.profile: p.verdict for p in report.profiles} == expected["verdicts"]
    statuses = {r.id: r for p in report.profiles for r in p.requirements}
    for requirement_id, status in expected.get("failing", {}).items():
        assert statuses[requirement_id].status == status
    if "reason" in expected:
        assert expected["reason"] in statuses["eu.marks-intact"].detail


def test_every_green_example_has_a_red_twin() -> None:
    green = {n for n, e in EXPECTED.items() if ".tampered." not in n}
    assert {n.replace(".tampered.", ".") for n in EXPECTED if ".tampered." in n} == green


def test_the_example_key_is_marked_test_only() -> None:
    assert "TEST ONLY" in (EXAMPLES / "certs" / "README.txt").read_text()


def test_signed_documents_still_open() -> None:
    import docx
    import pypdf

    paragraphs = [p.text for p in docx.Document(str(EXAMPLES / "summary.docx")).paragraphs]
    assert paragraphs[0].startswith("このコンテンツは生成AI")
    page_text = pypdf.PdfReader(str(EXAMPLES / "brief.pdf")).pages[0].extract_text()
    assert page_text.startswith("本内容由生成式人工智能生成。")
