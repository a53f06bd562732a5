"""Gumbel / EXP sampling (Aaronson 2022; Kuditipudi et al. 2023).

Each (context, candidate) pair gets a keyed uniform r; generation picks
argmax r^(1/p) among the candidates, which samples exactly from p over the
key (distortion-free per token). Detection sums -ln(1 - r) over distinct
units: without the key each term is Exp(1), so the total is Gamma(n, 1) and
its tail is an exact p-value.

Because the choice is a deterministic function of the context, a repeated
context would repeat the same token; such contexts are left to ordinary
sampling at generation and masked at detection.
"""

from __future__ import annotations

import numpy as np

from aimark.keys import WatermarkKey
from aimark.schemes._prf import context_hasher, pair, to_unit_interval, unit_ids
from aimark.schemes.base import GammaNull, PositionScores, WatermarkScheme


class GumbelScheme(WatermarkScheme):
    name = "gumbel"
    masks_repeated_contexts = True

    def __init__(self, key: WatermarkKey):
        super().__init__(key)
        self.context_width = int(key.params["context_width"])
        self._hasher = context_hasher(key.secret, b"gumbel-context", key.context_prf)

    def context_keys(self, windows: np.ndarray) -> np.ndarray:
        return self._hasher(windows)

    def uniforms(self, context_keys: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        keys = np.asarray(context_keys, dtype=np.uint64)
        tokens = np.asarray(tokens, dtype=np.int64)
        keys = keys.reshape(keys.shape + (1,) * (tokens.ndim - keys.ndim))
        return to_unit_interval(pair(keys, tokens))

    def reweight(self, log_probs, candidates, windows, context_keys):
        r = self.uniforms(context_keys, candidates)
        with np.errstate(divide="ignore", invalid="ignore"):
            # argmax r^(1/p) == argmax log(r) / p; p = 0 (padding) must never win.
            race = np.where(np.isfinite(log_probs), np.log(r) / np.exp(log_probs), -np.inf)
        winners = race.argmax(axis=1)
        out = np.full(log_probs.shape, -np.inf)
        out[np.arange(len(out)), winners] = 0.0
        return out

    def score_windows(self, windows: np.ndarray, positions: np.ndarray, tokens: np.ndarray) -> PositionScores:
        contexts = self.context_keys(windows)
        r = self.uniforms(contexts, tokens)
        return PositionScores(positions, unit_ids(contexts, tokens), contexts, -np.log1p(-r))

    @property
    def null(self) -> GammaNull:
        return GammaNull()

    def token_scores(self, values):
        # Exp(1) value -> its CDF, uniform on unwatermarked text.
        return 1.0 - np.exp(-np.asarray(values, dtype=np.float64))
