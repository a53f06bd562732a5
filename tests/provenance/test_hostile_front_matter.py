"""Front matter from files aimark did not write: every fault is an AigcError, never a crash (issue 13.9)."""

from __future__ import annotations

import pytest

from aimark.provenance.aigc import MAX_METADATA_BYTES, AigcError, read_markdown
from aimark.verify import verify

LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]\n" for prev, name in zip("abcdefgh", "bcdefghi")
)

HOSTILE = {
    "impossible date": "x: 2024-13-45",
    "list as key": "? [a]\n: 1",
    "mapping as key": "? {a: 1}\n: 1",
    "alias bomb": LAUGHS + "AIGC: *i",
    "alias bomb as key": LAUGHS + "? *i\n: 1",
    "deep flow nesting": "x: " + "[" * 5000 + "]" * 5000,
    "deep block nesting": "".join("  " * i + f"k{i}:\n" for i in range(200)) + "  " * 200 + "v",
    "python tag": "x: !!python/object/apply:os.system ['true']",
    "bad timestamp in AIGC": "AIGC:\n  Label: 2024-13-45",
}


def _markdown(front: str) -> bytes:
    return f"---\n{front}\n---\nbody\n".encode()


@pytest.mark.parametrize("front", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_front_matter_is_a_coded_error(front: str) -> None:
    with pytest.raises(AigcError) as info:
        read_markdown(_markdown(front))
    assert info.value.code == "aigc.malformedYaml"
    assert "\n" not in info.value.message


@pytest.mark.parametrize("front", list(HOSTILE.values()), ids=list(HOSTILE))
def test_verify_reports_hostile_front_matter(front: str) -> None:
    report = verify(_markdown(front), "doc.md", "cn")
    aigc = report.layers["aigc"]
    assert aigc["present"] is False and aigc["error"]["code"] == "aigc.malformedYaml"
    assert "os.system" not in aigc["error"]["message"]  # the parser's message quoting the input is not echoed


@pytest.mark.timeout(60)  # a hang guard: printing the old loader's key expanded 9**9 strings
def test_alias_bomb_is_refused_before_it_grows() -> None:
    with pytest.raises(AigcError, match="alias"):
        read_markdown(_markdown(LAUGHS + "? *i\n: 1"))


def test_front_matter_over_the_cap_is_refused() -> None:
    with pytest.raises(AigcError, match="larger than"):
        read_markdown(_markdown("x: '" + "a" * MAX_METADATA_BYTES + "'"))


def test_ordinary_front_matter_still_reads() -> None:
    label = read_markdown(_markdown("title: t\ndate: 2024-12-01\nAIGC:\n  Label: '1'\n  ContentProducer: p\n  ProduceID: id1"))
    assert label is not None and label.produce_id == "id1"
