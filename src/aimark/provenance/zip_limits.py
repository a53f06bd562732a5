"""Open a ZIP package (DOCX) defensively: not-a-zip, too many parts, or a zip bomb is an error, not a crash."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

from aimark.provenance.errors import ProvenanceError

# What zipfile raises on damaged archives (found by the fuzz test: NotImplementedError for a bogus
# "version needed", struct.error and UnicodeDecodeError for mangled headers, RuntimeError if encrypted).
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, NotImplementedError,
               struct.error, UnicodeDecodeError, RuntimeError, zlib.error)

MAX_PARTS = 10_000
MAX_PART_BYTES = 64 * 1024 * 1024
MAX_TOTAL_BYTES = 256 * 1024 * 1024
# Deflate reaches about 1032:1 at best on honest data; more than this is a bomb.
MAX_COMPRESSION_RATIO = 200


def safe_zip(data: bytes) -> zipfile.ZipFile:
    """A ZipFile over `data` after checking the declared sizes against the caps above."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        entries = archive.infolist()
    except _ZIP_ERRORS as err:
        raise ProvenanceError("aimark.docx.notZip", f"not a ZIP/OOXML package ({type(err).__name__})") from err
    if len(entries) > MAX_PARTS:
        raise ProvenanceError("aimark.docx.tooLarge", f"{len(entries)} parts exceed the limit of {MAX_PARTS}")
    total = 0
    for entry in entries:
        total += entry.file_size
        if entry.file_size > MAX_PART_BYTES or total > MAX_TOTAL_BYTES:
            raise ProvenanceError("aimark.docx.tooLarge", f"decompressed size exceeds the limit ({entry.filename})")
        if entry.compress_size and entry.file_size / entry.compress_size > MAX_COMPRESSION_RATIO and entry.file_size > 1_000_000:
            raise ProvenanceError("aimark.docx.zipBomb", f"part {entry.filename} expands {entry.file_size // entry.compress_size}:1")
    return archive


def read_part(archive: zipfile.ZipFile, name: str, limit: int = MAX_PART_BYTES) -> bytes | None:
    """A part's bytes (None when absent), reading at most `limit` bytes whatever the header claims."""
    try:
        entry = archive.getinfo(name)
    except KeyError:
        return None
    try:
        with archive.open(entry) as stream:
            data = stream.read(limit + 1)
    except _ZIP_ERRORS as err:
        raise ProvenanceError("aimark.docx.corruptPart", f"cannot read {name[:200]} ({type(err).__name__})") from err
    if len(data) > limit:
        raise ProvenanceError("aimark.docx.tooLarge", f"part {name[:200]} is larger than {limit} bytes once decompressed")
    return data
