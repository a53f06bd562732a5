"""Language-aware attacks on watermarked text: each is a pure function ``(text, strength, rng) -> text``.

Words come from a real segmenter per language (kiwipiepy for Korean, SudachiPy for Japanese,
jieba for Chinese, a Unicode word pattern for English), never from splitting on spaces, which
does nothing sensible to Chinese or Japanese. ``strength`` is the share of units touched
(0.0 = unchanged); ``rng`` is a ``random.Random`` so every attack is reproducible.

Why here and not in the library: attacks exist to measure the schemes, the segmenters are large
optional packages (the ``bench`` extra), and nothing that detects or generates needs them.

``attacks_for(language)`` gives the table the suite runs; ``token_attacks(tokenizer)`` edits
the model's own tokens; ``copy_paste(human_texts)`` mixes a watermarked span into human text;
``model_rewrites`` (paraphrase, translation round trip) need the local model and run in batches.
"""

from __future__ import annotations

import itertools
import random
import re
import unicodedata
from collections.abc import Callable, Sequence
from functools import cache, lru_cache, partial

Attack = Callable[[str, float, random.Random], str]

LANGUAGES = ("ko", "ja", "zh", "en")
_ENGLISH_WORD = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]", re.UNICODE)
_SENTENCE_END = {
    "ja": re.compile(r"(?<=[。！？!?])"),
    "zh": re.compile(r"(?<=[。！？!?；])"),
    "en": re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])"),
}
ZERO_WIDTH = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff")
# Look-alikes that survive copy-paste: Cyrillic for Latin, Kangxi radicals for common CJK ideographs
# (NFKC folds the radicals back, which is why normalising before detection is the defence).
HOMOGLYPHS = {
    "a": "а", "c": "с", "e": "е", "i": "і", "o": "о", "p": "р", "x": "х", "y": "у", "s": "ѕ",
    "A": "А", "B": "В", "C": "С", "E": "Е", "H": "Н", "K": "К", "M": "М", "O": "О", "P": "Р", "T": "Т",
    "一": "⼀", "二": "⼆", "人": "⼈", "入": "⼊", "八": "⼋", "力": "⼒", "十": "⼗", "口": "⼝", "土": "⼟",
    "大": "⼤", "女": "⼥", "子": "⼦", "山": "⼭", "工": "⼯", "心": "⼼", "日": "⽇", "月": "⽉", "木": "⽊",
    "水": "⽔", "火": "⽕", "生": "⽣", "田": "⽥", "目": "⽬", "金": "⾦", "長": "⾧", "門": "⾨", "車": "⾞",
}  # fmt: skip


# -- segmentation --------------------------------------------------------------------------------
@cache
def _kiwi():
    from kiwipiepy import Kiwi

    return Kiwi()


@cache
def _sudachi():
    from sudachipy import Dictionary

    return Dictionary(dict="core").tokenizer()


def _jieba():
    import jieba

    jieba.setLogLevel(60)  # its dictionary-loading chatter goes to stderr otherwise
    return jieba


def word_spans(text: str, language: str) -> list[tuple[int, int]]:
    """Non-overlapping (start, end) character spans of the words (morphemes for ko/ja) of ``text``."""
    return list(_word_spans(text, language))


# The suite attacks each text dozens of times; Kiwi's analysis alone is ~24 ms per 300-token text.
@lru_cache(maxsize=4096)
def _word_spans(text: str, language: str) -> tuple[tuple[int, int], ...]:
    if language == "ko":
        raw = [(t.start, t.start + t.len) for t in _kiwi().tokenize(text)]
    elif language == "ja":
        from sudachipy import SplitMode

        raw = [(m.begin(), m.end()) for m in _sudachi().tokenize(text, SplitMode.C)]
    elif language == "zh":
        raw = [(start, end) for _, start, end in _jieba().tokenize(text)]
    elif language == "en":
        raw = [match.span() for match in _ENGLISH_WORD.finditer(text)]
    else:
        raise ValueError(f"no segmenter for language {language!r}")
    spans: list[tuple[int, int]] = []
    for start, end in sorted(raw):
        if text[start:end].isspace() or end <= start:
            continue
        if spans and start < spans[-1][1]:  # analysers may overlap on contractions: merge
            spans[-1] = (spans[-1][0], max(end, spans[-1][1]))
        else:
            spans.append((start, end))
    return tuple(spans)


def sentences(text: str, language: str) -> list[str]:
    """Sentences whose concatenation is ``text`` (separators stay attached to the sentence before)."""
    return list(_sentences(text, language))


@lru_cache(maxsize=4096)
def _sentences(text: str, language: str) -> tuple[str, ...]:
    if language == "ko":
        cuts = [s.end for s in _kiwi().split_into_sents(text)]
    else:
        cuts = [m.end() for m in _SENTENCE_END[language].finditer(text)]
    pieces, start = [], 0
    for cut in [*cuts, len(text)]:
        if cut > start:
            pieces.append(text[start:cut])
            start = cut
    return tuple(pieces)


