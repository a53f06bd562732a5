"""Code-skeleton units: keyed values that formatters cannot move, generation that stays distortion-free."""

from __future__ import annotations

import re

import numpy as np
import pytest

from aimark.detect.detector import Detector
from aimark.keys import KeyFileError, generate_key, load_key, save_key
from aimark.schemes import SkeletonScheme, scheme_for_key
from aimark.schemes.code_skeleton import (
    CONTEXT_BYTES,
    SkeletonVocabulary,
    _merge_units,
    skeleton,
    skeleton_vocabulary,
    vocabulary_bytes,
)
from tests.helpers import assert_rate_at_most, fixed_key, seeded_rng

CODE = '''def mean(values, weights=None):
    """The weighted mean."""
    if weights is None:
        weights = [1.0] * len(values)
    total = sum(w * v for w, v in zip(values, weights))
    return total / sum(weights)
'''


def test_skeleton_drops_what_formatters_change():
    assert skeleton(b"  return (x, 'a');\n") == b'returnx"a"'
    assert skeleton(b'return x, "A"') == b'returnx"a"'
    assert skeleton(b"0XFF") == skeleton(b"0xff")
    assert skeleton(b"\n    ") == b""
    assert skeleton("# 한국어 주석".encode()) == "#한국어주석".encode()  # non-ASCII bytes untouched


def test_vocabulary_bytes_spell_each_token_as_decoded_text(tiny):
    tokenizer = tiny.tokenizer
    pieces = vocabulary_bytes(tokenizer)
    prefix = tokenizer.convert_tokens_to_ids("▁a")
    for index in range(len(tokenizer)):
        if index in tokenizer.all_special_ids:
            assert pieces[index] == b""
            continue
        decoded = tokenizer.decode([prefix, index])  # after a piece, so a leading space survives decoding
        assert decoded.encode() == b"a" + pieces[index], (index, decoded, pieces[index])


def test_byte_level_vocabularies_are_read_through_their_byte_alphabet():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    corpus = [CODE, "x = '한국어'  # 注释\n", "print(values)\n"] * 20
    backend.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=["<eos>"]))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eos>")
    pieces = vocabulary_bytes(tokenizer)
    for text in corpus[:3]:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert b"".join(pieces[i] for i in ids) == text.encode()  # exact bytes, even mid-character


def test_contexts_at_detection_equal_contexts_at_generation(tiny):
    vocabulary = skeleton_vocabulary(tiny.tokenizer)
    ids = np.asarray(tiny.tokenizer(CODE * 3, add_special_tokens=False)["input_ids"])
    positions, words = vocabulary.contexts(ids)
    by_position = dict(zip(positions.tolist(), words.tolist()))
    assert positions.min() > 0 and len(positions) > 0.8 * len(ids)
    for t in range(len(ids)):
        expected = vocabulary.last_context(ids[:t].tolist())
        if t in by_position:
            assert expected is not None and expected.tolist() == by_position[t]
        else:
            assert expected is None


def test_skeleton_vocabulary_pickles_to_the_same_units(tiny):
    import pickle

    vocabulary = skeleton_vocabulary(tiny.tokenizer)
    again = pickle.loads(pickle.dumps(vocabulary))
    assert np.array_equal(again.units, vocabulary.units) and np.array_equal(again.lengths, vocabulary.lengths)
    scheme = scheme_for_key(fixed_key("synthid", units="code-skeleton"), tokenizer=tiny.tokenizer)
    ids = np.asarray(tiny.tokenizer(CODE, add_special_tokens=False)["input_ids"])
    assert np.array_equal(pickle.loads(pickle.dumps(scheme)).score(ids).values, scheme.score(ids).values)


def test_merge_units_sums_probability_per_unit():
    log_probs = np.log(np.array([[0.5, 0.3, 0.2, 0.0]]))
    merged, units, member_of = _merge_units(log_probs, np.array([[7, 9, 7, 9]]))
    probs = np.exp(merged[0])
    assert dict(zip(units[0][:2].tolist(), probs[:2].round(6).tolist())) == {7: 0.7, 9: 0.3}
    assert units[0][member_of[0]].tolist() == [7, 9, 7, 9]


@pytest.mark.parametrize("scheme_name", ["synthid", "gumbel"])
def test_generation_is_distortion_free_with_shared_units(scheme_name):
    """Averaged over contexts (the key's randomness), the watermarked distribution is the model's: also for
    candidates that share a unit. Gumbel's race over tokens with a shared uniform would not be."""
    pieces = [b"x", b" x", b"y", b" (y", b"\n", b"    ", b"z"]  # units: x, y, layout, z
    scheme = SkeletonScheme(scheme_for_key(fixed_key(scheme_name, "distortion")), SkeletonVocabulary(pieces))
    probs = np.array([0.30, 0.05, 0.20, 0.15, 0.10, 0.05, 0.15])
    rows = 6000
    log_probs = np.tile(np.log(probs), (rows, 1))
    candidates = np.tile(np.arange(len(pieces)), (rows, 1))
    context_keys = seeded_rng(f"distortion-{scheme_name}").integers(0, 2**63, size=rows, dtype=np.int64).astype(np.uint64)
    weights = np.exp(scheme.reweight(log_probs, candidates, None, context_keys))
    weights /= weights.sum(axis=1, keepdims=True)
    mean = weights.mean(axis=0)
    assert np.abs(mean - probs).max() < 0.025, mean.round(3)
    # ... and the watermark does move single rows: far from the model's distribution on average.
    assert np.abs(weights - probs).sum(axis=1).mean() > 0.3


