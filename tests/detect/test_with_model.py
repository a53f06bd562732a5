"""Detection with the generating model (aimark.detect.with_model): the weights come from the model's sampling
distribution alone, the statistic's null is exact, and a watermarked draw lifts each bit as the weights expect."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aimark.detect import Detector
from aimark.detect.with_model import NextTokenDistributions, Sampling, bit_weights, sampling_log_probs
from aimark.schemes import SkeletonScheme, scheme_for_key
from aimark.schemes.code_skeleton import SkeletonVocabulary
from aimark.schemes.processor import top_candidates
from tests.helpers import assert_rate_at_most, fixed_key, seeded_rng


def _distributions(rng, rows: int, vocab: int = 200, kept: int = 64, spread: float = 2.5) -> NextTokenDistributions:
    logits = rng.normal(0.0, spread, size=(rows, vocab))
    log_probs = torch.log_softmax(torch.from_numpy(logits), dim=-1)
    values, ids = torch.topk(log_probs, kept, dim=-1)
    entropy = -(log_probs.exp() * log_probs).sum(dim=-1)
    return NextTokenDistributions(ids.numpy(), values.numpy(), entropy.numpy()), logits


@pytest.mark.parametrize("sampling", [Sampling(1.0, 50, 1.0), Sampling(0.8, 50, 0.95), Sampling(1.3, 10, 0.5)])
def test_sampling_distribution_is_the_one_aimarks_processor_samples_from(sampling):
    rng = seeded_rng("with-model/sampling")
    distributions, logits = _distributions(rng, 40)
    ours, ids = sampling_log_probs(distributions, np.arange(40), sampling)
    theirs, their_ids = top_candidates(torch.from_numpy(logits), top_k=sampling.top_k, temperature=sampling.temperature, top_p=sampling.top_p)
    assert np.array_equal(ids, their_ids.numpy())
    finite = np.isfinite(theirs.numpy())
    assert np.array_equal(np.isfinite(ours), finite)
    assert np.allclose(ours[finite], theirs.numpy()[finite], atol=1e-5)


def _watermarked_bits(scheme, log_probs, candidates, rng) -> np.ndarray:
    """Draw one token per row from the scheme's reweighting under a fresh random context key; its bits (rows whose
    draw is not a scored unit, layout for code-skeleton keys, are NaN: detection never scores them)."""
    keys = rng.integers(0, 2**63, size=len(log_probs), dtype=np.int64).astype(np.uint64)
    windows = rng.integers(0, 200, size=(len(log_probs), scheme.context_width))  # KGW seeds from the window itself
    weights = np.exp(scheme.reweight(log_probs, candidates, windows if scheme.name == "kgw" else None, keys))
    weights /= weights.sum(axis=1, keepdims=True)
    drawn = np.array([rng.choice(candidates.shape[1], p=row) for row in weights])
    tokens = candidates[np.arange(len(candidates)), drawn]
    if scheme.null.trials_per_unit == 1:  # KGW: the drawn token's green bit
        green, _ = scheme.green(windows, tokens[:, None])
        return green.astype(np.int64)
    bits = scheme.bits(keys, scheme.unit_of(tokens)).astype(np.float64)
    bits[~scheme.scored_tokens(tokens)] = np.nan
    return bits


@pytest.mark.parametrize("name", ["synthid", "kgw", "synthid-code"])
def test_expected_excess_is_what_watermarked_draws_show(name):
    """Averaged over keys, a watermarked draw's bits exceed the null probability by expected_bit_excess: per
    distribution class (peaked and flat), within 4.5 standard errors."""
    rng = seeded_rng(f"with-model/excess-{name}")
    if name == "synthid-code":
        pieces = [b"x", b" x", b"y", b"\n", b"    ", b"z", b"w", b"(v"] * 25  # repeated pieces: shared units, layout
        scheme = SkeletonScheme(scheme_for_key(fixed_key("synthid", "excess")), SkeletonVocabulary(pieces))
        vocab = len(pieces)
    else:
        scheme = scheme_for_key(fixed_key(name, "excess", **({"bias": 2.0} if name == "kgw" else {})), vocab_size=200)
        vocab = 200
    q = scheme.null.success_probability
    for spread in (1.0, 4.0):
        distributions, _ = _distributions(rng, 3000, vocab=vocab, kept=min(50, vocab), spread=spread)
        log_probs, candidates = sampling_log_probs(distributions, np.arange(3000), Sampling(1.0, 20, 1.0))
        expected = scheme.expected_bit_excess(log_probs, candidates)
        seen = _watermarked_bits(scheme, log_probs, candidates, rng) - q
        scored = ~np.isnan(seen[:, 0])
        seen, expected = seen[scored], expected[scored]
        layers = [0, 1, 4, expected.shape[1] - 1] if expected.shape[1] > 1 else [0]
        for layer in layers:
            error = np.sqrt(q * (1 - q) / len(seen))
            assert abs(seen[:, layer].mean() - expected[:, layer].mean()) < 4.5 * error + 0.01 * expected[:, layer].mean(), (spread, layer)


def test_weights_are_log_likelihood_ratios_in_steps():
    weights = bit_weights(np.array([[0.0, 0.05, 0.25, -0.01]]), 0.5)
    assert weights.tolist() == [[0, 2, 11, 0]]  # log(0.55/0.45) = 0.20, log(0.75/0.25) = 1.10 nats, steps of 0.1


def test_false_positive_rate_with_the_model_is_nominal(tiny, human_passages):
    """Human text, scored with the model's weights against many synthid and kgw keys: p <= alpha at rate alpha."""
    from aimark.engines.scoring import detect_with_model, next_token_distributions

    alpha, hits, trials = 0.02, 0, 0
    texts = [t for t in human_passages if len(t) > 200][:40]
    detector = Detector([fixed_key("synthid", "fpr-0")], tiny.tokenizer, check_tokenizer=False)
    encoded = [detector.encode(text)[0] for text in texts]
    distributions = next_token_distributions(tiny, [ids.tolist() for ids in encoded])  # once per text: the model is key-free
    for round_ in range(6):
        for scheme in ("synthid", "kgw"):
            detector = Detector([fixed_key(scheme, f"fpr-{round_}")], tiny.tokenizer, check_tokenizer=False)
            for ids, dist in zip(encoded, distributions):
                result = detector.detect_with_model(ids, dist, sampling=Sampling(1.0, 50, 1.0))
                trials += 1
                hits += result.p_value <= alpha
    assert_rate_at_most(hits, trials, alpha, "model-weighted detection on human text")
    assert detect_with_model  # the convenience path is exercised in tests/engines/test_scoring.py


def test_gumbel_keys_are_refused_with_a_clear_error(tiny):
    detector = Detector([fixed_key("gumbel", "refused")], tiny.tokenizer, check_tokenizer=False)
    ids = np.arange(10, 40)
    distributions = NextTokenDistributions(np.zeros((30, 8), dtype=np.int64), np.zeros((30, 8)), np.zeros(30))
    with pytest.raises(ValueError, match="synthid and kgw"):
        detector.detect_with_model(ids, distributions)
    with pytest.raises(ValueError, match="one distribution per token"):
        Detector([fixed_key("synthid", "x")], tiny.tokenizer, check_tokenizer=False).detect_with_model(ids, distributions[:3] if False else NextTokenDistributions(distributions.ids[:3], distributions.log_probs[:3], distributions.entropy[:3]))