def _chosen(count: int, strength: float, rng: random.Random) -> set[int]:
    if not 0 <= strength <= 1:
        raise ValueError("strength must be in [0, 1]")
    return set(rng.sample(range(count), round(count * strength))) if count else set()


def _rebuild(text: str, spans: Sequence[tuple[int, int]], replace: dict[int, str]) -> str:
    out, last = [], 0
    for index, (start, end) in enumerate(spans):
        out.append(text[last:start])
        out.append(replace.get(index, text[start:end]))
        last = end
    out.append(text[last:])
    return "".join(out)


# -- word level ----------------------------------------------------------------------------------
def word_deletion(text: str, strength: float, rng: random.Random, *, language: str) -> str:
    spans = word_spans(text, language)
    return _rebuild(text, spans, {i: "" for i in _chosen(len(spans), strength, rng)})


def word_insertion(text: str, strength: float, rng: random.Random, *, language: str) -> str:
    """Insert words drawn from the text itself (same language and register) after chosen words."""
    spans = word_spans(text, language)
    words = [text[s:e] for s, e in spans]
    glue = " " if language in ("ko", "en") else ""
    return _rebuild(text, spans, {i: words[i] + glue + rng.choice(words) for i in _chosen(len(spans), strength, rng)})


def word_substitution(text: str, strength: float, rng: random.Random, *, language: str) -> str:
    """Replace chosen words by other words of the text (a lexical substitution without a thesaurus)."""
    spans = word_spans(text, language)
    words = [text[s:e] for s, e in spans]
    return _rebuild(text, spans, {i: rng.choice(words) for i in _chosen(len(spans), strength, rng)})


# -- character level -----------------------------------------------------------------------------
def _letter_positions(text: str) -> list[int]:
    return [i for i, c in enumerate(text) if not c.isspace()]


def _edit_characters(text: str, strength: float, rng: random.Random, edit: Callable[[str, list[str]], str]) -> str:
    positions = _letter_positions(text)
    letters = [text[i] for i in positions]
    chosen = {positions[k] for k in _chosen(len(positions), strength, rng)}
    return "".join(edit(c, letters) if i in chosen else c for i, c in enumerate(text))


def char_deletion(text: str, strength: float, rng: random.Random) -> str:
    return _edit_characters(text, strength, rng, lambda c, letters: "")


def char_insertion(text: str, strength: float, rng: random.Random) -> str:
    return _edit_characters(text, strength, rng, lambda c, letters: c + rng.choice(letters))


def char_substitution(text: str, strength: float, rng: random.Random) -> str:
    return _edit_characters(text, strength, rng, lambda c, letters: rng.choice(letters))


# -- spacing, width, Unicode -----------------------------------------------------------------------
def korean_spacing(text: str, strength: float, rng: random.Random) -> str:
    """Korean spacing errors: drop spaces between eojeol and split eojeol at morpheme boundaries."""
    spaces = [m.start() for m in re.finditer(r" ", text)]
    dropped = {spaces[k] for k in _chosen(len(spaces), strength, rng)}
    boundaries = sorted({start for start, _ in word_spans(text, "ko")} - {0})
    inner = [b for b in boundaries if not text[b - 1].isspace() and not text[b].isspace()]
    added = {inner[k] for k in _chosen(len(inner), strength, rng)}
    return "".join(("" if i in dropped else (" " + c if i in added else c)) for i, c in enumerate(text))


def _toggle_width(c: str) -> str:
    code = ord(c)
    if 0x21 <= code <= 0x7E:
        return chr(code + 0xFEE0)  # ASCII -> full width
    if 0xFF01 <= code <= 0xFF5E:
        return chr(code - 0xFEE0)  # full width -> ASCII
    if c == " ":
        return "\u3000"
    if c == "\u3000":
        return " "
    return c


def width_change(text: str, strength: float, rng: random.Random) -> str:
    """Swap full-width and half-width forms (digits, Latin, punctuation, spaces) for a share of them."""
    eligible = [i for i, c in enumerate(text) if _toggle_width(c) != c]
    chosen = {eligible[k] for k in _chosen(len(eligible), strength, rng)}
    return "".join(_toggle_width(c) if i in chosen else c for i, c in enumerate(text))


def unicode_normalisation(text: str, strength: float, rng: random.Random, *, form: str, language: str) -> str:
    """Apply NFC/NFD/NFKC/NFKD to a share of the sentences (NFD turns Hangul into conjoining jamo)."""
    parts = sentences(text, language)
    chosen = _chosen(len(parts), strength, rng)
    return "".join(unicodedata.normalize(form, p) if i in chosen else p for i, p in enumerate(parts))


def zero_width_insertion(text: str, strength: float, rng: random.Random) -> str:
    return _edit_characters(text, strength, rng, lambda c, letters: c + rng.choice(ZERO_WIDTH))


def homoglyph_substitution(text: str, strength: float, rng: random.Random) -> str:
    eligible = [i for i, c in enumerate(text) if c in HOMOGLYPHS]
    chosen = {eligible[k] for k in _chosen(len(eligible), strength, rng)}
    return "".join(HOMOGLYPHS[c] if i in chosen else c for i, c in enumerate(text))


