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
    """Per-row memory of recent context keys (FIFO of bounded size)."""

    def __init__(self, size: int):
        self._size = size
        self._order: deque[int] = deque()
        self._counts: dict[int, int] = {}

    def seen_then_add(self, key: int) -> bool:
        seen = key in self._counts
        self._order.append(key)
        self._counts[key] = self._counts.get(key, 0) + 1
        if len(self._order) > self._size:
            old = self._order.popleft()
            remaining = self._counts[old] - 1
            if remaining:
                self._counts[old] = remaining
            else:
                del self._counts[old]
        return seen


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
        self._histories: list[_ContextHistory] | None = None
        self._last_length = -1

    @staticmethod
    def generation_kwargs() -> dict:
        """Arguments for ``generate`` that leave the sampling distribution to this processor."""
        return {"do_sample": True, "temperature": 1.0, "top_k": 0, "top_p": 1.0}

    def reset(self) -> None:
        self._histories = None
        self._last_length = -1

    def _histories_for(self, input_ids: torch.LongTensor) -> list[_ContextHistory]:
        batch, length = input_ids.shape
        # A new generate call starts a new sequence: forget the old contexts.
        if self._histories is None or len(self._histories) != batch or length != self._last_length + 1:
            self._histories = [_ContextHistory(self.scheme.context_history_size) for _ in range(batch)]
        self._last_length = length
        return self._histories

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        width = self.scheme.context_width
        histories = self._histories_for(input_ids)
        log_probs, top_ids = top_candidates(scores, top_k=self.top_k, temperature=self.temperature, top_p=self.top_p)
        log_np = log_probs.detach().cpu().numpy().astype(np.float64)
        candidates = top_ids.cpu().numpy()
        new_log_weights = log_np.copy()
        windows = input_ids[:, max(input_ids.shape[1] - width, 0) :].cpu().numpy()
        rows, context_keys = self.scheme.generation_contexts(windows, self.pad_token_id)
        if len(rows) and self.scheme.masks_repeated_contexts:
            fresh = np.array([not histories[r].seen_then_add(int(c)) for r, c in zip(rows, context_keys)])
            rows, context_keys = rows[fresh], context_keys[fresh]
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
