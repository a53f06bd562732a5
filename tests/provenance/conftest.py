"""Test certificates are generated here, per session; nothing is downloaded."""

from __future__ import annotations

import pytest

from aimark.provenance import GenerationInfo, SigningCredentials
from aimark.provenance.test_pki import TestPki, generate_test_pki


@pytest.fixture(scope="session")
def pki() -> TestPki:
    return generate_test_pki()


@pytest.fixture(scope="session")
def other_pki() -> TestPki:
    """A second, unrelated CA: its root must not make the first one's signatures trusted."""
    return generate_test_pki("aimark TEST ONLY other signer")


@pytest.fixture(scope="session")
def credentials(pki: TestPki) -> SigningCredentials:
    return SigningCredentials.from_pem(pki.certificate_chain_pem, pki.private_key_pem)


@pytest.fixture()
def info() -> GenerationInfo:
    return GenerationInfo(model_name="gemma-3-270m", watermark_scheme="synthid", watermark_key_id="key-1234")


def make_docx(text: str = "본 문서는 테스트입니다. 本文档用于测试。") -> bytes:
    """A real DOCX written by python-docx."""
    import io

    import docx

    document = docx.Document()
    document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def make_pdf(title: str = "aimark test") -> bytes:
    """A real one-page PDF written by pypdf."""
    import io

    import pypdf

    writer = pypdf.PdfWriter()
    writer.add_blank_page(width=200, height=200)
    writer.add_metadata({"/Title": title})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.fixture(scope="session")
def docx_bytes() -> bytes:
    return make_docx()


@pytest.fixture(scope="session")
def pdf_bytes() -> bytes:
    return make_pdf()
