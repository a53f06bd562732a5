"""SynthID-Text tournament sampling (Dathathri et al., Nature 2024).

Each (context of ngram_len-1 tokens, candidate token) pair gets ``depth``
keyed bits g_1..g_m. Generation runs an m-layer tournament with two leaves
per match, which in expectation is the update p <- p * (1 + g_l - E_p[g_l])
per layer: non-distortionary over the key, and only the top-k candidates are
touched. Detection counts the g-bits over distinct n-grams: on text written
without the key each bit is Bernoulli(q), so the count is exactly
Binomial(n*m, q). A detector may count only the first ``scored_layers``
bits (:meth:`SynthIDScheme.with_scored_layers`): the count is then exactly
Binomial(n*scored_layers, q), still without looking at the key's effect.

Two key modes:
- ``keyed`` (aimark's default): the context is hashed with the key's ``context_prf``
  (SipHash-2-4, or keyed BLAKE2b for keys issued before it; aimark.schemes._prf).
- ``transformers``: bit-compatible with transformers'
  ``SynthIDTextWatermarkLogitsProcessor``: the same config dict gives the
  same g-values (linear-congruential hash and sampling table), so text
  watermarked by either is detected by both. q is the table's exact share of
  ones rather than 1/2, which keeps p-values exact for a finite table.
"""

from __future__ import annotations

import copy

import numpy as np

from aimark.keys import WatermarkKey
from aimark.schemes._prf import context_hasher, pair, unit_ids
from aimark.schemes.base import (
    SIGNAL_SEED,
    SIGNAL_SIMULATIONS,
    BinomialNull,
    PositionScores,
    WatermarkScheme,
    significant_probabilities,
)

# numpy >= 2.0 counts bits in C; older numpy sums the g-values instead (the same counts).
_POPCOUNT = getattr(np, "bitwise_count", None)

# transformers' accumulate_hash: newlib/musl LCG constants.
_LCG_MULTIPLIER = np.int64(6364136223846793005)


def _lcg_accumulate(state: np.ndarray, data: np.ndarray) -> np.ndarray:
    """transformers' ``accumulate_hash``: h <- (h + x) * a + 1 per column of ``data`` (int64, wrapping)."""
    state = np.asarray(state, dtype=np.int64)
    with np.errstate(over="ignore"):
        for column in range(data.shape[-1]):
            state = (state + data[..., column]) * _LCG_MULTIPLIER + np.int64(1)
    return state


def transformers_sampling_table(size: int, seed: int) -> np.ndarray:
    """The g-value table transformers draws: ``torch.randint(0, 2, (size,), generator=seed)``."""
    import torch  # only transformers-compatible keys need torch's generator

    generator = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randint(low=0, high=2, size=(size,), generator=generator, device="cpu").numpy().astype(np.uint8)


