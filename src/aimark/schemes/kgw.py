"""KGW green-list watermark (Kirchenbauer et al., ICML 2023).

A keyed seed splits the vocabulary; a share gamma is "green" and gets +delta
on its logit. Detection counts green tokens among distinct scored units:
without the key each is green with probability gamma, so the count is exactly
Binomial(n, gamma).

Seeding (what the green list depends on, and so what a scored unit is):
- ``lefthash``: the preceding context. Unit = (context, token).
- ``selfhash``: the minimum of a keyed hash over the window that includes the
  candidate itself (min-hash). Unit = (effective seed, token): two n-grams
  with the same minimum share one green list, so counting them twice would
  break the null on repetitive text.

Modes: ``keyed`` (aimark's default: the key's context PRF, SipHash-2-4 or
keyed BLAKE2b, then SplitMix, vectorised over candidates) and ``transformers`` (bit-compatible with transformers'
``WatermarkLogitsProcessor``/``WatermarkDetector``, whose green lists are
``torch.randperm`` draws; those are cached per seed, because drawing a
262k-entry permutation per token is what makes the reference slow).
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np

from aimark.keys import WatermarkKey
from aimark.schemes._prf import TWO_POW_64, context_hasher, derive_seed, pair, unit_ids
from aimark.schemes.base import (
    SIGNAL_SEED,
    SIGNAL_SIMULATIONS,
    BinomialNull,
    PositionScores,
    WatermarkScheme,
    significant_probabilities,
)

_TRANSFORMERS_TABLE_SIZE = 1_000_003


class _TorchGreenlists:
    """transformers' green lists (``randperm(vocab)[:size]`` seeded per context), LRU-cached as bit sets."""

    def __init__(self, vocab_size: int, greenlist_size: int, hashing_key: int, cache_size: int = 4096):
        import torch

        self._torch = torch
        self.vocab_size = vocab_size
        self.greenlist_size = greenlist_size
        self.hashing_key = hashing_key
        self._generator = torch.Generator(device="cpu")
        self._generator.manual_seed(hashing_key)
        self.fixed_table = torch.randperm(_TRANSFORMERS_TABLE_SIZE, generator=self._generator).numpy()
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_size = cache_size

    def __getstate__(self):
        return {"vocab_size": self.vocab_size, "greenlist_size": self.greenlist_size, "hashing_key": self.hashing_key}

    def __setstate__(self, state):
        self.__init__(state["vocab_size"], state["greenlist_size"], state["hashing_key"])

    def green_bits(self, seed: int) -> np.ndarray:
        bits = self._cache.get(seed)
        if bits is not None:
            self._cache.move_to_end(seed)
            return bits
        self._generator.manual_seed(seed % (2**64 - 1))
        permutation = self._torch.randperm(self.vocab_size, generator=self._generator)
        mask = np.zeros(self.vocab_size, dtype=bool)
        mask[permutation[: self.greenlist_size].numpy()] = True
        bits = np.packbits(mask)
        self._cache[seed] = bits
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return bits

    def is_green(self, seed: int, tokens: np.ndarray) -> np.ndarray:
        bits = self.green_bits(seed)
        tokens = np.asarray(tokens, dtype=np.int64)
        inside = (tokens >= 0) & (tokens < self.vocab_size)
        safe = np.where(inside, tokens, 0)
        return inside & (((bits[safe >> 3] >> (7 - (safe & 7))) & 1) == 1)

    def lefthash_seed(self, last_token: int) -> int:
        return self.hashing_key * int(last_token)

    def selfhash_seeds(self, windows: np.ndarray) -> np.ndarray:
        """Seeds for rows that end with the candidate (transformers' ``set_seed`` for selfhash)."""
        windows = np.asarray(windows, dtype=np.int64)
        with np.errstate(over="ignore"):
            a = self.fixed_table[windows % _TRANSFORMERS_TABLE_SIZE].astype(np.int64) + 1
            b = self.fixed_table[windows[..., -1:] % _TRANSFORMERS_TABLE_SIZE].astype(np.int64) + 1
            products = np.int64(self.hashing_key) * a * b
        return products.min(axis=-1)


