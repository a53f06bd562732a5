"""Attacks of the robustness suite: language-aware, reproducible, and doing what their names say."""

from __future__ import annotations

import random
import unicodedata

import pytest

from tests.helpers import require_module

require_module("kiwipiepy", "the bench extra provides the segmenters: pip install -e '.[test,bench]'")

from bench.robustness import attacks  # noqa: E402

TEXTS = {
    "ko": "대한민국은 민주공화국이다. 모든 권력은 국민으로부터 나온다. 국가는 전통문화의 계승과 발전에 노력하여야 한다.",
    "ja": "2024年、日本国民は、正当に選挙された国会における代表者を通じて行動する。われらの子孫のために成果を確保する。平和を維持したい。",
    "zh": "中华人民共和国是工人阶级领导的国家。社会主义制度是根本制度！禁止任何组织或者个人破坏社会主义制度。",
    "en": "The quick brown fox jumps over the lazy dog. It was 12 o'clock! Everyone's happy about the new library.",
}


@pytest.mark.parametrize("language", attacks.LANGUAGES)
def test_strength_zero_is_identity_and_same_seed_same_output(language):
    text = TEXTS[language]
    for name, attack in attacks.attacks_for(language).items():
        assert attack(text, 0.0, random.Random(1)) == text, name
        assert attack(text, 0.4, random.Random(7)) == attack(text, 0.4, random.Random(7)), name


@pytest.mark.parametrize("language", attacks.LANGUAGES)
def test_every_attack_changes_the_text_at_full_strength(language):
    text = TEXTS[language]
    for name, attack in attacks.attacks_for(language).items():
        if name in ("nfkc",):  # the sample has nothing NFKC folds except in zh/ja punctuation
            continue
        assert attack(text, 1.0, random.Random(3)) != text, name


@pytest.mark.parametrize(
    "language, words",
    [("zh", ["中华人民共和国", "工人阶级", "领导"]), ("ja", ["日本", "国民", "選挙"]), ("ko", ["대한민국", "은", "민주"])],
)
def test_segmenters_find_real_words_not_spaces_or_characters(language, words):
    text = TEXTS[language]
    found = [text[s:e] for s, e in attacks.word_spans(text, language)]
    # More units than space-separated chunks, fewer than characters: a segmenter, not split().
    assert all(word in found for word in words), found
    assert len(found) > len(text.split()) and len(found) < len(text.replace(" ", ""))


def test_word_deletion_in_chinese_removes_words_not_everything():
    text = TEXTS["zh"]
    attacked = attacks.word_deletion(text, 0.3, random.Random(0), language="zh")
    words = len(attacks.word_spans(text, "zh"))
    assert 0.5 * len(text) < len(attacked) < len(text)
    assert words - round(0.3 * words) - 2 <= len(attacks.word_spans(attacked, "zh")) <= words
    assert attacks.word_deletion(text, 1.0, random.Random(0), language="zh") == ""


def test_korean_spacing_only_moves_spaces():
    text = TEXTS["ko"]
    attacked = attacks.korean_spacing(text, 0.5, random.Random(2))
    assert attacked != text and attacked.replace(" ", "") == text.replace(" ", "")


def test_unicode_attacks_are_undone_by_the_matching_normalisation():
    text = TEXTS["ko"]
    decomposed = attacks.unicode_normalisation(text, 1.0, random.Random(0), form="NFD", language="ko")
    assert decomposed != text and unicodedata.normalize("NFC", decomposed) == text
    glyphs = attacks.homoglyph_substitution(TEXTS["zh"], 1.0, random.Random(0))
    assert glyphs != TEXTS["zh"] and unicodedata.normalize("NFKC", glyphs) == unicodedata.normalize("NFKC", TEXTS["zh"])
    hidden = attacks.zero_width_insertion(text, 0.3, random.Random(0))
    assert len(hidden) == len(text) + round(0.3 * len(text.replace(" ", "")))
    assert "".join(c for c in hidden if c not in attacks.ZERO_WIDTH) == text
    wide = attacks.width_change(TEXTS["en"], 1.0, random.Random(0))
    assert attacks.width_change(wide, 1.0, random.Random(0)) == TEXTS["en"] and wide != TEXTS["en"]


@pytest.mark.parametrize("language", attacks.LANGUAGES)
def test_sentence_shuffle_keeps_every_sentence(language):
    text = TEXTS[language]
    shuffled = attacks.sentence_shuffle(text, 1.0, random.Random(0), language=language)
    assert shuffled != text
    # Sentences move whole: the same characters, and each original sentence is still in the text.
    assert sorted(shuffled) == sorted(text)
    assert all(sentence.strip() in shuffled for sentence in attacks.sentences(text, language))


def test_truncation_keeps_a_prefix_at_a_word_boundary():
    text = TEXTS["en"]
    cut = attacks.truncation(text, 0.5, random.Random(0), language="en")
    assert text.startswith(cut) and 0.3 * len(text) < len(cut) < 0.7 * len(text) and cut[-1].isalnum()


@pytest.mark.parametrize("share", [0.1, 0.5])
def test_copy_paste_embeds_the_text_at_the_asked_share(share):
    human = [TEXTS["ja"] * 3, "これは人間が書いた文章です。" * 20]
    mixed = attacks.copy_paste("ウォーターマーク付きの文。" * 5, share, random.Random(0), human_texts=human, language="ja")
    assert "ウォーターマーク付きの文。" * 5 in mixed
    assert len("ウォーターマーク付きの文。" * 5) / len(mixed) == pytest.approx(share, rel=0.05)


def test_token_edits_use_the_model_tokenizer(tiny):
    tokenizer = tiny.tokenizer
    text = TEXTS["en"]
    count = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    edits = attacks.token_attacks(tokenizer)
    # Re-tokenising the edited text can merge a few pieces differently (BPE), hence the small slack.
    slack = max(2, round(0.05 * count))
    deleted = edits["token-delete"](text, 0.2, random.Random(0))
    assert abs(len(tokenizer(deleted, add_special_tokens=False)["input_ids"]) - (count - round(0.2 * count))) <= slack
    inserted = edits["token-insert"](text, 0.2, random.Random(0))
    assert abs(len(tokenizer(inserted, add_special_tokens=False)["input_ids"]) - (count + round(0.2 * count))) <= slack
    assert edits["token-substitute"](text, 0.0, random.Random(0)) == text
