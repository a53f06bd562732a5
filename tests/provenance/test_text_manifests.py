"""C2PA in text: sign with c2pa-rs, embed per A.8/A.9, validate signature, binding and trust.

encypher-c2pa is an independent verifier (its own Rust core); it must agree with aimark both ways.
"""

from __future__ import annotations

import json
import re
import unicodedata

import c2pa_structured_text
import c2pa_text
import encypher_c2pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aimark.labels import file_kind_for
from aimark.provenance import TRAINED_ALGORITHMIC_MEDIA, read_c2pa, sign_content
from aimark.provenance import structured_text as a9
from aimark.provenance import unstructured_text as a8
from aimark.provenance.text_manifests import read_structured, read_unstructured

PLAIN = "생성형 인공지능 테스트 문장입니다. 本内容由人工智能生成。\nSecond line.\n".encode()
PYTHON = b"import os\n\nprint(os.getcwd())\n"


def _codes(report, kind="failure"):
    return [s.code for s in report.statuses if s.kind == kind]


def _encypher(data: bytes, media_type: str, anchors: bytes) -> dict:
    return json.loads(encypher_c2pa.verify_bytes(data, media_type, json.dumps({"trust_pem": anchors.decode()})))


def test_plain_text_signed_and_read_back(pki, credentials, info) -> None:
    signed = sign_content(PLAIN, "a.txt", credentials, info)
    assert signed.startswith(PLAIN)  # the visible text is untouched; the wrapper follows it
    report = read_c2pa(signed, "a.txt", pki.trust_anchor_pem)
    assert report.valid and report.carrier == "unstructured-text", report.to_dict()
    assert report.manifest["digital_source_type"] == TRAINED_ALGORITHMIC_MEDIA and report.manifest["created"]
    generation = report.manifest["generation"]
    assert generation == {"content_id": info.content_id, "model_name": "gemma-3-270m",
                          "watermark_scheme": "synthid", "watermark_key_id": "key-1234"}
    assert "assertion.dataHash.match" in _codes(report, "success")


@pytest.mark.parametrize("edit", [lambda b: b.replace("테스트".encode(), "시험".encode()), lambda b: b"x" + b,
                                  lambda b: b.replace(b"Second", b"second")])
def test_any_edit_of_plain_text_is_tampering(pki, credentials, info, edit) -> None:
    report = read_c2pa(edit(sign_content(PLAIN, "a.txt", credentials, info)), "a.txt", pki.trust_anchor_pem)
    assert not report.valid and not report.bound and report.signature_valid
    assert "assertion.dataHash.mismatch" in _codes(report)


def test_trust_needs_the_right_anchor(pki, other_pki, credentials, info) -> None:
    signed = sign_content(PLAIN, "a.txt", credentials, info)
    for anchors in (None, other_pki.trust_anchor_pem):
        report = read_c2pa(signed, "a.txt", anchors)
        assert report.signature_valid and report.bound and not report.trusted and not report.valid
        assert "signingCredential.untrusted" in _codes(report)


def test_encypher_verifies_aimark_plain_text(pki, credentials, info) -> None:
    signed = sign_content(PLAIN, "a.txt", credentials, info)
    result = _encypher(signed, "text/plain", pki.trust_anchor_pem)
    assert (result["signature"], result["hard_binding"], result["validation_results"]["failure"]) == ("valid", "match", [])
    assert _encypher(signed.replace(b"Second", b"Third!"), "text/plain", pki.trust_anchor_pem)["hard_binding"] == "mismatch"


def test_aimark_reads_a_wrapper_written_by_c2pa_text(pki, credentials, info) -> None:
    signed = sign_content(PLAIN, "a.txt", credentials, info)
    store = a8.scan(signed.decode()).manifest_store
    rewritten = (PLAIN.decode() + c2pa_text.encode_wrapper_padded(store, a8.target_wrapper_length(len(store)))).encode()
    assert read_unstructured(rewritten, pki.trust_anchor_pem).valid


@pytest.mark.parametrize("filename, original", [
    ("a.py", PYTHON),
    ("a.sh", b"#!/bin/sh\necho hi\n"),
    ("a.sh", b"#!/bin/sh\necho hi"),
    ("a.xml", b'<?xml version="1.0"?>\r\n<a/>\r\n'),
    ("a.c", b"int main(void) { return 0; }\n"),
    ("a.html", b"<p>hi</p>\n"),
    ("a.rs", b"\xef\xbb\xbffn main() {}\n"),
])
def test_code_gets_one_a9_line_and_validates(pki, credentials, info, filename, original) -> None:
    signed = sign_content(original, filename, credentials, info)
    text = signed.decode()
    assert text.count(a9.BEGIN) == 1
    report = read_c2pa(signed, filename, pki.trust_anchor_pem)
    assert report.valid and report.carrier == "structured-text", report.to_dict()
    kind = file_kind_for(filename)
    line = next(l for l in text.lstrip("\ufeff").splitlines() if a9.BEGIN in l)
    assert line.startswith(kind.prefix + a9.BEGIN) and line.endswith(a9.END + kind.suffix)
    # The independent implementation excludes the same range and finds the same reference.
    assert c2pa_structured_text.manifest_exclusion(text.lstrip("\ufeff")) is not None
    if not text.startswith("\ufeff"):
        assert c2pa_structured_text.manifest_exclusion(text) == a9.scan(signed).exclusion
        assert c2pa_structured_text.extract_reference(text) == a9.scan(signed).reference
    # What the binding covers is the original; a last-line manifest also owns the file's final break.
    start, length = a9.scan(signed).exclusion
    covered = signed[:start] + signed[start + length:]
    assert covered == original or original[len(covered):] in (b"\n", b"\r\n") and original.startswith(covered)


