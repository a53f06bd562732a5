"""GB 45438-2025 Annex E AIGC metadata: field rules and the md / docx / pdf carriers."""

from __future__ import annotations

import io
import zipfile

import docx
import pypdf
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aimark.provenance.aigc import AigcError, AigcLabel, parse_value, read_aigc, write_aigc
from aimark.provenance.errors import ProvenanceError


PRODUCER = "001191440300708461136T1XGW3"
LABEL = AigcLabel.first_write(PRODUCER, "aimark-0123abcd")


def test_annex_e_json_has_the_seven_fields_in_order() -> None:
    assert LABEL.to_json() == (
        '{"AIGC":{"Label":"1","ContentProducer":"001191440300708461136T1XGW3","ProduceID":"aimark-0123abcd",'
        '"ReservedCode1":"","ContentPropagator":"001191440300708461136T1XGW3","PropagateID":"aimark-0123abcd",'
        '"ReservedCode2":""}}'
    )
    assert parse_value(LABEL.to_json()) == LABEL


@pytest.mark.parametrize("value, code", [
    ('{"AIGC":{"Label":"4","ContentProducer":"p","ProduceID":"i"}}', "aigc.invalidLabel"),
    ('{"AIGC":{"Label":"1","ContentProducer":"has space","ProduceID":"i"}}', "aigc.forbiddenCharacter"),
    ('{"AIGC":{"Label":"1","ContentProducer":"back\\\\slash","ProduceID":"i"}}', "aigc.forbiddenCharacter"),
    ('{"AIGC":{"Label":"1","ContentProducer":"한국","ProduceID":"i"}}', "aigc.forbiddenCharacter"),
    ('{"AIGC":{"Label":1,"ContentProducer":"p","ProduceID":"i"}}', "aigc.notString"),
    ('{"AIGC":{"Label":"1","ProduceID":"i"}}', "aigc.missingField"),
    ('{"AIGC":{"Label":"1","ContentProducer":"p","ProduceID":"i","Extra":"x"}}', "aigc.unknownField"),
    ('{"AIGC":', "aigc.malformedJson"),
    ('["AIGC"]', "aigc.malformed"),
])
def test_field_rules(value: str, code: str) -> None:
    with pytest.raises(AigcError) as caught:
        parse_value(value)
    assert caught.value.code == code


def test_escaped_quote_is_allowed() -> None:
    assert parse_value('{"AIGC":{"Label":"2","ContentProducer":"a\\"b","ProduceID":"i"}}').content_producer == 'a"b'


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=12))
def test_allowed_character_rule_matches_annex_e(value: str) -> None:
    allowed = all(0x21 <= ord(c) <= 0x7E and c != "\\" for c in value)
    try:
        AigcLabel("1", "producer", "id", reserved_code1=value)
        assert allowed
    except AigcError as err:
        assert not allowed and err.code == "aigc.forbiddenCharacter"


@pytest.mark.parametrize("original", [b"# Title\n\nBody.\n", b"---\ntitle: x\n---\n# T\n", b"---\r\ntitle: x\r\n---\r\nT\r\n", b""])
def test_markdown_front_matter_round_trip(original: bytes) -> None:
    written = write_aigc("markdown", original, LABEL)
    assert read_aigc("markdown", written) == LABEL
    body = original.split(b"---", 2)[-1] if original.startswith(b"---") else original
    assert written.endswith(body)


@pytest.mark.parametrize("markdown, code", [
    (b"---\nAIGC: {Label: '1'\n---\n", "aigc.malformedYaml"),
    (b"---\n- a list\n---\n", "aigc.malformedYaml"),
    (b"---\nAIGC: x\nAIGC: y\n---\n", "aigc.multipleLabels"),
    (b"---\nAIGC: '" + LABEL.to_json().encode() + b"'\nAIGC2: x\n---\n", "aigc.multipleLabels"),
    (b"---\nAIGC:\n  Label: '1'\n  ContentProducer: 'a b'\n  ProduceID: i\n---\n", "aigc.forbiddenCharacter"),
    (b"---\nAIGC:\n  Label: 1\n  ContentProducer: p\n  ProduceID: i\n---\n", "aigc.notString"),
    (b"\xff---\n", "aimark.text.invalidUtf8"),
])
def test_markdown_bad_metadata_is_reported(markdown: bytes, code: str) -> None:
    with pytest.raises(AigcError) as caught:
        read_aigc("markdown", markdown)
    assert caught.value.code == code


