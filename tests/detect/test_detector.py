from __future__ import annotations

import dataclasses
import math
import pickle

import numpy as np
import pytest

from aimark.detect import DetectionInputError, Detector, TokenizerMismatchError
from aimark.detect.stats import log_p_value
from aimark.engines import generate
from aimark.keys import Keyring, TokenizerBinding
from aimark.schemes import BinomialNull, GammaNull
from tests.helpers import fixed_key, seeded_rng


@pytest.fixture(scope="module")
def marked(tiny):
    key = fixed_key("synthid")
    outputs = generate(tiny, ["The history of the", "日本国民は"], key=key, max_new_tokens=100, min_new_tokens=100, seed=1, chat=False)
    return key, [o.text for o in outputs]


def test_watermarked_text_detected_and_other_key_not(tiny, marked, keys):
    key, texts = marked
    other = keys("synthid")
    for text in texts:
        assert Detector(key, tiny.tokenizer).detect(text).watermarked
        assert Detector(other, tiny.tokenizer).detect(text).p_value > 1e-3


@pytest.mark.parametrize("scheme, params", [("synthid", {}), ("gumbel", {}), ("kgw", {"seeding_scheme": "lefthash"}), ("kgw", {})])
def test_each_context_prf_detects_its_own_generations(tiny, scheme, params):
    """New keys (SipHash-2-4 contexts) and keys issued before them (BLAKE2b), with one secret: each key's
    generations are found by that key, alone and batched, and the other PRF's values are unrelated to them.
    KGW's self-hash green lists are a min-hash of pair() values, not of the context PRF: the same for both."""
    new = fixed_key(scheme, "context-prf-generation", **params)
    old = dataclasses.replace(new, params={**new.params, "context_prf": "blake2b"})
    for key, other in ((new, old), (old, new)):
        texts = [o.text for o in generate(tiny, ["The history of the"], key=key, max_new_tokens=100, min_new_tokens=100, seed=2, chat=False)]
        detector = Detector(key, tiny.tokenizer)
        found = [detector.detect(text) for text in texts]
        assert all(result.p_value < 1e-3 for result in found), (key.context_prf, [r.p_value for r in found])
        assert list(detector.detect_many(texts)) == [detector.detect(text, with_tokens=False) for text in texts]
        by_other = [Detector(other, tiny.tokenizer).detect(text, with_tokens=False) for text in texts]
        if scheme == "kgw" and new.params["seeding_scheme"] == "selfhash":
            assert by_other == [detector.detect(text, with_tokens=False) for text in texts]
        else:
            assert all(result.p_value > 1e-3 for result in by_other)


def test_result_fields_and_json_shape(tiny, marked):
    key, texts = marked
    result = Detector(key, tiny.tokenizer, alpha=0.01).detect(texts[0])
    document = result.to_dict(include_tokens=True)
    assert {"scheme", "key_id", "p_value", "num_scored_tokens", "watermarked", "alpha"} <= set(document)
    assert document["key_id"] == key.key_id and document["alpha"] == 0.01
    assert 0 < result.num_scored_tokens <= result.num_tokens
    assert math.isclose(result.log10_p_value, math.log10(result.p_value), rel_tol=1e-9)
    scored = [t for t in result.tokens if t.score is not None]
    assert len(scored) == result.num_scored_tokens
    assert all(0 <= t.start <= t.end <= len(texts[0]) for t in result.tokens)


def test_keyring_reports_matching_key_with_bonferroni(tiny, marked, keys):
    key, texts = marked
    ring = Keyring([keys("kgw"), key, keys("gumbel")])
    single = Detector(key, tiny.tokenizer).detect(texts[0])
    result = Detector(ring, tiny.tokenizer).detect(texts[0])
    assert result.key_id == key.key_id and result.keys_tried == 3
    assert math.isclose(result.log10_p_value, single.log10_p_value + math.log10(3), rel_tol=1e-9)


def test_prompt_is_context_not_scored(tiny, marked):
    key, texts = marked
    detector = Detector(key, tiny.tokenizer)
    prompt = "A prompt that the user wrote by hand. "
    alone = detector.detect(texts[0])
    with_prompt = detector.detect(prompt + texts[0], prompt=prompt)
    assert with_prompt.num_tokens <= alone.num_tokens + 1
    assert all(t.start >= len(prompt) for t in with_prompt.tokens)


@pytest.mark.parametrize("text", ["", "   \n\t"])
def test_empty_text_is_an_error(tiny, text, keys):
    with pytest.raises(DetectionInputError, match="empty"):
        Detector(keys("kgw"), tiny.tokenizer).detect(text)


def test_text_shorter_than_context_is_an_error(tiny, keys):
    with pytest.raises(DetectionInputError, match="nothing to score"):
        Detector(keys("synthid"), tiny.tokenizer).detect("Hi")


def test_tokenizer_mismatch_is_an_error(tiny, keys):
    key = keys("synthid", tokenizer=TokenizerBinding("other", 10, "0" * 64))
    with pytest.raises(TokenizerMismatchError):
        Detector(key, tiny.tokenizer)


