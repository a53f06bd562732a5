"""Fingerprints of issued text that survive small edits: winnowed hashes of word n-grams.

Winnowing (Schleimer, Wilkerson, Aiken, SIGMOD 2003): hash every n-gram of normalised tokens, then keep
the minimum hash of each window of ``window`` consecutive n-gram hashes. Two texts sharing a passage of at
least ``ngram + window - 1`` tokens share at least one fingerprint, and an edit disturbs only the
fingerprints whose n-grams it touches, so the share of fingerprints two texts have in common measures how
much of one is copied in the other.

Normalisation drops what a copy-and-paste or a re-labelling changes without changing the content: aimark's
own notice lines, the C2PA text wrapper, invisible characters, case, width (NFKC) and whitespace. Chinese,
Japanese and Korean characters count as one token each (no spaces to split on).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

NGRAM = 5
WINDOW = 4
# 63-bit hashes fit a signed BIGINT column in every SQL database.
_HASH_MASK = (1 << 63) - 1

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+", re.UNICODE)
# Zero-width and variation-selector characters: the A.8 wrapper and invisible padding a copy may keep or lose.
_INVISIBLE = re.compile("[\u200b-\u200f\u2060-\u2064\ufeff\ufe00-\ufe0f\U000e0100-\U000e01ef]")


@dataclass(frozen=True)
class TextFingerprint:
    """What the registry stores about a text, and what a lookup compares."""

    content_sha256: str  # SHA-256 of the normalised content: equal for exact copies, labelled or not
    hashes: frozenset[int]  # winnowed n-gram hashes
    num_tokens: int


def content_text(text: str) -> str:
    """The generated content: without aimark's notice lines and the C2PA A.8 / A.9 carriers."""
    from aimark.labels import remove_label_text
    from aimark.provenance import structured_text

    text = structured_text.without_manifest_lines(text)
    text = _INVISIBLE.sub("", text)
    return remove_label_text(text)[0]


def normalised_tokens(text: str) -> list[str]:
    return _TOKEN.findall(unicodedata.normalize("NFKC", content_text(text)).casefold())


def _hash(value: str) -> int:
    digest = hashlib.blake2b(value.encode("utf-8"), digest_size=8, person=b"aimark-winnow").digest()
    return int.from_bytes(digest, "big") & _HASH_MASK


def winnow(tokens: list[str], *, ngram: int = NGRAM, window: int = WINDOW) -> frozenset[int]:
    """The winnowed n-gram hashes; a text shorter than one n-gram gets the hash of all its tokens."""
    if not tokens:
        return frozenset()
    if len(tokens) < ngram:
        return frozenset({_hash("\x1f".join(tokens))})
    grams = [_hash("\x1f".join(tokens[i : i + ngram])) for i in range(len(tokens) - ngram + 1)]
    if len(grams) <= window:
        return frozenset({min(grams)})
    return frozenset(min(grams[i : i + window]) for i in range(len(grams) - window + 1))


def fingerprint(text: str) -> TextFingerprint:
    tokens = normalised_tokens(text)
    canonical = " ".join(tokens)
    return TextFingerprint(hashlib.sha256(canonical.encode("utf-8")).hexdigest(), winnow(tokens), len(tokens))


def sha256_text(text: str) -> str:
    """SHA-256 of the text exactly as issued (UTF-8)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
