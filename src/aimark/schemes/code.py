"""aimark's code scheme: which tokens of a program carry the watermark, decided from the text alone.

Much of a program is forced (keywords, brackets, indentation): those tokens carry almost no keyed
signal and only dilute a detector's count. SWEET skips them by the model's entropy, which a verifier
does not have. Here the criterion is the *lexical class* of each language-model token, recomputed
at detection from the code itself with the language's own tokenizer (Python's ``tokenize``; Pygments
lexers for other languages, already installed with rich): identifiers, literals and comments are the
free choices of a program; keywords, operators, punctuation and layout are not.

Generation needs no gate: the code scheme samples with SynthID's tournament, which is
distortion-free, so programs stay as correct as unwatermarked ones in expectation. The gate only
chooses which positions the detector counts. Because it depends on the text and not on the key,
the kept positions' values are still independent draws from the scheme's null: p-values stay exact.
"""

from __future__ import annotations

import bisect
import builtins
import io
import keyword
import re
import tokenize
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np

from aimark import textbounds
from aimark.languages import language_for_filename

# Lexical classes, coarse and shared by every language.
IDENTIFIER = "identifier"
BUILTIN = "builtin"
KEYWORD = "keyword"
STRING = "string"
COMMENT = "comment"
NUMBER = "number"
OPERATOR = "operator"
WHITESPACE = "whitespace"
PROSE = "prose"  # text outside code fences in a Markdown answer
OTHER = "other"

ALL_CLASSES = frozenset({IDENTIFIER, BUILTIN, KEYWORD, STRING, COMMENT, NUMBER, OPERATOR, WHITESPACE, PROSE, OTHER})

#: Classes the code detector counts, per scheme. Rule: a class counts when its tokens carried at least
#: half the mean per-token signal of all the scheme's tokens (units below that lower the expected z of
#: the count). Chosen on the even HumanEval problems of bench/code's per-class study, checked on the
#: odd ones (bench/results/code.md). Under the distortion-free schemes even keywords and operators carry
#: signal, so little is dropped; under KGW forced tokens cannot follow the green list and carry none.
CODE_FREE_CLASSES = {
    "synthid": ALL_CLASSES - {NUMBER},
    "gumbel": ALL_CLASSES - {NUMBER, WHITESPACE},
    "kgw": frozenset({IDENTIFIER, KEYWORD, STRING, COMMENT, PROSE}),
}
#: For a scheme without a measured profile: a program's free choices (names, literals, comments).
DEFAULT_FREE_CLASSES = frozenset({IDENTIFIER, STRING, COMMENT, NUMBER, PROSE})
#: SynthID tournament layers the code detector counts (of the key's depth, 30 by default). The pooled z
#: of the first D layers' count peaks at D = 20 on the even and, separately, on the odd HumanEval
#: problems of bench/code's per-layer study; layers 21-30 add no excess on code, only variance.
CODE_SYNTHID_LAYERS = 20


#: Line-comment markers per language, for tracking comments while generating (block comments are not tracked).
LINE_COMMENT_MARKERS = {
    "python": "#", "shell": "#", "ruby": "#", "sql": "--",
    **{name: "//" for name in ("javascript", "typescript", "java", "c", "cpp", "csharp", "go", "rust", "php", "kotlin", "swift")},
}


def in_line_comment(line: str, marker: str) -> bool:
    """Whether ``line`` (the text since the last line break) has opened a line comment outside quotes."""
    quote, index = None, 0
    while index < len(line):
        char = line[index]
        if quote:
            if char == "\\":
                index += 2
                continue
            if char == quote:
                quote = None
        elif char in "\"'`":
            quote = char
        elif line.startswith(marker, index):
            return True
        index += 1
    return False


class CommentTracker:
    """During generation: which rows' next token continues a line comment, from each row's decoded tail.

    A comment never executes, so it is the place in a program where a watermark can push harder than the
    model's own distribution at the least risk to correctness (see :class:`aimark.schemes.processor.CommentBoost`).
    The text alone decides it, from the last line of the last ``TAIL_TOKENS`` tokens.
    """

    TAIL_TOKENS = 64

    def __init__(self, tokenizer, language: str):
        self.language = normalise_language(language)
        self.marker = LINE_COMMENT_MARKERS.get(self.language)
        self.tokenizer = tokenizer

    def __call__(self, input_ids: np.ndarray) -> np.ndarray:
        rows = np.asarray(input_ids)
        if self.marker is None or not len(rows):
            return np.zeros(len(rows), dtype=bool)
        tails = self.tokenizer.batch_decode(rows[:, -self.TAIL_TOKENS :].tolist(), skip_special_tokens=True)
        return np.array([in_line_comment(tail.rsplit("\n", 1)[-1], self.marker) for tail in tails], dtype=bool)


