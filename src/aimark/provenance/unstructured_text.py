"""C2PA 2.4 Annex A.8: a manifest store carried at the end of plain text in variation selectors.

Wrapper = U+FEFF, then one variation selector per byte of: magic `C2PATXT\\0`, version 0x01, the
big-endian uint32 length of the manifest store, the store, and deterministic padding.
Byte -> code point: 0x00-0x0F -> U+FE00-U+FE0F; 0x10-0xFF -> U+E0100-U+E01EF.

Hard binding (A.8): `c2pa.hash.data` over the text with the wrapper's byte range excluded, NFC
normalised. aimark computes exclusion offsets on the text *as stored* (before NFC), removes the
excluded bytes, then normalises and hashes -- the order c2pa-unstructured-text uses, since normalising
first would shift the offsets whenever the stored text is not NFC.
"""

from __future__ import annotations

import hashlib
import re
import struct
from dataclasses import dataclass

from aimark import textbounds

MAGIC = b"C2PATXT\x00"
VERSION = 1
_HEADER = struct.Struct(">8sBI")
ZWNBSP = "\ufeff"
_SELECTOR_CLASS = "\ufe00-\ufe0f\U000e0100-\U000e01ef"
_SELECTOR_RUN = re.compile(f"[{_SELECTOR_CLASS}]+")
_CANDIDATE = re.compile(f"{ZWNBSP}[{_SELECTOR_CLASS}]+")
# Ideographic/emoji variation sequences use one selector after a base character; longer runs carry data.
_STRAY_RUN_MIN = 2
ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\u180e]")

MULTIPLE_WRAPPERS = "manifest.text.multipleWrappers"
CORRUPTED_WRAPPER = "manifest.text.corruptedWrapper"


def _byte_to_selector(value: int) -> str:
    return chr(0xFE00 + value) if value < 0x10 else chr(0xE0100 + value - 0x10)


# Byte value -> its selector, for str.translate over the bytes read as Latin-1 (one code point per byte): the
# encoding loop in C, ~5x faster than a Python generator on a manifest store of a few KB (signed per request).
_SELECTOR_OF = {value: _byte_to_selector(value) for value in range(256)}


def _selectors(data: bytes) -> str:
    return data.decode("latin-1").translate(_SELECTOR_OF)


def _selector_to_byte(char: str) -> int:
    code = ord(char)
    return code - 0xFE00 if code <= 0xFE0F else code - 0xE0100 + 0x10


def target_wrapper_length(manifest_size: int) -> int:
    """UTF-8 length of a padded wrapper: the worst case (every byte 4 UTF-8 bytes) plus a margin of 6
    so that any gap is expressible as 3a + 4b; it depends only on the store size, so the exclusion
    length can be signed before the store exists."""
    return 3 + (_HEADER.size + manifest_size) * 4 + 6


def _padding(gap: int) -> bytes:
    """Padding bytes whose selectors total `gap` UTF-8 bytes: 3-byte 0x00s, then as many 4-byte 0xFF as fit.

    Implementations disagree on the byte values (c2pa-unstructured-text pads with 0x00); these are the
    reference implementation's (c2pa-text), the only ones encypher-c2pa's verifier accepts as padding.
    """
    for fours in range(gap // 4, -1, -1):
        if (gap - 4 * fours) % 3 == 0:
            return b"\x00" * ((gap - 4 * fours) // 3) + b"\xff" * fours
    raise ValueError(f"cannot pad a gap of {gap} bytes")


def encode_wrapper(manifest_store: bytes) -> str:
    """The padded wrapper for `manifest_store` (UTF-8 length == target_wrapper_length)."""
    payload = _HEADER.pack(MAGIC, VERSION, len(manifest_store)) + manifest_store
    wrapper = ZWNBSP + _selectors(payload)
    gap = target_wrapper_length(len(manifest_store)) - len(wrapper.encode("utf-8"))
    return wrapper + _selectors(_padding(gap))


@dataclass(frozen=True)
class WrapperScan:
    """What a scan of text found: the one valid wrapper (byte offsets into the UTF-8 text), or a failure."""

    manifest_store: bytes | None = None
    start: int = 0
    length: int = 0
    failure: str | None = None
    detail: str = ""


def _decode_candidate(run: str) -> bytes | str:
    """The manifest store a FEFF + selector run carries, or a reason it is corrupted."""
    payload = bytes(_selector_to_byte(c) for c in run[1:])
    if len(payload) < _HEADER.size:
        return f"wrapper is {len(payload)} bytes, shorter than its {_HEADER.size}-byte header"
    magic, version, length = _HEADER.unpack_from(payload)
    if magic != MAGIC:
        return "wrapper magic is not C2PATXT\\0"
    if version != VERSION:
        return f"wrapper version {version} is not supported (expected {VERSION})"
    if len(payload) < _HEADER.size + length:
        return f"wrapper declares {length} manifest bytes but carries {len(payload) - _HEADER.size} (truncated)"
    return payload[_HEADER.size : _HEADER.size + length]


def scan(text: str) -> WrapperScan:
    """Find the single wrapper (A.8: exactly one; several -> multipleWrappers, undecodable -> corruptedWrapper)."""
    candidates = list(_CANDIDATE.finditer(text))
    if not candidates:
        # A long selector run with no FEFF in front is a wrapper whose marker was lost.
        for run in _SELECTOR_RUN.finditer(text):
            if len(run.group()) >= _HEADER.size and isinstance(_decode_candidate(ZWNBSP + run.group()), bytes):
                return WrapperScan(failure=CORRUPTED_WRAPPER, detail="wrapper found without its U+FEFF marker")
        return WrapperScan()
    if len(candidates) > 1:
        return WrapperScan(failure=MULTIPLE_WRAPPERS, detail=f"{len(candidates)} wrappers found; exactly one is allowed")
    match = candidates[0]
    decoded = _decode_candidate(match.group())
    if isinstance(decoded, str):
        return WrapperScan(failure=CORRUPTED_WRAPPER, detail=decoded)
    start = len(text[: match.start()].encode("utf-8"))
    return WrapperScan(manifest_store=decoded, start=start, length=len(match.group().encode("utf-8")))


def hashed_text(data: bytes, exclusions: list[tuple[int, int]]) -> bytes:
    """The bytes A.8 hashes: `data` without the excluded ranges, decoded, NFC normalised, re-encoded."""
    kept = bytearray()
    position = 0
    for start, length in sorted(exclusions):
        kept += data[position:start]
        position = start + length
    kept += data[position:]
    # The same NFC as unicodedata's, for every input, without its quadratic cost on runs of marks.
    return textbounds.normalize("NFC", kept.decode("utf-8")).encode("utf-8")


def data_hash(data: bytes, exclusions: list[tuple[int, int]]) -> bytes:
    return hashlib.sha256(hashed_text(data, exclusions)).digest()


def stray_selector_runs(visible_text: str) -> int:
    """How many runs of two or more variation selectors the text (wrapper removed) holds: hidden data."""
    return sum(1 for run in _SELECTOR_RUN.finditer(visible_text) if len(run.group()) >= _STRAY_RUN_MIN)
