"""Detection's tokenizers-only path: the same ids, offsets, special ids, fingerprint and p-values as transformers',
and a per-tokenizer cache that is trusted only when it checks out."""

from __future__ import annotations

import json
import shutil

import pytest

import aimark.engines.tokenizer as detection_tokenizer
from aimark.detect import Detector
from aimark.detect.detector import fingerprint_of
from aimark.engines import (
    EMBEDDED_MODEL,
    DetectionTokenizer,
    ModelLoadError,
    aimark_home,
    generate,
    load_detection_tokenizer,
    load_tokenizer,
)
from aimark.keys import tokenizer_fingerprint
from tests.helpers import PROGRAM, fixed_key

TEXTS = {
    "ko": "인공지능 기본법은 생성형 인공지능의 결과물에 그 사실을 표시하도록 요구한다.  두 칸,\n줄바꿈.",
    "ja": "日本の四季の魅力について、短い文章を書いてください。カタカナとひらがな。",
    "zh": "请写一篇短文，介绍中国茶文化的历史。标点符号：「」、《》。",
    "en": "Bicycles changed city life:  streets, <eos> markers, <bos>tokens and   odd   spacing.\t\n",
    "code": PROGRAM,
}


def _same_encoding(fast: DetectionTokenizer, reference, text: str) -> None:
    ours = fast(text, add_special_tokens=False, return_offsets_mapping=True)
    theirs = reference(text, add_special_tokens=False, return_offsets_mapping=True)
    assert list(ours["input_ids"]) == list(theirs["input_ids"])
    assert [tuple(o) for o in ours["offset_mapping"]] == [tuple(o) for o in theirs["offset_mapping"]]


def _assert_same_tokenizer(fast: DetectionTokenizer, reference) -> None:
    assert isinstance(fast, DetectionTokenizer)
    assert len(fast) == len(reference)
    assert fast.get_vocab() == reference.get_vocab()
    assert fast.all_special_ids == list(reference.all_special_ids)
    assert fingerprint_of(fast) == tokenizer_fingerprint(reference.get_vocab())
    for text in TEXTS.values():
        _same_encoding(fast, reference, text)
    batch = list(TEXTS.values())
    assert fast(batch, add_special_tokens=False)["input_ids"] == [list(r) for r in reference(batch, add_special_tokens=False)["input_ids"]]


def _assert_same_detections(fast, reference, texts) -> None:
    for scheme in ("synthid", "kgw", "gumbel"):
        key = fixed_key(scheme, "tokenizer-paths")
        ours, theirs = Detector(key, fast), Detector(key, reference)
        for text in texts:
            language = "python" if text is TEXTS["code"] else None
            a, b = ours.detect(text, language=language), theirs.detect(text, language=language)
            assert a.to_dict(include_tokens=True) == b.to_dict(include_tokens=True), (scheme, text[:20])
        assert [r.to_dict() for r in ours.detect_many(texts)] == [r.to_dict() for r in theirs.detect_many(texts)]


@pytest.fixture
def model_copy(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("AIMARK_HOME", str(tmp_path / "home"))
    directory = tmp_path / "model"
    shutil.copytree(tiny_model_dir, directory)
    return directory


def test_tiny_tokenizer_matches_transformers_and_so_do_the_p_values(model_copy, tiny):
    fast = load_detection_tokenizer(str(model_copy))
    reference = load_tokenizer(str(model_copy))
    _assert_same_tokenizer(fast, reference)
    key = fixed_key("synthid", "tokenizer-paths")
    marked = generate(tiny, ["Write about tea."], key=key, max_new_tokens=60, seed=3)[0].text
    _assert_same_detections(fast, reference, [*TEXTS.values(), marked])
    assert Detector(key, fast).detect(marked).p_value < 1e-3  # a watermarked text scores the same small p both ways


def test_tables_are_cached_and_reused_without_fingerprinting(model_copy, monkeypatch):
    first = load_detection_tokenizer(str(model_copy))
    cache = detection_tokenizer.tables_cache_path(model_copy)
    assert cache.is_file() and str(cache).startswith(str(aimark_home()))  # a user's model directory is left alone
    monkeypatch.setattr(detection_tokenizer, "tokenizer_fingerprint", lambda vocab: pytest.fail("fingerprinted again"))
    again = load_detection_tokenizer(str(model_copy))
    assert fingerprint_of(again) == fingerprint_of(first) and again.all_special_ids == first.all_special_ids


@pytest.mark.parametrize("damage", ["garbage", "truncated", "edited fingerprint", "not an object"])
def test_a_damaged_cache_is_recomputed_not_trusted(model_copy, damage):
    good = fingerprint_of(load_detection_tokenizer(str(model_copy)))
    cache = detection_tokenizer.tables_cache_path(model_copy)
    raw = cache.read_bytes()
    if damage == "garbage":
        cache.write_bytes(b"\xff\x00 not json")
    elif damage == "truncated":
        cache.write_bytes(raw[: len(raw) // 2])
    elif damage == "edited fingerprint":
        document = json.loads(raw)
        document["fingerprint"] = "0" * 64
        cache.write_text(json.dumps(document))
    else:
        cache.write_text("[1, 2]")
    assert fingerprint_of(load_detection_tokenizer(str(model_copy))) == good
    assert json.loads(cache.read_bytes())["fingerprint"] == good  # rewritten whole


def test_a_changed_tokenizer_file_gets_new_tables(model_copy):
    before = load_detection_tokenizer(str(model_copy))
    tokenizer_json = model_copy / "tokenizer.json"
    document = json.loads(tokenizer_json.read_text())
    document["model"]["vocab"]["zzzz-new-piece"] = len(before)
    tokenizer_json.write_text(json.dumps(document))
    after = load_detection_tokenizer(str(model_copy))
    assert len(after) == len(before) + 1
    assert fingerprint_of(after) != fingerprint_of(before)
    assert fingerprint_of(after) == tokenizer_fingerprint(load_tokenizer(str(model_copy)).get_vocab())


def test_a_touched_but_unchanged_tokenizer_file_keeps_its_tables(model_copy, monkeypatch):
    first = fingerprint_of(load_detection_tokenizer(str(model_copy)))
    tokenizer_json = model_copy / "tokenizer.json"
    tokenizer_json.write_bytes(tokenizer_json.read_bytes())  # new mtime, same bytes: rehashed, not refingerprinted
    monkeypatch.setattr(detection_tokenizer, "tokenizer_fingerprint", lambda vocab: pytest.fail("fingerprinted again"))
    assert fingerprint_of(load_detection_tokenizer(str(model_copy))) == first


def test_a_broken_tokenizer_file_is_a_model_load_error(model_copy):
    (model_copy / "tokenizer.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="cannot load a tokenizer"):
        load_detection_tokenizer(str(model_copy))


@pytest.mark.embedded
def test_embedded_gemma_tokenizer_matches_transformers_and_so_do_the_p_values():
    fast = load_detection_tokenizer(EMBEDDED_MODEL)
    reference = load_tokenizer(EMBEDDED_MODEL)
    assert (aimark_home() / "models" / "gemma-3-270m" / "aimark-tokenizer.json").is_file()  # beside the model
    _assert_same_tokenizer(fast, reference)
    _assert_same_detections(fast, reference, list(TEXTS.values()))
