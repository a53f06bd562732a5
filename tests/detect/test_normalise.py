"""Detection undoes invisible characters and look-alikes, and still reports offsets in the caller's text."""

from __future__ import annotations

import random
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aimark.detect import Detector, detect_spans
from aimark.detect.normalise import map_offsets, normalise_for_detection
from aimark.engines import generate
from tests.helpers import fixed_key

ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"


def test_invisible_characters_are_removed_and_offsets_map_back():
    text = "ab\u200bc\ufeffd"
    cleaned, spans = normalise_for_detection(text)
    assert cleaned == "abcd"
    assert [text[s:e] for s, e in spans] == list("abcd")
    assert map_offsets([(0, 2), (2, 4)], spans) == [(0, 2), (3, 6)]


def test_decomposed_hangul_and_kana_are_composed_with_offsets_over_the_whole_cluster():
    text = unicodedata.normalize("NFD", "한국어 がくせい")
    cleaned, spans = normalise_for_detection(text)
    assert cleaned == "한국어 がくせい"
    assert text[spans[0][0] : spans[0][1]] == unicodedata.normalize("NFD", "한")
    assert map_offsets([(0, 3)], spans) == [(0, len(unicodedata.normalize("NFD", "한국어")))]


def test_look_alikes_are_folded_only_inside_latin_words():
    cleaned, _ = normalise_for_detection("Thе wаter іs cold. Привет, мир. Ελλάδα")
    assert cleaned == "The water is cold. Привет, мир. Ελλάδα"
    assert normalise_for_detection("⼈⽇本")[0] == "人日本"
    # Full-width forms are the model's own choice in CJK text: kept.
    assert normalise_for_detection("２０２４年（令和６年）")[0] == "２０２４年（令和６年）"


@pytest.fixture(scope="module")
def marked(tiny):
    key = fixed_key("synthid", "normalise")
    text = generate(tiny, ["The history of the"], key=key, max_new_tokens=120, min_new_tokens=120, seed=4, chat=False)[0].text
    rng = random.Random(0)
    disguised = "".join(c + (rng.choice(ZERO_WIDTH) if rng.random() < 0.3 else "") for c in text)
    return key, text, disguised


def test_zero_width_attack_is_undone_and_raw_detection_shows_why(tiny, marked):
    key, text, disguised = marked
    cleaned = Detector(key, tiny.tokenizer).detect(disguised)
    raw = Detector(key, tiny.tokenizer, normalise=False).detect(disguised)
    assert cleaned.p_value == pytest.approx(Detector(key, tiny.tokenizer).detect(text).p_value)
    assert cleaned.watermarked and raw.p_value > cleaned.p_value * 1e6
    # Token offsets point into the disguised text the caller passed.
    for token in cleaned.tokens:
        piece = disguised[token.start : token.end]
        assert piece and piece[0] not in ZERO_WIDTH


def test_span_offsets_refer_to_the_callers_text(tiny, marked, human_passages):
    key, _, disguised = marked
    document = human_passages[5] + " " + disguised + " " + human_passages[6]
    result = detect_spans(Detector(key, tiny.tokenizer), document)
    assert result.spans
    start = document.index(disguised)
    best = max(result.spans, key=lambda s: min(s.end, start + len(disguised)) - max(s.start, start))
    assert best.start < start + len(disguised) and best.end > start


def _reference_normalise(text: str) -> tuple[str, list[tuple[int, int]] | None]:
    """The cleaning as first written (cluster strings grown a character at a time, unicodedata's NFC):
    right, but quadratic in a cluster's length. The rewrite must give exactly its answers."""
    from aimark.detect.normalise import _WORD, _continues_cluster, _fold_word, _is_radical, is_changeable

    if not any(map(is_changeable, text)):
        return text, None
    clusters: list[tuple[str, int, int]] = []
    for index, char in enumerate(text):
        if unicodedata.category(char) == "Cf":
            continue
        if _is_radical(char):
            folded = unicodedata.normalize("NFKC", char)
            char = folded if len(folded) == 1 else char
        if clusters and _continues_cluster(char) and clusters[-1][2] == index:
            chars, start, _ = clusters[-1]
            clusters[-1] = (chars + char, start, index + 1)
        else:
            clusters.append((char, index, index + 1))
    pieces, spans = [], []
    for chars, start, end in clusters:
        composed = unicodedata.normalize("NFC", chars) if len(chars) > 1 else chars
        pieces.append(composed)
        spans.extend([(start, end)] * len(composed))
    return _WORD.sub(_fold_word, "".join(pieces)), spans


