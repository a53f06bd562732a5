"""What a report says about a failure is fixed text: never the exception's message (issue 13.9)."""

from __future__ import annotations

import json

from aimark.verify import verify

TEXT = ("Plain prose that a detector is asked to score. " * 30).encode()
SECRET = "/srv/internal/path password=hunter2"


def test_watermark_check_failure_is_a_fixed_line(caplog) -> None:
    def failing(text: str) -> dict:
        raise RuntimeError(f"cannot open {SECRET} for {text[:40]!r}")

    with caplog.at_level("WARNING", logger="aimark.verify.verifier"):
        report = verify(TEXT, "a.txt", "eu", watermark_check=failing)
    document = json.dumps(report.to_dict())
    assert "hunter2" not in document and "Plain prose" not in report.to_dict()["layers"]["watermark"]["error"]
    assert report.to_dict()["layers"]["watermark"]["error"] == "watermark check failed (an error in the detector)"
    assert "RuntimeError" in caplog.text and "hunter2" not in caplog.text


def test_broken_docx_xml_message_does_not_quote_the_file() -> None:
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as package:
        package.writestr("[Content_Types].xml", "<Types/>")
        package.writestr("word/document.xml", "<document><hunter2-secret-tag></document>")
    report = verify(out.getvalue(), "a.docx", "eu")
    (error,) = report.input_errors
    assert error.code == "aimark.docx.corruptPart" and "hunter2" not in error.message
