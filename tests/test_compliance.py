"""One step to compliance, as a new user takes it: `aimark init`, fill in the ContentProducer (and, for the
signed variant, the signing credentials), `aimark label`, then `aimark verify` says satisfied.

Across profiles x kinds (txt, md, py, docx, pdf), through the CLI in-process; `unlabel` gives the
original bytes back where aimark promises it and refuses where it cannot.
"""

from __future__ import annotations

import io
import json
import re

import pytest
from typer.testing import CliRunner

from aimark.cli import app
from aimark.provenance.test_pki import generate_test_pki

runner = CliRunner()
PRODUCER = "001191440300708461136T1XGW3"
ENDPOINT = "https://verify.example.com/v1/verify"
KINDS = ("a.txt", "notes.md", "tool.py", "report.docx", "report.pdf")


def _text_pdf(pages: int = 3) -> bytes:
    """A PDF with a line of Helvetica text on each page (pypdf, no aimark code)."""
    import pypdf
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = pypdf.PdfWriter()
    for number in range(pages):
        page = writer.add_blank_page(width=300, height=300)
        font = DictionaryObject({NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
                                 NameObject("/BaseFont"): NameObject("/Helvetica")})
        page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(font)})})
        stream = DecodedStreamObject()
        stream.set_data(f"BT /F1 12 Tf 20 250 Td (Quarterly summary, page {number + 1}) Tj ET".encode())
        page[NameObject("/Contents")] = writer._add_object(stream)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _docx() -> bytes:
    import docx

    document = docx.Document()
    document.add_paragraph("분기 보고서. 本文档用于测试。")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


ORIGINALS = {
    "a.txt": "Meeting notes: the budget vote moves to May.\n".encode(),
    "notes.md": "# 会议纪要\n\n预算表决推迟到五月。\n".encode(),
    "tool.py": b"#!/usr/bin/env python3\ndef add(a, b):\n    return a + b\n",
    "report.docx": _docx(),
    "report.pdf": _text_pdf(),
}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return generate_test_pki().write(tmp_path_factory.mktemp("pki"))


def _cli(*args: str):
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output
    return result


def _new_user(directory, pki=None) -> None:
    """`aimark init`, then the edits the starter file's comments ask for."""
    assert _cli("init", str(directory)).exit_code == 0
    path = directory / "aimark.toml"
    text = path.read_text(encoding="utf-8").replace(f'# content_producer = "{PRODUCER}"', f'content_producer = "{PRODUCER}"')
    if pki is not None:
        text = text.replace('# certificate_chain = "pki/signer_chain.pem"', f'certificate_chain = "{pki["certificate_chain"]}"')
        text = text.replace('# private_key = "pki/signer_key.pem"', f'private_key = "{pki["private_key"]}"')
        text = text.replace('# trust_anchors = "pki/trust_anchor.pem"', f'trust_anchors = "{pki["trust_anchor"]}"')
        text = text.replace('# detection_endpoint = "https://example.com/v1/verify"', f'detection_endpoint = "{ENDPOINT}"')
    path.write_text(text, encoding="utf-8")


def _label_and_verify(directory, name: str, profile: str) -> tuple[dict, str]:
    (directory / name).write_bytes(ORIGINALS[name])
    labelled = directory / f"labelled-{profile}-{name}"
    result = _cli("label", str(directory / name), "--profile", profile, "-o", str(labelled))
    assert result.exit_code == 0, result.output
    report = _cli("verify", str(labelled), "--profile", profile, "--json")
    return json.loads(report.stdout), result.stderr


def _unsatisfied(report: dict) -> list[str]:
    return [f"{r['id']}: {r['status']} ({r['detail']})" for p in report["profiles"] for r in p["requirements"]
            if r["status"] in ("missing", "violated") and r["mandatory"] or r["status"] == "violated"]


@pytest.mark.parametrize("name", KINDS)
@pytest.mark.parametrize("profile", ["kr", "cn"])
def test_init_and_label_satisfy_kr_and_cn_without_signing(tmp_path, monkeypatch, profile, name) -> None:
    monkeypatch.chdir(tmp_path)
    _new_user(tmp_path)
    report, said = _label_and_verify(tmp_path, name, profile)
    assert report["verdict"] == "satisfied", _unsatisfied(report)
    assert "not written c2pa: no signing credentials configured" in said
    if profile == "cn" and name.endswith((".md", ".docx", ".pdf")):
        assert report["layers"]["aigc"]["label"]["ContentProducer"] == PRODUCER
        assert "wrote aigc" in said


@pytest.mark.parametrize("name", KINDS)
def test_eu_without_credentials_is_not_satisfied_and_label_says_why(tmp_path, monkeypatch, name) -> None:
    monkeypatch.chdir(tmp_path)
    _new_user(tmp_path)
    report, said = _label_and_verify(tmp_path, name, "eu")
    assert report["verdict"] == "not_satisfied"
    assert "eu.signed-metadata and eu.machine-readable need it" in said