@pytest.mark.parametrize("scheme_name", ["synthid", "gumbel"])
def test_layout_keeps_the_models_probability_in_every_row(scheme_name):
    """The key chooses among content units only: a layout token (which leaves the context unchanged, so the
    same keyed values would decide again at the next step) is drawn with the model's own probability."""
    pieces = [b"x", b"\n", b"    ", b"y", b" (y", b"z", b"\n\n"]
    layout = np.array([False, True, True, False, False, False, True])
    scheme = SkeletonScheme(scheme_for_key(fixed_key(scheme_name, "layout")), SkeletonVocabulary(pieces))
    rng = seeded_rng(f"layout-{scheme_name}")
    probs = rng.dirichlet(np.ones(len(pieces)), size=500)
    candidates = np.tile(np.arange(len(pieces)), (500, 1))
    context_keys = rng.integers(0, 2**63, size=500, dtype=np.int64).astype(np.uint64)
    weights = np.exp(scheme.reweight(np.log(probs), candidates, None, context_keys))
    weights /= weights.sum(axis=1, keepdims=True)
    assert np.allclose(weights[:, layout].sum(axis=1), probs[:, layout].sum(axis=1))
    assert np.allclose(weights[:, 1] / weights[:, 2], probs[:, 1] / probs[:, 2])  # model proportions within layout
    only_layout = np.log(np.where(layout, probs[0], 0.0))[None, :]
    assert np.allclose(np.exp(scheme.reweight(only_layout, candidates[:1], None, context_keys[:1])), np.exp(only_layout))


def _reformat(text: str) -> str:
    """What a formatter may do: other whitespace and line breaks, other quotes, trailing commas."""
    text = re.sub(r"[ \t]+", "  ", text).replace("'", '"')
    return text.replace(")", ",)").replace("\n", "\n\n")


@pytest.mark.parametrize("scheme_name", ["synthid", "gumbel"])
def test_watermark_survives_reformatting_and_token_keys_do_not(tiny, scheme_name):
    from aimark.engines import generate

    results = {}
    for units in ("code-skeleton", "tokens"):
        key = generate_key(scheme_name, units=units)
        outputs = generate(tiny, ["def f(x):\n    return"] * 4, key=key, max_new_tokens=96, batch_size=4, chat=False, seed=3)
        detector = Detector([key], tiny.tokenizer, check_tokenizer=False)
        results[units] = [(detector.detect(o.text).log10_p_value, detector.detect(_reformat(o.text)).log10_p_value) for o in outputs]
    for as_generated, reformatted in results["code-skeleton"]:
        assert as_generated < -8 and reformatted < -8
        assert reformatted < 0.7 * as_generated  # most of the evidence kept
    # Token-id keys lose most of it under the same edit (the contrast this scheme exists for).
    assert np.mean([r / g for g, r in results["tokens"]]) < np.mean([r / g for g, r in results["code-skeleton"]])


def test_false_positive_rate_on_human_code_is_nominal(tiny, human_code):
    """Human code scored against many code-skeleton keys: p <= alpha at most at rate alpha."""
    alpha, trials = 0.01, 0
    hits = 0
    texts = human_code[:60]
    for round_ in range(10):
        for scheme_name in ("synthid", "gumbel"):
            detector = Detector([fixed_key(scheme_name, f"fpr-{round_}", units="code-skeleton")], tiny.tokenizer, check_tokenizer=False)
            for result in detector.detect_many(texts):
                trials += 1
                hits += result.p_value <= alpha
    assert_rate_at_most(hits, trials, alpha, "code-skeleton keys on human code")


def test_batched_detection_equals_one_at_a_time(tiny, human_code):
    key = fixed_key("synthid", "batch", units="code-skeleton")
    detector = Detector([key], tiny.tokenizer, check_tokenizer=False)
    texts = human_code[:12]
    batched = [r.log10_p_value for r in detector.detect_many(texts)]
    alone = [detector.detect(t).log10_p_value for t in texts]
    assert batched == alone


def test_key_files_say_their_units(tmp_path):
    key = generate_key("synthid", units="code-skeleton")
    assert load_key(save_key(key, tmp_path / "k.json")).params["units"] == "code-skeleton"
    assert generate_key("gumbel").params["units"] == "tokens"
    with pytest.raises(KeyFileError, match="units"):
        generate_key("synthid", units="characters")
    with pytest.raises(KeyFileError, match="unknown parameter"):
        generate_key("kgw", units="code-skeleton")
    with pytest.raises(ValueError, match="needs the tokenizer"):
        scheme_for_key(key)


def test_a_key_file_without_units_keeps_token_units(tmp_path):
    import json

    path = save_key(generate_key("synthid"), tmp_path / "old.json")
    document = json.loads(path.read_text())
    del document["params"]["units"]  # a key written before units existed
    path.write_text(json.dumps(document))
    assert load_key(path).params["units"] == "tokens"
    kgw = save_key(generate_key("kgw"), tmp_path / "kgw.json")
    document = json.loads(kgw.read_text())
    document["params"]["units"] = "code-skeleton"
    kgw.write_text(json.dumps(document))
    with pytest.raises(KeyFileError, match="units"):
        load_key(kgw)


def test_context_is_the_last_skeleton_bytes():
    vocabulary = SkeletonVocabulary([b"abcd", b" ", b"efgh", b"ij", b"(", b"klmn"])
    ids = np.array([0, 1, 2, 4, 3, 5])
    positions, words = vocabulary.contexts(ids)
    # Position 5 ("klmn") follows "abcd efgh(ij": skeleton "abcdefghij", 10 bytes < 12: no context yet.
    assert positions.tolist() == []
    positions, words = vocabulary.contexts(np.array([0, 1, 2, 4, 3, 5, 0]))
    assert positions.tolist() == [6]
    context = words[0][1:].astype("<u4").tobytes()
    assert len(context) == CONTEXT_BYTES and context == b"cdefghijklmn"
