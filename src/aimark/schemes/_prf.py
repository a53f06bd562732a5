"""Keyed pseudo-random functions over token ids, vectorised with numpy.

Why hand-written: the keyed values must be identical at generation (a few
candidates per step) and at detection (one value per token, millions per
second), and no library offers a keyed hash over integer arrays.

Construction: the secret-dependent part is a keyed PRF over each context
window's tokens (the key parameter ``context_prf``):

- ``siphash24`` (keys made since it exists): standard SipHash-2-4 (Aumasson and
  Bernstein 2012, a PRF designed for short inputs with a 128-bit key) over the
  little-endian bytes of the window's uint32 words, computed here in numpy on
  uint64 lanes for all windows at once. SipHash because a keyed PRF is needed
  and no library vectorises one over integer arrays: hashlib's keyed BLAKE2b is
  one Python call per window (~0.6 µs, over half of what tokenising a token
  costs), this is ~0.09 µs per window. Any SipHash-2-4 implementation reproduces it.
  SipHash-1-3 would be ~1.5x faster here (~0.06 µs) with a thinner security
  margin; 2-4 is kept: it already makes the hash a small part of detection.
- ``blake2b`` (a key file without the parameter: every key issued before):
  keyed BLAKE2b over the same bytes, one call per window.

Pairing the resulting 64-bit seed with a candidate token uses the SplitMix64
finaliser, a bijective mixer with full avalanche, so the per-candidate cost is
a few vector instructions while every output still depends on the secret
through the seed.
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


def derive_subkey(secret: bytes, label: bytes, size: int) -> bytes:
    """``size`` bytes derived from the secret for one purpose (keyed BLAKE2b of the label)."""
    return hashlib.blake2b(label, key=secret, digest_size=size, person=b"aimark-subkey").digest()


def derive_seed(secret: bytes, label: bytes) -> np.uint64:
    """A 64-bit sub-key derived from the secret for one purpose."""
    return np.uint64(int.from_bytes(derive_subkey(secret, label, 8), "little"))


# SipHash's initial state constants ("somepseudorandomlygeneratedbytes").
_SIP_INIT = (0x736F6D6570736575, 0x646F72616E646F6D, 0x6C7967656E657261, 0x7465646279746573)
_SIP_FINAL = np.uint64(0xFF)
# Windows per pass: numpy's per-call cost (~270 ufunc calls per chunk for 4-word windows) is spread over enough
# lanes while the state, a scratch row and the message blocks (~1 MiB) stay in cache. Measured on 4-token windows
# (CPU time, EPYC): 88 ns/window; 4096 lanes 129 ns, 32768 lanes 84 ns (BLAKE2b's loop: 578 ns).
SIPHASH_CHUNK = 16384


def _rotate_left(lanes: np.ndarray, bits: int, scratch: np.ndarray) -> None:
    np.right_shift(lanes, np.uint64(64 - bits), out=scratch)
    np.left_shift(lanes, np.uint64(bits), out=lanes)
    np.bitwise_or(lanes, scratch, out=lanes)


def _sip_round(v0: np.ndarray, v1: np.ndarray, v2: np.ndarray, v3: np.ndarray, scratch: np.ndarray) -> None:
    """One SipRound on every lane, in place (uint64 additions wrap)."""
    np.add(v0, v1, out=v0)
    _rotate_left(v1, 13, scratch)
    np.bitwise_xor(v1, v0, out=v1)
    _rotate_left(v0, 32, scratch)
    np.add(v2, v3, out=v2)
    _rotate_left(v3, 16, scratch)
    np.bitwise_xor(v3, v2, out=v3)
    np.add(v0, v3, out=v0)
    _rotate_left(v3, 21, scratch)
    np.bitwise_xor(v3, v0, out=v3)
    np.add(v2, v1, out=v2)
    _rotate_left(v1, 17, scratch)
    np.bitwise_xor(v1, v2, out=v1)
    _rotate_left(v2, 32, scratch)


def _sip_blocks(words: np.ndarray) -> np.ndarray:
    """SipHash's 64-bit message blocks, one row per block and one column per window: the little-endian bytes of
    each row of uint32 ``words`` in 8-byte blocks, the last one holding the tail (0 or 4 bytes) and the length."""
    count, width = words.shape
    full = width // 2
    blocks = np.zeros((full + 1, count), dtype=np.uint64)
    halves = blocks.view(np.uint32).reshape(full + 1, count, 2)  # [block, window, low/high 32 bits] (little-endian)
    if full:
        halves[:full] = words[:, : 2 * full].reshape(count, full, 2).transpose(1, 0, 2)
    if width % 2:
        halves[full, :, 0] = words[:, width - 1]
    halves[full, :, 1] = ((4 * width) & 0xFF) << 24  # the message length mod 256 in the top byte
    return blocks


def siphash(key: bytes, words: np.ndarray, compression_rounds: int = 2, finalization_rounds: int = 4) -> np.ndarray:
    """SipHash-c-d (default 2-4) of each row of ``words`` (count, width) taken as uint32: the standard 64-bit
    output for the byte string of the row's little-endian 32-bit words, under the 16-byte ``key``.

    Negative values wrap to uint32 as ``astype`` does (a padding id -1 is 0xFFFFFFFF)."""
    if len(key) != 16:
        raise ValueError("a SipHash key is 16 bytes")
    words = _as_windows(words)
    k0, k1 = int.from_bytes(key[:8], "little"), int.from_bytes(key[8:], "little")
    start = [np.uint64(k0 ^ _SIP_INIT[0]), np.uint64(k1 ^ _SIP_INIT[1]), np.uint64(k0 ^ _SIP_INIT[2]), np.uint64(k1 ^ _SIP_INIT[3])]
    out = np.empty(len(words), dtype=np.uint64)
    lanes = min(len(words), SIPHASH_CHUNK)
    state = np.empty((5, lanes), dtype=np.uint64)  # v0..v3 and a scratch row for the rotations
    for begin in range(0, len(words), SIPHASH_CHUNK):
        blocks = _sip_blocks(words[begin : begin + SIPHASH_CHUNK])
        count = blocks.shape[1]
        v0, v1, v2, v3, scratch = state[:, :count]
        for row, value in zip((v0, v1, v2, v3), start):
            row.fill(value)
        for block in blocks:
            np.bitwise_xor(v3, block, out=v3)
            for _ in range(compression_rounds):
                _sip_round(v0, v1, v2, v3, scratch)
            np.bitwise_xor(v0, block, out=v0)
        np.bitwise_xor(v2, _SIP_FINAL, out=v2)
        for _ in range(finalization_rounds):
            _sip_round(v0, v1, v2, v3, scratch)
        np.bitwise_xor(v0, v1, out=v0)
        np.bitwise_xor(v2, v3, out=v2)
        np.bitwise_xor(v0, v2, out=out[begin : begin + count])
    return out


def context_hasher(secret: bytes, domain: bytes, prf: str) -> ContextHasher | SipContextHasher:
    """The keyed hash of context windows that a key's ``context_prf`` names (aimark.keys.CONTEXT_PRFS), for one
    domain of keyed values."""
    if prf == "siphash24":
        return SipContextHasher(secret, domain)
    if prf == "blake2b":
        return ContextHasher(secret, domain)
    raise ValueError(f"unknown context PRF {prf!r}; expected siphash24 or blake2b")


def _as_windows(windows: np.ndarray) -> np.ndarray:
    windows = np.asarray(windows)
    if windows.ndim != 2:
        raise ValueError("windows must be a 2-D array (count, width)")
    return windows


class SipContextHasher:
    """SipHash-2-4 of fixed-width windows (rows of uint32 token ids or skeleton words) -> uint64 seeds, under a
    16-byte key derived from the secret for the domain. Picklable (it holds the derived key only)."""

    def __init__(self, secret: bytes, domain: bytes):
        self._key = derive_subkey(secret, b"siphash24:" + domain, 16)

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        return siphash(self._key, windows)


class ContextHasher:
    """BLAKE2b-keyed hash of fixed-width token windows -> uint64 seeds (``context_prf`` ``blake2b``).

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
        windows = np.ascontiguousarray(_as_windows(windows), dtype="<u4")
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
