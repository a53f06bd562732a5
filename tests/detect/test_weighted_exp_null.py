"""The exact null of vLLM's dual-key Gumbel score, against closed forms, Monte Carlo and importance sampling."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize, special, stats

from aimark.detect.stats import log_p_value, log_tail_weighted_exp, log_upper_gamma
from aimark.schemes import WeightedExpNull
from tests.helpers import seeded_rng


def _hypoexponential_log_tail(t: float, a: float, b: float) -> float:
    """n = 1: P(a E1 + b E2 >= t) = (a e^(-t/a) - b e^(-t/b)) / (a - b), for a > b, in log space."""
    return -t / a + math.log(a - b * math.exp(t / a - t / b)) - math.log(a - b)


@pytest.mark.parametrize("alpha", [0.1, 0.3, 0.9])
@pytest.mark.parametrize("t", [0.2, 2.0, 40.0, 900.0, 5000.0])
def test_one_unit_matches_the_hypoexponential_closed_form_into_the_far_tail(alpha, t):
    a, b = max(alpha, 1 - alpha), min(alpha, 1 - alpha)
    assert log_tail_weighted_exp(t, 1, (1 - alpha, alpha)) == pytest.approx(_hypoexponential_log_tail(t, a, b), rel=1e-9, abs=1e-12)


def test_equal_and_single_weights_are_gamma():
    assert log_tail_weighted_exp(30.0, 25, (0.5, 0.5)) == pytest.approx(stats.gamma.logsf(60.0, a=50), rel=1e-12)
    assert log_tail_weighted_exp(40.0, 25, (1.0,)) == pytest.approx(stats.gamma.logsf(40.0, a=25), rel=1e-12)
    assert log_tail_weighted_exp(40.0, 25, (1.0, 0.0)) == pytest.approx(stats.gamma.logsf(40.0, a=25), rel=1e-12)


def test_log_upper_gamma_continues_past_underflow():
    shapes = np.asarray([5.0, 50.0, 500.0])
    # Where gammaincc is representable the values agree; past it only the log-space sum is finite.
    assert log_upper_gamma(shapes, 400.0)[:2] == pytest.approx(np.log(special.gammaincc(shapes[:2], 400.0)), rel=1e-10)
    far = log_upper_gamma(shapes, 5000.0)
    assert np.all(np.isfinite(far)) and np.all(np.diff(far) > 0)
    # Leading asymptotics of Q(a, x) ~ x^(a-1) e^-x / Gamma(a) for x >> a.
    assert far[0] == pytest.approx(-5000.0 + 4 * math.log(5000.0) - special.gammaln(5.0) + math.log1p(4 / 5000.0), rel=1e-6)


@pytest.mark.parametrize("alpha", [0.1, 0.3])
def test_bulk_tail_matches_monte_carlo(alpha):
    rng = seeded_rng(f"weighted-exp-mc-{alpha}")
    units, samples = 20, 200_000
    totals = (rng.exponential(size=(samples, units, 2)) * [1 - alpha, alpha]).sum(axis=(1, 2))
    for quantile in (0.5, 0.9, 0.99, 0.999):
        t = float(np.quantile(totals, quantile))
        empirical = float((totals >= t).mean())
        exact = math.exp(log_tail_weighted_exp(t, units, (1 - alpha, alpha)))
        standard_error = math.sqrt(exact * (1 - exact) / samples)
        assert abs(empirical - exact) < 5 * standard_error + 1 / samples, (quantile, empirical, exact)


def _importance_sampled_tail(t: float, units: int, weights: np.ndarray, rng, samples: int = 100_000) -> tuple[float, float]:
    """P(T >= t) by exponential tilting: E_i ~ Exp(rate 1 - theta w_i), tilted mean = t, weight e^(-theta T) / prod rates."""
    def tilted_mean(theta):
        return units * float(np.sum(weights / (1 - theta * weights))) - t

    theta = optimize.brentq(tilted_mean, 0.0, (1 - 1e-12) / weights.max())
    rates = 1 - theta * weights
    draws = rng.exponential(size=(samples, units, len(weights))) / rates
    totals = (draws * weights).sum(axis=(1, 2))
    log_weights = -theta * totals - units * float(np.sum(np.log(rates)))
    contributions = np.where(totals >= t, np.exp(log_weights), 0.0)
    return float(contributions.mean()), float(contributions.std() / math.sqrt(samples))


@pytest.mark.parametrize("alpha, units, target", [(0.1, 30, 1e-8), (0.3, 50, 1e-12), (0.3, 10, 1e-20)])
def test_far_tail_matches_importance_sampling(alpha, units, target):
    weights = np.asarray([1 - alpha, alpha])
    # The total at which the exact tail is `target`, then an independent estimate of the tail there.
    t = optimize.brentq(lambda s: log_tail_weighted_exp(s, units, tuple(weights)) - math.log(target), units * 0.5, units * 40.0)
    estimate, error = _importance_sampled_tail(t, units, weights, seeded_rng(f"weighted-exp-is-{alpha}-{units}"))
    assert error < 0.03 * estimate
    assert abs(estimate - target) < 5 * error, (estimate, target, error)


def _vllm_moment_matched_tail(score: float, units: int, alpha: float) -> float:
    """vLLM 0.32's DualKeyGumbelWatermarkDetector._get_p_value for alpha outside {0, 0.5, 1}."""
    variance = (1 - alpha) ** 2 + alpha**2
    return float(special.gammaincc(units / variance, score / variance))


