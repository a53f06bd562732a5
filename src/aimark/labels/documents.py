"""The visible notice in documents: a paragraph in a DOCX body, a line of text drawn on a PDF page.

PDF: the notice is drawn at the bottom of the last page, in an incremental update (the original bytes
stay a prefix), so that it is the end of the extracted text (GB 45438-2025 5.1 b: start or end) and
`aimark.provenance.pdf_revisions.remove_revisions` gives the original back byte for byte. The font is one of the standard CJK
fonts PDF readers provide (not embedded), addressed through the matching UCS-2 CMap, with a ToUnicode
map so that text extraction reads the notice back; no font file ships with aimark.

DOCX: the notice is the body's first paragraph. The package is rewritten (pypdf-style incremental
updates do not exist for ZIP), so a DOCX cannot be unlabelled to its original bytes: keep the original.
"""

from __future__ import annotations

import io
import zipfile
from typing import Any

from lxml import etree

from aimark.labels.visible import LabelError
from aimark.provenance.pdf_revisions import REVISION_KEY, incremental_writer, revision_marker

# language -> (font name, character collection ordering, CMap); all are in the PDF readers' standard CJK set.
_CJK_FONTS = {
    "ko": ("HYSMyeongJo-Medium", "Korea1", "UniKS-UCS2-H"),
    "ja": ("HeiseiMin-W3", "Japan1", "UniJIS-UCS2-H"),
    "zh": ("STSong-Light", "GB1", "UniGB-UCS2-H"),
    "en": ("STSong-Light", "GB1", "UniGB-UCS2-H"),  # English notices may quote 人工智能生成
}
FONT_RESOURCE = "/AimarkNotice"
NOTICE_FONT_SIZE = 9
MARGIN = 18


def _to_unicode_cmap(text: str) -> bytes:
    codes = sorted({ord(ch) for ch in text})
    entries = "\n".join(f"<{c:04X}> <{c:04X}>" for c in codes)
    return (
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
        "/CMapName /Aimark-UCS2 def\n/CMapType 2 def\n1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n"
        f"{len(codes)} beginbfchar\n{entries}\nendbfchar\nendcmap\n"
        "CMapName currentdict /CMap defineresource pop\nend\nend\n"
    ).encode("ascii")


def _font(writer: Any, text: str, language: str) -> Any:
    from pypdf.generic import ArrayObject, DecodedStreamObject, DictionaryObject, NameObject, NumberObject, TextStringObject

    base, ordering, cmap = _CJK_FONTS[language]
    to_unicode = DecodedStreamObject()
    to_unicode.set_data(_to_unicode_cmap(text))
    descendant = DictionaryObject({
        NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/CIDFontType0"),
        NameObject("/BaseFont"): NameObject("/" + base),
        NameObject("/CIDSystemInfo"): DictionaryObject({
            NameObject("/Registry"): TextStringObject("Adobe"), NameObject("/Ordering"): TextStringObject(ordering),
            NameObject("/Supplement"): NumberObject(2)}),
        NameObject("/DW"): NumberObject(1000),
    })
    return writer._add_object(DictionaryObject({
        NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type0"),
        NameObject("/BaseFont"): NameObject(f"/{base}-{cmap}"), NameObject("/Encoding"): NameObject("/" + cmap),
        NameObject("/DescendantFonts"): ArrayObject([writer._add_object(descendant)]),
        NameObject("/ToUnicode"): writer._add_object(to_unicode),
    }))


def add_pdf_notice(data: bytes, text: str, language: str) -> bytes:
    """`data` with `text` drawn at the foot of its last page, as one incremental update."""
    from pypdf.generic import ArrayObject, DecodedStreamObject, DictionaryObject, NameObject, TextStringObject

    from aimark.provenance.pdf_limits import bounded_pdf

    if any(ord(ch) > 0xFFFF for ch in text):
        raise LabelError("the notice holds characters outside the Basic Multilingual Plane; a UCS-2 PDF font cannot show them")
    out = io.BytesIO()
    try:
        with bounded_pdf(data) as reader:
            if not len(reader.pages):
                raise LabelError("the PDF has no page to put the notice on")
            writer = incremental_writer(reader)
            page = writer.pages[-1]
            box = page.mediabox
            resources = page.get("/Resources")
            resources = resources.get_object() if resources is not None else DictionaryObject()
            fonts = resources.get("/Font")
            fonts = fonts.get_object() if fonts is not None else DictionaryObject()
            fonts[NameObject(FONT_RESOURCE)] = _font(writer, text, language)
            resources[NameObject("/Font")] = fonts
            page[NameObject("/Resources")] = resources
            drawn = "".join(f"{ord(ch):04X}" for ch in text)
            # q/Q around the page's own content: whatever graphics state it leaves, the notice starts clean.
            notice = (f"Q q BT /{FONT_RESOURCE[1:]} {NOTICE_FONT_SIZE} Tf 0 g "
                      f"1 0 0 1 {float(box.left) + MARGIN:.2f} {float(box.bottom) + MARGIN:.2f} Tm <{drawn}> Tj ET Q\n")
            streams = []
            for body in ("q\n", notice):
                stream = DecodedStreamObject()
                stream.set_data(body.encode("ascii"))
                streams.append(writer._add_object(stream))
            contents = page.get("/Contents")
            existing = contents.get_object() if contents is not None else None
            if existing is None:
                parts = []
            elif isinstance(existing, ArrayObject):
                parts = list(existing)
            else:
                parts = [contents]
            page[NameObject("/Contents")] = ArrayObject([streams[0], *parts, streams[1]])
            writer.add_metadata({REVISION_KEY: TextStringObject(revision_marker(data))})
            writer.write(out)
    except LabelError:
        raise
    except Exception as err:  # noqa: BLE001 - pypdf raises many types on hostile input
        raise LabelError(f"the PDF cannot be labelled ({type(err).__name__})") from err
    return out.getvalue()


# --- DOCX -------------------------------------------------------------------------------------------

_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_DOCUMENT_PART = "word/document.xml"
NOTICE_STYLE_ID = "aimark-notice"


def add_docx_notice(data: bytes, text: str) -> bytes:
    """`data` with `text` as the first paragraph of the body; every other part keeps its bytes."""
    from aimark.provenance.errors import ProvenanceError
    from aimark.provenance.zip_limits import read_part, safe_zip

    try:
        archive = safe_zip(data)
        body_xml = read_part(archive, _DOCUMENT_PART)
    except ProvenanceError as err:
        raise LabelError(err.message) from err
    if body_xml is None:
        raise LabelError("the package has no word/document.xml")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False)
    try:
        root = etree.fromstring(body_xml, parser)
    except etree.XMLSyntaxError as err:
        raise LabelError(f"word/document.xml is not well-formed (line {err.lineno})") from err
    body = root.find(f"{{{_W}}}body")
    if body is None:
        raise LabelError("word/document.xml has no body")
    paragraph = etree.Element(f"{{{_W}}}p")
    run = etree.SubElement(paragraph, f"{{{_W}}}r")
    text_element = etree.SubElement(run, f"{{{_W}}}t")
    text_element.text = text
    text_element.set("{http://www.w3.org/XML/1998/namespace}space", "preserve")
    body.insert(0, paragraph)
    document = etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as packed:
        for entry in archive.infolist():
            packed.writestr(entry, document if entry.filename == _DOCUMENT_PART else (read_part(archive, entry.filename) or b""))
    return out.getvalue()
