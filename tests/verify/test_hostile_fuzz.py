"""Hypothesis over every file kind aimark reads (issue 13, close the classes): verify, label and unlabel
raise nothing but aimark's documented errors, and label then unlabel gives back the bytes exactly.

Inputs are built from the pieces the parsers react to (front-matter syntax, YAML aliases and tags,
manifest markers, line breaks of every kind, combining marks, XML and PDF operators), not only random
bytes, so the examples reach past the first check of each parser.
"""

from __future__ import annotations

import io
import json
import zipfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aimark.labels import (
    LabelError,
    UnknownFileKindError,
    UnknownProfileError,
    add_label,
    file_kind_for,
    remove_label,
)
from aimark.provenance import read_aigc, read_c2pa
from aimark.provenance.errors import ProvenanceError
from aimark.provenance.structured_text import BEGIN, DATA_URI_PREFIX, END
from aimark.verify import (
    VERDICT_ERROR,
    VERDICT_NOT_SATISFIED,
    VERDICT_SATISFIED,
    verify,
)

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW_FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

PIECES = [
    "\n", "\r\n", "\r", "\u2028", "\u0085", "\x0c", "\ufeff", "\ufe01", "\U000e0100", "\u200b", "\u0301" * 30, "\t", " ",
    "---", "...", "AIGC", "# ", "//", "/*", "*/", "<!--", "-->", "#!/usr/bin/env python", "<?xml version='1.0'?>", "```",
    BEGIN, END, DATA_URI_PREFIX, "aimark:label", "[aimark", "profile=kr lang=ko at=start", "본 콘텐츠는 AI", "人工智能生成",
]
YAML_KEYS = ["AIGC", "title", "x", "? [a]\n", "? {a: 1}\n", "&k key", "*k", "'quoted'", "1", "AIGC2", "- x"]
YAML_VALUES = [
    "2024-13-45", "2024-12-01", "1e99999", "0x_", "&a [x, x]", "*a", "[" * 60, "{a: 1}", "!!binary AAAA", "!!binary #",
    "!!python/object:os.system {}", "!!timestamp x", "!!int x", "'1'", '"\\x"', "|", ">", "null", "[*a, *a]", "<<: *a",
    "'{\"AIGC\":{\"Label\":\"1\",\"ContentProducer\":\"p\",\"ProduceID\":\"i\"}}'",
]
YAML_LINES = ["AIGC:", "  Label: '1'", "  ContentProducer: p", "  ProduceID: id", "%YAML 1.1", "---", "\t", "  ", ": 1"]


def _joined(pieces: list[str]) -> st.SearchStrategy[str]:
    return st.lists(st.one_of(st.sampled_from(pieces), st.text(max_size=12)), max_size=30).map("".join)


texts = _joined(PIECES)
front_matter = st.lists(st.one_of(st.builds("{}: {}".format, st.sampled_from(YAML_KEYS), st.sampled_from(YAML_VALUES)),
                                   st.sampled_from(YAML_LINES), st.text(max_size=8)), max_size=8).map("\n".join)
markdown = st.builds(lambda fm, body: f"---\n{fm}\n---\n{body}".encode(), front_matter, texts)
raw_bytes = st.binary(max_size=400)


def _docx(document_xml: str, custom_xml: str | None) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as package:
        package.writestr("[Content_Types].xml", "<Types xmlns='http://schemas.openxmlformats.org/package/2006/content-types'/>")
        package.writestr("word/document.xml", document_xml)
        if custom_xml is not None:
            package.writestr("docProps/custom.xml", custom_xml)
    return out.getvalue()


_W = "xmlns:w='http://schemas.openxmlformats.org/wordprocessingml/2006/main'"
xml_bodies = st.lists(st.sampled_from(["<w:p>", "</w:p>", "<w:t>", "</w:t>", "<w:r>", "</w:r>", "&amp;", "&lt;", "<!DOCTYPE x [<!ENTITY e 'e'>]>", "&e;", "<![CDATA[x]]>"]) | texts, max_size=30).map("".join)
docx_files = st.builds(
    lambda body, custom: _docx(f"<w:document {_W}><w:body>{body}</w:body></w:document>", custom),
    xml_bodies,
    st.none() | st.builds(lambda v: "<Properties xmlns='http://schemas.openxmlformats.org/officeDocument/2006/custom-properties' "
                                    "xmlns:vt='http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes'>"
                                    f"<property fmtid='x' pid='2' name='AIGC'><vt:lpwstr>{v}</vt:lpwstr></property></Properties>",
                          st.sampled_from(["{}", "{\"AIGC\":{\"Label\":\"1\"}}", "[", "x"]) | st.text(max_size=20).map(lambda s: s.replace("<", "").replace("&", ""))),
)


