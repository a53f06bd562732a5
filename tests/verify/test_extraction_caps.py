"""The text read from a container is bounded in characters and in work, and a report says when only part
was read (issue 13.6)."""

from __future__ import annotations

import io
import random

import pypdf
import pytest
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

from aimark.labels import notice_text
from aimark.verify import extract, verify
from aimark.verify.extract import MAX_TEXT_CHARS, visible_text


def pdf_with_pages(*page_ops: str) -> bytes:
    """A PDF with one Flate-compressed content stream per page, in Helvetica."""
    writer = pypdf.PdfWriter()
    font = writer._add_object(DictionaryObject({
        NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
        NameObject("/BaseFont"): NameObject("/Helvetica")}))
    for ops in page_ops:
        page = writer.add_blank_page(width=600, height=800)
        page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})})
        stream = DecodedStreamObject()
        stream.set_data(f"BT /F1 10 Tf 20 760 Td {ops} ET".encode())
        page[NameObject("/Contents")] = writer._add_object(stream.flate_encode(level=9))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def make_docx(paragraphs: list[str]) -> bytes:
    import docx

    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def test_small_pdf_with_a_huge_page_is_refused_not_read() -> None:
    # 440,000 one-letter strings: about 5 KB compressed. It used to yield 440,000 characters in seconds.
    bomb = pdf_with_pages("(a) Tj " * 440_000)
    assert len(bomb) < 10_000
    report = verify(bomb, "bomb.pdf", "eu")
    assert [e.code for e in report.input_errors] == ["aimark.pdf.tooComplex"]
    assert report.verdict == "error"


def test_small_pdf_showing_megabytes_of_text_is_refused_before_extraction() -> None:
    # 5,000 strings of 3,000 letters: 15 MB of content under 100,000 tokens, a few KB compressed. pypdf's
    # extraction is quadratic in a page's text, and this took over a minute.
    bomb = pdf_with_pages(("(" + "a" * 3000 + ") Tj T* ") * 5000)
    assert len(bomb) < 50_000
    report = verify(bomb, "bomb.pdf", "eu")
    assert [e.code for e in report.input_errors] == ["aimark.pdf.tooComplex"]


def test_a_form_drawn_many_times_counts_each_time() -> None:
    writer = pypdf.PdfWriter()
    form = DecodedStreamObject()
    form.set_data(b"BT /F1 10 Tf " + b"(" + b"b" * 50_000 + b") Tj ET")
    form.update({NameObject("/Type"): NameObject("/XObject"), NameObject("/Subtype"): NameObject("/Form"),
                 NameObject("/BBox"): pypdf.generic.ArrayObject([pypdf.generic.NumberObject(0)] * 4)})
    form_ref = writer._add_object(form.flate_encode(level=9))
    page = writer.add_blank_page(width=600, height=800)
    page[NameObject("/Resources")] = DictionaryObject({NameObject("/XObject"): DictionaryObject({NameObject("/X0"): form_ref})})
    contents = DecodedStreamObject()
    contents.set_data(b"/X0 Do " * 50)
    page[NameObject("/Contents")] = writer._add_object(contents)
    out = io.BytesIO()
    writer.write(out)
    # 50 KB of form text is an ordinary page once; drawn 50 times it is 2.5 MB of parsing.
    report = verify(out.getvalue(), "forms.pdf", "eu")
    assert [e.code for e in report.input_errors] == ["aimark.pdf.tooComplex"]
    assert "2 MiB of content parsed" in report.input_errors[0].message


def test_pdf_middle_pages_are_said_to_be_unread() -> None:
    data = pdf_with_pages("(first page) Tj", "(middle page) Tj", "(last page) Tj")
    extracted = visible_text(data, "pdf")
    assert "first page" in extracted.text and "last page" in extracted.text and "middle" not in extracted.text
    assert extracted.partial and "pages 2 to 2 of 3 were not read" in extracted.note
    report = verify(data, "doc.pdf", "eu").to_dict()
    assert report["layers"]["text"]["partial"] is True
    assert any(w["code"] == "aimark.text.partiallyRead" for w in report["warnings"])


def test_short_pdf_is_read_whole() -> None:
    extracted = visible_text(pdf_with_pages("(only page) Tj"), "pdf")
    assert "only page" in extracted.text and not extracted.partial and extracted.note == ""


def test_large_docx_text_is_capped_and_keeps_both_ends() -> None:
    notice = notice_text("kr", None)
    rng = random.Random(13)
    # About 2.3 million characters of varied syllables (repeated text would read as a zip bomb).
    body = ["".join(chr(rng.randrange(0xAC00, 0xD7A4)) for _ in range(250)) for _ in range(9000)]
    data = make_docx([notice] + body + [notice])
    extracted = visible_text(data, "docx")
    assert extracted.total_chars > 2_000_000
    assert len(extracted.text) <= MAX_TEXT_CHARS + 1 and extracted.partial
    assert extracted.text.startswith(notice) and extracted.text.endswith(notice)
    report = verify(data, "big.docx", "kr").to_dict()
    assert report["layers"]["text"]["chars_read"] <= MAX_TEXT_CHARS + 1
    assert any(w["code"] == "aimark.text.partiallyRead" and "only the first" in w["message"] for w in report["warnings"])
    assert {n["position"] for n in report["layers"]["notice"]["found"]} >= {"start"}


def test_docx_within_the_cap_is_read_exactly() -> None:
    paragraphs = ["첫 문단", "", "둘째 문단"]
    extracted = visible_text(make_docx(paragraphs), "docx")
    assert extracted.text == "\n".join(paragraphs) and not extracted.partial


def test_docx_document_part_over_the_byte_cap_is_refused(monkeypatch) -> None:
    monkeypatch.setattr(extract, "MAX_DOCUMENT_XML_BYTES", 4096)
    report = verify(make_docx(["x" * 10_000]), "a.docx", "eu")
    assert [e.code for e in report.input_errors] == ["aimark.docx.tooLarge"]


@pytest.mark.parametrize("limit", [2, 3, 10, 11])
def test_head_and_tail_of_pieces(limit) -> None:
    pieces = ["abc", "", "defgh", "ij", "klmnopq"]
    collected = extract._HeadTail(limit)
    for piece in pieces:
        collected.add(piece)
    result = collected.result("x")
    full = "\n".join(pieces)
    half = limit // 2
    assert result.total_chars == len(full) and result.partial
    assert full.startswith(result.text[:half]) and full.endswith(result.text[-half:])
    assert len(result.text) <= 2 * half + 1


def test_watermark_check_sees_the_capped_text_and_the_report_says_so() -> None:
    rng = random.Random(5)
    body = ["".join(chr(rng.randrange(0x4E00, 0x9FA5)) for _ in range(300)) for _ in range(2000)]
    received: list[int] = []

    def check(text: str) -> dict:
        received.append(len(text))
        return {"watermarked": False, "p_value": 0.5, "scheme": "synthid", "key_id": "k", "num_scored_tokens": 900}

    report = verify(make_docx(body), "big.docx", "cn", watermark_check=check)
    assert received and received[0] <= MAX_TEXT_CHARS + 1
    details = [r.detail for p in report.profiles for r in p.requirements if r.layer == "watermark"]
    assert details and all("on part of the text only" in d for d in details if "scheme" in d)
    assert any("on part of the text only" in d for d in details)