def test_detect_many_streams_in_order_and_reports_bad_items(tiny, marked):
    key, texts = marked
    detector = Detector(key, tiny.tokenizer)
    items = [texts[0], "", texts[1], "x", texts[0]]
    results = list(detector.detect_many(items, batch_size=2))
    assert len(results) == 5
    assert isinstance(results[1], DetectionInputError) and isinstance(results[3], DetectionInputError)
    assert results[0].p_value == results[4].p_value == detector.detect(texts[0]).p_value


@pytest.mark.parametrize("schemes", [("synthid",), ("kgw",), ("gumbel",), ("synthid", "kgw", "gumbel")])
def test_detect_many_gives_exactly_what_detect_gives(tiny, marked, human_passages, keys, schemes):
    """The batched path computes p-values for a whole batch at once: every field must still be detect()'s."""
    key, texts = marked
    detector = Detector([key] + [keys(s) for s in schemes], tiny.tokenizer)
    items = texts + human_passages[:30] + ["", "x", "\u2f08\u2f47 " * 8, "caf\u0065\u0301 " * 10]
    for item, batched in zip(items, detector.detect_many(items, batch_size=7)):
        try:
            single = detector.detect(item, with_tokens=False)
        except DetectionInputError as exc:
            assert isinstance(batched, DetectionInputError) and str(batched) == str(exc)
        else:
            assert batched == single


def test_schemes_are_picklable(tiny, keys):
    for scheme in ("synthid", "kgw", "gumbel"):
        detector = Detector(keys(scheme), tiny.tokenizer)
        clone = pickle.loads(pickle.dumps(detector.schemes[0]))
        ids = np.arange(3, 60)
        np.testing.assert_array_equal(clone.score(ids).values, detector.schemes[0].score(ids).values)


def test_exact_tails_match_direct_sums():
    from scipy import stats

    # Binomial: P(X >= k) summed directly.
    n, q, k = 40, 0.25, 19
    direct = sum(stats.binom.pmf(i, n, q) for i in range(k, n + 1))
    assert math.isclose(math.exp(log_p_value(BinomialNull(1, q), k, n)), direct, rel_tol=1e-9)
    # Gamma(n, 1) tail = Poisson CDF identity: P(Gamma(n) >= s) = P(Poisson(s) <= n - 1).
    n, s = 12, 20.5
    assert math.isclose(math.exp(log_p_value(GammaNull(), s, n)), stats.poisson.cdf(n - 1, s), rel_tol=1e-9)
    # Far tails stay finite in log space.
    assert log_p_value(BinomialNull(30, 0.5), 30 * 900, 900) < -5000


def _first_occurrences_by_lexsort(groups, values):
    """The stable two-key sort first_occurrences_per_group replaced: the reference."""
    order = np.lexsort((values, groups))
    starts = np.ones(len(order), dtype=bool)
    starts[1:] = (groups[order][1:] != groups[order][:-1]) | (values[order][1:] != values[order][:-1])
    mask = np.zeros(len(values), dtype=bool)
    mask[order[starts]] = True
    return mask


@pytest.mark.parametrize("distinct", [3, 40, 2**64])
def test_first_occurrences_per_group_marks_the_earliest_of_each_pair(distinct):
    from aimark.detect.detector import first_occurrences_per_group

    rng = seeded_rng(f"first-occurrences-{distinct}")
    for size in (0, 1, 2, 7, 300, 5000):
        groups = rng.integers(0, 6, size)
        values = rng.integers(0, distinct, size, dtype=np.uint64)
        for grouping in (np.sort(groups), groups):  # batches (texts in order) and any order
            np.testing.assert_array_equal(first_occurrences_per_group(grouping, values), _first_occurrences_by_lexsort(grouping, values))


@pytest.mark.parametrize("scheme", ["synthid", "kgw", "gumbel", "synthid-code"])
def test_scored_positions_of_a_batch_are_each_texts_own(tiny, keys, scheme):
    """A batch's rows are built at once from the concatenated ids; the same rows as each text's, in order
    (a skeleton scheme's own positions are still built per text)."""
    from aimark.schemes import scheme_for_key

    key = keys("synthid", units="code-skeleton") if scheme == "synthid-code" else keys(scheme)
    target = scheme_for_key(key, vocab_size=len(tiny.tokenizer), tokenizer=tiny.tokenizer)
    rng = seeded_rng(f"batch-positions-{scheme}")
    encoded = [rng.integers(0, len(tiny.tokenizer), int(n)) for n in [0, 1, 4, 5, 6, 90, 3, 200]]
    windows, positions, tokens, rows = target.scored_positions_many(encoded)
    each = [target._scored_positions(ids) for ids in encoded]
    assert rows.tolist() == [len(p) for _, p, _ in each]
    for batched, parts in zip((windows, positions, tokens), zip(*each)):
        expected = np.concatenate(parts)
        assert batched.dtype == expected.dtype and batched.shape == expected.shape and np.array_equal(batched, expected)
    assert [len(part) for part in target.scored_positions_many([])] == [0, 0, 0, 0]