def _pdf(ops: str, info: dict[str, str]) -> bytes:
    import pypdf
    from pypdf.generic import DecodedStreamObject, NameObject

    writer = pypdf.PdfWriter()
    page = writer.add_blank_page(width=200, height=200)
    stream = DecodedStreamObject()
    stream.set_data(ops.encode("latin-1", "replace"))
    page[NameObject("/Contents")] = writer._add_object(stream)
    if info:
        writer.add_metadata(info)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


pdf_ops = st.lists(st.sampled_from(["BT", "ET", "(text) Tj", "[(a) -250 (b)] TJ", "/F1 10 Tf", "q", "Q", "1 0 0 1 5 5 cm",
                                    "<414243> Tj", "T*", "(", ")", "[", "]", "<<", ">>", "/Do", "BI ID EI"]), max_size=40).map(" ".join)
pdf_files = st.builds(_pdf, pdf_ops, st.dictionaries(st.sampled_from(["/AIGC", "/Title", "/AIGC2"]),
                                                     st.sampled_from(["{}", "{\"AIGC\":{}}", "x"]) | st.text(max_size=20), max_size=2))


def _mutated(data: bytes, cuts: list[tuple[int, int]]) -> bytes:
    for position, value in cuts:
        if data:
            index = position % len(data)
            data = data[:index] + bytes([value]) + data[index + 1 :]
    return data


def _verified(content: bytes, filename: str | None) -> None:
    report = verify(content, filename, "all")
    assert report.verdict in (VERDICT_SATISFIED, VERDICT_NOT_SATISFIED, VERDICT_ERROR)
    json.dumps(report.to_dict())


@FUZZ
@given(content=st.one_of(texts.map(str.encode), raw_bytes),
       filename=st.sampled_from(["a.txt", "a.md", "a.py", "a.js", "a.html", "a.c", "a.json", "a.unknownext", None]))
def test_verify_any_text_or_bytes(content: bytes, filename: str | None) -> None:
    _verified(content, filename)


@FUZZ
@given(content=markdown)
def test_verify_and_read_markdown_front_matter(content: bytes) -> None:
    _verified(content, "a.md")
    try:
        read_aigc("markdown", content)
    except ProvenanceError as err:
        assert err.code and "\n" not in err.message


@SLOW_FUZZ
@given(content=docx_files, cuts=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=3))
def test_verify_docx(content: bytes, cuts) -> None:
    content = _mutated(content, cuts)
    _verified(content, "a.docx")
    _verified(content, None)  # recognised by its bytes, as from standard input


@SLOW_FUZZ
@given(content=pdf_files, cuts=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=3))
def test_verify_pdf(content: bytes, cuts) -> None:
    content = _mutated(content, cuts)
    _verified(content, "a.pdf")
    read_c2pa(content, "a.pdf")


LABEL_ERRORS = (LabelError, UnknownFileKindError, UnknownProfileError)


@FUZZ
@given(text=texts, filename=st.sampled_from(["a.txt", "a.md", "a.py", "a.js", "a.html", "a.css", "a.sh", "a.sql"]),
       profile=st.sampled_from(["kr", "cn", "eu", "all"]), at=st.sampled_from(["start", "end"]))
def test_label_then_unlabel_restores_the_bytes(text: str, filename: str, profile: str, at: str) -> None:
    original = text.encode()
    kind = file_kind_for(filename)
    try:
        labelled = add_label(original, kind, profile, None, at)
    except LabelError:
        return  # documented refusals: already labelled, not UTF-8
    restored, removed = remove_label(labelled, kind)
    assert len(removed) == 1
    assert restored == original


@FUZZ
@given(content=st.one_of(raw_bytes, texts.map(str.encode), markdown),
       filename=st.sampled_from(["a.txt", "a.md", "a.py", "a.html"]))
def test_label_and_unlabel_raise_only_documented_errors(content: bytes, filename: str) -> None:
    kind = file_kind_for(filename)
    try:
        add_label(content, kind, "kr", None, "start")
    except LABEL_ERRORS:
        pass
    try:
        remove_label(content, kind)
    except LABEL_ERRORS:
        pass
