"""Add, find and remove the visible AI notice, exactly.

A label is one line: the profile's notice sentence, in the file's own comment syntax (or as visible
text in prose), followed by a marker `aimark:label profile=P lang=L at=start|end`. Removal only takes
a line that is byte-for-byte what `add_label` would write for the marker it carries, together with the
line breaks `add_label` added, so `remove_label(add_label(x)) == x` for every UTF-8 input and no user
line is ever taken.

Positions follow GB 45438-2025 5.1 b / Labelling Measures Art. 4(1) (start or end of the text); a
notice at the start goes after lines that must stay first (shebang, PEP 263 encoding line, XML
declaration, `<?php`, doctype, Markdown front matter).
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass

from aimark.labels.notices import check_profile_and_language, notice_text
from aimark.labels.syntax import FILE_KINDS, FileKind

MARKER_TOKEN = "aimark:label"
_MARKER = re.compile(r"aimark:label profile=(?P<profile>[a-z]+) lang=(?P<lang>[a-z]+) at=(?P<at>start|end)")
_LINE = re.compile(r"[^\r\n]*(\r\n|\r|\n|$)")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_BOM = "\ufeff"
POSITIONS = ("start", "end")


class LabelError(ValueError):
    """The content cannot be labelled or unlabelled as asked (message says why)."""


@dataclass(frozen=True)
class FoundLabel:
    """A label line aimark wrote: where it is (character offsets, line break excluded) and what it says."""

    start: int
    end: int
    profile: str
    lang: str
    at: str
    kind: str
    text: str


def render_label_line(kind: FileKind, profile: str, lang: str, at: str) -> str:
    """The exact line `add_label` writes (without its line break)."""
    marker = f"{MARKER_TOKEN} profile={profile} lang={lang} at={at}"
    notice = notice_text(profile, lang)
    if kind.name == "markdown":
        return f"{notice} <!-- {marker} -->"
    return f"{kind.prefix}{notice} [{marker}]{kind.suffix}"


def decode_text(content: bytes) -> str:
    """UTF-8 text of `content`, refusing what a notice could not be inserted into safely."""
    if content.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise LabelError("content is UTF-16 (byte order mark found); only UTF-8 text can be labelled")
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError as err:
        raise LabelError(f"content is not valid UTF-8 (byte {err.start}); refusing to label it") from err


def _line_spans(text: str) -> Iterator[tuple[int, int, int]]:
    """(start, end-of-content, end-including-break) for each line, lazily; a final empty line is dropped."""
    for match in _LINE.finditer(text):
        if match.start() == len(text):
            break
        yield match.start(), match.start(1), match.end()


_BREAK = re.compile(r"[\r\n]")


def _lines_holding(text: str, needle: str) -> Iterator[tuple[int, int]]:
    """(start, end-of-content) of each line that contains `needle`, found from the needle, not line by line:
    a label is one line among possibly millions, and hostile input may be nothing but line breaks. Every
    search is bounded by the previous line's end, so a text full of needles is still one pass."""
    searched_from = 0
    position = text.find(needle)
    while position >= 0:
        start = max(text.rfind("\n", searched_from, position), text.rfind("\r", searched_from, position)) + 1
        line_break = _BREAK.search(text, position)
        end = line_break.start() if line_break else len(text)
        yield start, end
        searched_from = end
        position = text.find(needle, end)


def _detect_newline(text: str) -> str:
    match = re.search(r"\r\n|\r|\n", text)
    return match.group(0) if match else "\n"


def _preamble_end(text: str, kind: FileKind) -> int:
    """Offset after the lines that must stay first in this kind of file."""
    spans = _line_spans(text)
    if kind.name == "markdown" and text.startswith("---") and text[3:4] in ("\r", "\n", ""):
        # YAML front matter: through the closing '---' or '...' line.
        next(spans)
        for start, content_end, end in spans:
            if text[start:content_end] in ("---", "..."):
                return end
        return 0
    consumed = 0
    for start, content_end, end in itertools.islice(spans, 2):
        if start != consumed or not any(p.search(text[start:content_end]) for p in kind.preamble):
            break
        consumed = end
    return consumed


@functools.lru_cache(maxsize=256)
def _kinds_by_line(profile: str, lang: str, at: str) -> dict[str, str]:
    """Each file kind's label line for this marker -> the first kind (in FILE_KINDS order) that writes it."""
    lines: dict[str, str] = {}
    for candidate in FILE_KINDS.values():
        lines.setdefault(render_label_line(candidate, profile, lang, at), candidate.name)
    return lines