@pytest.mark.parametrize("alpha", [0.1, 0.3])
def test_vllm_moment_matched_gamma_understates_the_far_tail(alpha):
    """vLLM's Gamma has the null's mean and variance but a lighter tail (rate 1 / (a^2 + b^2) instead of 1 / max(a, b)):
    its p-values are too small where detection decides, the false-positive rate above the nominal alpha."""
    units = 50
    weights = (1 - alpha, alpha)
    # Measured (n = 50): vLLM's p / exact p = 0.96 at 1e-2, 0.91-0.92 at 1e-3, 0.70-0.74 at 1e-6, 0.43-0.50 at 1e-10.
    for target, most in ((1e-3, 0.95), (1e-6, 0.8), (1e-10, 0.6)):
        t = optimize.brentq(lambda s: log_tail_weighted_exp(s, units, weights) - math.log(target), units * 0.5, units * 40.0)
        assert _vllm_moment_matched_tail(t, units, alpha) < most * target
    # At the exact 1e-10 point the importance-sampling estimate (an independent check) agrees with the exact tail
    # and refutes the approximation.
    t = optimize.brentq(lambda s: log_tail_weighted_exp(s, units, weights) - math.log(1e-10), units * 0.5, units * 40.0)
    estimate, error = _importance_sampled_tail(t, units, np.asarray(weights), seeded_rng(f"vllm-approx-{alpha}"))
    assert abs(estimate - 1e-10) < 5 * error
    assert _vllm_moment_matched_tail(t, units, alpha) < estimate - 10 * error


def test_log_p_value_subtracts_the_discretisation_shift():
    null = WeightedExpNull((0.7, 0.3), shift_per_unit=1e-3)
    assert log_p_value(null, 60.0, 40) == pytest.approx(log_tail_weighted_exp(60.0 - 0.04, 40, (0.7, 0.3)), rel=1e-12)
    assert log_p_value(null, 0.0, 40) == 0.0 and log_p_value(null, 10.0, 0) == 0.0


@pytest.mark.parametrize("alpha", [0.1, 0.3, 0.45])
@pytest.mark.parametrize("multiple", [0.5, 1.0, 2.0, 4.0])
def test_windowed_series_equals_the_whole_series(alpha, multiple):
    """The sum over the window around the mode (plus its bounds) is the sum over every term that matters."""
    units = 50
    a, b = 1 - alpha, alpha
    p, x, n = min(a, b) / max(a, b), units * multiple / min(a, b), float(units)
    k = np.arange(200_000, dtype=np.float64)  # far past where the negative binomial's pmf underflows
    log_pmf = special.gammaln(n + k) - special.gammaln(k + 1) - special.gammaln(n) + n * math.log(p) + k * math.log1p(-p)
    whole = float(special.logsumexp(log_pmf + log_upper_gamma(2 * n + k, x)))
    assert log_tail_weighted_exp(units * multiple, units, (a, b)) == pytest.approx(whole, rel=1e-12, abs=1e-13)
