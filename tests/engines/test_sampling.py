"""The top-candidate sampler draws from exactly the distribution transformers' sampling would."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from aimark.engines.sampling import CandidateSampler, sampling_processors
from aimark.schemes import scheme_for_key
from aimark.schemes.processor import WatermarkLogitsProcessor, top_candidates
from tests.helpers import fixed_key, seeded_rng, seeded_torch


def _draws(sampler: CandidateSampler, scores: torch.Tensor, n: int) -> np.ndarray:
    torch.manual_seed(int(seeded_rng("sampling-draws").integers(0, 2**62)))
    rows = scores.expand(n, -1).clone()
    out = sampler(torch.zeros((n, 1), dtype=torch.long), rows)
    finite = torch.isfinite(out)
    assert finite.sum(dim=1).eq(1).all(), "each row must name exactly one token"
    return out.argmax(dim=1).numpy()


def test_draws_follow_the_tempered_top_k_distribution():
    scores = torch.randn(1, 1000, generator=seeded_torch("sampling-top-k"))
    sampler = CandidateSampler(top_k=20, temperature=0.7)
    drawn = _draws(sampler, scores, 20_000)
    top_values, top_ids = torch.topk(scores[0] / 0.7, 20)
    expected = torch.softmax(top_values.double(), dim=0).numpy()
    assert set(drawn) <= set(top_ids.tolist())
    observed = np.array([(drawn == t).sum() for t in top_ids.tolist()])
    assert stats.chisquare(observed, expected * len(drawn)).pvalue > 1e-3
    # Power and control: the same test rejects a sampler at temperature 1.0 instead of 0.7 with power
    # >= 1 - 1e-6 over 20,000 draws (noncentral chi-square, 19 dof, against that alternative's counts), and
    # the observed counts must reject it. (Against 0.8 or 0.9 the power falls to ~0.99 for some seeded scores.)
    wrong = torch.softmax(torch.topk(scores[0] / 1.0, 20).values.double(), dim=0).numpy()
    noncentrality = len(drawn) * float(((expected - wrong) ** 2 / wrong).sum())
    assert stats.ncx2.sf(stats.chi2.isf(1e-3, 19), 19, noncentrality) >= 1 - 1e-6
    assert stats.chisquare(observed, wrong * len(drawn)).pvalue < 1e-3


def test_top_p_drops_the_tail_but_keeps_the_crossing_token():
    scores = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    drawn = _draws(CandidateSampler(top_k=4, top_p=0.7), scores, 5000)
    assert set(drawn) == {0, 1}  # 0.5 < 0.7, so the 0.3 token that crosses it stays; 0.15 and 0.05 go


def test_top_candidates_renormalises_after_top_p():
    log_probs, ids = top_candidates(torch.log(torch.tensor([[0.1, 0.6, 0.3]])), top_k=3, temperature=1.0, top_p=0.8)
    assert ids.tolist() == [[1, 2, 0]]
    assert torch.allclose(log_probs.exp(), torch.tensor([[2 / 3, 1 / 3, 0.0]]))


def test_same_seed_same_draws():
    scores = torch.randn(4, 500, generator=seeded_torch("sampling-same-seed"))
    a = CandidateSampler(top_k=50)
    torch.manual_seed(3)
    first = a(torch.zeros((4, 1), dtype=torch.long), scores.clone())
    torch.manual_seed(3)
    assert torch.equal(first, a(torch.zeros((4, 1), dtype=torch.long), scores.clone()))


@pytest.mark.parametrize("bad", [{"top_k": 0}, {"temperature": 0.0}, {"top_p": 0.0}, {"top_p": 1.5}])
def test_rejects_bad_settings(bad):
    with pytest.raises(ValueError):
        CandidateSampler(**bad)


def test_watermark_comes_before_the_draw():
    processors = sampling_processors(scheme_for_key(fixed_key("synthid")), top_k=10, temperature=0.9, top_p=0.95, pad_token_id=0)
    assert isinstance(processors[0], WatermarkLogitsProcessor) and isinstance(processors[-1], CandidateSampler)
    assert [type(p) for p in sampling_processors(None, top_k=10, temperature=0.9, top_p=0.95, pad_token_id=0)] == [CandidateSampler]


def test_generation_respects_top_k_one_as_greedy(tiny):
    from aimark.engines import generate

    prompts = ["the cat", "a dog"]
    first = generate(tiny, prompts, key=None, max_new_tokens=12, top_k=1, seed=1, repetition_penalty=1.0)
    second = generate(tiny, prompts, key=None, max_new_tokens=12, top_k=1, seed=99, repetition_penalty=1.0)
    assert [g.text for g in first] == [g.text for g in second]  # top_k=1 leaves nothing to chance


def test_streaming_takes_the_repetition_penalty(tiny):
    from aimark.engines import format_prompt
    from aimark.engines.streaming import StreamOutcome, stream_generate

    prompt = format_prompt(tiny.tokenizer, "the cat")
    texts = {
        penalty: "".join(stream_generate(tiny, prompt, key=None, outcome=StreamOutcome(), max_new_tokens=24, top_k=1, repetition_penalty=penalty))
        for penalty in (1.0, 5.0)
    }
    assert texts[1.0] != texts[5.0]