def find_labels(text: str, kind: FileKind | None = None) -> list[FoundLabel]:
    """Every line in `text` that is exactly a label aimark writes (any file kind, `kind` tried first)."""
    found = []
    for start, content_end in _lines_holding(text, MARKER_TOKEN):
        if start == 0 and text.startswith(_BOM):
            start = len(_BOM)  # the byte order mark is not part of the first line's content
        line = text[start:content_end]
        marker = _MARKER.search(line)
        if not marker:
            continue
        profile, lang, at = marker.group("profile", "lang", "at")
        try:
            check_profile_and_language(profile, lang)
        except ValueError:
            continue
        if kind is not None and render_label_line(kind, profile, lang, at) == line:
            found.append(FoundLabel(start, content_end, profile, lang, at, kind.name, line))
        elif (kind_name := _kinds_by_line(profile, lang, at).get(line)) is not None:
            found.append(FoundLabel(start, content_end, profile, lang, at, kind_name, line))
    return found


def add_label_text(text: str, kind: FileKind, profile: str, lang: str | None = None, at: str = "start") -> str:
    """`text` with one notice line inserted at the start (after the preamble) or at the end."""
    lang = check_profile_and_language(profile, lang)
    if at not in POSITIONS:
        raise LabelError(f"position must be 'start' or 'end', not {at!r}")
    if find_labels(text, kind):
        raise LabelError("content already carries an aimark label; run `aimark unlabel` first")
    bom = _BOM if text.startswith(_BOM) else ""
    body = text[len(bom) :]
    line = render_label_line(kind, profile, lang, at)
    newline = _detect_newline(body)
    separator = newline if kind.blank_line_separator else ""
    ends_with_break = body.endswith(("\n", "\r"))
    if at == "start":
        offset = _preamble_end(body, kind)
        if offset == len(body) and body and not ends_with_break:
            # The preamble is the whole file and has no final line break: the notice becomes a new last line.
            insertion = newline + line
        else:
            insertion = line + newline + separator
    else:
        offset = len(body)
        if not body or ends_with_break:
            insertion = (separator if body else "") + line + newline
        else:
            insertion = newline + separator + line
    return bom + body[:offset] + insertion + body[offset:]


def _break_before(text: str, offset: int) -> str:
    """The line break that ends just before `offset` ('' if none)."""
    if text.endswith("\r\n", 0, offset):
        return "\r\n"
    if offset and text[offset - 1] in "\r\n":
        return text[offset - 1]
    return ""


def _span_to_remove(text: str, label: FoundLabel) -> tuple[int, int]:
    """The exact characters `add_label_text` inserted for this label (offset tests only: no slice copies,
    which made removing thousands of labels quadratic)."""
    separated = FILE_KINDS[label.kind].blank_line_separator
    after = _LINE_BREAK.match(text, label.end)
    line_break = after.group(0) if after else ""
    if not line_break:
        # Inserted as break(s) + line at the very end of the text.
        before = _break_before(text, label.start)
        count = 2 if separated and label.at == "end" and text.endswith(before * 2, 0, label.start) else 1
        return label.start - count * len(before), label.end
    start, end = label.start, label.end + len(line_break)
    if separated and label.at == "start" and text.startswith(line_break, end):
        end += len(line_break)
    if separated and label.at == "end" and label.start and text.endswith(line_break, 0, label.start):
        start -= len(line_break)
    return start, end


def remove_label_text(text: str, kind: FileKind | None = None) -> tuple[str, list[FoundLabel]]:
    """`text` without the labels aimark added, and the labels removed (an empty list when none)."""
    labels = find_labels(text, kind)
    pieces, kept_from = [], 0
    for label in labels:  # in text order, and the spans of successive labels do not overlap
        start, end = _span_to_remove(text, label)
        start = max(start, kept_from)
        pieces.append(text[kept_from:start])
        kept_from = max(end, kept_from)
    pieces.append(text[kept_from:])
    return "".join(pieces), labels


def add_label(content: bytes, kind: FileKind, profile: str, lang: str | None = None, at: str = "start") -> bytes:
    """Bytes variant of `add_label_text` (UTF-8 in, UTF-8 out)."""
    return add_label_text(decode_text(content), kind, profile, lang, at).encode("utf-8")


def remove_label(content: bytes, kind: FileKind | None = None) -> tuple[bytes, list[FoundLabel]]:
    """Bytes variant of `remove_label_text`."""
    text, labels = remove_label_text(decode_text(content), kind)
    return text.encode("utf-8"), labels