_MIXED = "ab é\u0301\u0316\u0344\u0f73\u1100\u1161\u11a8\u3099\u304b\u200b\ufeff\u2f00\u0430x\u00ad\U000e0041"


@settings(max_examples=200, deadline=None)
@given(text=st.lists(st.one_of(st.text(alphabet=_MIXED, max_size=10),
                               st.lists(st.sampled_from("\u0301\u0316\u0323\u200b"), min_size=30, max_size=90).map("".join)),
                     max_size=5).map("".join))
def test_cleaning_gives_the_answers_it_always_gave(text):
    assert normalise_for_detection(text) == _reference_normalise(text)


@pytest.mark.timeout(20)
def test_a_letter_with_200000_marks_is_cleaned_in_linear_time():
    # Before: the cluster string was copied per mark and NFC reordered it by insertion sort (minutes).
    text = "word x" + "\u0301\u0316" * 100_000 + " tail"
    cleaned, spans = normalise_for_detection(text)
    assert cleaned.startswith("word x\u0316") and cleaned.endswith("\u0301 tail")
    assert len(spans) == len(cleaned) and spans[6] == (5, 200_006)


def test_every_character_the_quick_check_passes_is_left_alone_by_the_cleaning():
    # The quick check (is_changeable over the text's distinct characters) lets detection skip the cleaning:
    # that is sound only if the cleaning would change none of those characters, in any code point's context.
    from aimark.detect.normalise import clean_clusters, is_changeable

    kept = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF and not is_changeable(chr(c)))
    assert len(kept) > 1_000_000
    cleaned, spans = clean_clusters(kept)
    assert cleaned == kept
    assert spans == [(i, i + 1) for i in range(len(kept))]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec=None, exclude_categories=("Cs",)), max_size=40) | st.text(alphabet="a\u00ad\u200b\u0301\u1161\u2f08\U000e0041\U0001d165\u0430\U0001f600", max_size=12))
def test_needs_cleaning_answers_as_the_character_check(text):
    from aimark.detect.normalise import is_changeable, needs_cleaning

    assert needs_cleaning(text) == any(map(is_changeable, text))


def test_no_changeable_character_is_ascii():
    from aimark.detect.normalise import is_changeable

    assert not any(is_changeable(chr(code)) for code in range(0x80))


def test_needs_cleaning_remembers_only_kept_characters_and_stays_bounded():
    from aimark.detect import normalise

    assert not normalise.needs_cleaning("대한민국은 민주공화국이다")
    assert "대" in normalise._KNOWN_KEPT
    # A changeable character among remembered ones is still found, and is never remembered as kept.
    assert normalise.needs_cleaning("대한민국은\u200b 민주공화국이다")
    assert normalise.needs_cleaning("대한민국은 민주공화국이다\u1161")
    assert "\u200b" not in normalise._KNOWN_KEPT and "\u1161" not in normalise._KNOWN_KEPT
    every_kept = "".join(chr(c) for c in range(0x80, 0x30000) if not 0xD800 <= c <= 0xDFFF and not normalise.is_changeable(chr(c)))
    assert not normalise.needs_cleaning(every_kept)
    assert len(normalise._KNOWN_KEPT) <= normalise._KNOWN_KEPT_LIMIT


def test_needs_cleaning_answers_from_its_pattern_once_texts_stop_adding_characters(monkeypatch):
    from aimark.detect import normalise

    monkeypatch.setattr(normalise, "_KNOWN_KEPT", set())
    monkeypatch.setattr(normalise, "_UNJUDGED", None)
    monkeypatch.setattr(normalise, "_UNJUDGED_SIZE", 0)
    texts = [chr(code) * 3 + "한 ]\\^-" for code in range(0xAC00, 0xAC00 + 200)]  # kept Hangul, and regex syntax
    assert not any(map(normalise.needs_cleaning, texts))
    assert normalise._UNJUDGED is None  # texts that add characters never compile it (one CLI text never does)
    assert not normalise.needs_cleaning(texts[0])  # a fully judged text: now it is compiled
    assert normalise._UNJUDGED is not None and normalise._UNJUDGED.search(texts[5]) is None
    assert not normalise.needs_cleaning(texts[5])
    assert normalise.needs_cleaning(texts[5] + "\u200b") and normalise.needs_cleaning("\u1161" + texts[3])
    assert not normalise.needs_cleaning("\u4e00" + texts[7]) and "\u4e00" in normalise._KNOWN_KEPT  # unseen: judged
