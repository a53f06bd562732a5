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
               f"{MAX_STREAM_BYTES // (1024 * 1024)} MiB per decoded stream")


@contextmanager
def bounded_pdf(data: bytes) -> Iterator[pypdf.PdfReader]:
    """A PdfReader over `data`, used within the limits above (reading pages and text included)."""
    with pypdf.apply_configuration(**LIMITS):
        yield pypdf.PdfReader(io.BytesIO(data), strict=False)
