"""transformers adapter: any aimark scheme as a ``LogitsProcessor``.

The processor does its own temperature, top-k and top-p, then reweights the
surviving candidates with the scheme: the watermark must act on the final
sampling distribution, and custom processors run *before* transformers'
own warpers inside ``generate``. Call generate with ``do_sample=True`` and
leave ``temperature``/``top_k``/``top_p`` at 1.0/0/1.0 (``generation_kwargs``
returns exactly that), so nothing reshapes the distribution afterwards.

Working on the top-k candidates only is what keeps a 262k-entry vocabulary
cheap: the scheme sees a (batch, k) array per step.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from transformers import LogitsProcessor

from aimark.schemes.base import WatermarkScheme


class _ContextHistory:
    """Recent context keys of one sequence (FIFO of bounded size, with counts)."""

    def __init__(self, size: int):
        self._size = size
        self._order: deque[int] = deque()
        self._counts: dict[int, int] = {}

    def __contains__(self, key: int) -> bool:
        return key in self._counts

    def add(self, key: int) -> None:
        self._order.append(key)
        self._counts[key] = self._counts.get(key, 0) + 1
        if len(self._order) > self._size:
            old = self._order.popleft()
            remaining = self._counts[old] - 1
            if remaining:
                self._counts[old] = remaining
            else:
                del self._counts[old]


class ContextMemory:
    """Repeated-context masking for one sequence: a context is watermarked until a scored unit has been
    generated at it, and detection (which keeps each context's first scored unit) masks the same positions.

    A context counts as used once the token drawn at it is a unit the scheme scores
    (:meth:`WatermarkScheme.scored_tokens`): for token-id schemes that is every token, so a context is
    used from its first step; for code-skeleton keys a layout token (a newline, an indent) leaves its
    context unchanged and unused, and the content token that follows is still watermarked.
    """

    def __init__(self, scheme: WatermarkScheme):
        self._scheme = scheme
        self._history = _ContextHistory(scheme.context_history_size)
        self._pending: int | None = None  # the context of the last step, recorded once its token is known

    def fresh(self, context_key: int | None, previous_token: int | None) -> bool:
        """Whether this step's context (``None``: it has none) is watermarked; ``previous_token`` is the token
        drawn at the last step (``None`` at the first)."""
        if self._pending is not None and previous_token is not None and self._scheme.scored_tokens(np.asarray([previous_token]))[0]:
            self._history.add(self._pending)
        self._pending = context_key
        return context_key is not None and context_key not in self._history


def check_sampling(*, top_k: int, temperature: float, top_p: float) -> None:
    if top_k < 1:
        raise ValueError("top_k must be >= 1")
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    if not 0 < top_p <= 1:
        raise ValueError("top_p must be in (0, 1]")


def top_candidates(scores: torch.Tensor, *, top_k: int, temperature: float, top_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Temperature, then top-k, then top-p: ``(log_probs, token_ids)``, each (batch, k), best first.

    Top-p keeps the token that crosses ``top_p`` (so at least one survives); tokens it drops get
    log-probability -inf and the rest are renormalised.
    """
    k = min(top_k, scores.shape[-1])
    # x / 1.0 == x exactly: skipping it saves a copy of the whole (batch, vocab) row block.
    scaled = scores.float() if temperature == 1.0 else scores.float() / temperature
    top_values, top_ids = torch.topk(scaled, k, dim=-1)
    log_probs = torch.log_softmax(top_values, dim=-1)
    if top_p < 1.0:
        probs = log_probs.exp()
        outside = (probs.cumsum(dim=-1) - probs) >= top_p
        log_probs = torch.log_softmax(log_probs.masked_fill(outside, float("-inf")), dim=-1)
    return log_probs, top_ids


@dataclass(frozen=True)
class CommentBoost:
    """Inside code comments, tilt the watermarked weights further toward candidates the detector scores high.

    ``rows_in_comment`` (e.g. :class:`aimark.schemes.code.CommentTracker`) says which rows' next token
    continues a comment; there the model's log-probabilities get ``strength * detector_scheme.tilt(...)``
    added before the scheme reweights them. This is a distortion (KGW-like, on the detector's own
    statistic) confined to text that never executes; the detector is unchanged, so its p-values stay exact.
    """

    rows_in_comment: Callable[[np.ndarray], np.ndarray]
    detector_scheme: WatermarkScheme
    strength: float

    def __post_init__(self):
        if not hasattr(self.detector_scheme, "tilt"):
            raise ValueError(f"the {self.detector_scheme.name} scheme has no tilt to boost comments with (synthid has)")
        if not 0 < self.strength <= 10:
            raise ValueError("comment boost strength must be in (0, 10]")


class WatermarkLogitsProcessor(LogitsProcessor):
    """Watermarks sampling with ``scheme``; usable as ``model.generate(..., logits_processor=[...])``.

    ``pad_token_id`` marks left padding: a row whose context window still
    contains padding is not watermarked at that step (its context is not text).
    """

    def __init__(
        self,
        scheme: WatermarkScheme,
        *,
        top_k: int = 50,
        temperature: float = 1.0,
        top_p: float = 1.0,
        pad_token_id: int | None = None,
        comment_boost: CommentBoost | None = None,
    ):
        check_sampling(top_k=top_k, temperature=temperature, top_p=top_p)
        self.scheme = scheme
        self.comment_boost = comment_boost
        self.top_k = top_k
        self.temperature = temperature
        self.top_p = top_p
        self.pad_token_id = pad_token_id
        self._memories: list[ContextMemory] | None = None
        self._last_length = -1

    @staticmethod
    def generation_kwargs() -> dict:
        """Arguments for ``generate`` that leave the sampling distribution to this processor."""
        return {"do_sample": True, "temperature": 1.0, "top_k": 0, "top_p": 1.0}

    def reset(self) -> None:
        self._memories = None
        self._last_length = -1

    def _memories_for(self, input_ids: torch.LongTensor) -> list[ContextMemory]:
        batch, length = input_ids.shape
        # A new generate call starts a new sequence: forget the old contexts.
        if self._memories is None or len(self._memories) != batch or length != self._last_length + 1:
            self._memories = [ContextMemory(self.scheme) for _ in range(batch)]
        self._last_length = length
        return self._memories

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        width = self.scheme.context_width
        log_probs, top_ids = top_candidates(scores, top_k=self.top_k, temperature=self.temperature, top_p=self.top_p)
        log_np = log_probs.detach().cpu().numpy().astype(np.float64)
        candidates = top_ids.cpu().numpy()
        new_log_weights = log_np.copy()
        windows = input_ids[:, max(input_ids.shape[1] - width, 0) :].cpu().numpy()
        rows, context_keys = self.scheme.generation_contexts(windows, self.pad_token_id)
        if self.scheme.masks_repeated_contexts:
            memories = self._memories_for(input_ids)
            key_of = dict(zip(rows.tolist(), context_keys.tolist()))
            last = input_ids[:, -1].tolist()
            fresh = [memory.fresh(key_of.get(row), last[row]) for row, memory in enumerate(memories)]
            keep = np.asarray([fresh[row] for row in rows.tolist()], dtype=bool)
            rows, context_keys = rows[keep], context_keys[keep]
        if len(rows):
            model_log_probs = log_np[rows]
            if self.comment_boost is not None:
                model_log_probs = self._tilt_comments(input_ids, rows, context_keys, candidates, model_log_probs)
            new_log_weights[rows] = self.scheme.reweight(model_log_probs, candidates[rows], windows[rows], context_keys)
        out = torch.full_like(scores, float("-inf"))
        out.scatter_(1, top_ids, torch.from_numpy(new_log_weights).to(device=scores.device, dtype=scores.dtype))
        return out

    def _tilt_comments(self, input_ids, rows, context_keys, candidates, log_probs: np.ndarray) -> np.ndarray:
        """``log_probs`` with the comment rows tilted and renormalised, before the scheme's own reweighting
        (after it, SynthID's tournament has already made the distribution nearly deterministic)."""
        boost = self.comment_boost
        inside = np.asarray(boost.rows_in_comment(input_ids[rows].cpu().numpy()), dtype=bool)
        if not inside.any():
            return log_probs
        tilted = log_probs.copy()
        tilted[inside] += boost.strength * boost.detector_scheme.tilt(context_keys[inside], candidates[rows[inside]])
        finite = np.isfinite(tilted[inside])
        peak = np.where(finite, tilted[inside], -np.inf).max(axis=1, keepdims=True)
        with np.errstate(divide="ignore"):
            tilted[inside] -= peak + np.log(np.exp(tilted[inside] - peak).sum(axis=1, keepdims=True))
        return tilted
