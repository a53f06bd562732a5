"""Formats c2pa-python signs and reads natively: PDF and DOCX (manifest embedded by c2pa-rs)."""

from __future__ import annotations

import io
import zipfile

import c2pa

from aimark.provenance.errors import ProvenanceError, first_line
from aimark.provenance.manifest import GenerationInfo
from aimark.provenance.signing import SigningCredentials
from aimark.provenance.validation import FAILURE, C2paReport, StatusCode, absent, read_with_c2pa
from aimark.provenance.zip_limits import read_part, safe_zip

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
CARRIER_NAMES = {PDF: "pdf", DOCX: "docx"}


def store_uncompressed(docx: bytes) -> bytes:
    """The same package with every part stored (no compression).

    The c2pa-rs build that c2pa-python ships reads ZIP entries without deflate support ("compression
    method not supported: 8"), so a DOCX is repacked with stored entries before signing. Part names,
    order and bytes are unchanged; Word and python-docx read stored parts like deflated ones.
    """
    archive = safe_zip(docx)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as packed:
        for entry in archive.infolist():
            packed.writestr(entry, read_part(archive, entry.filename) or b"", compress_type=zipfile.ZIP_STORED)
    return out.getvalue()


def sign_container(media_type: str, data: bytes, credentials: SigningCredentials, info: GenerationInfo) -> bytes:
    """`data` with a C2PA manifest embedded by c2pa-rs."""
    if media_type == DOCX:
        data = store_uncompressed(data)
    out = io.BytesIO()
    try:
        with credentials.signing() as (signer, context), \
                c2pa.Builder(info.manifest_definition(media_type), context=context) as builder:
            builder.sign(signer, media_type, io.BytesIO(data), out)
    except c2pa.C2paError as err:
        raise ProvenanceError("aimark.c2pa.signingFailed", f"c2pa could not sign this {CARRIER_NAMES[media_type]}: {first_line(err)}") from err
    return out.getvalue()


def read_container(media_type: str, data: bytes, trust_anchors: bytes | None) -> C2paReport:
    carrier = CARRIER_NAMES[media_type]
    if media_type == DOCX:
        try:
            safe_zip(data)
        except ProvenanceError as err:
            return absent(carrier, StatusCode(err.code, FAILURE, err.message, "aimark"))
    return read_with_c2pa(media_type, data, carrier=carrier, trust_anchors=trust_anchors)