@pytest.mark.parametrize("name", KINDS)
@pytest.mark.parametrize("profile", ["kr", "cn", "eu", "all"])
def test_with_signing_credentials_every_profile_is_satisfied(tmp_path, monkeypatch, pki, profile, name) -> None:
    monkeypatch.chdir(tmp_path)
    _new_user(tmp_path, pki)
    report, said = _label_and_verify(tmp_path, name, profile)
    assert report["verdict"] == "satisfied", _unsatisfied(report)
    manifest = report["layers"]["c2pa"]["manifest"]
    assert report["layers"]["c2pa"]["valid"] and manifest["detection_endpoint"] == ENDPOINT
    if profile in ("cn", "all") and name.endswith((".md", ".docx", ".pdf")):
        assert report["layers"]["aigc"]["label"]["ProduceID"] == manifest["generation"]["content_id"]
    if profile in ("eu", "all"):
        statuses = {r["id"]: r for p in report["profiles"] for r in p["requirements"]}
        assert statuses["eu.detection-endpoint"]["status"] == "satisfied" and ENDPOINT in statuses["eu.detection-endpoint"]["detail"]
        assert statuses["eu.identifier"]["status"] == "satisfied"
    assert "cannot give back the original bytes" in said  # a signed file: unlabel refuses it


def test_the_pdf_xmp_label_reads_back_with_an_independent_parser(tmp_path, monkeypatch) -> None:
    import pikepdf  # qpdf's parser and pikepdf's XMP reader: no aimark or pypdf code

    monkeypatch.chdir(tmp_path)
    _new_user(tmp_path)
    report, _ = _label_and_verify(tmp_path, "report.pdf", "cn")
    with pikepdf.open(tmp_path / "labelled-cn-report.pdf") as pdf:
        xmp = pdf.open_metadata().get("{http://www.tc260.org.cn/ns/AIGC/1.0/}AIGC")
        info = str(pdf.docinfo["/AIGC"])
    assert xmp == info and json.loads(xmp)["AIGC"] == report["layers"]["aigc"]["label"]
    assert json.loads(xmp)["AIGC"]["ContentProducer"] == PRODUCER


@pytest.mark.parametrize("name", ["a.txt", "notes.md", "tool.py", "report.pdf"])
@pytest.mark.parametrize("profile", ["kr", "cn", "all"])
def test_unlabel_restores_the_original_bytes(tmp_path, monkeypatch, profile, name) -> None:
    monkeypatch.chdir(tmp_path)
    _new_user(tmp_path)
    _label_and_verify(tmp_path, name, profile)
    restored = tmp_path / f"restored-{name}"
    result = _cli("unlabel", str(tmp_path / f"labelled-{profile}-{name}"), "-o", str(restored))
    assert result.exit_code == 0, result.output
    assert restored.read_bytes() == ORIGINALS[name]