class SynthIDScheme(WatermarkScheme):
    name = "synthid"
    masks_repeated_contexts = True

    def __init__(self, key: WatermarkKey):
        super().__init__(key)
        params = key.params
        self.ngram_len = int(params["ngram_len"])
        self.context_width = self.ngram_len - 1
        self.depth = int(params["depth"])
        self.scored_layers = self.depth
        if self.mode == "keyed":
            self._hasher = context_hasher(key.secret, b"synthid-context", key.context_prf)
            self._layer_shifts = np.arange(self.depth, dtype=np.uint64)
            self._one_probability = 0.5
        else:
            self._layer_keys = np.asarray(params["keys"], dtype=np.int64)
            self._table = transformers_sampling_table(int(params["sampling_table_size"]), int(params["sampling_table_seed"]))
            self._one_probability = float(self._table.mean())

    # -- keyed values ---------------------------------------------------------
    def context_keys(self, windows: np.ndarray) -> np.ndarray:
        if self.mode == "keyed":
            return self._hasher(windows)
        start = np.ones(len(windows), dtype=np.int64)
        return _lcg_accumulate(start, np.asarray(windows, dtype=np.int64)).view(np.uint64)

    @staticmethod
    def _broadcast(context_keys: np.ndarray, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        tokens = np.asarray(tokens, dtype=np.int64)
        keys = np.asarray(context_keys, dtype=np.uint64).reshape(np.shape(context_keys) + (1,) * (tokens.ndim - np.ndim(context_keys)))
        return keys, tokens

    def g_values(self, context_keys: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """Bits of shape ``tokens.shape + (depth,)``; ``context_keys`` broadcasts against ``tokens``."""
        keys, tokens = self._broadcast(context_keys, tokens)
        if self.mode == "keyed":  # layer l's bit is bit l of the pair's value
            mixed = pair(keys, tokens)
            return ((mixed[..., None] >> self._layer_shifts) & np.uint64(1)).astype(np.uint8)
        with np.errstate(over="ignore"):
            ngram_hash = (keys.view(np.int64) + tokens) * _LCG_MULTIPLIER + np.int64(1)
            layered = (ngram_hash[..., None] + self._layer_keys) * _LCG_MULTIPLIER + np.int64(1)
        return self._table[np.mod(layered, len(self._table))]

    # -- generation -----------------------------------------------------------
    def reweight(self, log_probs, candidates, windows, context_keys):
        probs = np.exp(log_probs - log_probs.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        g = self.g_values(context_keys, candidates).astype(np.float64)
        for layer in range(self.depth):
            g_layer = g[:, :, layer]
            expected = (probs * g_layer).sum(axis=1, keepdims=True)
            # E_p[g] can round above g = 0's 1.0 when one candidate holds ~all the mass.
            probs = probs * np.maximum(1.0 + g_layer - expected, 0.0)
        with np.errstate(divide="ignore"):
            return np.log(probs)

    # -- detection ------------------------------------------------------------
    def with_scored_layers(self, layers: int) -> SynthIDScheme:
        """This scheme with detection counting only the tournament's first ``layers`` layers.

        Each layer sharpens the distribution the next one reweights, so later layers find less to
        move: on low-entropy text (code) the last ones carry almost no signal and only add variance to
        the count (bench/results/code.md, per-layer study). Generation is unchanged.
        """
        if not 1 <= layers <= self.depth:
            raise ValueError(f"scored layers must be between 1 and the key's depth ({self.depth})")
        scheme = copy.copy(self)
        scheme.scored_layers = int(layers)
        return scheme

    def _scored_ones(self, context_keys: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """Per (context, token): its count of 1-bits over the scored layers, the unit value detection sums."""
        if self.mode == "keyed" and _POPCOUNT is not None:  # the same count: the low scored_layers bits of pair()
            mixed = pair(*self._broadcast(context_keys, tokens))
            return _POPCOUNT(mixed & np.uint64((1 << self.scored_layers) - 1)).astype(np.int64)
        return self.g_values(context_keys, tokens)[..., : self.scored_layers].sum(axis=-1).astype(np.int64)

    def score_windows(self, windows: np.ndarray, positions: np.ndarray, tokens: np.ndarray) -> PositionScores:
        contexts = self.context_keys(windows)
        return PositionScores(positions, unit_ids(contexts, tokens), contexts, self._scored_ones(contexts, tokens))

    def tilt(self, context_keys: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """Per candidate, its standardised count of 1-bits over the scored layers: what a detector with this
        profile adds per unit, centred and scaled under the null (mean 0, variance 1)."""
        ones = self._scored_ones(context_keys, candidates)
        q, layers = self._one_probability, self.scored_layers
        return (ones - layers * q) / np.sqrt(layers * q * (1 - q))

    def bits(self, context_keys: np.ndarray, units: np.ndarray) -> np.ndarray:
        return self.g_values(context_keys, units)[..., : self.scored_layers]

    def expected_bit_excess(self, log_probs: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """E[g_l(drawn)] - q per scored layer l. The tournament's layer update keeps each probability's expectation
        over the key (a martingale), so E[g_l(drawn)] = q + q(1 - q) E[1 - sum_i p_i^2], p the distribution that
        enters layer l: the collision probability of the distribution after l - 1 layers of random g-values,
        averaged over :data:`SIGNAL_SIMULATIONS` simulated keys (a fixed generator: the same draws for every text)."""
        probs = significant_probabilities(log_probs)
        q = self._one_probability
        rng = np.random.default_rng(SIGNAL_SEED)
        paths = np.broadcast_to(probs, (SIGNAL_SIMULATIONS, *probs.shape)).copy()
        excess = np.empty((len(probs), self.scored_layers))
        for layer in range(self.scored_layers):
            excess[:, layer] = q * (1 - q) * (paths.sum(axis=2) - np.square(paths).sum(axis=2)).mean(axis=0)
            g = rng.random(paths.shape) < q
            paths = paths * np.maximum(1.0 + g - (paths * g).sum(axis=2, keepdims=True), 0.0)
            total = paths.sum(axis=2, keepdims=True)
            paths = np.divide(paths, total, out=np.zeros_like(paths), where=total > 0)
        return excess

    @property
    def null(self) -> BinomialNull:
        return BinomialNull(self.scored_layers, self._one_probability)

    def token_scores(self, values):
        return np.asarray(values, dtype=np.float64) / self.scored_layers
