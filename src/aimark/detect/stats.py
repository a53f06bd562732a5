"""Exact tails of the null distributions, in log space so tiny p-values do not underflow.

No normal approximations: a binomial count uses the regularised incomplete
beta function, a Gamma total the regularised incomplete gamma function
(both exact up to floating point), so "p <= alpha" means a false-positive
rate of at most alpha at every length.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from aimark.schemes.base import BinomialNull, GammaNull, Null


def log_p_value(null: Null, total: float, units: int) -> float:
    """Natural log of P(T >= total) for ``units`` independent units under ``null``."""
    if units <= 0:
        return 0.0
    if isinstance(null, BinomialNull):
        trials = units * null.trials_per_unit
        successes = int(round(total))
        if successes <= 0:
            return 0.0
        # P(X >= k) = sf(k - 1); discrete, hence conservative at a fixed alpha.
        return float(min(0.0, stats.binom.logsf(successes - 1, trials, null.success_probability)))
    if isinstance(null, GammaNull):
        if total <= 0:
            return 0.0
        return float(min(0.0, stats.gamma.logsf(total, a=units)))
    raise TypeError(f"unknown null distribution {null!r}")


def p_value(null: Null, total: float, units: int) -> float:
    return math.exp(log_p_value(null, total, units))


def keyring_corrected(log_p_values: list[float]) -> tuple[int, float]:
    """(index of the best key, log of its Bonferroni-corrected p-value).

    Bonferroni holds whatever the dependence between keys' statistics, so the
    family-wise false-positive rate over the keyring stays at alpha.
    """
    best = int(np.argmin(log_p_values))
    return best, min(0.0, log_p_values[best] + math.log(len(log_p_values)))
