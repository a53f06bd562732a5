"""Exact binomial and Poisson tails in log space, with numpy alone.

Why hand-written: every null aimark uses has an integer parameter (a count of Bernoulli trials, or a
Gamma shape that is a count of Exp(1) units), so each tail is a finite or fast-falling sum of
probability-mass terms; scipy.special computes the same values, but importing it costs a cold
`aimark detect` about 0.25 s (its array-API layer imports numpy.f2py), a fifth of the whole budget.

Each term comes from Loader's saddle-point form of the pmf ("Fast and accurate computation of binomial
probabilities", 2000; the form R's dbinom/dpois use), accurate to a few ulps even for billions of trials
where lgamma differences lose digits. A tail sums its terms outwards from its start, where they fall
monotonically (the pmf is log-concave), for 10 standard deviations or to the end of the support, and adds
a geometric bound on what is left out, so a tail is never understated. The smaller side is summed:
P(X >= k) = 1 - P(X < k) through log1p when k lies below the mean.

tests/detect/test_tails.py checks the values against scipy.stats over a grid of sizes and depths.
"""

from __future__ import annotations

import math

import numpy as np

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
# stirlerr(n) = log(n!) - log(sqrt(2 pi n) (n/e)^n); below 16, from lgamma directly (no cancellation there).
_STIRLERR_SMALL = np.array([0.0] + [math.lgamma(n + 1) - (n + 0.5) * math.log(n) + n - _HALF_LOG_2PI for n in range(1, 16)])
_S0, _S1, _S2, _S3, _S4 = 1 / 12, 1 / 360, 1 / 1260, 1 / 1680, 1 / 1188
# Terms summed past a tail's start, in standard deviations (e^-50 of the first term beyond) plus a margin.
_SPAN_SDS, _SPAN_MIN = 10.0, 48
_PAD = 64
# Elements x terms per block: bounds the memory of a vectorised sum.
_BLOCK = 1 << 22


def stirlerr(n: np.ndarray) -> np.ndarray:
    n = np.asarray(n, dtype=np.float64)
    small = n < 16
    out = np.empty_like(n)
    out[small] = _STIRLERR_SMALL[n[small].astype(np.int64)]
    big = n[~small]
    inv2 = 1.0 / (big * big)
    out[~small] = (_S0 - (_S1 - (_S2 - (_S3 - _S4 * inv2) * inv2) * inv2) * inv2) / big
    return out


def bd0(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """x log(x / m) + m - x, without the cancellation of that formula when x is close to m (x, m > 0)."""
    x, m = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(m, dtype=np.float64))
    out = np.empty(x.shape, dtype=np.float64)
    near = np.abs(x - m) < 0.1 * (x + m)
    xs, ms = x[~near], m[~near]
    out[~near] = xs * np.log(xs / ms) + ms - xs
    xn, mn = x[near], m[near]
    v = (xn - mn) / (xn + mn)
    total = (xn - mn) * v
    term = 2 * xn * v
    v2 = v * v  # below 0.0083: 12 terms reach 1e-25 of the first
    for j in range(1, 13):
        term = term * v2
        total = total + term / (2 * j + 1)
    out[near] = total
    return out


def log_binomial_pmf(k: np.ndarray, n: np.ndarray, p: float) -> np.ndarray:
    """log P(X = k) for X ~ Binomial(n, p), 0 < p < 1 (k, n integers as floats, 0 <= k <= n)."""
    k, n = np.broadcast_arrays(np.asarray(k, dtype=np.float64), np.asarray(n, dtype=np.float64))
    q = 1.0 - p
    out = np.empty(k.shape, dtype=np.float64)
    lo, hi = k == 0, k == n
    out[lo] = n[lo] * math.log1p(-p)
    out[hi & ~lo] = n[hi & ~lo] * math.log(p)
    mid = ~(lo | hi)
    km, nm = k[mid], n[mid]
    lc = stirlerr(nm) - stirlerr(km) - stirlerr(nm - km) - bd0(km, nm * p) - bd0(nm - km, nm * q)
    out[mid] = lc - 0.5 * (math.log(2 * math.pi) + np.log(km) + np.log1p(-km / nm))
    return out


