"""The exact tails through scipy.special are scipy.stats' values, bit for bit (the cold-start path avoids scipy.stats)."""

from __future__ import annotations

import numpy as np
from scipy import stats

from aimark.detect.stats import log_p_values
from aimark.schemes.base import BinomialNull, GammaNull
from tests.helpers import seeded_rng


def test_binomial_tail_is_scipy_stats_binom_logsf():
    rng = seeded_rng("stats/binomial")
    units = rng.integers(1, 4000, 5000)
    null = BinomialNull(trials_per_unit=3, success_probability=0.5)
    trials = units * 3
    # Around the mean and far into the tail (log p down to about -700 and past underflow).
    successes = np.clip((trials * 0.5 + rng.normal(0, 1, 5000) * np.sqrt(trials) * rng.uniform(0, 15, 5000)).astype(int), 1, trials)
    ours = log_p_values(null, successes.astype(float), units)
    reference = np.minimum(stats.binom.logsf(successes - 1, trials, 0.5), 0.0)
    assert np.array_equal(ours, reference)


def test_gamma_tail_is_scipy_stats_gamma_logsf():
    rng = seeded_rng("stats/gamma")
    units = rng.integers(1, 5000, 5000)
    totals = units * rng.uniform(0.2, 3.0, 5000)  # below the median (log1p branch) and far above it
    ours = log_p_values(GammaNull(), totals, units)
    reference = np.minimum(stats.gamma.logsf(totals, a=units), 0.0)
    assert np.array_equal(ours, reference)
