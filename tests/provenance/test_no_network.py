"""Verification never touches the network: a file naming a manifest by URL gets "not fetched", not a GET.

A real HTTP server on loopback stands in for the internal address an uploader would name; it records
every request it receives.
"""

from __future__ import annotations

import http.server
import io
import threading

import pypdf
import pytest
from pypdf.generic import DecodedStreamObject, NameObject

from aimark.provenance import read_c2pa
from aimark.provenance.structured_text import BEGIN, END
from aimark.verify import verify


class _Recorder(http.server.BaseHTTPRequestHandler):
    requests: list[str]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/c2pa")
        self.end_headers()
        self.wfile.write(b"not a manifest")

    do_HEAD = do_POST = do_GET

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def server():
    handler = type("Handler", (_Recorder,), {"requests": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}", handler.requests
    finally:
        httpd.shutdown()
        httpd.server_close()


def pdf_with_provenance_url(url: str) -> bytes:
    """A PDF whose XMP names its manifest by URL (dcterms:provenance), as C2PA allows for remote manifests."""
    xmp = (
        '<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
        f'xmlns:dcterms="http://purl.org/dc/terms/" dcterms:provenance="{url}"/></rdf:RDF></x:xmpmeta>'
        '<?xpacket end="w"?>'
    )
    writer = pypdf.PdfWriter()
    writer.add_blank_page(width=200, height=200)
    metadata = DecodedStreamObject()
    metadata.set_data(xmp.encode())
    metadata[NameObject("/Type")] = NameObject("/Metadata")
    metadata[NameObject("/Subtype")] = NameObject("/XML")
    writer._root_object[NameObject("/Metadata")] = writer._add_object(metadata)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_pdf_remote_manifest_is_not_fetched(server) -> None:
    base, requests = server
    report = read_c2pa(pdf_with_provenance_url(f"{base}/manifest.c2pa"), "doc.pdf")
    assert requests == []
    assert [s.code for s in report.failures] == ["manifest.inaccessible"]
    explanation = report.failures[0].explanation
    assert "not fetched" in explanation
    assert "127.0.0.1" not in explanation and "status" not in explanation  # nothing about the address is echoed


def test_verify_reports_not_fetched_and_makes_no_request(server) -> None:
    base, requests = server
    report = verify(pdf_with_provenance_url(f"{base}/m.c2pa"), "doc.pdf", "all")
    assert requests == []
    details = [r.detail for p in report.profiles for r in p.requirements]
    assert any("not fetched" in d for d in details)


def test_code_manifest_line_with_a_url_is_not_fetched(server) -> None:
    base, requests = server
    code = f"# {BEGIN} {base}/manifest.c2pa {END}\nprint('hi')\n".encode()
    report = read_c2pa(code, "app.py")
    assert requests == []
    assert "does not fetch remote manifests" in report.failures[0].explanation


def test_settings_refuse_network() -> None:
    """The settings the reader is built with (c2pa-rs would accept a misspelt key silently)."""
    from aimark.provenance.validation import OFFLINE_SETTINGS

    assert OFFLINE_SETTINGS["verify"]["remote_manifest_fetch"] is False
    assert OFFLINE_SETTINGS["verify"]["ocsp_fetch"] is False
    assert OFFLINE_SETTINGS["core"]["allowed_network_hosts"] == []
