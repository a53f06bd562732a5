"""aimark.textbounds: unicodedata's normalisation, the same result for every input, without the quadratic worst case."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aimark import textbounds

FORMS = ("NFC", "NFD", "NFKC", "NFKD")
# Marks of several combining classes (230 above, 220 below, 1 overlay, 202 attached, 8 kana voicing),
# non-starters that decompose (U+0344 -> two marks), ccc-0 characters that decompose to non-starters only
# (U+0F73; U+FF9E under NFKD), starters that compose with marks, Hangul jamo and a syllable, and an astral mark.
MARKS = "\u0301\u0300\u0316\u0323\u0334\u0327\u3099\u0344\u0f73\u0f71\u0f72\uff9e\U0001d165\u05b0"
BASES = "aeoAKc\u1100\u1161\u11a8\uac00\u0f40\u30ab \u00e9\u01fb\u1e09"
# A run long enough to take the presorting path, and strings that mix such runs with ordinary text.
LONG_RUNS = st.lists(st.sampled_from(MARKS), min_size=textbounds.MIN_RUN, max_size=120).map("".join)
PIECES = st.one_of(st.text(alphabet=BASES + MARKS, max_size=8), LONG_RUNS)
TEXTS = st.lists(PIECES, max_size=6).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=TEXTS, form=st.sampled_from(FORMS))
def test_same_result_as_unicodedata(text: str, form: str) -> None:
    assert textbounds.normalize(form, text) == unicodedata.normalize(form, text)
    assert textbounds.is_normalized(form, text) == unicodedata.is_normalized(form, text)


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=60), form=st.sampled_from(FORMS))
def test_same_result_as_unicodedata_on_any_text(text: str, form: str) -> None:
    assert textbounds.normalize(form, text) == unicodedata.normalize(form, text)


def test_no_non_starter_begins_a_composition():
    """The module's linearity rests on this: NFC composes a run of marks in one pass from its starter."""
    for code in range(0x110000):
        decomposition = unicodedata.decomposition(chr(code))
        if decomposition and not decomposition.startswith("<"):
            parts = [chr(int(part, 16)) for part in decomposition.split()]
            if len(parts) == 2 and unicodedata.combining(parts[0]):
                assert unicodedata.normalize("NFC", "".join(parts)) != chr(code), hex(code)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("form", FORMS)
def test_a_letter_with_a_million_alternating_marks_is_normalised_quickly(form):
    # unicodedata alone: ~0.2 s for 20,000 marks, growing with the square (a million: ~10 minutes).
    text = "a" + "\u0301\u0316" * 500_000
    result = textbounds.normalize(form, text)
    assert result.count("\u0316") == 500_000 and result.index("\u0301") == 500_001
    assert not textbounds.is_normalized(form, text)


def test_ordinary_text_is_returned_by_unicodedata_unchanged():
    text = "Plain text, 한국어, 日本語, café.\n" * 100
    assert textbounds.normalize("NFC", text) == text and textbounds.is_normalized("NFC", text)


def test_unknown_form_is_a_clear_error():
    with pytest.raises(ValueError, match="invalid normalization form 'NFX'"):
        textbounds.normalize("NFX", "a")
    with pytest.raises(ValueError, match="invalid normalization form"):
        textbounds.is_normalized("nfc", "a")


@pytest.mark.parametrize("form", FORMS)
def test_the_run_check_agrees_with_the_full_tables(form):
    # The distinct-character check replaces the whole-Unicode tables for text without a long run of marks:
    # it must find every run the tables' pattern finds, and no other.
    decomposition = textbounds._DECOMPOSE[form]
    tables = textbounds._tables(decomposition)
    for text in ("Plain text, 한국어, 日本語, café." * 3, "a" + "\u0301" * 30, "a" + "\u0301" * 31,
                 "x" + "\u0f73" * 31, "y" + "\uff9e" * 40, "z" + "\U0001d165" * 31, "\u0344" * 16 + "\u0300" * 15):
        assert textbounds._has_long_run(text, decomposition) == bool(tables.all_runs.search(text)), (form, text[:3])


def test_ordinary_text_does_not_build_the_unicode_tables():
    textbounds._tables.cache_clear()
    textbounds.normalize("NFC", "Plain text, 한국어, 日本語, café.\n" * 100)
    assert textbounds._tables.cache_info().currsize == 0