def test_shebang_keeps_line_one(pki, credentials, info) -> None:
    signed = sign_content(b"#!/bin/sh\necho hi\n", "a.sh", credentials, info)
    assert signed.startswith(b"#!/bin/sh\necho hi\n# -----BEGIN C2PA MANIFEST-----")


def test_code_edit_is_tampering(pki, credentials, info) -> None:
    signed = sign_content(PYTHON, "a.py", credentials, info)
    report = read_c2pa(signed.replace(b"getcwd", b"getpid"), "a.py", pki.trust_anchor_pem)
    assert "assertion.dataHash.mismatch" in _codes(report) and not report.valid


@pytest.mark.parametrize("filename, original, media_type", [
    ("a.py", PYTHON, "text/x-python"),
    ("a.js", b"console.log('hi');\n", "application/javascript"),
    ("a.yaml", b"key: value\n", "application/yaml"),
    ("a.css", b"p { color: red; }\n", "text/css"),
])
def test_encypher_verifies_aimark_source_code(pki, credentials, info, filename, original, media_type) -> None:
    signed = sign_content(original, filename, credentials, info)
    result = _encypher(signed, media_type, pki.trust_anchor_pem)
    assert (result["signature"], result["hard_binding"], result["validation_results"]["failure"]) == ("valid", "match", [])


def test_aimark_reads_a_line_written_by_c2pa_structured_text(pki, credentials, info) -> None:
    signed = sign_content(PYTHON, "a.py", credentials, info)
    store = a9.scan(signed).manifest_store()
    rewritten = c2pa_structured_text.embed_manifest_embedded(PYTHON.decode(), store, "#").encode()
    assert rewritten == signed
    assert read_structured(rewritten, pki.trust_anchor_pem).valid


@pytest.mark.parametrize("content, code", [
    (PYTHON, "manifest.structuredText.noManifest"),
    (b"# -----BEGIN C2PA MANIFEST-----  -----END C2PA MANIFEST-----\nx\n", "manifest.structuredText.emptyReference"),
    (b"# -----BEGIN C2PA MANIFEST----- a -----END C2PA MANIFEST-----\n# -----BEGIN C2PA MANIFEST----- b -----END C2PA MANIFEST-----\n",
     "manifest.structuredText.multipleReferences"),
    (b"# -----BEGIN C2PA MANIFEST----- https://example.invalid/m.c2pa -----END C2PA MANIFEST-----\n", "manifest.inaccessible"),
    (b"# -----BEGIN C2PA MANIFEST----- data:application/c2pa;base64,!!! -----END C2PA MANIFEST-----\n", "manifest.inaccessible"),
    (b"# -----BEGIN C2PA MANIFEST----- data:application/c2pa;base64,AAAA -----END C2PA MANIFEST-----\n", "manifest.inaccessible"),
])
def test_structured_text_status_codes(content: bytes, code: str) -> None:
    report = read_structured(content, None)
    assert code in [s.code for s in report.statuses] and not report.valid


def test_plain_text_findings_and_wrapper_codes(pki, credentials, info) -> None:
    signed = sign_content(b"hello\n", "a.txt", credentials, info).decode()
    wrapper = signed[len("hello\n"):]
    assert "manifest.text.multipleWrappers" in _codes(read_unstructured((signed + wrapper).encode(), None))
    assert "manifest.text.corruptedWrapper" in _codes(read_unstructured(signed[:-4000].encode(), None))
    report = read_unstructured("zero\u200bwidth and hidden\ufe01\ufe02".encode(), None)
    assert not report.present
    assert {"aimark.text.zeroWidthCharacters", "aimark.text.strayVariationSelectors"} <= set(_codes(report, "informational"))
    assert "aimark.text.invalidUtf8" in _codes(read_unstructured(b"bad \xff utf8", None))


def test_signing_twice_is_refused(credentials, info) -> None:
    from aimark.provenance import ProvenanceError

    signed = sign_content(b"x\n", "a.txt", credentials, info)
    with pytest.raises(ProvenanceError, match="already"):
        sign_content(signed, "a.txt", credentials, info)


def test_unknown_file_kind_is_refused_rather_than_broken(credentials, info) -> None:
    from aimark.provenance import ProvenanceError

    with pytest.raises(ProvenanceError) as caught:
        sign_content(b'{"a": 1}', "data.json", credentials, info)
    assert caught.value.code == "aimark.c2pa.unknownFileKind"
    signed = sign_content(b"notes\n", "notes.unknownext", credentials, info, lang_code="text")
    assert "\ufeff".encode() in signed


