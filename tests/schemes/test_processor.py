"""The transformers adapter: distribution properties, batching, padding, EOS."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from aimark.schemes import scheme_for_key
from aimark.schemes.processor import WatermarkLogitsProcessor
from tests.helpers import fixed_key, seeded_keys, seeded_rng, seeded_torch

PROBS = np.array([0.4, 0.25, 0.15, 0.1, 0.06, 0.04])


def _draws(scheme_name: str, keys: int = 6000) -> np.ndarray:
    """Sampled candidate index per seeded key, for one fixed next-token distribution."""
    rng, key_stream = seeded_rng(f"processor-draws/{scheme_name}"), seeded_keys(f"processor-draws/{scheme_name}")
    counts = np.zeros(len(PROBS))
    log_probs = np.log(PROBS)[None, :]
    candidates = np.arange(10, 10 + len(PROBS))[None, :]
    windows = np.array([[1, 2, 3, 4]])
    for _ in range(keys):
        scheme = scheme_for_key(key_stream(scheme_name))
        weights = scheme.reweight(log_probs, candidates, windows, scheme.context_keys(windows))[0]
        p = np.exp(weights - weights.max())
        p /= p.sum()
        counts[rng.choice(len(p), p=p)] += 1
    return counts


@pytest.mark.parametrize("scheme_name", ["synthid", "gumbel"])
def test_unbiased_schemes_preserve_the_distribution_over_keys(scheme_name):
    """SynthID's tournament and Gumbel sampling are non-distortionary: averaged over keys, the sampled token
    follows the model's distribution. The chi-square test at 1e-3 over 6,000 keys (noncentral chi-square, 5 dof)
    rejects a shift of 0.015 of the mass from the top token to the last with power 0.97, 0.02 with ~1.0,
    and KGW at its default bias (delta 2) with power ~1.0: the control below."""
    counts = _draws(scheme_name)
    assert stats.chisquare(counts, PROBS * counts.sum()).pvalue > 1e-3


def test_control_kgw_fails_the_unbiasedness_check():
    # KGW adds delta to green logits, so over keys the draw flattens toward the green share: the check must see it.
    counts = _draws("kgw")
    assert stats.chisquare(counts, PROBS * counts.sum()).pvalue < 1e-3


def test_kgw_only_reweights_candidates():
    scheme = scheme_for_key(fixed_key("kgw"))
    log_probs = np.log(PROBS)[None, :]
    candidates = np.arange(10, 10 + len(PROBS))[None, :]
    windows = np.array([[1, 2, 3, 4]])
    out = scheme.reweight(log_probs, candidates, windows, scheme.context_keys(windows))
    shift = out - log_probs
    assert set(np.round(shift[0], 9)) <= {0.0, scheme.bias}


def test_processor_restricts_to_top_k_and_keeps_shape():
    scheme = scheme_for_key(fixed_key("synthid"))
    processor = WatermarkLogitsProcessor(scheme, top_k=7)
    generator = seeded_torch("processor-top-k")
    scores = torch.randn(3, 1000, generator=generator)
    input_ids = torch.randint(5, 1000, (3, 12), generator=generator)
    out = processor(input_ids, scores)
    assert out.shape == scores.shape
    assert (torch.isfinite(out).sum(dim=1) <= 7).all()
    top = torch.topk(scores, 7).indices
    assert torch.isfinite(out.gather(1, top)).any(dim=1).all()


def test_rows_with_padding_in_context_are_not_watermarked():
    scheme = scheme_for_key(fixed_key("gumbel"))
    processor = WatermarkLogitsProcessor(scheme, top_k=5, pad_token_id=0)
    scores = torch.randn(2, 100, generator=seeded_torch("processor-padding"))
    input_ids = torch.tensor([[0, 0, 0, 7, 8], [4, 5, 6, 7, 8]])
    out = processor(input_ids, scores)
    assert torch.isfinite(out[0]).sum() == 5  # plain top-k sampling
    assert torch.isfinite(out[1]).sum() == 1  # gumbel picks one token


def test_repeated_context_is_left_unwatermarked():
    scheme = scheme_for_key(fixed_key("gumbel"))
    processor = WatermarkLogitsProcessor(scheme, top_k=5)
    scores = torch.randn(1, 100, generator=seeded_torch("processor-repeated-context"))
    first = processor(torch.tensor([[1, 2, 3, 4, 5]]), scores)
    again = processor(torch.tensor([[1, 2, 3, 4, 5, 9, 2, 3, 4, 5][-6:]]), scores)  # same 4-token context
    assert torch.isfinite(first).sum() == 1
    assert torch.isfinite(again).sum() == 5


def test_batched_generation_with_left_padding_and_eos(tiny):
    from aimark.detect import Detector
    from aimark.engines import generate

    key = fixed_key("synthid")
    prompts = ["A", "The history of the standard library and its modules", "日本国民は"]
    batched = generate(tiny, prompts, key=key, max_new_tokens=60, seed=0, chat=False, batch_size=3)
    assert len(batched) == 3 and all(g.key_id == key.key_id for g in batched)
    assert all(g.num_tokens <= 60 and g.finish_reason in {"stop", "length"} for g in batched)
    detector = Detector(key, tiny.tokenizer)
    long_enough = [g for g in batched if g.num_tokens >= 50]
    assert long_enough
    assert all(detector.detect(g.text).p_value < 1e-2 for g in long_enough)
