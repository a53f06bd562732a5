"""Keyed pseudo-random functions over token ids, vectorised with numpy.

Why hand-written: the keyed values must be identical at generation (a few
candidates per step) and at detection (one value per token, millions per
second), and no library offers a keyed hash over integer arrays.

Construction: the secret-dependent part is BLAKE2b in keyed mode (a PRF) over
the context tokens, one call per context. Pairing the resulting 64-bit seed
with a candidate token uses the SplitMix64 finaliser, a bijective mixer with
full avalanche, so the per-candidate cost is a few vector instructions while
every output still depends on the secret through the seed.
"""

from __future__ import annotations

import hashlib

import numpy as np

_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)

TWO_POW_64 = float(2**64)


def mix64(values: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    z = np.asarray(values, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> _S30)) * _MIX1
        z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


def pair(seeds: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """Keyed value for (seed, token); broadcasts like ``seeds ^ tokens``."""
    tokens = np.asarray(tokens).astype(np.uint64)
    with np.errstate(over="ignore"):
        return mix64(np.asarray(seeds, dtype=np.uint64) ^ mix64(tokens + _GOLDEN))


def derive_seed(secret: bytes, label: bytes) -> np.uint64:
    """A 64-bit sub-key derived from the secret for one purpose."""
    digest = hashlib.blake2b(label, key=secret, digest_size=8, person=b"aimark-subkey").digest()
    return np.uint64(int.from_bytes(digest, "little"))


class ContextHasher:
    """BLAKE2b-keyed hash of fixed-width token windows -> uint64 seeds.

    Picklable: holds only the secret and the domain label, and rebuilds the
    keyed hash state lazily in each process.
    """

    def __init__(self, secret: bytes, domain: bytes):
        self._secret = secret
        self._domain = domain[:16]
        self._template = None

    def __getstate__(self):
        return {"_secret": self._secret, "_domain": self._domain, "_template": None}

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        windows = np.ascontiguousarray(windows, dtype="<u4")
        if windows.ndim != 2:
            raise ValueError("windows must be a 2-D array (count, width)")
        count, width = windows.shape
        if count == 0:
            return np.empty(0, dtype=np.uint64)
        if self._template is None:
            self._template = hashlib.blake2b(key=self._secret, digest_size=8, person=self._domain)
        # One bytes object per window straight from numpy (a void view), then the tightest loop Python has:
        # ~13% faster than slicing a memoryview per window, and the hash loop is most of detection's own time.
        rows = windows.view(f"V{4 * width}").ravel().tolist()
        copy = self._template.copy
        digests = []
        append = digests.append
        for row in rows:
            state = copy()
            state.update(row)
            append(state.digest())
        return np.frombuffer(b"".join(digests), dtype="<u8").astype(np.uint64)


def unit_ids(left: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """Identifier of a scored unit (what its keyed value depends on) for dedup."""
    with np.errstate(over="ignore"):
        return mix64(np.asarray(left, dtype=np.uint64) * _GOLDEN ^ np.asarray(tokens).astype(np.uint64))


def to_unit_interval(values: np.ndarray) -> np.ndarray:
    """uint64 -> float64 uniform on the open interval (0, 1): the midpoints of 2**52 equal cells.

    52 bits, not 53: ``top53 + 0.5`` needs 54 bits of mantissa and rounds to 2**53 for the top
    2048 hashes, so r would be exactly 1 and Gumbel's -log(1 - r) infinite (p = 0 from one unit).
    """
    top52 = (np.asarray(values, dtype=np.uint64) >> np.uint64(12)).astype(np.float64)
    return (top52 + 0.5) * 2.0**-52


def sliding_windows(token_ids: np.ndarray, width: int) -> np.ndarray:
    """Rows ``token_ids[t-width:t]`` for every t in [width, len)."""
    ids = np.asarray(token_ids, dtype=np.int64)
    if len(ids) <= width:
        return np.empty((0, width), dtype=np.int64)
    return np.lib.stride_tricks.sliding_window_view(ids[:-1], width)
