"""PDF and DOCX: AIGC metadata first, then a C2PA manifest embedded by c2pa-python over the result."""

from __future__ import annotations

import io

import docx
import pypdf
import pytest

from aimark.provenance import add_provenance, read_aigc, read_c2pa
from aimark.provenance.containers import store_uncompressed

PRODUCER = "001191440300708461136T1XGW3"


@pytest.mark.parametrize("filename", ["report.pdf", "report.docx"])
def test_container_carries_both_labels_and_still_opens(filename, pki, credentials, info, pdf_bytes, docx_bytes) -> None:
    original = pdf_bytes if filename.endswith("pdf") else docx_bytes
    marked = add_provenance(original, filename, credentials, info, aigc_producer=PRODUCER)
    report = read_c2pa(marked, filename, pki.trust_anchor_pem)
    assert report.valid, report.to_dict()
    assert report.carrier == filename.split(".")[1]
    label = read_aigc(report.carrier, marked)
    assert label.produce_id == info.content_id == report.manifest["generation"]["content_id"]
    if filename.endswith("pdf"):
        assert len(pypdf.PdfReader(io.BytesIO(marked)).pages) == 1
    else:
        assert docx.Document(io.BytesIO(marked)).paragraphs[0].text.startswith("본 문서는")


def test_pdf_edit_is_tampering(pki, credentials, info, pdf_bytes) -> None:
    marked = add_provenance(pdf_bytes, "a.pdf", credentials, info)
    tampered = marked.replace(b"aimark test", b"aimark TEST")
    assert tampered != marked
    report = read_c2pa(tampered, "a.pdf", pki.trust_anchor_pem)
    assert not report.valid and not report.bound
    assert "assertion.dataHash.mismatch" in [s.code for s in report.failures]


def test_docx_edit_is_tampering(pki, credentials, info, docx_bytes) -> None:
    marked = add_provenance(docx_bytes, "a.docx", credentials, info)
    tampered = marked.replace("테스트".encode(), "시험용".encode())
    report = read_c2pa(tampered, "a.docx", pki.trust_anchor_pem)
    assert not report.valid and "assertion.collectionHash.mismatch" in [s.code for s in report.failures]


def test_unsigned_container_has_no_manifest(pdf_bytes, docx_bytes) -> None:
    assert not read_c2pa(pdf_bytes, "a.pdf").present
    assert not read_c2pa(store_uncompressed(docx_bytes), "a.docx").present


@pytest.mark.parametrize("filename, content", [("a.pdf", b"%PDF-1.7\ngarbage"), ("a.docx", b"not a zip"), ("a.docx", b"")])
def test_broken_containers_report_a_status_not_a_crash(filename, content) -> None:
    report = read_c2pa(content, filename)
    assert not report.valid