class KGWScheme(WatermarkScheme):
    name = "kgw"

    def __init__(self, key: WatermarkKey, vocab_size: int | None = None):
        super().__init__(key)
        params = key.params
        self.greenlist_ratio = float(params["greenlist_ratio"])
        self.bias = float(params["bias"])
        self.seeding_scheme = str(params["seeding_scheme"])
        self.context_width = int(params["context_width"])
        if self.mode == "keyed":
            # P(value < threshold) for a uniform 64-bit value is exactly threshold / 2**64.
            self._threshold = np.uint64(int(self.greenlist_ratio * TWO_POW_64))
            self._green_probability = int(self._threshold) / 2**64
            self._hasher = context_hasher(key.secret, b"kgw-context", key.context_prf)
            self._token_key = derive_seed(key.secret, b"kgw-token")
            self._green_key = derive_seed(key.secret, b"kgw-green")
        else:
            vocab_size = int(params.get("vocab_size") or vocab_size or 0)
            if vocab_size <= 0:
                raise ValueError("a transformers-compatible KGW key needs the model's vocab_size")
            greenlist_size = int(vocab_size * self.greenlist_ratio)
            self._green_probability = greenlist_size / vocab_size
            self._torch_lists = _TorchGreenlists(vocab_size, greenlist_size, int(params["hashing_key"]))

    # -- keyed values ---------------------------------------------------------
    def context_keys(self, windows: np.ndarray) -> np.ndarray:
        windows = np.asarray(windows, dtype=np.int64)
        if self.mode == "keyed":
            if self.seeding_scheme == "lefthash":
                return self._hasher(windows)
            # selfhash: the context part is the window without its oldest token
            return self._hasher(windows[:, 1:]) if windows.shape[1] > 1 else np.zeros(len(windows), np.uint64)
        return windows[:, -1].astype(np.uint64)

    def _keyed_selfhash_seeds(self, windows: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """min over the window (last width-1 context tokens + candidate) of pair(h(candidate), token)."""
        candidate_keys = pair(self._token_key, candidates)
        others = windows[:, 1:] if self.context_width > 1 else windows[:, :0]
        seeds = pair(candidate_keys, candidates)
        for column in range(others.shape[1]):
            seeds = np.minimum(seeds, pair(candidate_keys, others[:, column : column + 1]))
        return seeds

    def green(self, windows: np.ndarray, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(is_green, effective seed) for candidates (rows, k) after context windows (rows, width)."""
        windows = np.asarray(windows, dtype=np.int64)
        candidates = np.asarray(candidates, dtype=np.int64)
        if self.mode == "keyed":
            if self.seeding_scheme == "lefthash":
                seeds = np.broadcast_to(self._hasher(windows)[:, None], candidates.shape)
            else:
                seeds = self._keyed_selfhash_seeds(windows, candidates)
            return pair(seeds ^ self._green_key, candidates) < self._threshold, np.asarray(seeds, dtype=np.uint64)
        lists = self._torch_lists
        is_green = np.zeros(candidates.shape, dtype=bool)
        seeds = np.zeros(candidates.shape, dtype=np.int64)
        for row in range(candidates.shape[0]):
            if self.seeding_scheme == "lefthash":
                seed = lists.lefthash_seed(windows[row, -1])
                is_green[row] = lists.is_green(seed, candidates[row])
                seeds[row] = windows[row, -1]
            else:
                tails = np.broadcast_to(windows[row, 1:], (candidates.shape[1], self.context_width - 1))
                full = np.concatenate([tails, candidates[row][:, None]], axis=1)
                row_seeds = lists.selfhash_seeds(full)
                seeds[row] = row_seeds
                for column, seed in enumerate(row_seeds.tolist()):
                    is_green[row, column] = lists.is_green(seed, candidates[row, column : column + 1])[0]
        return is_green, seeds.view(np.uint64)

    # -- generation -----------------------------------------------------------
    def reweight(self, log_probs, candidates, windows, context_keys):
        is_green, _ = self.green(windows, candidates)
        return log_probs + self.bias * is_green

    # -- detection ------------------------------------------------------------
    def score_windows(self, windows: np.ndarray, positions: np.ndarray, tokens: np.ndarray) -> PositionScores:
        if self.mode == "keyed" or self.seeding_scheme == "selfhash":
            is_green, seeds = self.green(windows, tokens[:, None])
            is_green, seeds = is_green[:, 0], seeds[:, 0]
        else:
            lists = self._torch_lists
            seeds = windows[:, -1].astype(np.uint64)
            is_green = np.zeros(len(tokens), dtype=bool)
            for previous in np.unique(windows[:, -1]) if len(windows) else []:
                rows = windows[:, -1] == previous
                is_green[rows] = lists.is_green(lists.lefthash_seed(previous), tokens[rows])
        if self.mode == "keyed" and self.seeding_scheme == "lefthash":
            contexts = seeds  # the seeds are the context keys: green() hashed each window once already
        else:
            contexts = self.context_keys(windows) if len(windows) else np.empty(0, np.uint64)
        return PositionScores(positions, unit_ids(seeds, tokens), contexts, is_green.astype(np.int64))

    def expected_bit_excess(self, log_probs: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """E[green(drawn)] - gamma: the green list's probability after the bias, averaged over simulated keys
        (each candidate green with probability gamma; a fixed generator: the same draws for every text)."""
        probs = significant_probabilities(log_probs)
        rng = np.random.default_rng(SIGNAL_SEED)
        green = rng.random((SIGNAL_SIMULATIONS, *probs.shape)) < self._green_probability
        boosted = probs * np.where(green, math.exp(self.bias), 1.0)
        total = boosted.sum(axis=2)
        hit = np.divide((boosted * green).sum(axis=2), total, out=np.zeros_like(total), where=total > 0).mean(axis=0)
        live = probs.sum(axis=1) > 0
        return np.where(live, np.maximum(hit - self._green_probability, 0.0), 0.0)[:, None]

    @property
    def null(self) -> BinomialNull:
        return BinomialNull(1, self._green_probability)
