"""Exact tails of the null distributions, in log space so tiny p-values do not underflow.

No normal approximations: a binomial count's tail is the sum of its probability-mass terms, a Gamma
total's (an integer shape: a count of Exp(1) units) the Poisson sum it equals, both exact up to floating
point (aimark.detect.tails: numpy alone, because importing scipy.special costs a cold `aimark detect` a
fifth of its time), so "p <= alpha" means a false-positive rate of at most alpha at every length.
tests/detect/test_tails.py checks them against scipy.stats and, in the far tails, against mpmath.
"""

from __future__ import annotations

import math

import numpy as np

from aimark.detect.tails import (
    binomial_log_sf,
    gamma_log_sf,
    log_binomial_pmf,
    logsumexp,
)
from aimark.schemes.base import BinomialNull, GammaNull, Null, WeightedExpNull


def log_p_value(null: Null, total: float, units: int) -> float:
    """Natural log of P(T >= total) for ``units`` independent units under ``null``."""
    return float(log_p_values(null, np.asarray([total], dtype=np.float64), np.asarray([units]))[0])


def log_p_values(null: Null, totals: np.ndarray, units: np.ndarray) -> np.ndarray:
    """Vectorised :func:`log_p_value`: one log tail per (total, units) pair (window scans)."""
    totals = np.asarray(totals, dtype=np.float64)
    units = np.asarray(units, dtype=np.int64)
    out = np.zeros(np.broadcast(totals, units).shape, dtype=np.float64)
    totals, units = np.broadcast_arrays(totals, units)
    if isinstance(null, BinomialNull):
        successes = np.rint(totals).astype(np.int64)
        live = (units > 0) & (successes > 0)
        # P(X >= k): discrete, hence conservative at a fixed alpha.
        out[live] = binomial_log_sf(successes[live], units[live] * null.trials_per_unit, null.success_probability)
    elif isinstance(null, GammaNull):
        live = (units > 0) & (totals > 0)
        out[live] = gamma_log_sf(totals[live], units[live])
    elif isinstance(null, WeightedExpNull):
        for index in np.flatnonzero(units > 0):
            out.flat[index] = log_tail_weighted_exp(
                totals.flat[index] - units.flat[index] * null.shift_per_unit, int(units.flat[index]), null.weights
            )
    else:
        raise TypeError(f"unknown null distribution {null!r}")
    return np.minimum(out, 0.0)


def p_value(null: Null, total: float, units: int) -> float:
    return math.exp(log_p_value(null, total, units))


def keyring_corrected(log_p_values: list[float]) -> tuple[int, float]:
    """(index of the best key, log of its Bonferroni-corrected p-value).

    Bonferroni holds whatever the dependence between keys' statistics, so the
    family-wise false-positive rate over the keyring stays at alpha.
    """
    best = int(np.argmin(log_p_values))
    return best, min(0.0, log_p_values[best] + math.log(len(log_p_values)))


def log_upper_gamma(shape: np.ndarray, x: float) -> np.ndarray:
    """log Q(shape, x), the regularised upper incomplete gamma function, for integer shapes (no underflow)."""
    shape = np.asarray(shape, dtype=np.float64)
    return gamma_log_sf(np.full(shape.shape, float(x)), shape)


def log_tail_weighted_exp(total: float, units: int, weights: tuple[float, ...]) -> float:
    """Exact log P(T >= total) for T = sum over ``units`` units of sum_i weights[i] * E_i, E_i iid Exp(1).

    One distinct weight w (k copies): T / w is Gamma(k n, 1). Two distinct weights a > b: T = a G_a + b G_b
    with G_a, G_b iid Gamma(n, 1); a G_a, the wider one, is a negative-binomial mixture of Gamma variables
    of the narrower scale (its Laplace transform (1 + a s)^-n = sum_k NB(k; n, p) (1 + b s)^-(n+k) with
    p = b / a), so T / b is Gamma(2n + K, 1) with K ~ NegBin(n, p) failures, and

        P(T >= t) = sum_k NB(k; n, p) Q(2n + k, t / b),

    a series of positive terms (no cancellation, unlike the partial-fraction form), summed in log space.
    The terms past K are below the negative binomial's tail, bounded by a geometric series (its pmf ratio
    (n + k)(1 - p) / (k + 1) falls with k), and K grows until that bound is under e^-40 of the sum; the bound
    is added, so the result never understates the tail.
    """
    if units <= 0 or total <= 0:
        return 0.0
    positive = [float(w) for w in weights if w > 0]
    distinct = sorted(set(positive), reverse=True)
    if len(distinct) == 1:
        scale = distinct[0]
        return min(0.0, float(log_upper_gamma(np.asarray([units * len(positive)], np.float64), total / scale)[0]))
    if len(distinct) != 2 or len(positive) != 2:
        raise ValueError("the exact tail is implemented for one weight or two distinct weights")
    wide, narrow = distinct
    p = narrow / wide
    x = total / narrow
    n = float(units)

    def log_negative_binomial(k: np.ndarray) -> np.ndarray:
        # NB(k; n, p) = C(n + k - 1, k) p^n q^k = n / (n + k) * Binomial(n + k, q) at k.
        return np.log(n / (n + k)) + log_binomial_pmf(k, n + k, 1.0 - p)

    def log_terms(k: np.ndarray) -> np.ndarray:
        return log_negative_binomial(k) + log_upper_gamma(2 * n + k, x)

    # Past `limit` every term is below the negative binomial's pmf, whose ratio (n + k)(1 - p) / (k + 1) falls
    # with k: a geometric bound on what is left out. Grow `limit` until that bound is negligible.
    limit = int(n * (1 - p) / p + 12 * math.sqrt(n * (1 - p)) / p + 64)
    while True:
        # log NB(k) and log Q(2n + k, x) are concave in k (log-concave pmf; the CDF of a log-concave pmf), so
        # the terms are unimodal: find the mode on a coarse grid, sum exactly where a term is within e^-50 of
        # the largest, and bound each side beyond by the geometric series of its boundary ratio.
        grid = np.unique(np.linspace(0, limit, min(limit + 1, 4096)).astype(np.int64)).astype(np.float64)
        grid_terms = log_terms(grid)
        peak = float(grid_terms.max())
        above = np.flatnonzero(grid_terms > peak - 50)
        lo = int(grid[above[0] - 1]) if above[0] > 0 else 0
        hi = int(grid[above[-1] + 1]) if above[-1] + 1 < len(grid) else limit
        window = np.arange(lo, hi + 1, dtype=np.float64)
        terms = log_terms(window)
        pieces = [float(logsumexp(terms))]
        if lo > 0:  # terms left of lo shrink at least by the ratio e^-(f(lo+1) - f(lo)) per step
            rise = float(terms[1] - terms[0]) if len(terms) > 1 else 0.0
            pieces.append(float(terms[0]) + (-rise - math.log(-math.expm1(-rise)) if rise > 0 else math.log(lo)))
        if hi < limit:
            fall = float(terms[-2] - terms[-1]) if len(terms) > 1 else 0.0
            pieces.append(float(terms[-1]) + (-fall - math.log(-math.expm1(-fall)) if fall > 0 else math.log(limit - hi)))
        log_sum = float(logsumexp(pieces))
        nxt = limit + 1.0
        ratio = (n + nxt) * (1 - p) / (nxt + 1)
        if ratio < 1:
            log_next = float(log_negative_binomial(np.asarray([nxt]))[0])
            log_remainder = log_next - math.log1p(-ratio)
            if log_remainder < log_sum - 40:
                return min(0.0, float(np.logaddexp(log_sum, log_remainder)))
        limit *= 2