def code_detection_scheme(scheme):
    """``scheme`` as the code detector scores it (SynthID: its first :data:`CODE_SYNTHID_LAYERS` layers)."""
    if scheme.name == "synthid" and scheme.depth > CODE_SYNTHID_LAYERS:
        return scheme.with_scored_layers(CODE_SYNTHID_LAYERS)
    return scheme


def free_classes_for(scheme_name: str) -> frozenset[str]:
    """The lexical classes the code gate counts for ``scheme_name``."""
    return CODE_FREE_CLASSES.get(scheme_name, DEFAULT_FREE_CLASSES)


def describe_code_gate(scheme_name: str) -> str:
    """What the gate counts for ``scheme_name``, in words: by what it drops when that is the shorter list
    ("every token but numbers"), else by what it keeps ("comment, identifier, keyword, string tokens")."""
    free = free_classes_for(scheme_name)
    dropped = sorted(ALL_CLASSES - free - {OTHER})
    if not dropped:
        return "every token"
    if len(dropped) <= len(free) // 2:
        return "every token but " + ", ".join(label if label == WHITESPACE else f"{label}s" for label in dropped)
    return ", ".join(sorted(free - {OTHER, PROSE})) + " tokens"

# Pygments lexer alias per language aimark gates (Python uses the standard library's tokenizer).
_PYGMENTS_ALIASES = {
    "javascript": "javascript",
    "typescript": "typescript",
    "java": "java",
    "c": "c",
    "cpp": "cpp",
    "csharp": "csharp",
    "go": "go",
    "rust": "rust",
    "ruby": "ruby",
    "php": "php",
    "kotlin": "kotlin",
    "swift": "swift",
    "shell": "bash",
    "sql": "sql",
}
SUPPORTED_LANGUAGES = ("python", *_PYGMENTS_ALIASES, "markdown")

# Names people write in code fences and API fields.
_LANGUAGE_NAMES = {
    "py": "python", "python3": "python", "js": "javascript", "node": "javascript", "ts": "typescript",
    "c++": "cpp", "cxx": "cpp", "c#": "csharp", "cs": "csharp", "golang": "go", "rs": "rust", "rb": "ruby",
    "kt": "kotlin", "sh": "shell", "bash": "shell", "zsh": "shell", "md": "markdown",
}

# Possessive quantifiers: with a plain `[ \t]*`, spaces after a fence could go to it or to the info
# string, and a line "```" + n spaces + "`" was tried in n² ways (20,000 spaces: 5 s). Giving a space
# back never lets the line match (the info string still stops at the same backtick or line end), so
# the possessive form finds exactly the same fences, each line read a bounded number of times.
_FENCE = re.compile(r"^(?P<indent>[ \t]{0,3}+)(?P<fence>`{3,}+|~{3,}+)[ \t]*+(?P<info>[^\n`]*+)$", re.MULTILINE)


class UnsupportedLanguageError(ValueError):
    """The language has no lexical gate in aimark."""


def normalise_language(language: str | None) -> str | None:
    """Canonical language name (``"py"`` -> ``"python"``); ``None`` stays ``None``."""
    if language is None:
        return None
    name = language.strip().lower()
    name = _LANGUAGE_NAMES.get(name, name)
    if name not in SUPPORTED_LANGUAGES:
        raise UnsupportedLanguageError(f"no code gating for language {language!r}; supported: {', '.join(SUPPORTED_LANGUAGES)}")
    return name


def gated_language_for_filename(filename: str | None) -> str | None:
    """The gated language of a source file by its extension, or ``None`` for prose and unknown files."""
    language = language_for_filename(filename)
    return language if language in SUPPORTED_LANGUAGES else None


#: Values of a language option that switch the gate off (``--language none``, ``"language": "prose"``).
NO_GATE = frozenset({"none", "prose", "text", "off"})


def detection_language(text: str, *, language: str | None = None, filename: str | None = None) -> str | None:
    """The gate to detect ``text`` with: ``language`` when given (one of :data:`NO_GATE`: no gate), else
    the gated language of ``filename``'s extension, else :func:`guess_language` of the text."""
    if language is not None:
        return None if language.strip().lower() in NO_GATE else normalise_language(language)
    return gated_language_for_filename(filename) or guess_language(text)


