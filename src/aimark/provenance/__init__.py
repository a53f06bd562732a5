"""Machine-readable provenance: C2PA manifests (signed, embedded, validated) and GB 45438 AIGC metadata.

Which carrier a file gets:
  plain text, Markdown   -> C2PA 2.4 A.8 wrapper at the end of the text (+ AIGC front matter for .md)
  source code            -> C2PA 2.4 A.9 manifest comment line
  PDF, DOCX              -> manifest embedded by c2pa-python (+ AIGC in the Info dictionary / custom.xml)
Write the AIGC metadata before signing: the C2PA hard binding covers the metadata too.
"""

from __future__ import annotations

from pathlib import PurePath

from typing import TYPE_CHECKING, Any

from aimark.labels.syntax import FileKind, UnknownFileKindError, file_kind_for
from aimark.provenance import structured_text
from aimark.provenance.errors import ProvenanceError
from aimark.provenance.manifest import TRAINED_ALGORITHMIC_MEDIA, GenerationInfo, new_content_id
from aimark.provenance.text_manifests import read_structured, read_unstructured
from aimark.provenance.validation import C2paReport, StatusCode

if TYPE_CHECKING:
    from aimark.provenance.aigc import AigcError, AigcLabel, write_aigc
    from aimark.provenance.signing import SigningCredentials

TEXT, MARKDOWN, CODE, PDF_CARRIER, DOCX_CARRIER = "text", "markdown", "code", "pdf", "docx"
AIGC_CARRIERS = (MARKDOWN, DOCX_CARRIER, PDF_CARRIER)

# What reading a text file does not need is imported on first use: c2pa-rs, cryptography (signing, containers),
# lxml and pypdf (AIGC metadata in DOCX/PDF). `aimark verify notes.txt` then starts without them.
_LAZY = {"AigcError": "aigc", "AigcLabel": "aigc", "write_aigc": "aigc", "SigningCredentials": "signing",
         "DOCX": "containers", "PDF": "containers", "read_container": "containers", "sign_container": "containers",
         "sign_structured": "text_manifests", "sign_unstructured": "text_manifests"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"aimark.provenance.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _media_type(carrier: str) -> str | None:
    """The container's media type (PDF, DOCX), None for the text carriers."""
    if carrier not in (PDF_CARRIER, DOCX_CARRIER):
        return None
    from aimark.provenance.containers import DOCX, PDF

    return {PDF_CARRIER: PDF, DOCX_CARRIER: DOCX}[carrier]


def read_aigc(carrier: str, data: bytes) -> AigcLabel | None:
    """The file's AIGC label, None when it has none; AigcError when it is malformed or duplicated."""
    from aimark.provenance.aigc import read_aigc as read

    return read(carrier, data)


def detect_carrier(content: bytes, filename: str | None, lang_code: str | None = None) -> str:
    """text | markdown | code | pdf | docx, from `lang_code`, the file name, else the bytes (stdin)."""
    if lang_code:
        return {"text": TEXT, "markdown": MARKDOWN}.get(file_kind_for(filename, lang_code).name, CODE)
    suffix = PurePath(filename).suffix.lower() if filename and filename != "-" else None
    if suffix == ".pdf" or (suffix is None and content.startswith(b"%PDF-")):
        return PDF_CARRIER
    if suffix in (".docx", ".docm") or (suffix is None and content.startswith(b"PK\x03\x04")):
        return DOCX_CARRIER
    if suffix is None:
        return CODE if structured_text.BEGIN.encode() in content else TEXT
    try:
        kind = file_kind_for(filename)
    except UnknownFileKindError:
        return TEXT
    return {"text": TEXT, "markdown": MARKDOWN}.get(kind.name, CODE)


def _first_line_taken(content: bytes, kind: FileKind) -> bool:
    """Whether line one must stay first (shebang, XML declaration, `<?php`, doctype ...): A.9 then goes last."""
    first = content.decode("utf-8", "replace").lstrip("\ufeff").splitlines()[:1]
    return bool(first) and any(p.search(first[0]) for p in kind.preamble)


def sign_content(
    content: bytes,
    filename: str | None,
    credentials: SigningCredentials,
    info: GenerationInfo,
    *,
    lang_code: str | None = None,
) -> bytes:
    """`content` with a signed C2PA manifest in the carrier its format takes."""
    if not lang_code and filename and filename != "-" and PurePath(filename).suffix.lower() not in (".pdf", ".docx", ".docm"):
        try:
            file_kind_for(filename)
        except UnknownFileKindError as err:
            # A wrapper appended to, say, JSON would break its parsers: make the caller choose.
            raise ProvenanceError("aimark.c2pa.unknownFileKind", f"{err} (--lang-code text appends an A.8 wrapper)") from err
    from aimark.provenance.containers import sign_container
    from aimark.provenance.text_manifests import sign_structured, sign_unstructured

    carrier = detect_carrier(content, filename, lang_code)
    if media_type := _media_type(carrier):
        return sign_container(media_type, content, credentials, info)
    if carrier == CODE:
        kind = file_kind_for(filename, lang_code)
        return sign_structured(content, kind, credentials, info, first_line_taken=_first_line_taken(content, kind))
    return sign_unstructured(content, credentials, info)


def read_c2pa(
    content: bytes, filename: str | None, trust_anchors: bytes | None = None, *, lang_code: str | None = None
) -> C2paReport:
    """Find and validate the C2PA manifest (signature, binding to these exact bytes, trust)."""
    carrier = detect_carrier(content, filename, lang_code)
    if media_type := _media_type(carrier):
        from aimark.provenance.containers import read_container

        return read_container(media_type, content, trust_anchors)
    if carrier == CODE:
        return read_structured(content, trust_anchors)
    return read_unstructured(content, trust_anchors)


def add_provenance(
    content: bytes,
    filename: str | None,
    credentials: SigningCredentials,
    info: GenerationInfo,
    *,
    aigc_producer: str | None = None,
    aigc_label: str = "1",
    lang_code: str | None = None,
) -> bytes:
    """AIGC metadata (for md/docx/pdf, when `aigc_producer` is given; ProduceID = the C2PA content id),
    then the C2PA manifest over the result."""
    from aimark.provenance.aigc import AigcLabel, write_aigc

    carrier = detect_carrier(content, filename, lang_code)
    if aigc_producer and carrier in AIGC_CARRIERS:
        content = write_aigc(carrier, content, AigcLabel.first_write(aigc_producer, info.content_id, aigc_label))
    return sign_content(content, filename, credentials, info, lang_code=lang_code)


__all__ = [
    "AIGC_CARRIERS", "AigcError", "AigcLabel", "C2paReport", "GenerationInfo", "ProvenanceError",
    "SigningCredentials", "StatusCode", "TRAINED_ALGORITHMIC_MEDIA", "add_provenance", "detect_carrier",
    "new_content_id", "read_aigc", "read_c2pa", "sign_content", "write_aigc",
]
