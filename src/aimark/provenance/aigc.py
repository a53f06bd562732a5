"""GB 45438-2025 Annex E implicit label: the `AIGC` metadata, written into and read from its carriers.

Value (Annex E): `{"AIGC":{"Label":…,"ContentProducer":…,"ProduceID":…,"ReservedCode1":…,
"ContentPropagator":…,"PropagateID":…,"ReservedCode2":…}}`, all strings, each using only code points
0x21, 0x23–0x5B, 0x5D–0x7E plus the escaped quote `\\"` (no space, no bare quote, no backslash).
`Label`: "1" AI-generated, "2" possibly, "3" suspected. Only one implicit label per file (6.1 c).
Labelling Measures Art. 5: the label gives the AI attribute, the provider's name or code, a content ID.

Carriers for text files (TC260 practice guide PG-20258A, as reported): Markdown YAML front matter key
`AIGC`; OOXML `docProps/custom.xml` property `name="AIGC"` (JSON in `vt:lpwstr`); PDF Info `/AIGC`, and
(where a format carries XMP) `TC260:AIGC` in the TC260 namespace, which aimark also writes into a PDF's XMP.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import yaml
from lxml import etree

from aimark.provenance.errors import ProvenanceError
from aimark.provenance.pdf_limits import bounded_pdf
from aimark.provenance.pdf_revisions import REVISION_KEY, incremental_writer, revision_marker
from aimark.provenance.zip_limits import read_part, safe_zip

FIELDS = ("Label", "ContentProducer", "ProduceID", "ReservedCode1", "ContentPropagator", "PropagateID", "ReservedCode2")
LABEL_MEANINGS = {"1": "AI-generated", "2": "possibly AI-generated", "3": "suspected AI-generated"}
_REQUIRED = ("Label", "ContentProducer", "ProduceID")
# Annex E allowed characters once JSON unescaping has turned `\"` into `"`: printable ASCII but space
# and backslash. A bare `"` cannot survive JSON parsing, so `"` here always came from `\"`.
_ALLOWED = re.compile(r'[\x21-\x5b\x5d-\x7e]*')
MAX_METADATA_BYTES = 64 * 1024


class AigcError(ProvenanceError):
    """AIGC metadata is absent, unreadable or breaks an Annex E rule; `code` says which."""


@dataclass(frozen=True)
class AigcLabel:
    """The seven Annex E fields (Python names; `to_annex_e()` gives the standard's key names)."""

    label: str
    content_producer: str
    produce_id: str
    reserved_code1: str = ""
    content_propagator: str = ""
    propagate_id: str = ""
    reserved_code2: str = ""

    def __post_init__(self) -> None:
        validate_fields(self.to_annex_e()["AIGC"])

    @classmethod
    def first_write(cls, content_producer: str, produce_id: str, label: str = "1", reserved_code1: str = "") -> "AigcLabel":
        """A producer's label; the propagator fields repeat the producer's, as is usual on first write."""
        return cls(label, content_producer, produce_id, reserved_code1, content_producer, produce_id, "")

    def to_annex_e(self) -> dict[str, dict[str, str]]:
        values = (self.label, self.content_producer, self.produce_id, self.reserved_code1,
                  self.content_propagator, self.propagate_id, self.reserved_code2)
        return {"AIGC": dict(zip(FIELDS, values, strict=True))}

    def to_json(self) -> str:
        """The Annex E JSON string (compact: the standard forbids spaces inside values, and we add none)."""
        return json.dumps(self.to_annex_e(), separators=(",", ":"), ensure_ascii=True)

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> "AigcLabel":
        validate_fields(fields)
        return cls(*(fields.get(name, "") for name in FIELDS))


def validate_fields(fields: Any) -> None:
    """Raise AigcError unless `fields` obeys Annex E (keys, string values, characters, Label value)."""
    if not isinstance(fields, dict):
        raise AigcError("aigc.malformed", "AIGC value is not an object of fields")
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise AigcError("aigc.unknownField", f"unknown AIGC field(s): {', '.join(map(str, unknown))}")
    for name in FIELDS:
        value = fields.get(name, "")
        if not isinstance(value, str):
            raise AigcError("aigc.notString", f"{name} must be a string, not {type(value).__name__}")
        # fullmatch: `$` would let a trailing newline through (hypothesis found that).
        if not _ALLOWED.fullmatch(value):
            bad = next(ch for ch in value if not _ALLOWED.fullmatch(ch))
            raise AigcError("aigc.forbiddenCharacter", f"{name} contains forbidden character U+{ord(bad):04X}")
    missing = [name for name in _REQUIRED if not fields.get(name)]
    if missing:
        raise AigcError("aigc.missingField", f"required field(s) empty or missing: {', '.join(missing)}")
    if fields["Label"] not in LABEL_MEANINGS:
        raise AigcError("aigc.invalidLabel", f"Label must be 1, 2 or 3, not {fields['Label']!r}")


def parse_value(raw: Any) -> AigcLabel:
    """An Annex E value: the JSON string, or (YAML front matter) the already-parsed mapping."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as err:
            raise AigcError("aigc.malformedJson", f"AIGC value is not JSON ({err.msg} at {err.pos})") from err
    if isinstance(raw, dict) and set(raw) == {"AIGC"}:
        raw = raw["AIGC"]
    return AigcLabel.from_fields(raw)


def _only_one(keys: list[str]) -> None:
    """GB 45438-2025 6.1 c: only one implicit metadata label per file."""
    if len(keys) > 1:
        raise AigcError("aigc.multipleLabels", f"{len(keys)} AIGC labels ({', '.join(keys)}); only one is allowed")


# --- Markdown: YAML front matter -------------------------------------------------------------------

_FRONT_MATTER = re.compile(r"\A(?P<bom>\ufeff?)---(?P<nl>\r\n|\r|\n)(?:(?P<body>.*?)(?:\r\n|\r|\n))??(?:---|\.\.\.)[ \t]*(?:\r\n|\r|\n|\Z)", re.S)


# Annex E needs one mapping of strings; nothing deeper than this is a label, and YAML nested past
# Python's recursion limit would otherwise end in RecursionError.
MAX_YAML_DEPTH = 32


class _FrontMatterLoader(yaml.SafeLoader):
    """Safe loader for untrusted front matter: no aliases, bounded nesting, scalar keys, no duplicates.

    Aliases are refused outright: "billion laughs" nests aliases so that building or printing the
    value costs exponential time and memory, and a label never needs one. A duplicate key is an error
    (PyYAML keeps the last silently, hiding a second AIGC); a non-scalar key (`? [a]`) cannot be one.
    """

    _depth = 0

    def compose_node(self, parent, index):  # noqa: ANN001 - PyYAML's signature
        if self.check_event(yaml.AliasEvent):
            raise AigcError("aigc.malformedYaml", f"front matter uses a YAML alias (line {self.peek_event().start_mark.line + 1}); aliases are not accepted")
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise AigcError("aigc.malformedYaml", f"front matter is nested deeper than {MAX_YAML_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _construct_unique_mapping(loader: _FrontMatterLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise AigcError("aigc.malformedYaml", f"front matter has a non-scalar key (line {key_node.start_mark.line + 1})")
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise AigcError("aigc.multipleLabels" if "AIGC" in str(key) else "aigc.malformedYaml", f"duplicate key {str(key)[:80]!r} in front matter")
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_FrontMatterLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def _load_front_matter(body: str) -> Any:
    try:
        return yaml.load(body, Loader=_FrontMatterLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        # PyYAML's message quotes the input; the line number is all a reader needs to find the fault.
        raise AigcError("aigc.malformedYaml", f"front matter is not valid YAML{where}") from err
    except (ValueError, TypeError, OverflowError) as err:
        # Scalars the safe constructors reject after parsing: `2024-13-45` (a date), huge or odd numbers.
        raise AigcError("aigc.malformedYaml", f"front matter holds a value YAML cannot construct ({type(err).__name__})") from err


def _markdown_text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise AigcError("aimark.text.invalidUtf8", f"Markdown is not valid UTF-8 (byte {err.start})") from err


def read_markdown(data: bytes) -> AigcLabel | None:
    text = _markdown_text(data)
    match = _FRONT_MATTER.match(text)
    if not match:
        return None
    body = match.group("body") or ""
    if len(body.encode()) > MAX_METADATA_BYTES:
        raise AigcError("aigc.malformedYaml", f"front matter larger than {MAX_METADATA_BYTES} bytes")
    front = _load_front_matter(body)
    if front is None:
        return None
    if not isinstance(front, dict):
        raise AigcError("aigc.malformedYaml", "front matter is not a mapping")
    keys = [str(k) for k in front if "AIGC" in str(k)]
    if not keys:
        return None
    _only_one(keys)
    return parse_value(front[keys[0]])


def write_markdown(data: bytes, label: AigcLabel) -> bytes:
    """Insert an `AIGC:` block into the front matter (created when absent); the rest stays byte-identical."""
    if read_markdown(data) is not None:
        raise AigcError("aigc.multipleLabels", "file already carries an AIGC label")
    text = _markdown_text(data)
    match = _FRONT_MATTER.match(text)
    if match:
        newline = match.group("nl")
    else:
        first_break = re.search(r"\r\n|\r|\n", text)
        newline = first_break.group(0) if first_break else "\n"
    block = _markdown_block(label, newline, created=match is None)
    if match:
        insert_at = match.end("nl")
        return (text[:insert_at] + block + text[insert_at:]).encode("utf-8")
    bom = "\ufeff" if text.startswith("\ufeff") else ""
    return (bom + "---" + newline + block + "---" + newline + text[len(bom):]).encode("utf-8")


# The YAML comment that opens the block aimark writes; "created" when aimark also wrote the front matter
# around it, so that `remove_markdown` knows whether to take the `---` lines too.
MARKDOWN_MARKER = "# aimark:aigc"


def _markdown_block(label: AigcLabel, newline: str, *, created: bool) -> str:
    # Single-quoted YAML scalars need only `'` doubled; Annex E characters never need more.
    fields = [f"  {name}: '{value.replace(chr(39), chr(39) * 2)}'" for name, value in label.to_annex_e()["AIGC"].items()]
    return newline.join([MARKDOWN_MARKER + (" created" if created else ""), "AIGC:", *fields]) + newline


def remove_markdown(data: bytes) -> tuple[bytes, bool]:
    """Undo `write_markdown` exactly: the block it wrote (and the front matter it created), byte for byte.

    Only a block identical to what `write_markdown` writes for the label it holds is taken; anything else
    (a label a person wrote, an edited block) stays, and the second value is False.
    """
    text = _markdown_text(data)
    match = _FRONT_MATTER.match(text)
    if not match or read_markdown(data) is None:
        return data, False
    label, newline, bom = read_markdown(data), match.group("nl"), match.group("bom")
    opening = bom + "---" + newline
    created = opening + _markdown_block(label, newline, created=True) + "---" + newline
    if text.startswith(created):
        return (bom + text[len(created):]).encode("utf-8"), True
    block = _markdown_block(label, newline, created=False)
    if text.startswith(opening + block):
        return (opening + text[len(opening) + len(block):]).encode("utf-8"), True
    return data, False


# --- DOCX: docProps/custom.xml ---------------------------------------------------------------------

_CUSTOM_PART = "docProps/custom.xml"
_CUSTOM_NS = "http://schemas.openxmlformats.org/officeDocument/2006/custom-properties"
_VT_NS = "http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes"
_CUSTOM_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.custom-properties+xml"
_CUSTOM_REL_TYPE = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/custom-properties"
_FMTID = "{D5CDD505-2E9C-101B-9397-08002B2CF9AE}"
_CT_NS = "http://schemas.openxmlformats.org/package/2006/content-types"
_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
_XML_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False)


def _parse_xml(data: bytes, part: str) -> etree._Element:
    try:
        return etree.fromstring(data, _XML_PARSER)
    except etree.XMLSyntaxError as err:
        raise AigcError("aigc.malformedXml", f"{part} is not well-formed XML (line {err.lineno})") from err


def _aigc_properties(root: etree._Element) -> list[etree._Element]:
    return [p for p in root.findall(f"{{{_CUSTOM_NS}}}property") if "AIGC" in (p.get("name") or "")]


def read_docx(data: bytes) -> AigcLabel | None:
    archive = safe_zip(data)
    custom = read_part(archive, _CUSTOM_PART, MAX_METADATA_BYTES)
    if custom is None:
        return None
    properties = _aigc_properties(_parse_xml(custom, _CUSTOM_PART))
    if not properties:
        return None
    _only_one([p.get("name") for p in properties])
    value = properties[0].find(f"{{{_VT_NS}}}lpwstr")
    if value is None:
        raise AigcError("aigc.malformed", "AIGC custom property is not a vt:lpwstr string")
    return parse_value(value.text or "")


def _serialise(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)


def write_docx(data: bytes, label: AigcLabel) -> bytes:
    """Add the `AIGC` custom property; every other part is copied unchanged (same bytes, same compression)."""
    if read_docx(data) is not None:
        raise AigcError("aigc.multipleLabels", "document already carries an AIGC label")
    archive = safe_zip(data)
    names = archive.namelist()
    replaced: dict[str, bytes] = {}

    custom = read_part(archive, _CUSTOM_PART, MAX_METADATA_BYTES)
    root = _parse_xml(custom, _CUSTOM_PART) if custom else etree.Element(f"{{{_CUSTOM_NS}}}Properties", nsmap={None: _CUSTOM_NS, "vt": _VT_NS})
    pids = [int(p.get("pid", "1")) for p in root.findall(f"{{{_CUSTOM_NS}}}property") if (p.get("pid") or "").isdigit()]
    prop = etree.SubElement(root, f"{{{_CUSTOM_NS}}}property", fmtid=_FMTID, pid=str(max(pids + [1]) + 1), name="AIGC")
    etree.SubElement(prop, f"{{{_VT_NS}}}lpwstr").text = label.to_json()
    replaced[_CUSTOM_PART] = _serialise(root)

    if custom is None:
        types = _parse_xml(read_part(archive, "[Content_Types].xml") or b"", "[Content_Types].xml")
        etree.SubElement(types, f"{{{_CT_NS}}}Override", PartName="/" + _CUSTOM_PART, ContentType=_CUSTOM_CONTENT_TYPE)
        replaced["[Content_Types].xml"] = _serialise(types)
        rels = _parse_xml(read_part(archive, "_rels/.rels") or b"", "_rels/.rels")
        ids = {r.get("Id") for r in rels}
        new_id = next(f"rIdAigc{n}" for n in range(1, 10_000) if f"rIdAigc{n}" not in ids)
        etree.SubElement(rels, f"{{{_REL_NS}}}Relationship", Id=new_id, Type=_CUSTOM_REL_TYPE, Target=_CUSTOM_PART)
        replaced["_rels/.rels"] = _serialise(rels)

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as packed:
        for entry in archive.infolist():
            packed.writestr(entry, replaced.pop(entry.filename, None) or read_part(archive, entry.filename) or b"")
        for name, content in replaced.items():
            if name not in names:
                packed.writestr(name, content, compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


# --- PDF: document Info dictionary and XMP -----------------------------------------------------------

# TC260 practice guide (as reported, ../shared/specs/cn-gb45438.md): where a format carries XMP, the label is
# `TC260:AIGC` in this namespace. A PDF gets it in both places, with the same value: Info `/AIGC` for readers
# of the document information dictionary, XMP for XMP tools. Two copies of one value are one label (6.1 c);
# two different values are two labels, and an error.
XMP_NAMESPACE = "http://www.tc260.org.cn/ns/AIGC/1.0/"
XMP_PREFIX = "TC260"
_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_X = "adobe:ns:meta/"
MAX_XMP_BYTES = 1024 * 1024


@contextmanager
def _readable_pdf(data: bytes) -> Iterator[Any]:
    """A bounded PdfReader; whatever pypdf raises on hostile input, within the block too, is "unreadable"."""
    try:
        with bounded_pdf(data) as reader:
            _ = len(reader.pages)  # fail here, not later, on a broken page tree
            yield reader
    except AigcError:
        raise
    except Exception as err:  # noqa: BLE001 - pypdf raises many types on hostile input
        raise AigcError("aimark.pdf.unreadable", f"PDF cannot be parsed ({type(err).__name__})") from err


def _xmp_packet(reader: Any) -> bytes | None:
    metadata = reader.trailer["/Root"].get("/Metadata")
    if metadata is None:
        return None
    packet = metadata.get_object().get_data()
    if len(packet) > MAX_XMP_BYTES:
        raise AigcError("aigc.malformedXml", f"XMP metadata larger than {MAX_XMP_BYTES} bytes")
    return packet


def _xmp_values(packet: bytes) -> list[str]:
    """Every `TC260:AIGC` value in an XMP packet, as element text or as an rdf:Description attribute."""
    root = _parse_xml(packet.strip(b"\x00 \t\r\n"), "XMP metadata")
    values = [element.text or "" for element in root.iter(f"{{{XMP_NAMESPACE}}}AIGC")]
    values += [d.get(f"{{{XMP_NAMESPACE}}}AIGC") for d in root.iter(f"{{{_RDF}}}Description") if d.get(f"{{{XMP_NAMESPACE}}}AIGC") is not None]
    return values


def _with_xmp_label(packet: bytes | None, value: str) -> bytes:
    """The packet with one more rdf:Description holding `TC260:AIGC` (a new packet when there is none)."""
    if packet:
        root = _parse_xml(packet.strip(b"\x00 \t\r\n"), "XMP metadata")
        rdf = root if root.tag == f"{{{_RDF}}}RDF" else root.find(f".//{{{_RDF}}}RDF")
        if rdf is None:
            raise AigcError("aigc.malformedXml", "XMP metadata has no rdf:RDF element")
    else:
        root = etree.Element(f"{{{_X}}}xmpmeta", nsmap={"x": _X})
        rdf = etree.SubElement(root, f"{{{_RDF}}}RDF", nsmap={"rdf": _RDF})
    description = etree.SubElement(rdf, f"{{{_RDF}}}Description", {f"{{{_RDF}}}about": ""}, nsmap={XMP_PREFIX: XMP_NAMESPACE})
    etree.SubElement(description, f"{{{XMP_NAMESPACE}}}AIGC").text = value
    body = etree.tostring(root, encoding="UTF-8")
    return b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>\n' + body + b'\n<?xpacket end="w"?>'


def read_pdf(data: bytes) -> AigcLabel | None:
    with _readable_pdf(data) as reader:
        info = reader.metadata
        keys = [str(k) for k in info if "AIGC" in str(k)] if info else []
        raw = str(info[keys[0]]) if keys else None
        packet = _xmp_packet(reader)
    xmp = _xmp_values(packet) if packet else []
    if len(xmp) > 1:
        raise AigcError("aigc.multipleLabels", f"{len(xmp)} TC260:AIGC properties in the XMP metadata; only one is allowed")
    if not keys and not xmp:
        return None
    _only_one(keys)
    if keys and xmp and parse_value(raw) != parse_value(xmp[0]):
        raise AigcError("aigc.multipleLabels", "Info /AIGC and XMP TC260:AIGC hold different labels; only one is allowed")
    return parse_value(raw if keys else xmp[0])


def write_pdf(data: bytes, label: AigcLabel) -> bytes:
    """Set Info `/AIGC` and XMP `TC260:AIGC` as one incremental update: the original bytes stay as they are."""
    from pypdf.generic import NameObject, StreamObject

    if read_pdf(data) is not None:
        raise AigcError("aigc.multipleLabels", "PDF already carries an AIGC label")
    out = io.BytesIO()
    with _readable_pdf(data) as reader:
        packet = _with_xmp_label(_xmp_packet(reader), label.to_json())
        writer = incremental_writer(reader)
        writer.add_metadata({"/AIGC": label.to_json(), REVISION_KEY: revision_marker(data)})
        stream = StreamObject()
        stream.set_data(packet)
        stream[NameObject("/Type")] = NameObject("/Metadata")
        stream[NameObject("/Subtype")] = NameObject("/XML")
        writer._root_object[NameObject("/Metadata")] = writer._add_object(stream)
        writer.write(out)
    return out.getvalue()


# --- dispatch ---------------------------------------------------------------------------------------

READERS = {"markdown": read_markdown, "docx": read_docx, "pdf": read_pdf}
WRITERS = {"markdown": write_markdown, "docx": write_docx, "pdf": write_pdf}


def read_aigc(carrier: str, data: bytes) -> AigcLabel | None:
    """The file's AIGC label, None when it has none; AigcError when it is malformed or duplicated."""
    return READERS[carrier](data)


def write_aigc(carrier: str, data: bytes, label: AigcLabel) -> bytes:
    return WRITERS[carrier](data, label)
