"""The human-visible text of a file, read with bounded work, and how much of it was read.

A container's text is not bounded by its bytes: a 323 KB DOCX held 2.1 million characters, a 5.6 KB
PDF 440,000. So every container is read within fixed limits, and the text handed to the checks is at
most MAX_TEXT_CHARS: its first and last halves, which is where a notice must stand (GB 45438-2025
5.1 b, start or end) and enough for a watermark test. Whatever was left out is said, never hidden:
`ExtractedText.partial` and `note` reach the report and the watermark result.
"""

from __future__ import annotations

import io
import re
from collections import deque
from dataclasses import dataclass

from aimark.provenance import structured_text
from aimark.provenance.errors import ProvenanceError

# Characters of text the checks see per file (the service scores at most 200,000 per request).
MAX_TEXT_CHARS = 200_000
# word/document.xml, decompressed: parsing is linear in it, and 16 MiB is thousands of pages.
MAX_DOCUMENT_XML_BYTES = 16 * 1024 * 1024
# A PDF: its first and last pages only (each within pdf_limits' bounds on parsing and decoding).
PDF_PAGES_READ = ("first", "last")

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


@dataclass(frozen=True)
class ExtractedText:
    text: str
    total_chars: int  # characters the file's read part held before the cap
    partial: bool = False
    note: str = ""

    def to_dict(self) -> dict:
        return {"chars_read": len(self.text), "chars_total": self.total_chars, "partial": self.partial, "note": self.note}


class _HeadTail:
    """Keeps the first and last `limit // 2` characters of pieces (lines, paragraphs, pages) joined by
    newlines, fed one by one, in memory bounded by the limit and the largest piece."""

    def __init__(self, limit: int = MAX_TEXT_CHARS) -> None:
        self.half = limit // 2
        self.head: list[str] = []
        self.head_chars = 0
        self.junction = "\n"  # between head and tail: "" where one piece was split across them
        self.tail: deque[str] = deque()
        self.tail_chars = 0
        self.dropped = False
        self.total = 0

    def add(self, piece: str) -> None:
        self.total += len(piece) + (1 if self.head else 0)
        separator = 1 if self.head else 0
        if self.head_chars + separator < self.half and not self.tail:
            room = self.half - self.head_chars - separator  # the joined head, newlines counted, stays within half
            self.head.append(piece[:room])
            self.head_chars += separator + min(len(piece), room)
            if len(piece) <= room:
                return
            piece, self.junction = piece[room:], ""
        if len(piece) > self.half:
            piece, self.dropped = piece[-self.half:], True
            self.tail.clear()
            self.tail_chars = 0
        self.tail.append(piece)
        self.tail_chars += len(piece) + 1
        while len(self.tail) > 1 and self.tail_chars - len(self.tail[0]) - 1 >= self.half:
            self.tail_chars -= len(self.tail.popleft()) + 1
            self.dropped = True

    def result(self, what: str) -> ExtractedText:
        head = "\n".join(self.head)
        if not self.tail:
            return ExtractedText(head, self.total)
        tail = "\n".join(self.tail)
        if not self.dropped and len(tail) <= self.half:
            return ExtractedText(head + self.junction + tail, self.total)
        tail = tail[-self.half:]
        note = (f"{what} holds {self.total} characters; only the first {len(head)} and the last {len(tail)} "
                "were read (notices and watermark checked on those)")
        return ExtractedText(head + "\n" + tail, self.total, partial=True, note=note)


def visible_text(content: bytes, carrier: str) -> ExtractedText:
    """The human-visible text: decoded, without the A.8 wrapper or the A.9 manifest line.

    Raises UnicodeDecodeError for text that is not UTF-8 and ProvenanceError for a broken container.
    """
    if carrier == "pdf":
        return _pdf_text(content)
    if carrier == "docx":
        return _docx_text(content)
    text = content.decode("utf-8")
    text = re.sub("\ufeff[\ufe00-\ufe0f\U000e0100-\U000e01ef]+", "", text)
    return ExtractedText(structured_text.without_manifest_lines(text), len(text))


def _pdf_text(content: bytes) -> ExtractedText:
    from pypdf.errors import LimitReachedError

    from aimark.provenance.pdf_limits import LIMITS_TEXT, TextWorkExceeded, bounded_pdf, check_text_work

    try:
        with bounded_pdf(content) as reader:
            count = len(reader.pages)
            chosen = [0, count - 1] if count > 1 else list(range(count))
            collected = _HeadTail()
            for index in chosen:
                check_text_work(reader.pages[index])
                collected.add(reader.pages[index].extract_text() or "")
    except (LimitReachedError, TextWorkExceeded) as err:
        raise ProvenanceError("aimark.pdf.tooComplex", f"a page needs more work to read than aimark allows ({LIMITS_TEXT})") from err
    except Exception as err:
        raise ProvenanceError("aimark.pdf.unreadable", f"PDF cannot be parsed ({type(err).__name__})") from err
    extracted = collected.result("the first and last pages")
    if count <= 2:
        return extracted
    skipped = f"pages 2 to {count - 1} of {count} were not read"
    return ExtractedText(extracted.text, extracted.total_chars, True, "; ".join(filter(None, [skipped, extracted.note])))


def _docx_text(content: bytes) -> ExtractedText:
    from lxml import etree

    from aimark.provenance.zip_limits import read_part, safe_zip

    body = read_part(safe_zip(content), "word/document.xml", MAX_DOCUMENT_XML_BYTES)
    if body is None:
        raise ProvenanceError("aimark.docx.notDocx", "package has no word/document.xml")
    collected = _HeadTail()
    try:
        for _, paragraph in etree.iterparse(io.BytesIO(body), events=("end",), tag=f"{_W}p", resolve_entities=False,
                                            no_network=True, load_dtd=False, huge_tree=False):
            collected.add("".join(t.text or "" for t in paragraph.iter(f"{_W}t")))
            paragraph.clear()  # memory stays bounded by one paragraph; a nested one is not read twice
    except etree.XMLSyntaxError as err:
        raise ProvenanceError("aimark.docx.corruptPart", f"word/document.xml is not well-formed (line {err.lineno})") from err
    return collected.result("the document")
