"""The exact tails (aimark.detect.tails, numpy alone) against scipy.stats where its values hold, and against
mpmath's exact sums where scipy's underflow or lose digits (log p below -700, a Gamma tail near 1)."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from scipy import stats

from aimark.detect.stats import log_p_values
from aimark.detect.tails import binomial_log_sf, gamma_log_sf
from aimark.schemes.base import BinomialNull, GammaNull
from tests.helpers import seeded_rng

# Error in log p, relative where |log p| > 1 and absolute below: a p-value's relative error.
TOLERANCE = 1e-10


def _log_error(ours: np.ndarray, reference: np.ndarray) -> np.ndarray:
    both_zero_mass = np.isneginf(ours) & np.isneginf(reference)
    return np.where(both_zero_mass, 0.0, np.abs(ours - reference) / np.maximum(1.0, np.abs(reference)))


def test_binomial_tail_is_scipy_stats_binom_logsf_through_log_p_values():
    rng = seeded_rng("stats/binomial")
    units = rng.integers(1, 4000, 5000)
    null = BinomialNull(trials_per_unit=3, success_probability=0.5)
    trials = units * 3
    # Around the mean and far into the tail (log p down to about -700).
    successes = np.clip((trials * 0.5 + rng.normal(0, 1, 5000) * np.sqrt(trials) * rng.uniform(0, 15, 5000)).astype(int), 1, trials)
    ours = log_p_values(null, successes.astype(float), units)
    reference = np.minimum(stats.binom.logsf(successes - 1, trials, 0.5), 0.0)
    reliable = reference > -700
    assert reliable.mean() > 0.9
    assert _log_error(ours[reliable], reference[reliable]).max() < TOLERANCE


@pytest.mark.parametrize("p", [0.5, 0.25, 0.01, 0.9, 0.49999])
@pytest.mark.parametrize("n", [1, 2, 5, 30, 1000, 6000, 100_000, 3_000_000, 500_000_000])
def test_binomial_tail_over_sizes_and_depths(n, p):
    sd = math.sqrt(n * p * (1 - p))
    ks = np.unique(np.clip(np.round(n * p + np.concatenate([np.linspace(-8, 40, 60) * sd, [-n, n, 0, 1, 2]])), 0, n + 1))
    ours = binomial_log_sf(ks, np.full(len(ks), float(n)), p)
    reference = stats.binom.logsf(ks - 1, n, p)
    reliable = reference > -700
    assert _log_error(ours[reliable], reference[reliable]).max() < TOLERANCE
    assert np.all(ours <= 0) and np.all(np.diff(ours) <= 1e-15)  # a tail falls with k
    assert ours[ks == 0].tolist() in ([], [0.0]) and np.all(np.isneginf(ours[ks > n]))


@pytest.mark.parametrize("n, p, k", [(6000, 0.5, 4455), (6000, 0.25, 3000), (2000, 0.5, 2000), (3000, 0.01, 400), (60, 0.5, 59)])
def test_binomial_far_tail_is_the_exact_sum(n, p, k):
    mpmath.mp.dps = 40
    big_p = mpmath.mpf(p)
    exact = mpmath.fsum(mpmath.binomial(n, j) * big_p**j * (1 - big_p) ** (n - j) for j in range(k, n + 1))
    assert binomial_log_sf(np.array([float(k)]), np.array([float(n)]), p)[0] == pytest.approx(float(mpmath.log(exact)), rel=TOLERANCE)


@pytest.mark.parametrize("shape", [1, 2, 3, 10, 50, 200, 1000, 100_000, 10_000_000])
def test_gamma_tail_over_shapes_and_depths(shape):
    xs = np.unique(np.concatenate([shape + np.linspace(-8, 60, 80) * math.sqrt(shape), [1e-3, 0.5, 1, 3 * shape, 10 * shape + 100]]))
    xs = xs[xs > 0]
    ours = gamma_log_sf(xs, np.full(len(xs), float(shape)))
    reference = stats.gamma.logsf(xs, a=shape)
    # scipy's log1p(-gammainc) below the median loses digits for shapes in the millions; mpmath says which is right.
    reliable = (reference > -700) & ((reference < -1e-4) | (shape < 1_000_000))
    assert _log_error(ours[reliable], reference[reliable]).max() < TOLERANCE
    assert np.all(np.diff(ours) <= 1e-15)


@pytest.mark.parametrize("shape, x", [(5, 5000.0), (50, 5000.0), (500, 4000.0), (10_000_000, 9_985_589.620789107), (200, 1600.0)])
def test_gamma_far_and_near_one_tails_are_mpmaths(shape, x):
    mpmath.mp.dps = 40
    exact = float(mpmath.log(mpmath.gammainc(shape, x, mpmath.inf, regularized=True)))
    assert gamma_log_sf(np.array([x]), np.array([float(shape)]))[0] == pytest.approx(exact, rel=TOLERANCE, abs=1e-15)


def test_gamma_tail_through_log_p_values_is_scipys():
    rng = seeded_rng("stats/gamma")
    units = rng.integers(1, 5000, 5000)
    totals = units * rng.uniform(0.2, 3.0, 5000)  # below the median and far above it
    ours = log_p_values(GammaNull(), totals, units)
    reference = np.minimum(stats.gamma.logsf(totals, a=units), 0.0)
    reliable = reference > -700
    assert _log_error(ours[reliable], reference[reliable]).max() < TOLERANCE


def test_non_integer_gamma_shapes_are_refused():
    with pytest.raises(ValueError, match="integer shapes"):
        gamma_log_sf(np.array([3.0]), np.array([2.5]))


def test_the_detection_path_does_not_import_scipy():
    import subprocess
    import sys

    code = ("import sys, numpy as np\nfrom aimark.detect.stats import log_p_values\nfrom aimark.schemes.base import BinomialNull\n"
            "log_p_values(BinomialNull(30, 0.5), np.array([4000.0]), np.array([200]))\nprint('scipy' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_a_tail_is_the_same_bits_alone_and_in_a_batch():
    # detect_many scores a batch in one call and must give each text exactly what detect gives it.
    rng = seeded_rng("stats/batch")
    k, n = rng.integers(1, 600, 300).astype(float), rng.integers(600, 20_000, 300).astype(float)
    alone = np.array([binomial_log_sf(k[i : i + 1], n[i : i + 1], 0.5)[0] for i in range(len(k))])
    assert np.array_equal(binomial_log_sf(k, n, 0.5), alone)
    x, shape = rng.uniform(1, 900, 300), rng.integers(1, 600, 300).astype(float)
    alone = np.array([gamma_log_sf(x[i : i + 1], shape[i : i + 1])[0] for i in range(len(x))])
    assert np.array_equal(gamma_log_sf(x, shape), alone)


# -- integer-weighted sums of Bernoulli bits (model-weighted detection) ---------------------------------------
def _exact_weighted_log_sf(total: int, weights, counts) -> float:
    """log P(sum_g w_g Binomial(c_g, 1/2) >= total) by counting configurations with Python integers."""
    polynomial = [1]
    for weight, count in zip(weights, counts):
        component = [0] * (weight * count + 1)
        for k in range(count + 1):
            component[k * weight] = math.comb(count, k)
        product = [0] * (len(polynomial) + len(component) - 1)
        for i, a in enumerate(polynomial):
            if a:
                for j, b in enumerate(component):
                    if b:
                        product[i + j] += a * b
        polynomial = product
    ways = sum(polynomial[max(total, 0) :])
    return math.log(ways) - sum(counts) * math.log(2) if ways else -math.inf


def test_weighted_binomial_tail_is_exact_enumeration_near_the_centre_and_at_the_far_end():
    from aimark.detect.tails import weighted_binomial_log_sf

    rng = seeded_rng("tails/weighted")
    for trial in range(160):
        groups = int(rng.integers(1, 5))
        weights = rng.choice(np.arange(1, 12), size=groups, replace=False).tolist()
        counts = rng.integers(1, 70, size=groups).tolist()
        top = sum(w * c for w, c in zip(weights, counts))
        # Half anywhere in the support (and one past it), half in the last few values (p down to ~1e-60).
        total = int(rng.integers(0, top + 2)) if trial % 2 else int(top - rng.integers(0, 6))
        ours, exact = weighted_binomial_log_sf(total, weights, counts, 0.5), _exact_weighted_log_sf(total, weights, counts)
        assert _log_error(np.array([ours]), np.array([exact]))[0] < TOLERANCE, (total, weights, counts, ours, exact)


def test_weighted_binomial_tail_with_one_weight_is_the_binomial_tail():
    from aimark.detect.tails import weighted_binomial_log_sf

    for n, k, p in [(100, 60, 0.5), (3000, 2900, 0.5), (400, 150, 0.25), (50, 3, 0.25), (20_000, 11_000, 0.5)]:
        for weight in (1, 7):
            ours = weighted_binomial_log_sf(k * weight, [weight], [n], p)
            assert _log_error(np.array([ours]), binomial_log_sf(np.array([k]), np.array([n]), p))[0] < TOLERANCE


def test_weighted_binomial_tail_of_thousands_of_bits_is_the_same_by_fft_and_by_direct_convolution(monkeypatch):
    """A long code file's worth of bits (thousands, weights up to 11) takes the FFT path; it agrees with direct
    convolution (exact to float64 rounding) from the centre to p ~ 1e-200, and with integer enumeration at a size
    enumeration can do."""
    import aimark.detect.tails as tails

    weights, counts = [1, 2, 4, 7, 11], [3000, 2500, 1500, 800, 400]
    mean = 0.5 * sum(w * c for w, c in zip(weights, counts))
    sd = math.sqrt(sum(w * w * c for w, c in zip(weights, counts)) / 4)
    targets = [int(mean + z * sd) for z in (0.5, 3, 10, 30)]
    by_fft = [tails.weighted_binomial_log_sf(t, weights, counts, 0.5) for t in targets]
    monkeypatch.setattr(tails, "_convolve", lambda a, b: np.convolve(a, b))
    direct = [tails.weighted_binomial_log_sf(t, weights, counts, 0.5) for t in targets]
    assert _log_error(np.array(by_fft), np.array(direct)).max() < TOLERANCE
    assert direct[-1] < -400  # the far tail was reached
    small = ([1, 4, 11], [300, 120, 40])
    for target in (700, 800, 900):
        ours = tails.weighted_binomial_log_sf(target, *small, 0.5)
        assert _log_error(np.array([ours]), np.array([_exact_weighted_log_sf(target, *small)]))[0] < TOLERANCE
