"""C2PA 2.4 Annex A.9: a manifest reference in one comment line of structured text (source code).

`<prefix>-----BEGIN C2PA MANIFEST----- <reference> -----END C2PA MANIFEST-----<suffix>`, at the start of
the file, or at the end when line one is taken (shebang, XML declaration, and the other first-line
constructs aimark's labels respect). aimark writes the reference as
`data:application/c2pa;base64,<manifest store>`. Hard binding: `c2pa.hash.data` over the raw bytes with
the line and its one adjacent line break excluded; no normalisation.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

BEGIN = "-----BEGIN C2PA MANIFEST-----"
END = "-----END C2PA MANIFEST-----"
DATA_URI_PREFIX = "data:application/c2pa;base64,"
_LINE = re.compile(r"[^\r\n]*(\r\n|\r|\n|$)")

NO_MANIFEST = "manifest.structuredText.noManifest"
MULTIPLE_REFERENCES = "manifest.structuredText.multipleReferences"
EMPTY_REFERENCE = "manifest.structuredText.emptyReference"


def manifest_line(prefix: str, suffix: str, manifest_store: bytes) -> str:
    return f"{prefix}{BEGIN} {DATA_URI_PREFIX}{base64.b64encode(manifest_store).decode()} {END}{suffix}"


def encoded_line_length(prefix: str, suffix: str, manifest_size: int) -> int:
    """UTF-8 length of `manifest_line` for a store of `manifest_size` bytes, known before signing."""
    base64_length = 4 * ((manifest_size + 2) // 3)
    return len(f"{prefix}{BEGIN} {DATA_URI_PREFIX} {END}{suffix}".encode()) + base64_length


@dataclass(frozen=True)
class ReferenceScan:
    """The manifest line found (byte range of what the binding excludes) or the A.9 failure code."""

    reference: str | None = None
    exclusion: tuple[int, int] | None = None
    failure: str | None = None
    detail: str = ""

    def manifest_store(self) -> bytes | str:
        """The store a `data:` reference carries, or why it cannot be had."""
        assert self.reference is not None
        if not self.reference.startswith(DATA_URI_PREFIX):
            return f"reference {self.reference[:80]!r} is not an inline data: URI; aimark does not fetch remote manifests"
        try:
            return base64.b64decode(self.reference[len(DATA_URI_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            return "data: reference is not valid base64"


def without_manifest_lines(text: str) -> str:
    """``text`` without its manifest line(s), whole lines as :func:`scan` reads them.

    Lines end at CR, LF or CRLF only: ``str.splitlines`` would also cut at U+2028, U+0085 or a form
    feed, and so keep the part of a manifest line before such a character.
    """
    return "".join(m.group() for m in _LINE.finditer(text) if BEGIN not in m.group())


def _blocks(line: str, *, limit: int) -> list[tuple[int, int]]:
    """(start, end) of the reference inside each BEGIN ... END pair of ``line``, left to right, at most ``limit``.

    Plain ``str.find`` rather than a regex: ``BEGIN(.*?)END`` retried its lazy scan to the end of the
    line from every BEGIN, so a line of n BEGIN markers cost n² (2,000 markers: 1 s). Here each search
    resumes where the last one stopped, and the pairs found are the regex's: the first END after each
    BEGIN, the next BEGIN searched after that END.
    """
    pairs: list[tuple[int, int]] = []
    position = 0
    while len(pairs) < limit:
        begin = line.find(BEGIN, position)
        if begin < 0:
            break
        end = line.find(END, begin + len(BEGIN))
        if end < 0:
            break  # no END after this BEGIN, so none after any later one either
        pairs.append((begin + len(BEGIN), end))
        position = end + len(END)
    return pairs


def scan(data: bytes) -> ReferenceScan:
    """Find the single manifest line in raw `data` (UTF-8 text)."""
    text = data.decode("utf-8")
    hits, line, before = 0, None, None  # manifest lines; the first, and the line before it
    previous = None
    for match in _LINE.finditer(text):
        if match.start() >= len(text):
            break
        if BEGIN in match.group():
            hits += 1
            if line is None:
                line, before = match, previous
        previous = match
    if line is None:
        return ReferenceScan(failure=NO_MANIFEST, detail="no -----BEGIN C2PA MANIFEST----- line")
    blocks = _blocks(line.group(), limit=2)
    if hits > 1 or len(blocks) > 1:
        return ReferenceScan(failure=MULTIPLE_REFERENCES, detail=f"{hits} manifest lines; exactly one is allowed")
    if not blocks:
        return ReferenceScan(failure=EMPTY_REFERENCE, detail="manifest line has no -----END C2PA MANIFEST----- delimiter")
    reference = line.group()[slice(*blocks[0])].strip()
    if not reference:
        return ReferenceScan(failure=EMPTY_REFERENCE, detail="manifest line carries no reference")
    start_char, end_char = line.start(), line.end()
    if before is None and text.startswith("\ufeff"):
        start_char = 1  # the byte order mark stays first and is covered by the hash
    if before is not None:
        # A manifest line after line one also owns the break before it (as c2pa-structured-text reads A.9).
        start_char -= len(before.group(1))
    start = len(text[:start_char].encode("utf-8"))
    length = len(text[start_char:end_char].encode("utf-8"))
    return ReferenceScan(reference=reference, exclusion=(start, length))


@dataclass(frozen=True)
class Placement:
    """Where a new manifest line goes: at character `offset`, replacing `consumed` characters, the text
    `before + line + after` is inserted, and exactly that inserted text is what the binding excludes."""

    offset: int
    consumed: int
    before: str
    after: str


def placement(text: str, first_line_taken: bool) -> Placement:
    """At the start (after a byte order mark) unless line one must stay first; then it becomes the last
    line and owns the break before it and its own final break (the range c2pa-structured-text excludes),
    so the file's final break is re-emitted after the line and is not covered by the hash."""
    newline_match = re.search(r"\r\n|\r|\n", text)
    newline = newline_match.group(0) if newline_match else "\n"
    if not first_line_taken:
        return Placement(1 if text.startswith("\ufeff") else 0, 0, "", newline)
    final_break = re.search(r"(\r\n|\r|\n)\Z", text)
    if final_break:
        return Placement(final_break.start(), len(final_break.group(1)), final_break.group(1), final_break.group(1))
    return Placement(len(text), 0, newline if text else "", "")


def data_hash(data: bytes, exclusion: tuple[int, int]) -> bytes:
    start, length = exclusion
    return hashlib.sha256(data[:start] + data[start + length :]).digest()
