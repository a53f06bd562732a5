"""p-values on unwatermarked text are valid: P(p <= alpha) <= alpha, within binomial error.

Draws are (text, fresh key) pairs, one key per pair: texts share n-grams, so one key's p-values on different
texts are dependent, and pooling them would test that dependence, not the null (tests/detect/calibration.py
scores the pairs as the detector does).

Each check fails a false-positive rate of 2 alpha at alpha = 1e-3 (the detector's default) with the power its
test states (``rate_test_power``: the chance that the one-sided binomial check at 1e-4 rejects), and each claim
has a control that the same assertion rejects: p-values from a normal approximation, from a q off by 0.02,
and from a detector without dedup.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from aimark.engines import generate
from tests.detect.calibration import (
    MIN_POWER,
    PAIRS,
    NullDraws,
    assert_valid,
    null_draws,
)
from tests.helpers import rate_test_power

SCHEMES = ("synthid", "kgw", "gumbel")

def _chunks(passages: list[str], words: int = 40) -> list[str]:
    """Human passages cut into ~40-word texts (~60 tokens): short, where approximations fail first."""
    out = []
    for passage in passages:
        tokens = passage.split()
        out += [" ".join(tokens[i : i + words]) for i in range(0, len(tokens), words) if len(tokens[i : i + words]) >= words // 2]
    return out


@pytest.fixture(scope="module")
def human_draws(tiny, human_passages) -> dict[str, NullDraws]:
    texts = _chunks(human_passages)
    assert len(texts) >= 350
    per_text = math.ceil(PAIRS / len(texts))
    return {scheme: null_draws(tiny.tokenizer, texts, scheme, per_text, "human") for scheme in SCHEMES}


@pytest.mark.parametrize("scheme", SCHEMES)
def test_human_text_p_values_are_valid(human_draws, scheme):
    """~50,000 (text, key) pairs per scheme: power 0.987 against a doubled false-positive rate at 1e-3, ~1 at 1e-2.."""
    draws = human_draws[scheme]
    assert len(draws.units) >= PAIRS and rate_test_power(len(draws.units), 1e-3) >= MIN_POWER
    assert_valid(draws.p_values(), f"{scheme} on human text")


@pytest.mark.parametrize("scheme", ["kgw", "gumbel"])
def test_control_a_normal_approximation_fails_the_validity_check(human_draws, scheme):
    """The z-test on the same totals: on ~60-token texts its right tail is too light (KGW's count and Gumbel's
    Gamma total are skewed): its rate is about 2x nominal at 1e-3 (Gumbel up to 3x) and 1.25x at 1e-2, and
    the check above rejects it (at 1e-3 or, for KGW under some seeds, first at 1e-2)."""
    with pytest.raises(AssertionError, match="at or below"):
        assert_valid(human_draws[scheme].normal_approximation_p_values(), f"{scheme} z-test")


@pytest.mark.parametrize("scheme", ["synthid", "kgw"])
def test_control_a_mis_specified_q_fails_the_validity_check(human_draws, scheme):
    """The exact binomial tail with the probability of a hit taken 0.02 too low (0.48 for SynthID's bits,
    0.23 for KGW's green share): the same check rejects it."""
    draws = human_draws[scheme]
    wrong = replace(draws.null, success_probability=draws.null.success_probability - 0.02)
    with pytest.raises(AssertionError, match="at or below"):
        assert_valid(draws.p_values(wrong), f"{scheme} with q - 0.02")


def test_gumbel_p_values_are_uniform_on_human_text(human_draws):
    """Gamma(n, 1) is continuous: p-values must be uniform, not just conservative. Over ~50,000 p-values the
    KS test at 1e-3 rejects a CDF off by 0.0087 half the time and by 0.013 almost always; the normal
    approximation's p-values (off by ~0.02 on these lengths) are its control."""
    draws = human_draws["gumbel"]
    critical = stats.kstwo.isf(1e-3, len(draws.units))
    assert critical < 0.009
    assert stats.kstest(draws.p_values(), "uniform").pvalue > 1e-3
    assert stats.kstest(draws.normal_approximation_p_values(), "uniform").pvalue < 1e-3


# Three repeats are enough: without dedup each unit counts three times and the tails blow up (the control).
REPETITIVE = ["The cat sat on the mat and looked at the door. " * 3, "데이터 " * 12, "def f(x):\n    return x\n" * 3]


@pytest.fixture(scope="module")
def repetitive_draws(tiny) -> dict[str, NullDraws]:
    per_text = math.ceil(PAIRS / len(REPETITIVE))
    return {scheme: null_draws(tiny.tokenizer, REPETITIVE, scheme, per_text, "repetitive") for scheme in SCHEMES}


@pytest.mark.parametrize("scheme", SCHEMES)
def test_repetitive_text_does_not_produce_false_positives(repetitive_draws, scheme):
    """Small models loop; without scoring each unit once, every repeat adds the same green/g-value again and
    the count drifts far from its null. ~50,000 pairs: power 0.987 against a doubled rate at 1e-3; the control
    without dedup is below."""
    draws = repetitive_draws[scheme]
    assert rate_test_power(len(draws.units), 1e-3) >= MIN_POWER
    assert_valid(draws.p_values(), f"{scheme} on repetitive text")


def test_the_validity_check_has_teeth_without_dedup(tiny, monkeypatch):
    # Negative control: with every repeated unit counted again, the same check must fail.
    import aimark.detect.detector as detector_module

    monkeypatch.setattr(detector_module, "first_occurrences", lambda values: np.ones(len(values), dtype=bool))
    draws = null_draws(tiny.tokenizer, REPETITIVE[:1], "kgw", 300, "no-dedup", check=3)
    with pytest.raises(AssertionError):
        assert_valid(draws.p_values(), "kgw without dedup")


@pytest.fixture(scope="module")
def model_samples(tiny) -> list[str]:
    generations = generate(tiny, ["The history of the"] * 16 + ["日本国民は"] * 8, key=None, max_new_tokens=80, min_new_tokens=40, seed=7, chat=False, batch_size=12)
    samples = [g.text for g in generations if g.text.strip()]
    assert len(samples) >= 20
    return samples


@pytest.mark.parametrize("scheme", SCHEMES)
def test_p_values_are_valid_on_model_samples(tiny, model_samples, scheme):
    """Unwatermarked samples of the tiny model (repetitive, as small models are): ~50,000 (sample, key) pairs,
    power 0.987 against a doubled rate at 1e-3."""
    draws = null_draws(tiny.tokenizer, model_samples, scheme, math.ceil(PAIRS / len(model_samples)), "model-samples")
    assert rate_test_power(len(draws.units), 1e-3) >= MIN_POWER
    assert_valid(draws.p_values(), f"{scheme} on model samples")
