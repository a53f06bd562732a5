"""Undo character disguises before tokenising, keeping a map back to the caller's character offsets.

The robustness suite showed that zero-width characters inserted after 20% of the characters cut
SynthID's detection at 90 tokens from 8/8 to 2/8 texts (each one splits a token and breaks every
n-gram around it), and look-alike letters cost a little too. A language model does not write
those disguises, so removing them costs no power on the text it wrote, and the p-values stay
exact: the null holds for any text chosen without the key, and the cleaning uses no key.

- Invisible format characters (Unicode category Cf: zero-width space/joiners, word joiner, BOM,
  soft hyphen, bidirectional controls) are removed. Emoji ZWJ sequences lose their joiner,
  which changes a few tokens of rare texts: a small power cost, never a false positive.
- Cyrillic and Greek letters that look Latin are folded to Latin inside words that also hold
  Latin letters (so Russian and Greek text is left alone).
- Kangxi radicals and CJK radical supplements are folded to the unified ideographs they look like
  (NFKC of those blocks only: full-width forms the model writes on purpose are kept).
"""

from __future__ import annotations

import re
import unicodedata

_LATIN_LOOKALIKES = str.maketrans(
    "аасеіјорхуѕԁһӏАВСЕНІЈКМОРТХУЅΑΒΕΖΗΙΚΜΝΟΡΤΥΧοϲ",
    "aaceijopxysdhlABCEHIJKMOPTXYSABEZHIKMNOPTYXoc",
)
_WORD = re.compile(r"\w+", re.UNICODE)
_LATIN = re.compile(r"[A-Za-z]")


def _is_radical(c: str) -> bool:
    return 0x2E80 <= ord(c) <= 0x2FDF


def _fold_word(match: re.Match) -> str:
    word = match.group(0)
    return word.translate(_LATIN_LOOKALIKES) if _LATIN.search(word) else word


def normalise_for_detection(text: str) -> tuple[str, list[int]]:
    """(cleaned text, origin) where ``origin[i]`` is the index in ``text`` of cleaned character ``i``.

    ``origin`` has one extra entry, ``len(text)``, so an exclusive end offset maps too.
    """
    kept_chars: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        if unicodedata.category(char) == "Cf":
            continue
        kept_chars.append(unicodedata.normalize("NFKC", char) if _is_radical(char) else char)
        origin.append(index)
    origin.append(len(text))
    cleaned = "".join(kept_chars)
    if len(cleaned) != len(origin) - 1:  # an NFKC radical fold widened a character: rare, keep 1:1
        cleaned = "".join(c if len(c) == 1 else text[origin[i]] for i, c in enumerate(kept_chars))
    return _WORD.sub(_fold_word, cleaned), origin


def map_offsets(offsets: list[tuple[int, int]], origin: list[int]) -> list[tuple[int, int]]:
    """Token offsets in the cleaned text -> offsets in the original text."""
    return [(origin[start], origin[end - 1] + 1 if end > start else origin[start]) for start, end in offsets]
