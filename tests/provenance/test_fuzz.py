"""Bounded fuzz of the parsers: a few hundred random mutations of real signed and labelled files.

Every outcome must be a report or a ProvenanceError with a code -- never another exception.
"""

from __future__ import annotations

import random

import pytest

from aimark.provenance import add_provenance, read_aigc, read_c2pa
from aimark.provenance.errors import ProvenanceError

MUTATIONS_PER_FILE = 80
# Byte strings the parsers react to: BOMs, selectors, front-matter fences, and YAML that used to crash
# the AIGC reader past its error handler (a date it cannot build, a list as key, an alias).
_INSERTIONS = [b"\xef\xbb\xbf", "\ufe01".encode(), b"\x00", b"---\n", b"AIGC", b"\xff",
               b"x: 2024-13-45\n", b"? [a]\n: 1\n", b"&a [x]\n", b"*a\n", b"[[[[[[[[", b"http://127.0.0.1:9/m.c2pa"]


def _mutate(data: bytes, rng: random.Random) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.random()
        position = rng.randrange(len(data) + 1)
        if choice < 0.4 and data:
            data[min(position, len(data) - 1)] = rng.randrange(256)
        elif choice < 0.6:
            del data[position : position + rng.randint(1, 64)]
        elif choice < 0.8:
            data[position:position] = rng.choice(_INSERTIONS)
        else:
            data = data[: rng.randrange(len(data) + 1)]
    return bytes(data)


def _covered(text_file: bytes) -> bytes:
    visible = text_file.split("\ufeff".encode())[0]
    return b"".join(line for line in visible.splitlines(keepends=True) if b"C2PA MANIFEST" not in line)


@pytest.mark.parametrize("filename", ["a.txt", "a.md", "a.py", "a.pdf", "a.docx"])
def test_parsers_survive_random_mutations(filename, pki, credentials, info, pdf_bytes, docx_bytes) -> None:
    originals = {"a.txt": b"plain text\n", "a.md": b"# T\n\nbody\n", "a.py": b"print(1)\n", "a.pdf": pdf_bytes, "a.docx": docx_bytes}
    marked = add_provenance(originals[filename], filename, credentials, info, aigc_producer="P1")
    rng = random.Random(filename)
    carrier = {"a.md": "markdown", "a.pdf": "pdf", "a.docx": "docx"}.get(filename)
    for _ in range(MUTATIONS_PER_FILE):
        mutated = _mutate(marked, rng)
        report = read_c2pa(mutated, filename, pki.trust_anchor_pem)
        # Never a silent pass: a manifest that is there but not valid always says why.
        assert report.valid or not report.present or report.failures
        if report.valid and filename in ("a.txt", "a.md", "a.py"):
            # Only bytes the binding excludes (inside the wrapper or manifest line) may change and stay valid.
            assert _covered(mutated) == _covered(marked)
        if carrier:
            try:
                read_aigc(carrier, mutated)
            except ProvenanceError as err:
                assert err.code
