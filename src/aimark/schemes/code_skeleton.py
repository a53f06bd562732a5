"""Formatter-invariant units for program code: a key with ``"units": "code-skeleton"``.

A formatter (black, ruff format, prettier) rewrites what a program looks like and never what it
means: whitespace and line breaks, quote style, trailing commas, redundant parentheses, the case of
hex digits and string prefixes, semicolons. Token-id contexts see all of it: after ``black`` most
keyed (context, token) pairs of a generated file are gone, and with them the watermark.

Here both halves of a keyed pair are read through the token's *skeleton*, its bytes with what
formatters change removed (:data:`DROPPED_BYTES`) or folded (``'`` to ``"``, ASCII letters to lower
case):

- the **unit** of a token is a hash of its skeleton (``" x"``, ``"x"`` and ``"x,"`` are one unit);
  tokens with an empty skeleton (layout, commas, brackets formatters add) are never scored, and at
  generation they keep the model's probability: the key decides only *which* content unit comes
  next, never *whether* layout does. A layout token leaves the context as it was, so a keyed
  layout-or-content choice would be made again and again with the same keyed values (a watermark
  that favoured layout at a context would then loop on blank lines);
- the **context** of a position is the last :data:`CONTEXT_BYTES` skeleton bytes before it, found in
  the last :data:`WINDOW_TOKENS` tokens: a formatter that moves a line break or adds a space leaves it
  the same. A position with fewer skeleton bytes in its window has no context and is neither
  watermarked nor scored.

Detection still needs only the text, the tokenizer and the key, and the units are fixed by the text
alone, so each kept unit's value is an independent draw from the scheme's null: p-values stay exact.
Where a formatter re-segments a token (``=b`` into ``=`` and ``b``) that unit is lost, but the context
of the next one is not.

Candidates that share a unit get one keyed value, so the scheme reweights *units*: the model's mass is
summed per unit, the scheme moves the content units' share between them, and within a unit tokens keep
the model's own proportions. That is exactly SynthID's tournament applied per unit, and keeps Gumbel sampling
distortion-free (its race over tokens with a shared uniform would always pick the likeliest of them).

The constants below are part of what ``code-skeleton`` means: changing one is a new unit name.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

import numpy as np

from aimark.schemes.base import PositionScores, WatermarkScheme

UNITS = "code-skeleton"
#: Bytes formatters add or remove without changing a program: ASCII whitespace, commas (trailing
#: commas), parentheses (black's redundant ones, prettier's around arrow parameters), semicolons
#: (prettier adds them, black splits ``a; b``) and backslash line continuations.
DROPPED_BYTES = b" \t\n\r\f\v,();\\"
#: Skeleton bytes of context per position (a multiple of 4: the context hash reads 32-bit words).
CONTEXT_BYTES = 12
#: How far back (in tokens) the context is looked for; a formatter never puts this many
#: layout-only tokens between two bytes of content.
WINDOW_TOKENS = 64
# The first word of every hashed context: 0xFFFFFFFF is no token id, so skeleton contexts and token-id
# windows never hash the same input under one key.
_CONTEXT_MARKER = np.uint32(0xFFFFFFFF)
_FOLD = bytes.maketrans(b"'ABCDEFGHIJKLMNOPQRSTUVWXYZ", b'"abcdefghijklmnopqrstuvwxyz')
_BYTE_FALLBACK = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def skeleton(data: bytes) -> bytes:
    """``data`` without what formatters change (:data:`DROPPED_BYTES` dropped, quotes and case folded)."""
    return data.translate(_FOLD, DROPPED_BYTES)


def _gpt2_byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's ``bytes_to_unicode``: byte-level BPE vocabularies spell byte b as this character."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return {chr(code): byte for byte, code in zip(printable, codes)}


def _decoder_kind(tokenizer) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None) or getattr(tokenizer, "backend", None)
    decoder = getattr(backend, "decoder", None)
    return type(decoder).__name__ if decoder is not None else ""


def vocabulary_bytes(tokenizer) -> list[bytes]:
    """Each token id's bytes as it appears in decoded text (special tokens: empty).

    Read from the vocabulary's own spelling rather than by decoding ids one at a time, which turns
    the pieces of a multi-byte character into U+FFFD: byte-level BPE (GPT-2, Qwen) through its byte
    alphabet, SentencePiece (Gemma) with ``▁`` as a space and ``<0xNN>`` byte pieces.
    """
    size = len(tokenizer)
    by_id = {index: token for token, index in tokenizer.get_vocab().items()}
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    byte_level = _decoder_kind(tokenizer) == "ByteLevel"
    decoder = _gpt2_byte_decoder() if byte_level else None
    out: list[bytes] = []
    for index in range(size):
        token = by_id.get(index)
        if token is None or index in special:
            out.append(b"")
        elif byte_level and all(char in decoder for char in token):
            out.append(bytes(decoder[char] for char in token))
        elif (match := _BYTE_FALLBACK.fullmatch(token)) is not None:
            out.append(bytes([int(match.group(1), 16)]))
        else:
            out.append(token.replace("▁", " ").encode("utf-8"))
    return out


class SkeletonVocabulary:
    """Per token id: its skeleton bytes, their length and its unit (0 when the skeleton is empty)."""

    def __init__(self, token_bytes: list[bytes]):
        self.skeletons = [skeleton(b) for b in token_bytes]
        self.lengths = np.fromiter((len(s) for s in self.skeletons), dtype=np.int64, count=len(self.skeletons))
        # An unkeyed hash is enough: the key enters through the context seed each unit is paired with.
        # The top bit is cleared so units stay valid as int64 token ids wherever schemes cast them.
        digests = b"".join(
            hashlib.blake2b(s, digest_size=8, person=b"aimark-skeleton").digest() if s else bytes(8) for s in self.skeletons
        )
        self.units = (np.frombuffer(digests, dtype="<u8") & np.uint64(0x7FFF_FFFF_FFFF_FFFF)).astype(np.int64)

    def __len__(self) -> int:
        return len(self.skeletons)

    def __getstate__(self):  # rebuilt from the skeletons in each worker (the arrays are derived)
        return {"skeletons": self.skeletons}

    def __setstate__(self, state):
        self.__init__(state["skeletons"])  # skeleton() of a skeleton is itself

    def unit_ids(self, token_ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(token_ids, dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= len(self)):
            raise ValueError(f"token id outside the {len(self)}-token vocabulary of this key's tokenizer")
        return self.units[ids]

    def contexts(self, token_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions with a full context, their context words (rows of 1 + CONTEXT_BYTES/4 uint32))."""
        ids = np.asarray(token_ids, dtype=np.int64)
        lengths = self.lengths[ids]
        ends = np.concatenate(([0], np.cumsum(lengths)))  # ends[t]: skeleton bytes before position t
        window_starts = ends[np.maximum(np.arange(len(ids)) - WINDOW_TOKENS, 0)]
        starts = ends[:-1] - CONTEXT_BYTES
        positions = np.flatnonzero(starts >= window_starts[: len(ids)])
        if not len(positions):
            return positions, np.empty((0, 1 + CONTEXT_BYTES // 4), dtype=np.int64)
        stream = np.frombuffer(b"".join([self.skeletons[i] for i in ids.tolist()]), dtype=np.uint8)
        context_bytes = stream[starts[positions][:, None] + np.arange(CONTEXT_BYTES)]
        return positions, _context_words(context_bytes)

    def last_context(self, recent_ids) -> np.ndarray | None:
        """The context words of the position after ``recent_ids`` (its last tokens), ``None`` without a full one."""
        tail = b"".join(self.skeletons[i] for i in list(recent_ids)[-WINDOW_TOKENS:])
        if len(tail) < CONTEXT_BYTES:
            return None
        return _context_words(np.frombuffer(tail[-CONTEXT_BYTES:], dtype=np.uint8)[None, :])[0]


def _context_words(context_bytes: np.ndarray) -> np.ndarray:
    words = np.ascontiguousarray(context_bytes, dtype=np.uint8).view("<u4").astype(np.int64)
    marker = np.full((len(words), 1), int(_CONTEXT_MARKER), dtype=np.int64)
    return np.hstack([marker, words])


@lru_cache(maxsize=4)
def _vocabulary_for(fingerprint: str, tokenizer_ref) -> SkeletonVocabulary:
    return SkeletonVocabulary(vocabulary_bytes(tokenizer_ref.tokenizer))


class _TokenizerRef:
    """Hashes as its fingerprint, so the vocabulary cache holds one entry per tokenizer, not per object."""

    def __init__(self, tokenizer, fingerprint: str):
        self.tokenizer, self.fingerprint = tokenizer, fingerprint

    def __hash__(self):
        return hash(self.fingerprint)

    def __eq__(self, other):
        return isinstance(other, _TokenizerRef) and other.fingerprint == self.fingerprint


def skeleton_vocabulary(tokenizer) -> SkeletonVocabulary:
    """The tokenizer's :class:`SkeletonVocabulary`, built once per vocabulary in a process (~0.5 s for 262k tokens)."""
    from aimark.keys import tokenizer_fingerprint

    fingerprint = getattr(tokenizer, "_aimark_fingerprint", None) or tokenizer_fingerprint(tokenizer.get_vocab())
    return _vocabulary_for(fingerprint, _TokenizerRef(tokenizer, fingerprint))


class SkeletonScheme(WatermarkScheme):
    """``inner`` (a keyed SynthID or Gumbel scheme) with code-skeleton contexts and units."""

    pads_context = False

    def __init__(self, inner: WatermarkScheme, vocabulary: SkeletonVocabulary):
        # No super().__init__: the key was read by ``inner``; everything key-derived is delegated.
        self.inner = inner
        self.vocabulary = vocabulary
        self.name, self.key_id, self.mode = inner.name, inner.key_id, inner.mode
        self.masks_repeated_contexts = inner.masks_repeated_contexts
        self.context_history_size = inner.context_history_size
        self.context_width = WINDOW_TOKENS  # generation hands over this many recent ids
        self.units = UNITS

    def __getattr__(self, name):  # depth, scored_layers, … of the inner scheme
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    # -- contexts -------------------------------------------------------------------------
    def context_keys(self, windows: np.ndarray) -> np.ndarray:
        """Keys of context words (rows from :meth:`SkeletonVocabulary.contexts`), not of token windows."""
        return self.inner.context_keys(windows)

    def generation_contexts(self, recent: np.ndarray, pad_token_id: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        # Special tokens (BOS, turn markers) have empty skeletons; padding (``pad_token_id``, or any negative id
        # an engine pads short rows with) is skipped the same way.
        words = []
        for row in np.asarray(recent, dtype=np.int64).tolist():
            ids = [i for i in row if i >= 0 and i != pad_token_id]
            words.append(self.vocabulary.last_context(ids))
        rows = np.asarray([i for i, w in enumerate(words) if w is not None], dtype=np.int64)
        if not len(rows):
            return rows, np.empty(0, dtype=np.uint64)
        return rows, self.context_keys(np.stack([words[i] for i in rows]))

    def scored_tokens(self, token_ids: np.ndarray) -> np.ndarray:
        return self.vocabulary.unit_ids(token_ids) != 0

    def unit_of(self, token_ids: np.ndarray) -> np.ndarray:
        return self.vocabulary.unit_ids(token_ids)

    def bits(self, context_keys, units):
        return self.inner.bits(context_keys, units)

    def expected_bit_excess(self, log_probs, candidates):
        """The inner scheme's, over the content units a scored token is drawn among (layout keeps the model's
        probability at generation and is never scored)."""
        merged, unit_ids, _ = _merge_units(np.asarray(log_probs, dtype=np.float64), self.vocabulary.unit_ids(candidates))
        content = np.where(unit_ids == 0, -np.inf, merged)
        return self.inner.expected_bit_excess(content, unit_ids)

    # -- generation -----------------------------------------------------------------------
    def reweight(self, log_probs, candidates, windows, context_keys):
        units = self.vocabulary.unit_ids(candidates)
        unit_log_probs, unit_ids, member_of = _merge_units(log_probs, units)
        layout = (unit_ids == 0) & np.isfinite(unit_log_probs)
        content = np.where(layout, -np.inf, unit_log_probs)
        with np.errstate(divide="ignore"):
            content_mass = np.log(np.exp(content).sum(axis=1, keepdims=True))  # log P(content) per row
        has_content = np.isfinite(content_mass[:, 0])
        unit_weights = unit_log_probs.copy()  # rows with only layout candidates: the model's own
        if has_content.any():
            rows = np.flatnonzero(has_content)
            weights = self.inner.reweight(
                content[rows] - content_mass[rows], unit_ids[rows], None if windows is None else windows[rows], context_keys[rows]
            )
            with np.errstate(invalid="ignore"):
                peak = np.where(np.isfinite(weights), weights, -np.inf).max(axis=1, keepdims=True)
                weights = weights - peak - np.log(np.exp(weights - peak).sum(axis=1, keepdims=True))
            # The keyed content distribution carries the content's share; layout keeps the model's.
            unit_weights[rows] = np.where(layout[rows], unit_log_probs[rows], weights + content_mass[rows])
        rows = np.arange(len(log_probs))[:, None]
        with np.errstate(invalid="ignore"):
            # Within a unit, tokens keep the model's proportions: weight = unit weight * p_i / P_unit.
            out = unit_weights[rows, member_of] + log_probs - unit_log_probs[rows, member_of]
        return np.where(np.isfinite(log_probs), out, -np.inf)

    def tilt(self, context_keys, candidates):
        return self.inner.tilt(context_keys, self.vocabulary.unit_ids(candidates))

    def with_scored_layers(self, layers: int) -> SkeletonScheme:
        return SkeletonScheme(self.inner.with_scored_layers(layers), self.vocabulary)

    # -- detection ------------------------------------------------------------------------
    def _scored_positions(self, token_ids: np.ndarray):
        ids = np.asarray(token_ids, dtype=np.int64)
        positions, words = self.vocabulary.contexts(ids)
        units = self.vocabulary.unit_ids(ids[positions])
        content = units != 0  # a layout-only token is not a unit: formatters add and remove those
        return words[content], positions[content], units[content]

    def score_windows(self, windows, positions, tokens) -> PositionScores:
        return self.inner.score_windows(windows, positions, tokens)

    @property
    def null(self):
        return self.inner.null

    def token_scores(self, values):
        return self.inner.token_scores(values)


def _merge_units(log_probs: np.ndarray, units: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row, candidates merged by unit: (log of each unit's summed probability, the unit ids, and for
    each candidate the column of its unit). Columns past a row's last unit are padding (-inf, unit 0)."""
    rows, k = log_probs.shape
    merged = np.full((rows, k), -np.inf)
    unit_ids = np.zeros((rows, k), dtype=np.int64)
    member_of = np.zeros((rows, k), dtype=np.int64)
    for row in range(rows):
        live = np.isfinite(log_probs[row])
        distinct, column = np.unique(units[row], return_inverse=True)
        member_of[row] = column
        unit_ids[row, : len(distinct)] = distinct
        probs = np.zeros(len(distinct))
        np.add.at(probs, column[live], np.exp(log_probs[row][live]))
        with np.errstate(divide="ignore"):
            merged[row, : len(distinct)] = np.log(probs)
    return merged, unit_ids, member_of
