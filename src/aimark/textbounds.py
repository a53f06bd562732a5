"""Unicode normalisation whose cost stays O(n log n) on text nobody trusted, with unicodedata's exact result.

CPython's ``unicodedata`` puts combining marks into canonical order with an insertion sort: a letter
followed by n marks of alternating combining classes costs about n²/4 swaps (20,000 marks: 0.2 s,
200,000: 20 s), and NFC, NFD, NFKC, NFKD and ``is_normalized``'s fallback all pay it.

UAX #15's Stream-Safe Text Format would bound those runs by inserting U+034F after 30 non-starters,
but that changes the text: the C2PA A.8 hash of the NFC form would then differ from what every other
implementation computes for the same text, and detection would score characters nobody wrote. So
nothing is inserted. Instead each long run of characters that decompose to non-starters only is
decomposed here and stably sorted by combining class (which is exactly what canonical ordering
computes), with string operations that run in C. The string handed to ``unicodedata`` is canonically
equivalent to the input (compatibility-equivalent for NFKC/NFKD, whose result is then also the same)
and already in order, so its sort swaps nothing and the result is identical for every input.
Composition afterwards is linear in a run: no non-starter begins a composition pair (Unicode 14 and
15, checked by tests/test_textbounds.py).

This module imports nothing of aimark, so every layer may use it.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

#: Runs shorter than this are left to unicodedata: they cost at most ~(3 * 30)² swaps each.
MIN_RUN = 31
_DECOMPOSE = {"NFC": "NFD", "NFD": "NFD", "NFKC": "NFKD", "NFKD": "NFKD"}


def char_class(codes: Iterable[int]) -> str:
    """A regex character class ``[...]`` matching exactly ``codes``, as ranges (short to compile)."""
    ordered = sorted(set(codes))
    ranges = []
    start = previous = ordered[0]
    for code in ordered[1:] + [None]:
        if code != previous + 1:
            ranges.append(re.escape(chr(start)) + ("-" + re.escape(chr(previous)) if previous > start else ""))
            start = code
        previous = code
    return "[" + "".join(ranges) + "]"


@dataclass(frozen=True)
class _Tables:
    probe: re.Pattern  # any character in the span of the astral run members
    bmp_runs: re.Pattern  # long runs of BMP members
    all_runs: re.Pattern  # long runs of any members
    decomposing: re.Pattern  # a member that decomposes
    decomposition: dict[int, str]
    combining_class: np.ndarray  # canonical combining class per code point


@functools.cache
def _combining_classes() -> np.ndarray:
    return np.fromiter((unicodedata.combining(chr(code)) for code in range(0x110000)), dtype=np.uint8, count=0x110000)


@functools.cache
def _tables(decomposition: str) -> _Tables:
    """What :func:`normalize` needs for ``"NFD"`` or ``"NFKD"``, built once (~0.3 s).

    A run is made of characters whose full decomposition holds non-starters only: combining marks,
    and a few ccc-0 characters such as U+0F73 (Tibetan) or, for NFKD, U+FF9E. The regex engine tests
    a class of BMP characters with a bitmap but a class reaching past U+FFFF range by range (20 times
    slower), so the full pattern only runs on text that holds a character in the astral members' span.
    """
    combining_class = _combining_classes()
    table = {}
    for code in range(0x110000):
        if unicodedata.decomposition(chr(code)):
            parts = unicodedata.normalize(decomposition, chr(code))
            if parts != chr(code) and all(unicodedata.combining(part) for part in parts):
                table[code] = parts
    members = set(np.flatnonzero(combining_class).tolist()) | set(table)
    astral = [code for code in members if code > 0xFFFF]

    def runs(codes: Iterable[int]) -> re.Pattern:
        cls = char_class(codes)
        # The look-behind starts a match only at a run's first character, so a short run is read once.
        return re.compile(f"(?<!{cls}){cls}{{{MIN_RUN},}}")

    return _Tables(
        probe=re.compile(f"[{re.escape(chr(min(astral)))}-{re.escape(chr(max(astral)))}]"),
        bmp_runs=runs(code for code in members if code <= 0xFFFF),
        all_runs=runs(members),
        decomposing=re.compile(char_class(table)),
        decomposition=table,
        combining_class=combining_class,
    )


def _ordered(run: str, tables: _Tables) -> str:
    """``run`` (non-starters only) decomposed and stably sorted by combining class, vectorised."""
    if tables.decomposing.search(run):
        run = run.translate(tables.decomposition)
    codes = np.frombuffer(run.encode("utf-32-le"), dtype="<u4")
    classes = tables.combining_class[codes]
    if (classes == classes[0]).all():
        return run
    return codes[np.argsort(classes, kind="stable")].tobytes().decode("utf-32-le")


def _is_run_member(character: str, decomposition: str) -> bool:
    """Whether ``character`` belongs to :func:`_tables`' members (a non-starter, or decomposing to non-starters only)."""
    if unicodedata.combining(character):
        return True
    if not unicodedata.decomposition(character):
        return False
    parts = unicodedata.normalize(decomposition, character)
    return parts != character and all(unicodedata.combining(part) for part in parts)


def _has_long_run(text: str, decomposition: str) -> bool:
    """Whether ``text`` holds a run of :data:`MIN_RUN` members, judged from its own distinct characters.

    Building :func:`_tables` reads every code point (about a second on a cold start); ordinary text has
    no long run of marks, and this check costs one look at each distinct character of the text instead.
    """
    if len(text) < MIN_RUN:
        return False
    members = [ord(c) for c in set(text) if _is_run_member(c, decomposition)]
    return bool(members) and re.search(f"{char_class(members)}{{{MIN_RUN},}}", text) is not None


def _presorted(form: str, text: str) -> str | None:
    """``text`` with every long non-starter run in canonical order, or None when it has no such run."""
    if not _has_long_run(text, _DECOMPOSE[form]):
        return None
    tables = _tables(_DECOMPOSE[form])
    pattern = tables.all_runs if tables.probe.search(text) else tables.bmp_runs
    pieces, position = [], 0
    for match in pattern.finditer(text):
        pieces += (text[position : match.start()], _ordered(match.group(), tables))
        position = match.end()
    if not pieces:
        return None
    pieces.append(text[position:])
    return "".join(pieces)


def ordered_runs(form: str, text: str) -> str:
    """``text`` with each long run of marks decomposed (per ``form``) and in canonical order; equivalent
    to ``text`` under ``form``, and ``text`` itself when it has no such run.

    For code that normalises pieces of a text itself, such as Python's parser, which applies NFKC to
    every identifier (an identifier may hold any number of combining marks).
    """
    if form not in _DECOMPOSE:
        raise ValueError(f"invalid normalization form {form!r}")
    presorted = _presorted(form, text)
    return text if presorted is None else presorted


def normalize(form: str, text: str) -> str:
    """``unicodedata.normalize(form, text)``, the same result, without its quadratic worst case."""
    return unicodedata.normalize(form, ordered_runs(form, text))


def is_normalized(form: str, text: str) -> bool:
    """``unicodedata.is_normalized(form, text)`` without its quadratic worst case."""
    if form not in _DECOMPOSE:
        raise ValueError(f"invalid normalization form {form!r}")
    if _presorted(form, text) is None:
        return unicodedata.is_normalized(form, text)
    return normalize(form, text) == text
