"""Detection with the generating model: the provider's detector, weighted by the model's own entropy.

A verifier has the text and the key; the provider who generated the text also has the model. With it, the
sampling distribution each token was drawn from can be recomputed (temperature, top-k, top-p, as at
generation), and with that distribution, how much a watermarked draw lifts each keyed bit above its null
probability q (``scheme.expected_bit_excess``: SynthID's tournament lifts a layer's bit by q(1 - q) times the
collision complement of the distribution entering that layer; KGW's bias lifts the green bit by what the
green list's share grows to). Where the model was nearly sure (closing brackets, the rest of an identifier),
no key moves the draw and the bit carries no evidence; where it hesitated, the bit carries a lot. SWEET (Lee et
al., 2024) keeps the bits above an entropy threshold; here every bit counts with its log-likelihood-ratio
weight, the locally most powerful linear statistic:

    S = sum over scored units t and bits l of w_tl * g_tl,   w_tl = round(log[(q + d_tl)(1 - q) / (q (1 - q - d_tl))] / step)

Exactness: the weights are a function of the text and the model alone, never of the key, and on text written
without the key the kept bits are independent Bernoulli(q) draws (each unit once, as in detection without the
model), so S is exactly a sum of integer-weighted binomials: ``aimark.detect.tails.weighted_binomial_log_sf``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from aimark.detect.tails import weighted_binomial_log_sf
from aimark.schemes.base import BinomialNull, WatermarkScheme

#: Width of one weight step, in nats of log-likelihood ratio: bits are weighted by whole multiples of it.
WEIGHT_STEP = 0.1


@dataclass(frozen=True)
class NextTokenDistributions:
    """The model's next-token distribution before each token of a text: row i for token i.

    ``ids`` and ``log_probs`` (rows, k) hold the k most likely tokens and their log-probabilities over the
    whole vocabulary, before temperature (the raw logits' log-softmax), best first; ``entropy`` (rows,) is the
    whole distribution's entropy in nats. Rows without a distribution (the first token of a text with no
    prompt) hold -inf and NaN.
    """

    ids: np.ndarray
    log_probs: np.ndarray
    entropy: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Sampling:
    """How the text was sampled: the watermark acted on this distribution (aimark's code defaults)."""

    temperature: float = 1.0
    top_k: int = 50
    top_p: float = 1.0

    def __post_init__(self):
        if not self.temperature > 0:
            raise ValueError("temperature must be > 0")
        if self.top_k < 1:
            raise ValueError("top_k must be >= 1")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")


def sampling_log_probs(distributions: NextTokenDistributions, rows: np.ndarray, sampling: Sampling) -> tuple[np.ndarray, np.ndarray]:
    """(log-probabilities, candidate ids) of the distribution each of ``rows`` was sampled from: temperature, then
    the top-k, then top-p (keeping the token that crosses it), renormalised; what aimark's processor does."""
    ids = distributions.ids[rows]
    k = min(sampling.top_k, ids.shape[1])
    ids = ids[:, :k]
    with np.errstate(invalid="ignore"):
        scaled = distributions.log_probs[rows, :k] / sampling.temperature
        peak = np.max(scaled, axis=1, keepdims=True)
        peak = np.where(np.isfinite(peak), peak, 0.0)
        log_probs = scaled - peak - np.log(np.exp(scaled - peak).sum(axis=1, keepdims=True))
    if sampling.top_p < 1.0:
        probs = np.exp(log_probs)
        outside = (np.cumsum(probs, axis=1) - probs) >= sampling.top_p
        probs = np.where(outside, 0.0, probs)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_probs = np.log(probs / probs.sum(axis=1, keepdims=True))
    return np.where(np.isnan(log_probs), -np.inf, log_probs), ids


def bit_weights(excess: np.ndarray, q: float) -> np.ndarray:
    """Integer weights: each bit's log-likelihood ratio log[P(g=1 | watermark) (1 - q) / (q P(g=0 | watermark))]
    in steps of :data:`WEIGHT_STEP`."""
    lifted = np.clip(q + np.asarray(excess, dtype=np.float64), q, 1.0 - 1e-9)
    ratio = np.log(lifted / q) - np.log((1.0 - lifted) / (1.0 - q))
    return np.rint(ratio / WEIGHT_STEP).astype(np.int64)


def model_weighted_log_p(
    scheme: WatermarkScheme, ids: np.ndarray, positions: np.ndarray, contexts: np.ndarray, values: np.ndarray,
    distributions: NextTokenDistributions, sampling: Sampling,
) -> tuple[float, int]:
    """(log p-value, units that carry any weight) of the model-weighted statistic over the kept units."""
    null = scheme.null
    if not isinstance(null, BinomialNull):
        raise ValueError(f"detection with the model weights bits: {scheme.name} keys have none (synthid and kgw keys do)")
    if not len(positions):
        return 0.0, 0
    if null.trials_per_unit == 1:  # the unit's value is its one bit (KGW's green bit)
        bits = np.asarray(values, dtype=np.int64)[:, None]
    else:
        bits = np.asarray(scheme.bits(contexts, scheme.unit_of(ids[positions])), dtype=np.int64)
    log_probs, candidates = sampling_log_probs(distributions, positions, sampling)
    weights = bit_weights(scheme.expected_bit_excess(log_probs, candidates), null.success_probability)
    total = int((weights * bits).sum())
    by_weight = Counter(weights[weights > 0].tolist())
    carrying = int((weights > 0).any(axis=1).sum())
    if not by_weight:
        return 0.0, 0
    steps, counts = zip(*sorted(by_weight.items()))
    return weighted_binomial_log_sf(total, steps, counts, null.success_probability), carrying
