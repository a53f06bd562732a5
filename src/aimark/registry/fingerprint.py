"""Fingerprints of issued text that survive small edits: winnowed hashes of word n-grams.

Winnowing (Schleimer, Wilkerson, Aiken, SIGMOD 2003): hash every n-gram of normalised tokens, then keep
the minimum hash of each window of ``window`` consecutive n-gram hashes. Two texts sharing a passage of at
least ``ngram + window - 1`` tokens share at least one fingerprint, and an edit disturbs only the
fingerprints whose n-grams it touches, so the share of fingerprints two texts have in common measures how
much of one is copied in the other.

Normalisation drops what a copy-and-paste or a re-labelling changes without changing the content: aimark's
own notice lines, the C2PA text wrapper, invisible characters, case, width (NFKC) and whitespace. Chinese,
Japanese and Korean characters count as one token each (no spaces to split on).

Hashes are keyed with the registry's own secret (keyed BLAKE2b, RFC 7693, for the n-grams; HMAC-SHA256 for
the content hash): without the secret, a copy of the database cannot be tested for a guessed text, and two
registries holding the same text store unrelated values. ``secret=None`` gives the unkeyed values that
registries before keying stored, so their records stay findable until retention removes them.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field

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

    content_sha256: str  # keyed SHA-256 of the normalised content: equal for exact copies, labelled or not
    hashes: frozenset[int]  # winnowed n-gram hashes
    num_tokens: int
    # Every n-gram hash (not only the winnowed ones) -> the token positions where that n-gram starts;
    # tells a lookup how much of the text a set of shared hashes covers.
    positions: dict[int, tuple[int, ...]] = field(default_factory=dict, compare=False, repr=False)

    def covered_tokens(self, shared: frozenset[int] | set[int], *, ngram: int = NGRAM) -> int:
        """How many of this text's tokens lie in an n-gram whose hash is in ``shared``."""
        if self.num_tokens < ngram:
            return self.num_tokens if shared & self.hashes else 0
        covered: set[int] = set()
        for value in shared:
            for start in self.positions.get(value, ()):
                covered.update(range(start, start + ngram))
        return len(covered)


def content_text(text: str) -> str:
    """The generated content: without aimark's notice lines and the C2PA A.8 / A.9 carriers."""
    from aimark.labels import remove_label_text
    from aimark.provenance import structured_text

    text = structured_text.without_manifest_lines(text)
    text = _INVISIBLE.sub("", text)
    return remove_label_text(text)[0]


def normalised_tokens(text: str) -> list[str]:
    # unicodedata's NFKC, without its quadratic cost on runs of combining marks
    from aimark.textbounds import normalize

    return _TOKEN.findall(normalize("NFKC", content_text(text)).casefold())


def _hash(value: str, secret: bytes | None = None) -> int:
    digest = hashlib.blake2b(value.encode("utf-8"), digest_size=8, person=b"aimark-winnow", key=secret or b"").digest()
    return int.from_bytes(digest, "big") & _HASH_MASK


def _gram_hashes(tokens: list[str], ngram: int, secret: bytes | None) -> list[int]:
    if len(tokens) < ngram:
        return [_hash("\x1f".join(tokens), secret)] if tokens else []
    return [_hash("\x1f".join(tokens[i : i + ngram]), secret) for i in range(len(tokens) - ngram + 1)]


def _winnowed(grams: list[int], window: int) -> frozenset[int]:
    if not grams:
        return frozenset()
    if len(grams) <= window:
        return frozenset({min(grams)})
    return frozenset(min(grams[i : i + window]) for i in range(len(grams) - window + 1))


def winnow(tokens: list[str], *, ngram: int = NGRAM, window: int = WINDOW, secret: bytes | None = None) -> frozenset[int]:
    """The winnowed n-gram hashes; a text shorter than one n-gram gets the hash of all its tokens."""
    return _winnowed(_gram_hashes(tokens, ngram, secret), window)


def fingerprint(text: str, secret: bytes | None = None) -> TextFingerprint:
    """The text's fingerprint, keyed with ``secret`` (a registry's); unkeyed (legacy values) without one."""
    tokens = normalised_tokens(text)
    canonical = " ".join(tokens).encode("utf-8")
    content = hmac.new(secret, canonical, "sha256").hexdigest() if secret else hashlib.sha256(canonical).hexdigest()
    grams = _gram_hashes(tokens, NGRAM, secret)
    positions: dict[int, list[int]] = {}
    for start, value in enumerate(grams):
        positions.setdefault(value, []).append(start)
    return TextFingerprint(content, _winnowed(grams, WINDOW), len(tokens),
                           {value: tuple(starts) for value, starts in positions.items()})


def sha256_text(text: str) -> str:
    """SHA-256 of the text exactly as issued (UTF-8)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
