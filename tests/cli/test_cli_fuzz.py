"""Hypothesis over the CLI's inputs: label, unlabel, verify on any file and detect --jsonl on any lines.
Exit codes are 0, 1 (verify: not satisfied) or 2 (error), with one-line errors and never a traceback."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from aimark.cli import app
from tests.verify.test_hostile_fuzz import (
    docx_files,
    markdown,
    pdf_files,
    raw_bytes,
    texts,
)

FUZZ = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
runner = CliRunner()


def _invoke(args: list[str], stdin: bytes | str | None = None):
    result = runner.invoke(app, args, input=stdin)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in (result.output or "")
    return result


files = st.one_of(
    st.tuples(st.one_of(texts.map(str.encode), raw_bytes), st.sampled_from([".txt", ".py", ".js", ".html", ".json"])),
    st.tuples(markdown, st.just(".md")),
    st.tuples(docx_files, st.just(".docx")),
    st.tuples(pdf_files, st.just(".pdf")),
)


@FUZZ
@given(file=files, command=st.sampled_from([["label", "--profile", "kr"], ["unlabel"], ["verify", "--profile", "all"],
                                            ["verify", "--profile", "cn", "--json"]]))
def test_file_commands_never_crash(tmp_path_factory, file, command) -> None:
    content, suffix = file
    path = tmp_path_factory.mktemp("fuzz") / f"input{suffix}"
    path.write_bytes(content)
    result = _invoke([*command, str(path)])
    allowed = {0, 1, 2} if command[0] == "verify" else {0, 2}
    assert result.exit_code in allowed
    if result.exit_code == 2:
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) <= 1
    if command[-1] == "--json" and result.exit_code in (0, 1):
        json.loads(result.stdout)


@FUZZ
@given(content=st.one_of(texts, raw_bytes.map(lambda b: b.decode("utf-8", "replace"))))
def test_label_stdin_never_crashes(content: str) -> None:
    result = _invoke(["label", "-", "--profile", "eu"], content)
    assert result.exit_code in (0, 2)


jsonl_lines = st.lists(st.one_of(
    st.builds(lambda t: json.dumps({"text": t}), texts),
    st.sampled_from(["[" * 50_000, "{\"text\": " + "[" * 50_000, "{\"text\": 1}", "{}", "null", "\"x\"", "\ufeff{}", "{\"text\": \"\\ud800\"}"]),
    st.text(max_size=30),
), min_size=1, max_size=6)


@FUZZ
@given(lines=jsonl_lines)
def test_detect_jsonl_never_crashes(key_file, lines: list[str]) -> None:
    stdin = "\n".join(line.replace("\n", " ").replace("\r", " ") for line in lines) + "\n"
    result = _invoke(["detect", "-", "--key", str(key_file), "--jsonl"], stdin)
    assert result.exit_code in (0, 2)
    for line in result.stdout.splitlines():
        json.loads(line)
