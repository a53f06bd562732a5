"""Bounded fuzz of the whole verifier on mutated copies of the committed examples: never a traceback."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from aimark.verify import VERDICT_ERROR, VERDICT_NOT_SATISFIED, VERDICT_SATISFIED, verify

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ANCHORS = (EXAMPLES / "certs" / "trust_anchor.pem").read_bytes()
MUTATIONS = 60


@pytest.mark.parametrize("name", ["report.txt", "notes.md", "hello.py", "summary.docx", "brief.pdf"])
def test_verifier_survives_mutations(name: str) -> None:
    original = (EXAMPLES / name).read_bytes()
    rng = random.Random(name)
    for _ in range(MUTATIONS):
        data = bytearray(original)
        for _ in range(rng.randint(1, 3)):
            position = rng.randrange(len(data))
            if rng.random() < 0.5:
                data[position] = rng.randrange(256)
            else:
                del data[position : position + rng.randint(1, 200)]
        report = verify(bytes(data), name, "all", trust_anchors=ANCHORS)
        assert report.verdict in (VERDICT_SATISFIED, VERDICT_NOT_SATISFIED, VERDICT_ERROR)
        json.dumps(report.to_dict())
        if bytes(data) != original and report.verdict == VERDICT_SATISFIED:
            # Only bytes outside what the signature covers may change (padding inside the manifest).
            assert report.layers["c2pa"]["valid"]
