"""aimark's PDF changes are incremental updates that say what they were appended to, so they can be undone exactly.

Each revision aimark appends (the visible notice, the AIGC label) sets the Info entry `/AimarkRevisionOf`
to "<byte length> <SHA-256 hex>" of the file it was appended to. Removing them is truncation: the bytes
before an incremental update are the previous file, byte for byte (ISO 32000-1 7.5.6).
"""

from __future__ import annotations

import hashlib

REVISION_KEY = "/AimarkRevisionOf"


def revision_marker(data: bytes) -> str:
    return f"{len(data)} {hashlib.sha256(data).hexdigest()}"


def remove_revisions(data: bytes) -> tuple[bytes, int]:
    """Peel off every trailing revision aimark appended; returns the original bytes and how many were removed.

    Stops at the first revision that is not aimark's (someone else's later update, which copies the Info
    entry along), or whose recorded digest does not match the bytes before it: nothing is cut on a guess.
    """
    from aimark.provenance.pdf_limits import bounded_pdf

    removed = 0
    while True:
        try:
            with bounded_pdf(data) as reader:
                marker = str((reader.metadata or {}).get(REVISION_KEY, ""))
        except Exception:  # noqa: BLE001 - an unreadable PDF has nothing aimark can peel
            return data, removed
        length, _, digest = marker.partition(" ")
        if not length.isdigit() or int(length) >= len(data):
            return data, removed
        prefix, appended = data[: int(length)], data[int(length):]
        # The marker is in the Info dictionary, which a later update by anyone else copies along: it speaks for
        # the last revision only if that revision is all that follows the recorded prefix (one end-of-file mark).
        if appended.count(b"%%EOF") != 1 or hashlib.sha256(prefix).hexdigest() != digest:
            return data, removed
        data, removed = prefix, removed + 1


def incremental_writer(reader):
    """A pypdf PdfWriter appending to `reader`'s file, whose new objects get numbers no earlier object has.

    pypdf (7.1) numbers new objects after the highest object its xref lists, but the xref stream it writes
    for an incremental update is not listed in itself: appending to a file pypdf updated before would give
    a new object the xref stream's number, and readers would find the xref stream in its place. The trailer
    /Size (one more than the highest number used, ISO 32000-1 7.5.5) is where new numbers must start.
    """
    import pypdf

    writer = pypdf.PdfWriter(reader, incremental=True)
    size = int(reader.trailer.get("/Size", 0))
    if size - 1 > len(writer._objects):  # noqa: SLF001 - see above; the list is pypdf's object table
        writer._objects.extend([None] * (size - 1 - len(writer._objects)))  # noqa: SLF001
    return writer
