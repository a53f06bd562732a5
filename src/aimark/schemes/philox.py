"""vLLM's watermark PRF, Philox4x32-10 over (context tokens, candidate token), in numpy.

Bit-for-bit the function ``vllm/v1/watermarking/prfs/philox.py`` (vLLM 0.32) computes, so
aimark reads vLLM's watermark without torch: the context (``context_width`` token ids, ``-1``
before the start of the generated text, each taken mod 2**32) is absorbed four words per
Philox block into a 128-bit state seeded with a context domain constant and the width; the
candidate token then picks one of the four output words of a last block keyed with the state
and a token domain constant. Written by hand because no numpy library exposes Philox as a
keyed function of arbitrary counters (numpy's ``Philox`` bit generator is a stream, not a PRF).

The published reference is Salmon et al., "Parallel random numbers: as easy as 1, 2, 3"
(SC 2011, doi:10.1145/2063384.2063405); the block cipher below is the standard 10-round
Philox4x32 with the standard multipliers and Weyl constants.
"""

from __future__ import annotations

import numpy as np

UINT32_MASK = np.uint64(0xFFFFFFFF)
_M0 = np.uint64(0xD2511F53)
_M1 = np.uint64(0xCD9E8D57)
_W0 = np.uint64(0x9E3779B9)
_W1 = np.uint64(0xBB67AE85)
CONTEXT_DOMAIN = 0x574D4358  # "WMCX"
TOKEN_DOMAIN = 0x574D544B  # "WMTK"
_S32 = np.uint64(32)
_UNIFORM_CELLS = 2**24 + 1


def philox4x32_10(counter: tuple[np.ndarray, ...], key: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, ...]:
    """Philox4x32-10 on broadcastable uint64 arrays holding 32-bit words."""
    c0, c1, c2, c3 = (np.asarray(word, dtype=np.uint64) for word in counter)
    k0, k1 = (np.asarray(word, dtype=np.uint64) for word in key)
    for round_index in range(10):
        # Both factors are below 2**32, so the full product fits in uint64.
        product_0 = c0 * _M0
        product_1 = c2 * _M1
        c0, c1, c2, c3 = (
            (product_1 >> _S32) ^ c1 ^ k0,
            product_1 & UINT32_MASK,
            (product_0 >> _S32) ^ c3 ^ k1,
            product_0 & UINT32_MASK,
        )
        if round_index != 9:
            k0 = (k0 + _W0) & UINT32_MASK
            k1 = (k1 + _W1) & UINT32_MASK
    return c0, c1, c2, c3


class PhiloxPRF:
    """vLLM's ``PhiloxPRF``: a keyed uint32 word, and the float32 uniform made from it, per (context, token)."""

    version = "philox4x32-10-v1"  # vLLM's name for this exact construction

    def __init__(self, key: int):
        if isinstance(key, bool) or not isinstance(key, int) or not 0 <= key <= 2**64 - 1:
            raise ValueError("Philox keys must be integers in 0..2**64-1")
        self._key_0 = np.uint64(key & 0xFFFFFFFF)
        self._key_1 = np.uint64(key >> 32)

    def __repr__(self) -> str:  # the key is secret
        return "PhiloxPRF(<secret>)"

    def context_states(self, contexts: np.ndarray) -> tuple[np.ndarray, ...]:
        """The 128-bit state (four uint32 words as uint64) after absorbing each row of ``contexts``."""
        contexts = np.asarray(contexts, dtype=np.int64)
        if contexts.ndim != 2:
            raise ValueError("contexts must be a 2-D array (rows, context_width)")
        rows, width = contexts.shape
        words = contexts.astype(np.uint64) & UINT32_MASK  # -1 (before the text) becomes 0xFFFFFFFF
        state = (
            np.full(rows, CONTEXT_DOMAIN, dtype=np.uint64),
            np.full(rows, width, dtype=np.uint64),
            np.zeros(rows, dtype=np.uint64),
            np.zeros(rows, dtype=np.uint64),
        )
        for offset in range(0, width, 4):
            block = [
                words[:, offset + index] if offset + index < width else np.full(rows, 0xFFFFFFFF - index, dtype=np.uint64)
                for index in range(4)
            ]
            counter = tuple(state[index] ^ block[index] for index in range(4))
            state = philox4x32_10(counter, (np.broadcast_to(self._key_0 ^ np.uint64(offset), (rows,)), np.broadcast_to(self._key_1, (rows,))))
        return state

    def uint32(self, contexts: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """Keyed words in [0, 2**32) as uint64; ``tokens`` (rows,) or (rows, k) broadcasts against the rows."""
        tokens = np.asarray(tokens, dtype=np.int64)
        state = self.context_states(contexts)
        if tokens.ndim == 2:
            state = tuple(word[:, None] for word in state)
        token_words = tokens.astype(np.uint64) & UINT32_MASK
        outputs = philox4x32_10(
            (token_words >> np.uint64(2), state[0], state[1], state[2]),
            (self._key_0 ^ state[3], self._key_1 ^ np.uint64(TOKEN_DOMAIN)),
        )
        choice = (token_words & np.uint64(3)).astype(np.intp)
        return np.choose(choice, np.broadcast_arrays(*outputs))

    def uniform(self, contexts: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """vLLM's ``uint32_to_uniform``: the top 24 bits m -> float32((m + 1) / (2**24 + 1)), in (0, 1)."""
        return uint32_to_uniform(self.uint32(contexts, tokens))


def uint32_to_uniform(words: np.ndarray) -> np.ndarray:
    mantissas = (np.asarray(words, dtype=np.uint64) & UINT32_MASK) >> np.uint64(8)
    return ((mantissas.astype(np.float64) + 1.0) / _UNIFORM_CELLS).astype(np.float32)


def gumbel_scores(uniforms: np.ndarray) -> np.ndarray:
    """vLLM's per-token detection score ``-log1p(-u)`` in float64 (Exp(1) for a continuous uniform)."""
    return -np.log1p(-np.asarray(uniforms, dtype=np.float32).astype(np.float64))


#: The smallest shift d with P(score >= s) <= exp(-(s - d)) for every s, over all 2**24 values the
#: float32 uniform takes (tests/schemes/test_vllm.py recomputes it): the discrete score is
#: stochastically below Exp(1) + d, so a sum of n scores is below Gamma(n, 1) + n d and
#: subtracting n d from a total keeps the Gamma tail a valid (conservative) p-value.
SCORE_DOMINANCE_SHIFT = 2.0**-24
