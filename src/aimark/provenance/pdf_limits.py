"""Open a PDF with bounded work: pypdf's own limits, set far below its defaults, for files aimark did not write.

pypdf's defaults (75 MB per decoded stream, 2 million tokens per content stream) let a 5 KB PDF
whose page is one Flate-compressed run of `(a) Tj` yield 440,000 characters after seconds of parsing.
The limits here hold within one `with` (pypdf keeps them in a ContextVar, so threads do not share them).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager

import pypdf

# Decoded bytes of any one stream (a page's content, XMP, an image never decoded for text).
MAX_STREAM_BYTES = 16 * 1024 * 1024
# Operands and operators parsed from one content stream: an ordinary dense page has a few thousand.
MAX_CONTENT_TOKENS = 100_000
# Form XObjects drawn during one page's text extraction (each is parsed again per invocation).
MAX_FORM_INVOCATIONS = 50

# Decoded content a page's text extraction may parse: the page's own streams plus every form XObject it can
# draw, counted MAX_FORM_INVOCATIONS times (pypdf parses a form again at each use). pypdf's extraction is
# quadratic in the text it has gathered on a page (`(output + text)[-1:]` per text operator), so a 16 KB
# PDF whose page shows 15 MB of text took over a minute; a dense page of real text is 5-50 KB.
MAX_TEXT_WORK_BYTES = 2 * 1024 * 1024

LIMITS = {
    "maximum_declared_stream_length": MAX_STREAM_BYTES,
    "array_based_stream_maximum_output_length": MAX_STREAM_BYTES,
    "zlib_maximum_output_length": MAX_STREAM_BYTES,
    "lzw_maximum_output_length": MAX_STREAM_BYTES,
    "run_length_maximum_output_length": MAX_STREAM_BYTES,
    "brotli_maximum_output_length": MAX_STREAM_BYTES,
    "jbig2_maximum_output_length": MAX_STREAM_BYTES,
    "image_maximum_buffer_size": MAX_STREAM_BYTES,
    "stream_decoding_work_maximum_length": 4 * MAX_STREAM_BYTES,
    "stream_parsing_work_maximum_count": MAX_CONTENT_TOKENS,
    "xform_maximum_invocations_per_extraction": MAX_FORM_INVOCATIONS,
    "xmp_maximum_input_length": 1024 * 1024,
}

LIMITS_TEXT = (f"{MAX_CONTENT_TOKENS} content tokens and {MAX_FORM_INVOCATIONS} form XObjects per page, "
               f"{MAX_STREAM_BYTES // (1024 * 1024)} MiB per decoded stream, "
               f"{MAX_TEXT_WORK_BYTES // (1024 * 1024)} MiB of content parsed for a page's text")


class TextWorkExceeded(Exception):
    """A page would make text extraction parse more content than MAX_TEXT_WORK_BYTES."""


def _decoded_length(stream) -> int:
    try:
        return len(stream.get_data())
    except AttributeError:
        return 0


def _form_bytes(resources, seen: set[int], depth: int = 0) -> int:
    """Decoded bytes of the form XObjects reachable from ``resources`` (each counted once, nesting bounded)."""
    if depth > 8 or not hasattr(resources, "get"):
        return 0
    xobjects = resources.get("/XObject")
    xobjects = xobjects.get_object() if xobjects is not None else None
    total = 0
    for reference in (xobjects or {}).values():
        key = id(reference.get_object()) if not hasattr(reference, "idnum") else reference.idnum
        form = reference.get_object()
        if key in seen or not hasattr(form, "get") or form.get("/Subtype") != "/Form":
            continue
        seen.add(key)
        total += _decoded_length(form)
        inner = form.get("/Resources")
        total += _form_bytes(inner.get_object() if inner is not None else None, seen, depth + 1)
    return total


def check_text_work(page: pypdf.PageObject) -> None:
    """Raise TextWorkExceeded before extracting text from a page that would parse too much content."""
    contents = page.get_contents()
    work = _decoded_length(contents) if contents is not None else 0
    resources = page.get("/Resources")
    forms = _form_bytes(resources.get_object() if resources is not None else None, set())
    work += MAX_FORM_INVOCATIONS * forms if forms else 0
    if work > MAX_TEXT_WORK_BYTES:
        raise TextWorkExceeded(f"the page's text needs {work:,} bytes of content parsed")


@contextmanager
def bounded_pdf(data: bytes) -> Iterator[pypdf.PdfReader]:
    """A PdfReader over `data`, used within the limits above (reading pages and text included)."""
    with pypdf.apply_configuration(**LIMITS):
        yield pypdf.PdfReader(io.BytesIO(data), strict=False)