@pytest.mark.parametrize("separator", ["\u2028", "\u0085", "\x0c"])
def test_manifest_line_is_dropped_whole_even_with_unicode_line_separators(separator: str) -> None:
    # scan() ends lines at CR/LF only; a separator inside the manifest line must not keep part of it.
    line = a9.manifest_line(f"# note{separator}", "", b"store")
    text = f"{line}\nprint('kept'){separator}x = 1\n"
    assert a9.without_manifest_lines(text) == f"print('kept'){separator}x = 1\n"
    assert a9.BEGIN not in a9.without_manifest_lines(text)
    assert a9.without_manifest_lines("a\r\nb\rc") == "a\r\nb\rc"
    from aimark.registry.fingerprint import content_text

    assert "note" not in content_text(text) and "kept" in content_text(text)


# -- hostile input: linear scans, the same answers -------------------------------------------------
_OLD_BLOCK = re.compile(re.escape(a9.BEGIN) + r"(?P<reference>.*?)" + re.escape(a9.END))


def _old_scan(data: bytes) -> a9.ReferenceScan:
    """A.9's scan as first written (regex with `.*?` between the markers: quadratic in BEGIN markers)."""
    text = data.decode("utf-8")
    lines = [m for m in a9._LINE.finditer(text) if m.start() < len(text)]
    hits = [(i, m) for i, m in enumerate(lines) if a9.BEGIN in m.group()]
    if not hits:
        return a9.ReferenceScan(failure=a9.NO_MANIFEST, detail="no -----BEGIN C2PA MANIFEST----- line")
    if len(hits) > 1 or len(_OLD_BLOCK.findall(hits[0][1].group())) > 1:
        return a9.ReferenceScan(failure=a9.MULTIPLE_REFERENCES, detail=f"{len(hits)} manifest lines; exactly one is allowed")
    index, line = hits[0]
    block = _OLD_BLOCK.search(line.group())
    if not block:
        return a9.ReferenceScan(failure=a9.EMPTY_REFERENCE, detail="manifest line has no -----END C2PA MANIFEST----- delimiter")
    reference = block.group("reference").strip()
    if not reference:
        return a9.ReferenceScan(failure=a9.EMPTY_REFERENCE, detail="manifest line carries no reference")
    start_char, end_char = line.start(), line.end()
    if index == 0 and text.startswith("\ufeff"):
        start_char = 1
    if index > 0:
        start_char -= len(lines[index - 1].group(1))
    return a9.ReferenceScan(reference=reference, exclusion=(len(text[:start_char].encode()), len(text[start_char:end_char].encode())))


_A9_PIECES = st.sampled_from([a9.BEGIN, a9.END, a9.BEGIN[:9], a9.END[5:], "-----", " ", "ref", "data:x", "\n", "\r\n", "\r",
                              "\ufeff", "# ", "é", "\u2028"])


@settings(max_examples=400, deadline=None)
@given(text=st.lists(_A9_PIECES, max_size=16).map("".join))
def test_a9_scan_answers_as_the_old_regex_did(text: str) -> None:
    assert a9.scan(text.encode()) == _old_scan(text.encode())


@pytest.mark.timeout(10)
@pytest.mark.parametrize("line, code", [
    ("# " + a9.BEGIN * 30_000, "manifest.structuredText.emptyReference"),  # before: minutes (n² lazy scans)
    ("# " + (a9.BEGIN + " x ") * 30_000 + a9.END, "manifest.inaccessible"),  # one pair: a reference full of markers
    ("# " + (a9.BEGIN + "x" + a9.END) * 20_000, "manifest.structuredText.multipleReferences"),
])
def test_a9_marker_floods_are_read_in_linear_time(line: str, code: str) -> None:
    data = f"{line}\nprint(1)\n".encode()
    assert code in _codes(read_structured(data, None))
    assert a9.BEGIN not in a9.without_manifest_lines(data.decode())


@pytest.mark.timeout(10)
def test_a_base_letter_with_200000_marks_is_checked_in_linear_time() -> None:
    # Before: the NFC check reordered the marks by insertion sort, ~20 s per call.
    text = "x" + "\u0301\u0316" * 100_000
    report = read_unstructured(text.encode(), None)
    assert not report.present and "aimark.text.notNfc" in _codes(report, "informational")
    ordered = unicodedata.normalize("NFC", "x" + "\u0316" * 1000 + "\u0301" * 1000)
    assert "aimark.text.notNfc" not in _codes(read_unstructured(ordered.encode(), None), "informational")


@pytest.mark.timeout(60)
def test_text_with_a_long_mark_run_signs_and_verifies(pki, credentials, info) -> None:
    # The A.8 hash covers the NFC form exactly as unicodedata computes it, hostile runs included.
    text = ("Zalgo x" + "\u0301\u0316" * 100_000 + " end\n").encode()
    signed = sign_content(text, "a.txt", credentials, info)
    report = read_c2pa(signed, "a.txt", pki.trust_anchor_pem)
    assert report.valid, report.to_dict()
