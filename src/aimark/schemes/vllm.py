"""vLLM's own watermarks (``--watermark-config``, vLLM 0.32): ``gumbel`` and ``dual_key_gumbel``, read by aimark.

What vLLM does (``vllm/v1/watermarking``, Model Runner V2's ``GPUWatermarkSampler``):

- The context of a generated token is the ``context_width`` generated tokens before it, ``-1`` where
  they would reach back before the first generated token: the prompt is never part of a context.
- ``gumbel``: the token is ``argmax(logits / T + G)`` with ``G = -log(-log u)``, ``u`` the Philox
  uniform of (context, candidate) under ``key`` (:mod:`aimark.schemes.philox`). Detection scores
  ``-log1p(-u)`` of each (context, token): Exp(1) without the key.
- ``dual_key_gumbel``: two keys derived as ``sha256(domain + key.to_bytes(8, "big"))[:8]`` (domains
  ``b"key_a"``, ``b"key_b"``); each token is sampled with key B with probability ``alpha``, the choice
  drawn from the request's own random stream (not from the key), so a detector cannot tell which key
  made a token. vLLM's detector (and aimark) score ``(1 - alpha) s_A + alpha s_B`` per token.
- ``deduplicate_contexts``: ``single_turn`` (default) samples a context already seen among the
  request's generated tokens without the watermark; ``all`` also searches the prompt and leaves the
  first ``context_width`` tokens unwatermarked; ``none`` watermarks every token.

What aimark adds: each scored unit (context, token) counts once, a repeated context once (vLLM's
detector drops repeated contexts too), and the tail of the total is exact — vLLM's dual-key
detector takes a moment-matched Gamma for ``alpha`` outside {0, 0.5, 1}; the exact null is in
:func:`aimark.detect.stats.log_tail_weighted_exp`.
"""

from __future__ import annotations

import hashlib

import numpy as np

from aimark.keys import WatermarkKey
from aimark.schemes._prf import unit_ids
from aimark.schemes.base import PositionScores, WatermarkScheme, WeightedExpNull
from aimark.schemes.philox import SCORE_DOMINANCE_SHIFT, UINT32_MASK, PhiloxPRF, gumbel_scores

#: Context entry for positions before the first generated token (vLLM pads with -1).
CONTEXT_PAD = -1


def derive_watermark_key(key: int, domain: bytes) -> int:
    """vLLM's ``derive_watermark_key``: the first 8 bytes (big-endian) of sha256(domain + key as 8 bytes big-endian)."""
    return int.from_bytes(hashlib.sha256(domain + key.to_bytes(8, "big")).digest()[:8], "big")


def padded_contexts(token_ids: np.ndarray, width: int) -> np.ndarray:
    """Rows ``ids[t-width:t]`` for every t, with ``-1`` before the start: vLLM's detector contexts."""
    ids = np.asarray(token_ids, dtype=np.int64)
    padded = np.concatenate([np.full(width, CONTEXT_PAD, dtype=np.int64), ids])
    return np.lib.stride_tricks.sliding_window_view(padded[:-1], width) if len(ids) else np.empty((0, width), np.int64)


class VLLMGumbelScheme(WatermarkScheme):
    """Detection of vLLM's ``gumbel`` / ``dual_key_gumbel`` watermarks (vLLM generates them; aimark reads them)."""

    name = "gumbel"
    pads_context = True

    def __init__(self, key: WatermarkKey):
        super().__init__(key)
        params = key.params
        self.algorithm = str(params["algorithm"])
        self.context_width = int(params["context_width"])
        self.deduplicate_contexts = str(params["deduplicate_contexts"])
        self.masks_repeated_contexts = self.deduplicate_contexts != "none"
        secret_key = int(params["key"])
        if self.algorithm == "gumbel":
            self.alpha = None
            self._prfs = (PhiloxPRF(secret_key),)
            self._weights = (1.0,)
        else:
            self.alpha = float(params["alpha"])
            self._prfs = (PhiloxPRF(derive_watermark_key(secret_key, b"key_a")), PhiloxPRF(derive_watermark_key(secret_key, b"key_b")))
            self._weights = (1.0 - self.alpha, self.alpha)

    # -- keyed values ---------------------------------------------------------
    def context_keys(self, windows: np.ndarray) -> np.ndarray:
        """A keyed 64-bit identifier per context: two words of the first key's Philox context state."""
        state = self._prfs[0].context_states(windows)
        return (state[0] << np.uint64(32)) | (state[1] & UINT32_MASK)

    def key_scores(self, contexts: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """Per (context, token), each key's ``-log1p(-u)``: shape (rows, number of keys)."""
        return np.stack([gumbel_scores(prf.uniform(contexts, tokens)) for prf in self._prfs], axis=-1)

    def weighted(self, key_scores: np.ndarray) -> np.ndarray:
        """vLLM's fused per-token score ``scores @ [1 - alpha, alpha]`` (the one key's score for ``gumbel``)."""
        if len(self._weights) == 1:
            return key_scores[..., 0]
        return key_scores[..., 0] * self._weights[0] + key_scores[..., 1] * self._weights[1]

    def reweight(self, log_probs, candidates, windows, context_keys):
        raise NotImplementedError(
            "a vLLM watermark config is for detection: watermark with vLLM itself (--watermark-config)"
        )

    # -- detection ------------------------------------------------------------
    def _scored_positions(self, token_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(contexts, positions, tokens) for the generated ``token_ids``: every position, contexts padded with -1
        as vLLM's; with ``deduplicate_contexts="all"`` the first ``context_width`` positions (sampled without the
        watermark) are left out."""
        ids = np.asarray(token_ids, dtype=np.int64)
        contexts = padded_contexts(ids, self.context_width)
        positions = np.arange(len(ids))
        if self.deduplicate_contexts == "all":
            contexts, positions = contexts[self.context_width :], positions[self.context_width :]
        return contexts, positions, ids[positions]

    def score_windows(self, windows: np.ndarray, positions: np.ndarray, tokens: np.ndarray) -> PositionScores:
        context_ids = self.context_keys(windows)
        values = self.weighted(self.key_scores(windows, tokens))
        return PositionScores(positions, unit_ids(context_ids, tokens), context_ids, values)

    def score(self, token_ids: np.ndarray, *, prompt_ids: np.ndarray | None = None) -> PositionScores:
        """Values for the generated ``token_ids``; with ``deduplicate_contexts="all"`` and ``prompt_ids`` given,
        contexts that occur in the prompt are left out too (vLLM samples them without the watermark)."""
        scored = self.score_windows(*self._scored_positions(token_ids))
        if self.deduplicate_contexts == "all" and prompt_ids is not None and len(prompt_ids):
            prompt_windows = padded_contexts(np.asarray(prompt_ids, dtype=np.int64), self.context_width)
            keep = ~np.isin(scored.contexts, self.context_keys(prompt_windows))
            scored = PositionScores(scored.positions[keep], scored.units[keep], scored.contexts[keep], scored.values[keep])
        return scored

    @property
    def null(self) -> WeightedExpNull:
        weights = tuple(w for w in self._weights if w > 0)
        return WeightedExpNull(weights, SCORE_DOMINANCE_SHIFT * sum(weights))

    def token_scores(self, values):
        # For one key: the Exp(1) CDF, uniform on unwatermarked text; for two keys the same map of the
        # fused score (only a heat-map shade, not a probability).
        return 1.0 - np.exp(-np.asarray(values, dtype=np.float64))