#: How much of a text :func:`guess_language` parses as Python: parsing costs time and ~100 bytes of
#: memory per character, and the first 100,000 characters of a program show that it is one.
GUESS_PARSE_LIMIT = 100_000
_TOP_LEVEL_LINE = re.compile(r"\n(?=[A-Za-z_@])")


def _parse_prefix(text: str) -> str:
    """``text``, or when longer than :data:`GUESS_PARSE_LIMIT` its start up to the last line there
    that begins a top-level statement (so no statement is cut in two)."""
    if len(text) <= GUESS_PARSE_LIMIT:
        return text
    cut = None
    for cut in _TOP_LEVEL_LINE.finditer(text, 0, GUESS_PARSE_LIMIT):
        pass
    return text[: cut.start()] if cut else text[:GUESS_PARSE_LIMIT]


def guess_language(text: str) -> str | None:
    """``"markdown"`` when the text holds a fenced code block, ``"python"`` when it parses as Python
    with at least one statement that prose would not produce, else ``None`` (treat as prose).

    Only the first :data:`GUESS_PARSE_LIMIT` characters are parsed; code the parser cannot hold
    (nesting past its recursion or memory limits) is not taken for Python either.
    """
    # The substring test first: the regex tries every line start, and most texts have no fence at all.
    if ("```" in text or "~~~" in text) and _FENCE.search(text):
        return "markdown"
    import ast

    try:
        # The parser applies NFKC to each identifier, and combining marks may continue one: a letter with
        # 50,000 marks took it 12 s. Ordered first (an equivalent text), they cost it nothing.
        tree = ast.parse(textbounds.ordered_runs("NFKC", _parse_prefix(text)))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    code_nodes = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom, ast.Assign, ast.For, ast.While, ast.If, ast.Return)
    return "python" if any(isinstance(node, code_nodes) for node in ast.walk(tree)) else None


# -- lexing --------------------------------------------------------------------------
Span = tuple[int, int, str]  # (start, end, class) in characters


def lexical_spans(text: str, language: str) -> list[Span]:
    """Non-overlapping character spans of ``text`` with their lexical class, in order.

    Never raises on malformed code: a fragment that Python's tokenizer rejects (an unclosed string,
    an indented body without its ``def``) is lexed by Pygments, which recovers from errors.
    """
    language = normalise_language(language)
    if language == "python":
        try:
            return _python_spans(text)
        except (tokenize.TokenError, IndentationError, SyntaxError):
            return _pygments_spans(text, "python")
    if language == "markdown":
        return _markdown_spans(text)
    return _pygments_spans(text, _PYGMENTS_ALIASES[language])


_BUILTIN_NAMES = frozenset(dir(builtins))
_PYTHON_KEYWORDS = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist)


def _python_spans(text: str) -> list[Span]:
    line_starts = [0]
    for line in io.StringIO(text):
        line_starts.append(line_starts[-1] + len(line))
    spans: list[Span] = []
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        kind = token.type
        if kind == tokenize.ENDMARKER:
            break
        start = line_starts[token.start[0] - 1] + token.start[1]
        # min: tokenize adds a NEWLINE after a last line without one, one character past the text.
        end = min(line_starts[token.end[0] - 1] + token.end[1], len(text))
        if start >= end:
            continue
        if kind == tokenize.NAME:
            label = KEYWORD if token.string in _PYTHON_KEYWORDS else BUILTIN if token.string in _BUILTIN_NAMES else IDENTIFIER
        elif kind == tokenize.STRING or kind in _FSTRING_PARTS:
            label = STRING
        elif kind == tokenize.COMMENT:
            label = COMMENT
        elif kind == tokenize.NUMBER:
            label = NUMBER
        elif kind == tokenize.OP:
            label = OPERATOR
        elif kind in (tokenize.NEWLINE, tokenize.NL, tokenize.INDENT, tokenize.DEDENT):
            label = WHITESPACE
        else:
            label = OTHER
        spans.append((start, end, label))
    return spans


_FSTRING_PARTS = frozenset(getattr(tokenize, name) for name in ("FSTRING_START", "FSTRING_MIDDLE", "FSTRING_END") if hasattr(tokenize, name))