# -- structure -----------------------------------------------------------------------------------
def sentence_shuffle(text: str, strength: float, rng: random.Random, *, language: str) -> str:
    """Rotate a random share of the sentences among their places, so every chosen sentence moves."""
    parts = sentences(text, language)
    moved = sorted(_chosen(len(parts), strength, rng))
    originals = [parts[i] for i in moved]
    for k, index in enumerate(moved):
        parts[index] = originals[(k + 1) % len(moved)]
    return "".join(parts)


def truncation(text: str, strength: float, rng: random.Random, *, language: str) -> str:
    """Keep the first (1 - strength) of the words, cut at a word boundary."""
    spans = word_spans(text, language)
    keep = len(spans) - round(len(spans) * strength)
    return text[: spans[keep - 1][1]] if keep > 0 else ""


def copy_paste(text: str, strength: float, rng: random.Random, *, human_texts: Sequence[str], language: str) -> str:
    """Embed ``text`` in human text so that it makes up ``strength`` of the result (by characters).

    The watermarked text goes in at a sentence boundary of the human text; strength 1 returns it alone.
    """
    if not 0 < strength <= 1:
        raise ValueError("copy-paste strength is the watermarked share, in (0, 1]")
    needed = round(len(text) * (1 - strength) / strength)
    human = ""
    while len(human) < needed:  # cycle through the pool when it is short
        human += rng.choice(human_texts) + "\n"
    human = human[:needed]
    cuts = [0, *itertools.accumulate(len(sentence) for sentence in sentences(human, language))]
    cut = rng.choice(cuts) if human else 0
    return human[:cut] + text + human[cut:]


# -- the model's own tokens ----------------------------------------------------------------------
def token_edit(text: str, strength: float, rng: random.Random, *, tokenizer, operation: str) -> str:
    """Delete, insert or substitute a share of the model tokens; inserted tokens come from the text itself.

    This is the edit the target is stated in ("20% random token edits"), independent of any segmenter.
    """
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    chosen = _chosen(len(ids), strength, rng)
    out: list[int] = []
    for index, token in enumerate(ids):
        if index not in chosen:
            out.append(token)
        elif operation == "substitute":
            out.append(rng.choice(ids))
        elif operation == "insert":
            out.extend((token, rng.choice(ids)))
        elif operation != "delete":
            raise ValueError(f"unknown token operation {operation!r}")
    return tokenizer.decode(out, skip_special_tokens=True)


def token_attacks(tokenizer) -> dict[str, Attack]:
    return {f"token-{op}": partial(token_edit, tokenizer=tokenizer, operation=op) for op in ("delete", "insert", "substitute")}


def attacks_for(language: str) -> dict[str, Attack]:
    """Every text attack that makes sense for ``language``, by name."""
    if language not in LANGUAGES:
        raise ValueError(f"no attacks for language {language!r}")
    table: dict[str, Attack] = {
        "word-delete": partial(word_deletion, language=language),
        "word-insert": partial(word_insertion, language=language),
        "word-substitute": partial(word_substitution, language=language),
        "char-delete": char_deletion,
        "char-insert": char_insertion,
        "char-substitute": char_substitution,
        "width": width_change,
        "nfkc": partial(unicode_normalisation, form="NFKC", language=language),
        "zero-width": zero_width_insertion,
        "sentence-shuffle": partial(sentence_shuffle, language=language),
        "truncate": partial(truncation, language=language),
    }
    if language in ("ko", "ja"):  # NFD splits Hangul into jamo and kana from their voicing marks
        table["nfd"] = partial(unicode_normalisation, form="NFD", language=language)
    if language != "ko":  # no Hangul look-alikes in HOMOGLYPHS
        table["homoglyph"] = homoglyph_substitution
    if language == "ko":
        table["ko-spacing"] = korean_spacing
    return table


# -- rewrites by the local model (batched; not pure: they sample from the model) -------------------
LANGUAGE_NAMES = {"ko": "Korean", "ja": "Japanese", "zh": "Chinese", "en": "English"}


def model_rewrites(loaded, texts: Sequence[str], language: str, *, kind: str, max_new_tokens: int, seed: int) -> list[str]:
    """Paraphrase (``kind="paraphrase"``) or translate to English/Korean and back (``"round-trip"``).

    Unwatermarked generation with the same local model, as an attacker with the model would do.
    """
    from aimark.engines import generate

    def ask(instruction: str, batch: Sequence[str]) -> list[str]:
        prompts = [f"{instruction}\n\n{t}" for t in batch]
        return [g.text for g in generate(loaded, prompts, key=None, max_new_tokens=max_new_tokens, seed=seed)]

    target = LANGUAGE_NAMES[language]
    if kind == "paraphrase":
        return ask(f"Rewrite the following {target} text in your own words, in {target}. Output only the rewritten text.", texts)
    if kind == "round-trip":
        pivot = "Korean" if language == "en" else "English"
        there = ask(f"Translate the following {target} text into {pivot}. Output only the translation.", texts)
        return ask(f"Translate the following {pivot} text into {target}. Output only the translation.", there)
    raise ValueError(f"unknown rewrite {kind!r}")
