"""Fingerprints normalise with aimark.textbounds: the same tokens as unicodedata's NFKC, in linear time."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aimark.registry.fingerprint import _TOKEN, content_text, fingerprint, normalised_tokens

_RUNS = st.lists(st.sampled_from("\u0301\u0316\u0323\u0344\uff9e\u3099"), min_size=31, max_size=120).map("".join)
_TEXTS = st.lists(st.one_of(st.text(alphabet="ab Ｋﬁ한\u1100\u1161가\u0301\u0316\u200b", max_size=10), _RUNS), max_size=5).map("".join)


@settings(max_examples=150, deadline=None)
@given(text=_TEXTS)
def test_tokens_are_those_of_unicodedata_nfkc(text: str) -> None:
    assert normalised_tokens(text) == _TOKEN.findall(unicodedata.normalize("NFKC", content_text(text)).casefold())


@pytest.mark.timeout(10)
def test_fingerprint_of_a_letter_with_200000_marks_is_linear() -> None:
    # Before: NFKC reordered the marks by insertion sort, ~20 s per fingerprint.
    printed = fingerprint("some words x" + "\u0301\u0316" * 100_000 + " more words here")
    assert printed.num_tokens == 6
