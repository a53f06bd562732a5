"""Inputs of a given size in bytes: ordinary ones per file kind, and adversarial ones built to hit a worst case.

Each adversarial generator names the file it pretends to be (its extension picks the carrier), so its time
is compared with ordinary input of the same kind and size.
"""

from __future__ import annotations

import functools
import inspect
import io
import json
import re
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from aimark.provenance.structured_text import BEGIN, END


@dataclass(frozen=True)
class Case:
    content: bytes
    filename: str

    @property
    def text(self) -> str:
        return self.content.decode("utf-8")


@functools.cache
def _prose() -> str:
    """Human prose with no download: docstrings of the standard library, and the CJK the notices use."""
    import argparse, collections, email, json, logging, pathlib, subprocess, textwrap, threading, typing, unittest, zipfile  # noqa: I001

    passages = [re.sub(r"\s+", " ", inspect.getdoc(obj) or "") for module in
                (argparse, collections, email, json, logging, pathlib, subprocess, textwrap, threading, typing, unittest, zipfile)
                for _, obj in inspect.getmembers(module)]
    passages += ["대한민국은 민주공화국이다. 대한민국의 주권은 국민에게 있고, 모든 권력은 국민으로부터 나온다.",
                 "中华人民共和国是工人阶级领导的、以工农联盟为基础的人民民主专政的社会主义国家。"]
    return "\n\n".join(dict.fromkeys(p for p in passages if len(p) > 200))


@functools.cache
def _python() -> str:
    import argparse, json, textwrap  # noqa: I001

    return "\n\n".join(inspect.getsource(module) for module in (argparse, json.decoder, json.encoder, textwrap))


def _fill(unit: str, size: int) -> str:
    """``unit`` repeated and cut to ``size`` UTF-8 bytes (at a character boundary)."""
    encoded_unit = len(unit.encode("utf-8"))
    text = unit * (size // max(1, encoded_unit) + 1)
    return text.encode("utf-8")[:size].decode("utf-8", errors="ignore")


def ordinary(kind: str, size: int) -> Case:
    """Ordinary input of ``kind`` (txt, md, py, docx, pdf) and about ``size`` bytes."""
    if kind == "py":
        return Case(_fill(_python(), size).encode(), "ordinary.py")
    if kind == "docx":
        return Case(docx_with_text(_fill(_prose(), size * 3)), "ordinary.docx")  # prose deflates ~3:1
    if kind == "pdf":
        return Case(pdf_with_text(_fill(_prose(), size * 3)), "ordinary.pdf")
    return Case(_fill(_prose(), size).encode(), f"ordinary.{kind}")


# -- carriers built by hand, so that their size and content can be anything ----------------------------
_CONTENT_TYPES = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
                  '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                  '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
                  '<Default Extension="xml" ContentType="application/xml"/>'
                  '<Override PartName="/word/document.xml" '
                  'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>')
_RELS = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
         '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
         '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
         'Target="word/document.xml"/></Relationships>')
_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def docx_with_text(text: str, *, repeat: int = 1) -> bytes:
    """A minimal DOCX whose body is ``text`` (as paragraphs) written ``repeat`` times, streamed into the zip."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as package:
        package.writestr("[Content_Types].xml", _CONTENT_TYPES)
        package.writestr("_rels/.rels", _RELS)
        with package.open("word/document.xml", "w") as part:
            part.write(f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="{_W}"><w:body>'.encode())
            paragraphs = "".join(f"<w:p><w:r><w:t>{p}</w:t></w:r></w:p>" for p in _xml_escape(text).split("\n")).encode()
            for _ in range(repeat):
                part.write(paragraphs)
            part.write(b"</w:body></w:document>")
    return out.getvalue()


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def pdf_with_text(text: str, *, repeat: int = 1) -> bytes:
    """A one-page PDF whose content stream (FlateDecode) shows ``text`` ``repeat`` times."""
    lines = [line.encode("latin-1", "replace").replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
             for line in text.split("\n")]
    shown = b"BT /F1 10 Tf 12 TL 20 800 Td " + b"".join(b"(" + line[:4000] + b") ' " for line in lines) + b"ET\n"
    compressor = zlib.compressobj(9)
    stream = b"".join(compressor.compress(shown) for _ in range(repeat)) + compressor.flush()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 842] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    out.write(b"".join(b"%010d 00000 n \n" % offset for offset in offsets))
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


# -- adversarial generators: (kind, size) -> Case ------------------------------------------------------------
def _text(kind: str, build: Callable[[int], str]) -> Callable[[int], Case]:
    return lambda size: Case(build(size).encode("utf-8"), f"adversarial.{kind}")


MARKS = "\u0301\u0316"  # combining classes 230 and 220: every pair is out of canonical order


def _yaml_nesting(size: int) -> str:
    depth = max(1, (size - 20) // 2)
    return "---\nx: " + "[" * depth + "]" * depth + "\n---\nbody text\n"


def _python_nesting(size: int) -> str:
    return "x = " + "(" * 150 + "1" + ")" * 150 + "\n" + "y = " + "-" * (size - 320) + "1\n"


def _json_nesting(size: int) -> str:
    depth = max(1, (size - 40) // 2)
    return '{"text": "hello", "x": ' + "[" * depth + "]" * depth + "}"


#: name -> (kind of ordinary input it is compared with, generator)
ADVERSARIAL: dict[str, tuple[str, Callable[[int], Case]]] = {
    "one character": ("txt", _text("txt", lambda n: "a" * n)),
    "spaces": ("txt", _text("txt", lambda n: " " * n)),
    "line breaks": ("txt", _text("txt", lambda n: "\n" * n)),
    "fence + spaces": ("txt", _text("txt", lambda n: "```" + " " * (n - 4) + "`")),
    "fence flood": ("md", _text("md", lambda n: _fill("```py\n```\n", n))),
    "A.9 BEGIN flood": ("py", _text("py", lambda n: "# " + _fill(BEGIN, n - 2))),
    "A.9 BEGIN/END pairs": ("py", _text("py", lambda n: "# " + _fill(f"{BEGIN}x{END}", n - 2))),
    "combining marks": ("txt", _text("txt", lambda n: "a" + _fill(MARKS, n - 1))),
    "zero-width flood": ("txt", _text("txt", lambda n: _fill("a\u200b", n))),
    "notice-line flood": ("txt", _text("txt", lambda n: _fill("[aimark:label profile=kr lang=ko at=start] AI generated\n", n))),
    "YAML front matter nesting": ("md", _text("md", _yaml_nesting)),
    "Python nesting": ("py", _text("py", _python_nesting)),
    "JSON nesting": ("txt", _text("json", _json_nesting)),
    # Bombs grow with the size asked for up to a ceiling (20 MB of XML, 9 MB of page text), so that
    # the bench itself stays within memory; past it the file is smaller than the size it is listed at.
    "DOCX decompression bomb": ("docx", lambda n: Case(docx_with_text("a" * 100_000, repeat=min(max(1, n // 100), 200)), "bomb.docx")),
    "PDF huge extracted text": ("pdf", lambda n: Case(pdf_with_text(("a" * 3000 + "\n") * 30, repeat=min(max(1, n // 60), 100)), "bomb.pdf")),
}


def json_body(text: str) -> bytes:
    return json.dumps({"text": text}).encode()
