"""`label`/`unlabel`/`sign` with `-o` naming the input: a write that fails leaves the input whole (issue 13.7)."""

from __future__ import annotations

import pytest

from tests.test_files import run_with_file_size_limit

_CLI = "import sys\nfrom aimark.cli import app\nsys.exit(app(args=sys.argv, prog_name='aimark'))\n"


@pytest.mark.parametrize("command", [["label", "--profile", "kr"], ["unlabel"]])
def test_output_onto_the_input_survives_a_failed_write(tmp_path, command) -> None:
    doc = tmp_path / "doc.md"
    original = ("# 제목\n\n" + "본문입니다. " * 1500 + "\n").encode()
    if command[0] == "unlabel":
        from aimark.labels import add_label, file_kind_for

        original = add_label(original, file_kind_for("doc.md"), "kr", None, "start")
    doc.write_bytes(original)
    assert len(original) > 4096
    result = run_with_file_size_limit(4096, _CLI, *command, str(doc), "-o", str(doc), tmp_path=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "cannot write" in result.stderr
    assert doc.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["doc.md", "script.py"]


def test_output_onto_the_input_succeeds(tmp_path) -> None:
    from tests.cli.conftest import run

    doc = tmp_path / "doc.md"
    doc.write_bytes(b"# title\n\nbody\n")
    doc.chmod(0o640)
    assert run("label", "--profile", "kr", str(doc), "-o", str(doc)).exit_code == 0
    assert doc.read_bytes().count(b"body") == 1 and doc.read_bytes() != b"# title\n\nbody\n"
    assert doc.stat().st_mode & 0o777 == 0o640
    assert run("unlabel", str(doc), "-o", str(doc)).exit_code == 0
    assert doc.read_bytes() == b"# title\n\nbody\n"