def test_unlabel_refuses_a_docx_and_says_why(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _new_user(tmp_path)
    _, said = _label_and_verify(tmp_path, "report.docx", "cn")
    assert "cannot give back the original bytes of this docx" in said
    result = _cli("unlabel", str(tmp_path / "labelled-cn-report.docx"), "-o", str(tmp_path / "out.docx"))
    assert result.exit_code == 2 and "keep the original" in result.stderr and not (tmp_path / "out.docx").exists()


def test_unlabel_leaves_a_pdf_revision_that_is_not_aimarks(tmp_path, monkeypatch) -> None:
    """An edit appended after labelling breaks the chain: nothing is cut on a guess."""
    import pypdf

    monkeypatch.chdir(tmp_path)
    _new_user(tmp_path)
    _label_and_verify(tmp_path, "report.pdf", "cn")
    labelled = (tmp_path / "labelled-cn-report.pdf").read_bytes()
    writer = pypdf.PdfWriter(pypdf.PdfReader(io.BytesIO(labelled)), incremental=True)
    writer.add_metadata({"/Subject": "edited later"})
    edited = io.BytesIO()
    writer.write(edited)
    (tmp_path / "edited.pdf").write_bytes(edited.getvalue())
    result = _cli("unlabel", str(tmp_path / "edited.pdf"), "-o", str(tmp_path / "out.pdf"))
    assert result.exit_code == 0 and "no aimark label found" in result.stderr
    assert (tmp_path / "out.pdf").read_bytes() == edited.getvalue()


def test_markdown_front_matter_the_user_wrote_is_kept(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _new_user(tmp_path)
    source = "---\r\ntitle: 纪要\r\n---\r\n正文。\r\n".encode()
    (tmp_path / "fm.md").write_bytes(source)
    assert _cli("label", "fm.md", "--profile", "cn", "-o", "out.md").exit_code == 0
    labelled = (tmp_path / "out.md").read_bytes().decode("utf-8")
    assert labelled.startswith("---\r\n# aimark:aigc\r\nAIGC:\r\n") and "title: 纪要\r\n---\r\n本内容由人工智能生成。" in labelled
    assert _cli("unlabel", "out.md", "-o", "back.md").exit_code == 0
    assert (tmp_path / "back.md").read_bytes() == source


def test_flags_override_the_settings(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _new_user(tmp_path)
    (tmp_path / "n.md").write_text("x\n", encoding="utf-8")
    result = _cli("label", "n.md", "--profile", "cn", "--content-producer", "OTHER01", "--lang", "en", "-o", "o.md")
    assert result.exit_code == 0
    text = (tmp_path / "o.md").read_text(encoding="utf-8")
    assert "ContentProducer: 'OTHER01'" in text and "This content was generated by AI (人工智能生成)." in text
    monkeypatch.setenv("AIMARK_PROFILE", "kr")
    (tmp_path / "p.txt").write_text("x\n", encoding="utf-8")
    assert _cli("label", "p.txt", "-o", "p.out").exit_code == 0  # profile from the environment
    assert re.search(r"aimark:label profile=kr lang=ko", (tmp_path / "p.out").read_text(encoding="utf-8"))


def test_verify_reports_the_detection_endpoint_and_never_contacts_it(tmp_path, monkeypatch, pki) -> None:
    """A real HTTP server at the endpoint the manifest names: verifying the file must not reach it."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    contacted = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            contacted.append(self.path)
            self.send_response(200)
            self.end_headers()

        do_POST = do_HEAD = do_GET  # noqa: N815

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}/v1/verify"
    try:
        monkeypatch.chdir(tmp_path)
        _new_user(tmp_path, pki)
        monkeypatch.setenv("AIMARK_DETECTION_ENDPOINT", endpoint)
        report, _ = _label_and_verify(tmp_path, "report.pdf", "all")
    finally:
        server.shutdown()
    statuses = {r["id"]: r for p in report["profiles"] for r in p["requirements"]}
    assert statuses["eu.detection-endpoint"]["status"] == "satisfied" and endpoint in statuses["eu.detection-endpoint"]["detail"]
    assert contacted == []
    # A file is output that left the service: its own notice decides, the in-service line does not apply.
    assert statuses["kr.in-service-display"]["status"] == "not_applicable"
    assert statuses["kr.output-notice"]["status"] == "satisfied"


@pytest.mark.parametrize("content, message", [
    (b"PK\x03\x04 not a zip", "not a ZIP"),
    (b"%PDF-1.4 broken", "cannot be labelled"),
])
def test_a_broken_document_is_a_clear_error_not_a_signature_claim(tmp_path, monkeypatch, content, message) -> None:
    monkeypatch.chdir(tmp_path)
    _new_user(tmp_path)
    name = "bad.docx" if content.startswith(b"PK") else "bad.pdf"
    (tmp_path / name).write_bytes(content)
    result = _cli("label", name, "--profile", "cn", "-o", "out")
    assert result.exit_code == 2 and message in result.stderr and "C2PA" not in result.stderr
    assert not (tmp_path / "out").exists()


from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st  # noqa: E402

from aimark.compliance import label_file, remove_labels  # noqa: E402
from aimark.labels import LabelError  # noqa: E402
from aimark.provenance.errors import ProvenanceError  # noqa: E402
from aimark.settings import Settings  # noqa: E402

_PIECES = st.sampled_from(["---", "AIGC: x", "title: 'a'", "# aimark:aigc", "# aimark:aigc created", "...", "", " ",
                           "本文。", "\ufeff", "<!-- c -->", "- item"])
_MARKDOWN = st.lists(st.one_of(_PIECES, st.text(max_size=12)), max_size=8).flatmap(
    lambda lines: st.sampled_from(["\n", "\r\n", "\r"]).map(lambda nl: nl.join(lines)))


@hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_MARKDOWN, profile=st.sampled_from(["cn", "all", "kr"]), position=st.sampled_from(["start", "end"]))
def test_label_then_unlabel_is_the_identity_on_any_markdown(text, profile, position) -> None:
    """Notice + AIGC front matter, created or inserted, on any Markdown aimark accepts: unlabel gives it back."""
    settings = Settings().with_overrides(provider={"content_producer": PRODUCER})
    original = text.encode("utf-8")
    try:
        labelled = label_file(original, "notes.md", profile, settings, position=position).content
    except (LabelError, ProvenanceError):
        return  # refused (malformed front matter, an existing label ...): nothing was written
    assert remove_labels(labelled, "notes.md") == (original, ["aigc", "notice"] if profile != "kr" else ["notice"])


@pytest.mark.parametrize("text", ["---\n---\n---", "---\n本文。\n---", "---\n---\n"])
def test_unlabel_gives_back_markdown_whose_front_matter_is_empty_or_not_a_mapping(text) -> None:
    # Found by the property test above: the notice goes after the first closing '---' line; unlabel read a
    # longer front matter (or a scalar one), called it malformed and refused to give the text back.
    original = text.encode("utf-8")
    labelled = label_file(original, "notes.md", "kr", Settings(), position="start").content
    assert remove_labels(labelled, "notes.md") == (original, ["notice"])