def log_poisson_pmf(k: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """log P(X = k) for X ~ Poisson(mean), mean > 0."""
    k, mean = np.broadcast_arrays(np.asarray(k, dtype=np.float64), np.asarray(mean, dtype=np.float64))
    out = -mean.copy()
    pos = k > 0
    out[pos] = -stirlerr(k[pos]) - bd0(k[pos], mean[pos]) - _HALF_LOG_2PI - 0.5 * np.log(k[pos])
    return out


def logsumexp(values: np.ndarray, axis: int = -1) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    peak = np.max(values, axis=axis, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0.0)
    with np.errstate(divide="ignore"):
        return np.squeeze(peak, axis=axis) + np.log(np.sum(np.exp(values - peak), axis=axis))


def _log_falling_sum(log_first: np.ndarray, log_ratio, lengths: np.ndarray) -> np.ndarray:
    """log of sum_{i < length} t_i plus a bound on sum_{i >= length} t_i, where t_0 = exp(log_first) and
    t_{i+1} / t_i = exp(log_ratio(rows, i)) falls with i below 1 (so the rest is under a geometric series).

    ``log_ratio(rows, steps)`` gives the log ratios t_{i+1}/t_i for the elements ``rows`` at offsets ``steps``
    (a 2-D array); ``lengths`` is at most how many terms each element sums before its bound (its support's
    end, or a span). Ratios fall, so t_i <= t_0 r_0^i: past 45 / -log r_0 terms the rest is below e^-45 of the
    sum, and a tail far from the mean (a detection) sums a few terms, not a span of standard deviations.
    """
    rows_all = np.arange(len(log_first))
    first_ratio = log_ratio(rows_all, np.zeros((len(rows_all), 1)))[:, 0]
    with np.errstate(divide="ignore"):
        enough = np.where(first_ratio < 0, np.ceil(45.0 / -first_ratio) + 8, np.inf)
    lengths = np.maximum(1, np.minimum(lengths, enough)).astype(np.int64)
    out = np.empty(len(log_first), dtype=np.float64)
    # Elements padded to a multiple of 64 terms and grouped by that width, masked past their own length: the
    # padding depends on the element alone, so its value is the same bits alone or in a batch (numpy's pairwise
    # sums round by the row's length).
    widths = -(-lengths // _PAD) * _PAD
    # sorted(set()) rather than np.unique: np.unique's first call imports numpy.ma (~14 ms of a CLI's cold start).
    for longest in sorted(set(widths.tolist())):
        members = np.flatnonzero(widths == longest)
        per_block = max(1, _BLOCK // longest)
        for rows in np.array_split(members, -(-len(members) // per_block)):
            steps = np.arange(longest, dtype=np.float64)
            ratios = log_ratio(rows, np.broadcast_to(steps[:-1], (len(rows), longest - 1)))
            cumulative = np.concatenate([np.zeros((len(rows), 1)), np.cumsum(ratios, axis=1)], axis=1)
            cumulative[steps[None, :] >= lengths[rows][:, None]] = -np.inf
            log_sum = logsumexp(cumulative, axis=1)
            # The left-out rest: below t_last * r / (1 - r), r the ratio just past the last term (ratios fall).
            last = cumulative[np.arange(len(rows)), lengths[rows] - 1]
            next_ratio = log_ratio(rows, (lengths[rows] - 1).astype(np.float64)[:, None])[:, 0]
            with np.errstate(divide="ignore", invalid="ignore"):
                rest = np.where(next_ratio < 0, last + next_ratio - np.log(-np.expm1(next_ratio)), np.inf)
            rest = np.where(np.isneginf(next_ratio), -np.inf, rest)
            out[rows] = log_first[rows] + np.logaddexp(log_sum, rest)
    return out


def _span(sd: np.ndarray, available: np.ndarray) -> np.ndarray:
    return np.minimum(available, np.ceil(_SPAN_SDS * sd) + _SPAN_MIN).astype(np.int64)


def binomial_log_sf(k: np.ndarray, n: np.ndarray, p: float) -> np.ndarray:
    """log P(X >= k) for X ~ Binomial(n, p), 0 < p < 1: 0 for k <= 0, -inf for k > n."""
    k, n = np.broadcast_arrays(np.asarray(k, dtype=np.float64), np.asarray(n, dtype=np.float64))
    k, n = k.ravel(), n.ravel()
    out = np.zeros(k.shape, dtype=np.float64)
    out[k > n] = -np.inf
    live = np.flatnonzero((k > 0) & (k <= n))
    if not len(live):
        return out.reshape(np.shape(k))
    kl, nl = k[live], n[live]
    sd = np.sqrt(nl * p * (1 - p))
    log_odds = math.log(p) - math.log1p(-p)
    upper = kl >= nl * p
    if upper.any():  # P(X >= k): terms k, k+1, ... n; ratio (n - j) / (j + 1) * p / q
        ku, nu = kl[upper], nl[upper]

        def up(rows, steps):
            j = ku[rows][:, None] + steps
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.log((nu[rows][:, None] - j) / (j + 1)) + log_odds

        out[live[upper]] = _log_falling_sum(log_binomial_pmf(ku, nu, p), up, _span(sd[upper], nu - ku + 1))
    lower = ~upper
    if lower.any():  # 1 - P(X <= k - 1): terms k - 1, k - 2, ... 0; ratio j / (n - j + 1) * q / p
        kd, nd = kl[lower] - 1, nl[lower]

        def down(rows, steps):
            j = kd[rows][:, None] - steps
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.log(j / (nd[rows][:, None] - j + 1)) - log_odds

        log_below = _log_falling_sum(log_binomial_pmf(kd, nd, p), down, _span(sd[lower], kd + 1))
        out[live[lower]] = np.log1p(-np.minimum(np.exp(log_below), 1.0))
    return np.minimum(out, 0.0).reshape(np.shape(k))


def gamma_log_sf(x: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """log P(G >= x) for G ~ Gamma(shape, 1) with an integer shape >= 1: log P(Poisson(x) <= shape - 1)."""
    x, shape = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(shape, dtype=np.float64))
    x, shape = x.ravel(), shape.ravel()
    if np.any(shape < 1) or np.any(shape != np.floor(shape)):
        raise ValueError("the Gamma tail here is for integer shapes >= 1")
    out = np.zeros(x.shape, dtype=np.float64)
    live = np.flatnonzero(x > 0)
    if not len(live):
        return out.reshape(np.shape(x))
    xl, last = x[live], shape[live] - 1
    sd = np.sqrt(xl)
    below = last <= xl
    if below.any():  # P(Poisson <= last): terms last, last - 1, ... 0; ratio j / x
        xb, lb = xl[below], last[below]

        def down(rows, steps):
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.log((lb[rows][:, None] - steps) / xb[rows][:, None])

        out[live[below]] = _log_falling_sum(log_poisson_pmf(lb, xb), down, _span(sd[below], lb + 1))
    above = ~below
    if above.any():  # 1 - P(Poisson >= last + 1): terms last + 1, last + 2, ...; ratio x / (j + 1)
        xa, first = xl[above], last[above] + 1

        def up(rows, steps):
            return np.log(xa[rows][:, None] / (first[rows][:, None] + steps + 1))

        log_above = _log_falling_sum(log_poisson_pmf(first, xa), up, _span(sd[above], np.full(len(xa), np.inf)))
        out[live[above]] = np.log1p(-np.minimum(np.exp(log_above), 1.0))
    return np.minimum(out, 0.0).reshape(np.shape(x))


# Relative size below which a tilted pmf term is dropped (far below float64's resolution of the terms kept).
_TILTED_FLOOR = 1e-30


def weighted_binomial_log_sf(total: int, weights, counts, p: float) -> float:
    """log P(S >= total) for S = sum over groups of weights[g] * Binomial(counts[g], p): independent Bernoulli(p)
    bits, each counted with a positive integer weight (the model-weighted SynthID statistic's null).

    Computed under the exponentially tilted measure whose mean is ``total`` (p_g = p e^(t w_g) / (1 - p + p e^(t w_g))):
    P(S >= s) = M(t) e^(-t s) * sum_{x >= s} P_t(S = x) e^(-t (x - s)), an identity for every t >= 0. Under the
    tilt the terms that matter sit at the distribution's centre, so the convolution of the groups' binomial
    pmfs (each spread onto multiples of its weight) resolves them in float64 however far out the untilted tail
    is; terms below 1e-30 of a pmf's peak are dropped. tests/detect/test_tails.py compares it with exact
    integer enumeration.
    """
    weights = np.asarray(weights, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.int64)
    live = (weights > 0) & (counts > 0)
    weights, counts = weights[live], counts[live]
    top = int((weights * counts).sum())
    if total <= 0:
        return 0.0
    if total > top:
        return -math.inf
    logit = math.log(p) - math.log1p(-p)

    def tilted(theta: float) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(theta * weights + logit)))

    theta = 0.0
    if total > p * top:
        low, high = 0.0, 1.0
        while float((weights * counts * tilted(high)).sum()) < total and high < 1e4:
            low, high = high, high * 2
        for _ in range(200):
            middle = 0.5 * (low + high)
            if float((weights * counts * tilted(middle)).sum()) < total:
                low = middle
            else:
                high = middle
        theta = low  # tilted mean just below the total: the terms from the total on are near the centre
    probabilities = tilted(theta)
    log_mgf = float((counts * np.logaddexp(math.log1p(-p), math.log(p) + theta * weights)).sum())
    pmf, offset = np.ones(1), 0  # pmf[i] = P_t(S = offset + i), up to a common factor
    for weight, count, q in zip(weights.tolist(), counts.tolist(), probabilities.tolist()):
        k = np.arange(count + 1, dtype=np.float64)
        if q >= 1.0:  # a tilt so strong that float64 rounds the bit's probability to 1
            terms = np.zeros(count + 1)
            terms[-1] = 1.0
        else:
            log_terms = log_binomial_pmf(k, np.full_like(k, count), q)
            terms = np.exp(log_terms - log_terms.max())
        kept = np.flatnonzero(terms >= _TILTED_FLOOR)
        terms = terms[kept[0] : kept[-1] + 1]
        spread = np.zeros((len(terms) - 1) * weight + 1)
        spread[::weight] = terms
        pmf = _convolve(pmf, spread)
        offset += int(kept[0]) * weight
        kept = np.flatnonzero(pmf >= pmf.max() * _TILTED_FLOOR)
        offset += int(kept[0])
        pmf = pmf[kept[0] : kept[-1] + 1]
    pmf = pmf / pmf.sum()
    start = total - offset
    if start >= len(pmf):
        # The total lies beyond every term kept: its tilted probability is below the floor, so bound the tail by
        # the floor's share (never understated).
        return min(0.0, log_mgf - theta * total + math.log(_TILTED_FLOOR * len(pmf)))
    x = np.arange(max(start, 0), len(pmf))
    with np.errstate(under="ignore"):
        tail = float((pmf[x] * np.exp(-theta * (x - start))).sum())
    if start < 0:  # only when total is at or below the kept terms (theta = 0): the whole kept mass
        return min(0.0, math.log(tail))
    return min(0.0, log_mgf - theta * total + math.log(tail))


def _convolve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Convolution of two non-negative arrays: direct for small ones, by FFT (errors ~1e-16 of the peak, far below
    the terms a tilted tail sums) for large ones."""
    if len(a) * len(b) <= 4_000_000:
        return np.convolve(a, b)
    size = len(a) + len(b) - 1
    length = 1 << (size - 1).bit_length()
    out = np.fft.irfft(np.fft.rfft(a, length) * np.fft.rfft(b, length), length)[:size]
    return np.maximum(out, 0.0)