def test_markdown_json_string_value_is_accepted() -> None:
    assert read_aigc("markdown", b"---\nAIGC: '" + LABEL.to_json().encode() + b"'\n---\n") == LABEL


def test_docx_custom_property_round_trip_keeps_the_document(docx_bytes) -> None:
    original = docx_bytes
    written = write_aigc("docx", original, LABEL)
    assert read_aigc("docx", written) == LABEL
    assert docx.Document(io.BytesIO(written)).paragraphs[0].text.startswith("본 문서는")
    before, after = zipfile.ZipFile(io.BytesIO(original)), zipfile.ZipFile(io.BytesIO(written))
    changed = {"[Content_Types].xml", "_rels/.rels", "docProps/custom.xml"}
    for name in before.namelist():
        if name not in changed:
            assert before.read(name) == after.read(name), name
    with pytest.raises(AigcError, match="already"):
        write_aigc("docx", written, LABEL)


def _docx_with_custom(docx_bytes: bytes, xml: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(docx_bytes)) as source, zipfile.ZipFile(out, "w") as target:
        for entry in source.infolist():
            target.writestr(entry, source.read(entry))
        target.writestr("docProps/custom.xml", xml)
    return out.getvalue()


_PROP = '<property fmtid="{D5CDD505-2E9C-101B-9397-08002B2CF9AE}" pid="%d" name="%s"><vt:lpwstr>%s</vt:lpwstr></property>'
_PROPS = ('<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/custom-properties" '
          'xmlns:vt="http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes">%s</Properties>')


def test_docx_two_labels_and_bad_xml(docx_bytes) -> None:
    json_value = LABEL.to_json().replace('"', "&quot;")
    two = _docx_with_custom(docx_bytes, (_PROPS % (_PROP % (2, "AIGC", json_value) + _PROP % (3, "AIGC", json_value))).encode())
    with pytest.raises(AigcError) as caught:
        read_aigc("docx", two)
    assert caught.value.code == "aigc.multipleLabels"
    with pytest.raises(AigcError) as caught:
        read_aigc("docx", _docx_with_custom(docx_bytes, b"<Properties"))
    assert caught.value.code == "aigc.malformedXml"
    # An existing custom.xml gains one property with the next pid.
    existing = _docx_with_custom(docx_bytes, (_PROPS % (_PROP % (2, "Other", "x"))).encode())
    assert read_aigc("docx", write_aigc("docx", existing, LABEL)) == LABEL


def test_docx_that_is_not_a_zip_or_is_a_bomb() -> None:
    with pytest.raises(ProvenanceError) as caught:
        read_aigc("docx", b"PK\x03\x04 not really a zip")
    assert caught.value.code == "aimark.docx.notZip"
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("docProps/custom.xml", b"\0" * (80 * 1024 * 1024))
    with pytest.raises(ProvenanceError) as caught:
        read_aigc("docx", bomb.getvalue())
    assert caught.value.code in ("aimark.docx.zipBomb", "aimark.docx.tooLarge")


def test_pdf_info_round_trip_is_an_incremental_update(pdf_bytes) -> None:
    original = pdf_bytes
    written = write_aigc("pdf", original, LABEL)
    assert written.startswith(original)  # the original revision is untouched
    assert read_aigc("pdf", written) == LABEL
    reader = pypdf.PdfReader(io.BytesIO(written))
    assert len(reader.pages) == 1 and reader.metadata["/Title"] == "aimark test"


def test_pdf_two_labels_and_broken_pdf(pdf_bytes) -> None:
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(pdf_bytes)))
    writer.add_metadata({"/AIGC": LABEL.to_json(), "/AIGC_Copy": LABEL.to_json()})
    out = io.BytesIO()
    writer.write(out)
    with pytest.raises(AigcError) as caught:
        read_aigc("pdf", out.getvalue())
    assert caught.value.code == "aigc.multipleLabels"
    for broken in (b"%PDF-1.7\nnot a pdf", pdf_bytes[:150]):
        with pytest.raises(AigcError) as caught:
            read_aigc("pdf", broken)
        assert caught.value.code == "aimark.pdf.unreadable"
