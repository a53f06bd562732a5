"""A.8 wrapper codec, checked against two independent implementations in both directions."""

from __future__ import annotations

import unicodedata

import c2pa_text
import c2pa_unstructured_text
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aimark.provenance import unstructured_text as a8

PAYLOADS = st.binary(min_size=0, max_size=300)
TEXTS = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\ufeff"), max_size=40)


@settings(max_examples=60, deadline=None)
@given(payload=PAYLOADS)
def test_wrapper_is_byte_identical_to_the_reference_implementation(payload: bytes) -> None:
    ours = a8.encode_wrapper(payload)
    assert len(ours.encode()) == a8.target_wrapper_length(len(payload)) == c2pa_unstructured_text.target_length(len(payload))
    assert ours == c2pa_text.encode_wrapper_padded(payload, a8.target_wrapper_length(len(payload)))


def test_every_byte_value_and_a_store_of_a_signed_answers_size_encode_as_the_reference_does() -> None:
    # The encoder is a translation table over all 256 byte values; a store of ~3.6 KB is what an answer carries.
    for payload in (bytes(range(256)), bytes(range(256)) * 15):
        assert a8.encode_wrapper(payload) == c2pa_text.encode_wrapper_padded(payload, a8.target_wrapper_length(len(payload)))


@settings(max_examples=60, deadline=None)
@given(text=TEXTS, payload=PAYLOADS)
def test_independent_readers_read_what_aimark_writes(text: str, payload: bytes) -> None:
    asset = text + a8.encode_wrapper(payload)
    found = c2pa_unstructured_text.extract(asset)
    assert found["payload"] == payload
    ours = a8.scan(asset)
    assert (ours.start, ours.length) == (found["start"], found["length"])
    assert c2pa_text.extract_manifest(asset)[0] == payload


@settings(max_examples=60, deadline=None)
@given(text=TEXTS, payload=PAYLOADS)
def test_aimark_reads_what_independent_writers_write(text: str, payload: bytes) -> None:
    for asset in (c2pa_unstructured_text.embed(text, payload), c2pa_text.embed_manifest(text, payload),
                  text + c2pa_unstructured_text.encode_padded(payload)):
        found = a8.scan(asset)
        assert found.failure is None and found.manifest_store == payload


@settings(max_examples=40, deadline=None)
@given(text=TEXTS, payload=PAYLOADS)
def test_binding_hash_agrees_with_c2pa_unstructured_text(text: str, payload: bytes) -> None:
    # Offsets into the stored text, wrapper removed, then NFC: the order both implementations use.
    asset = text + a8.encode_wrapper(payload)
    theirs = c2pa_unstructured_text.compute_data_hash(asset)
    found = a8.scan(asset)
    assert theirs["exclusions"] == [(found.start, found.length)]
    assert a8.data_hash(asset.encode(), theirs["exclusions"]) == theirs["hash"]


def test_nfc_happens_after_removing_the_wrapper() -> None:
    decomposed = "Cafe\u0301 "  # not NFC; NFC is shorter, so normalising first would shift offsets
    asset = decomposed + a8.encode_wrapper(b"store")
    found = a8.scan(asset)
    assert a8.hashed_text(asset.encode(), [(found.start, found.length)]) == unicodedata.normalize("NFC", decomposed).encode()


def test_two_wrappers_are_rejected() -> None:
    wrapper = a8.encode_wrapper(b"one")
    assert a8.scan("a" + wrapper + "b" + wrapper).failure == a8.MULTIPLE_WRAPPERS


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda w: w[:20], "truncated"),
        (lambda w: w[:5], "shorter than"),
        (lambda w: w[0] + chr(0xE0100) + w[2:], "magic"),
        (lambda w: w[:9] + chr(0xFE02) + w[10:], "version"),
    ],
)
def test_damaged_wrapper_is_corrupted_with_a_reason(damage, reason: str) -> None:
    found = a8.scan("text" + damage(a8.encode_wrapper(b"x" * 40)))
    assert found.failure == a8.CORRUPTED_WRAPPER and reason in found.detail


def test_wrapper_without_its_marker_is_corrupted_not_absent() -> None:
    assert a8.scan("text" + a8.encode_wrapper(b"x" * 40)[1:]).failure == a8.CORRUPTED_WRAPPER


def test_single_ideographic_variation_selectors_are_not_stray() -> None:
    assert a8.stray_selector_runs("葛\U000e0100 and ❤\ufe0f") == 0
    assert a8.stray_selector_runs("hidden\ufe01\ufe02\ufe03 data") == 1


MARK_RUNS = st.lists(st.sampled_from("\u0301\u0316\u0323\u0334\u0344\u0f73\u3099"), min_size=31, max_size=400).map("".join)


@settings(max_examples=40, deadline=None)
@given(head=TEXTS, run=MARK_RUNS, tail=TEXTS, payload=PAYLOADS)
def test_binding_hash_of_long_mark_runs_agrees_with_c2pa_unstructured_text(head: str, run: str, tail: str, payload: bytes) -> None:
    # Long runs take the presorting path; the bytes hashed must still be exactly the NFC others compute.
    asset = head + "a" + run + tail + a8.encode_wrapper(payload)
    theirs = c2pa_unstructured_text.compute_data_hash(asset)
    assert a8.data_hash(asset.encode(), theirs["exclusions"]) == theirs["hash"]


@pytest.mark.timeout(10)
def test_hashed_text_of_a_letter_with_200000_marks_is_linear() -> None:
    # Before: unicodedata's NFC reordered the run by insertion sort, ~20 s.
    data = ("x" + "\u0301\u0316" * 100_000).encode()
    assert a8.hashed_text(data, []) == ("x" + "\u0316" * 100_000 + "\u0301" * 100_000).encode()
