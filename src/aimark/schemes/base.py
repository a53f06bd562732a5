"""What every watermark scheme provides, independent of any model framework.

A scheme is the pure math of one watermark: keyed values over token-id
arrays. Generation calls :meth:`WatermarkScheme.reweight` on the top-k
candidates of each step (the transformers adapter lives in ``processor.py``,
so vLLM or other engines can reuse the same object); detection calls
:meth:`WatermarkScheme.score` on a token sequence and :attr:`null` says how
the total of the per-unit statistic is distributed on text written without
this key, which is what makes exact p-values possible.

Schemes are plain picklable objects (no torch state), so detection can run in
worker processes or on a distributed engine.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from aimark.keys import WatermarkKey
from aimark.schemes._prf import sliding_windows


#: Keys simulated per sampling distribution to estimate a scheme's expected excess (model-weighted detection),
#: drawn from one fixed generator, so the estimate is a function of the distribution alone.
SIGNAL_SIMULATIONS = 32
SIGNAL_SEED = 20261207


def significant_probabilities(log_probs: np.ndarray, negligible: float = 1e-6) -> np.ndarray:
    """Rows of probabilities, each sorted high to low and cut after the last column any row needs: candidates
    whose mass together is below ``negligible`` in every row cannot move an expectation the weights resolve."""
    with np.errstate(divide="ignore", invalid="ignore"):
        probs = np.exp(np.asarray(log_probs, dtype=np.float64))
        probs = np.nan_to_num(probs / probs.sum(axis=1, keepdims=True))
    probs = -np.sort(-probs, axis=1)
    if probs.size:
        tail_mass = np.cumsum(probs[:, ::-1], axis=1)[:, ::-1]  # mass from each column to the end
        needed = int(np.max((tail_mass >= negligible).sum(axis=1), initial=1))
        probs = probs[:, : max(needed, 1)]
    return probs


@dataclass(frozen=True)
class BinomialNull:
    """Total = number of successes among ``trials_per_unit`` Bernoulli(p) draws per unit."""

    trials_per_unit: int
    success_probability: float


@dataclass(frozen=True)
class GammaNull:
    """Total = sum of independent Exp(1) variables, one per unit: Gamma(n, 1)."""


@dataclass(frozen=True)
class WeightedExpNull:
    """Total = sum over units of ``sum_i weights[i] * E_i`` with independent Exp(1) variables ``E_i``.

    vLLM's ``gumbel`` (one weight, 1) and ``dual_key_gumbel`` (weights ``1 - alpha``, ``alpha``) scores.
    Each score is the float32-discretised version of an Exp(1) variable, stochastically below Exp(1) plus
    ``shift_per_unit``; the p-value subtracts ``units * shift_per_unit`` from the total so it stays valid.
    """

    weights: tuple[float, ...]
    shift_per_unit: float = 0.0


Null = BinomialNull | GammaNull | WeightedExpNull


@dataclass(frozen=True)
class PositionScores:
    """Per-position detection values for a token sequence.

    ``positions[i]`` is the index of the scored token in the input,
    ``units[i]`` identifies what its keyed value depends on (dedup key),
    ``contexts[i]`` identifies its context (repeated-context masking), and
    ``values[i]`` is its contribution to the total under :attr:`WatermarkScheme.null`.
    """

    positions: np.ndarray
    units: np.ndarray
    contexts: np.ndarray
    values: np.ndarray


class WatermarkScheme(ABC):
    """Base class of aimark's watermark schemes."""

    name: str
    key_id: str
    context_width: int
    #: Whether generation leaves a context unwatermarked when it was already seen
    #: (and detection masks it), to avoid repeating the same biased choice.
    masks_repeated_contexts: bool = False
    context_history_size: int = 1024
    #: Whether a position's context is only the generated text before it (``-1`` before its start, the
    #: prompt never part of it: vLLM's contexts), so every position of the text is scored.
    pads_context: bool = False

    def __init__(self, key: WatermarkKey):
        if key.scheme != self.name:
            raise ValueError(f"key {key.key_id} is a {key.scheme} key, not a {self.name} key")
        self.key_id = key.key_id
        self.mode = key.mode
        self.context_history_size = int(key.params.get("context_history_size", 1024))

    def _scored_positions(self, token_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(context windows, positions, tokens) for every position with a full context."""
        ids = np.asarray(token_ids, dtype=np.int64)
        windows = sliding_windows(ids, self.context_width)
        positions = np.arange(self.context_width, self.context_width + len(windows))
        return windows, positions, ids[positions]

    def scored_positions_many(self, encoded: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`_scored_positions` of every text, concatenated, and each text's number of rows:
        (windows, positions, tokens, rows per text). Token-window schemes build them for the whole batch at once
        from the concatenated ids (numpy's per-call cost once per batch, not once per text); schemes with
        positions of their own (engine or skeleton contexts) call theirs per text."""
        if type(self)._scored_positions is not WatermarkScheme._scored_positions:
            rows = [self._scored_positions(ids) for ids in encoded]
            if not rows:
                return np.empty((0, self.context_width), dtype=np.int64), np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64)
            counts = np.asarray([len(positions) for _, positions, _ in rows], dtype=np.int64)
            return tuple(np.concatenate(parts) for parts in zip(*rows)) + (counts,)
        width = self.context_width
        lengths = np.asarray([len(ids) for ids in encoded], dtype=np.int64)
        counts = np.maximum(lengths - width, 0)
        total = int(counts.sum())
        if total == 0:
            return np.empty((0, width), dtype=np.int64), np.empty(0, np.int64), np.empty(0, np.int64), counts
        ids = np.concatenate([np.asarray(ids, dtype=np.int64) for ids in encoded])
        # Row r of text t scores position width + (r - first row of t), at ids index (start of t) + that position.
        positions = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts - width, counts)
        at = np.repeat(np.cumsum(lengths) - lengths, counts) + positions
        windows = np.lib.stride_tricks.sliding_window_view(ids, width)[at - width]
        return windows, positions, ids[at], counts

    @abstractmethod
    def context_keys(self, windows: np.ndarray) -> np.ndarray:
        """uint64 identifier per context window (rows of ``context_width`` token ids)."""

    def generation_contexts(self, recent: np.ndarray, pad_token_id: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """At generation: which rows of ``recent`` (each row's last ids, up to ``context_width`` of them) have a
        context to watermark, and those rows' context keys. A window that is short or still holds left padding
        is not text: that row is sampled as the model would."""
        recent = np.asarray(recent, dtype=np.int64)
        if recent.shape[1] < self.context_width:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.uint64)
        windows = recent[:, recent.shape[1] - self.context_width :]
        usable = np.ones(len(windows), dtype=bool)
        if pad_token_id is not None:
            usable &= ~(windows == pad_token_id).any(axis=1)
        rows = np.flatnonzero(usable)
        return rows, self.context_keys(windows[rows]) if len(rows) else np.empty(0, dtype=np.uint64)

    def unit_of(self, token_ids: np.ndarray) -> np.ndarray:
        """The unit each token id is scored as (the id itself, unless the scheme's units say otherwise)."""
        return np.asarray(token_ids, dtype=np.int64)

    def bits(self, context_keys: np.ndarray, units: np.ndarray) -> np.ndarray:
        """Schemes whose unit value is a count of Bernoulli bits (:class:`BinomialNull`): those bits, one row
        per (context, unit), one column per trial; their sum is the unit's value."""
        raise NotImplementedError(f"the {self.name} scheme's values are not counts of bits")

    def expected_bit_excess(self, log_probs: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """Per row of candidates (the sampling distribution a token was drawn from), per bit of :meth:`bits`:
        how far above the null's probability a watermarked draw's bit is expected to be, averaged over keys.
        A function of the distribution alone, never of a key: detection with the model weights bits by it."""
        raise NotImplementedError(f"the {self.name} scheme has no model-weighted detector (synthid and kgw keys have)")

    def scored_tokens(self, token_ids: np.ndarray) -> np.ndarray:
        """Per token id, whether detection scores it as a unit (every token, unless the scheme's units say
        otherwise); generation's repeated-context masking counts a context as used only by these."""
        return np.ones(np.shape(token_ids), dtype=bool)

    @abstractmethod
    def reweight(
        self, log_probs: np.ndarray, candidates: np.ndarray, windows: np.ndarray, context_keys: np.ndarray
    ) -> np.ndarray:
        """Watermarked log-weights for the candidates of each row.

        ``log_probs`` (rows, k) are the model's normalised log-probabilities of
        ``candidates`` (rows, k) after temperature; ``-inf`` marks padding.
        Returns log-weights of the same shape (need not be normalised).
        """

    def score(self, token_ids: np.ndarray) -> PositionScores:
        """Detection values for every position with a full context."""
        return self.score_windows(*self._scored_positions(token_ids))

    @abstractmethod
    def score_windows(self, windows: np.ndarray, positions: np.ndarray, tokens: np.ndarray) -> PositionScores:
        """:meth:`score` from what :meth:`_scored_positions` gives. Each row's values depend on that row alone,
        so the rows of many texts, concatenated, are scored in one call (batched detection does)."""

    @property
    @abstractmethod
    def null(self) -> Null:
        """Distribution of each unit's value on unwatermarked text."""

    def token_scores(self, values: np.ndarray) -> np.ndarray:
        """One display score per position in [0, 1] (for heat maps)."""
        return np.asarray(values, dtype=np.float64)