def _pygments_class(token_type) -> str:
    from pygments import token as t

    if token_type in t.Comment:
        return COMMENT
    if token_type in t.Literal.String:
        return STRING
    if token_type in t.Literal.Number:
        return NUMBER
    if token_type in t.Keyword or token_type in t.Name.Builtin.Pseudo:
        return KEYWORD
    if token_type in t.Name.Builtin:
        return BUILTIN
    if token_type in t.Name:
        return IDENTIFIER
    if token_type in t.Operator or token_type in t.Punctuation:
        return OPERATOR
    if token_type in t.Text:
        return WHITESPACE
    return OTHER


def _pygments_spans(text: str, alias: str) -> list[Span]:
    from pygments.lexers import get_lexer_by_name

    # stripnl/ensurenl off: offsets must index the text as given.
    lexer = get_lexer_by_name(alias, stripnl=False, stripall=False, ensurenl=False)
    spans: list[Span] = []
    for start, token_type, value in lexer.get_tokens_unprocessed(text):
        if value:
            label = _pygments_class(token_type)
            if label == WHITESPACE and value.strip():
                label = OTHER
            spans.append((start, start + len(value), label))
    return spans


class _Fence(NamedTuple):
    start: int
    end: int
    mark: str  # the backticks or tildes
    info: str


def _fences(text: str) -> list[_Fence]:
    return [_Fence(m.start(), m.end(), m.group("fence"), m.group("info")) for m in _FENCE.finditer(text)]


def _closing(fences: list[_Fence], index: int) -> int | None:
    """Index of the fence that closes ``fences[index]``: the same character, at least as long, no info string."""
    mark = fences[index].mark
    for after in range(index + 1, len(fences)):
        fence = fences[after]
        if fence.mark[0] == mark[0] and len(fence.mark) >= len(mark) and not fence.info.strip():
            return after
    return None


def _markdown_spans(text: str) -> list[Span]:
    """Prose outside fences; each fenced block lexed as its info-string language (unknown: prose)."""
    spans: list[Span] = []
    position = 0
    fences = _fences(text)
    index = 0
    while index < len(fences):
        opening = fences[index]
        # The search for the closing fence resumes after it, so each fence is read once in all.
        after = _closing(fences, index)
        closing = fences[after] if after is not None else None
        body_start = opening.end + 1
        body_end = closing.start if closing else len(text)
        if opening.start > position:
            spans.append((position, opening.start, PROSE))
        spans.append((opening.start, min(body_start, len(text)), OTHER))
        info = opening.info.split(maxsplit=1)
        try:
            language = normalise_language(info[0]) if info else None
        except UnsupportedLanguageError:
            language = None
        if body_end > body_start and language not in (None, "markdown"):
            body = text[body_start:body_end]
            spans.extend((s + body_start, e + body_start, label) for s, e, label in lexical_spans(body, language))
        elif body_end > body_start:
            spans.append((body_start, body_end, PROSE))
        if closing is None:
            return spans
        spans.append((closing.start, closing.end, OTHER))
        position = closing.end
        index = after + 1
    if position < len(text):
        spans.append((position, len(text), PROSE))
    return spans


# -- mapping onto language-model tokens ---------------------------------------------------
def token_classes(text: str, offsets: Sequence[tuple[int, int]], language: str) -> list[str]:
    """The lexical class of each LM token: that of its first non-space character (whitespace if none)."""
    spans = lexical_spans(text, language)
    starts = [s for s, _, _ in spans]
    classes: list[str] = []
    for start, end in offsets:
        first = start
        while first < end and text[first].isspace():
            first += 1
        if first >= end:
            classes.append(WHITESPACE)
            continue
        index = bisect.bisect_right(starts, first) - 1
        if index >= 0 and spans[index][0] <= first < spans[index][1]:
            classes.append(spans[index][2])
        else:
            classes.append(WHITESPACE if text[first].isspace() else OTHER)
    return classes


def free_token_mask(
    text: str, offsets: Sequence[tuple[int, int]], language: str, free_classes: Iterable[str] = DEFAULT_FREE_CLASSES
) -> np.ndarray:
    """Boolean mask over LM tokens: True where the token's lexical class is a free choice."""
    return class_mask(token_classes(text, offsets, language), free_classes)


def class_mask(classes: Sequence[str], free_classes: Iterable[str]) -> np.ndarray:
    """Boolean mask over already classified tokens: True where the class is in ``free_classes``."""
    free = frozenset(free_classes)
    return np.fromiter((label in free for label in classes), dtype=bool, count=len(classes))
