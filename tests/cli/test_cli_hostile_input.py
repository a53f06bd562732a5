"""Every CLI failure is one line on stderr with exit 2, never a traceback (issue 13.9): exit 1 is
`verify`'s "not satisfied", so a crash must not read as a verdict."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from aimark.cli.io import guarded
from tests.cli.conftest import run


def _no_crash(result) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)


def test_deeply_nested_jsonl_line_is_reported_in_place(key_file) -> None:
    lines = ["[" * 100_000 + "]" * 100_000, json.dumps({"text": "An ordinary line of text to score."})]
    result = run("detect", "-", "--key", key_file, "--jsonl", input="\n".join(lines) + "\n")
    _no_crash(result)
    assert result.exit_code == 2
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert first == {"error": "line 1: JSON nested too deeply"}
    assert "p_value" in second


def test_hostile_front_matter_is_a_verdict_not_a_crash(tmp_path) -> None:
    for front in ("x: 2024-13-45", "? [a]\n: 1", "x: " + "[" * 5000 + "]" * 5000):
        doc = tmp_path / "doc.md"
        doc.write_text(f"---\n{front}\n---\nbody\n")
        result = run("verify", doc, "--profile", "cn", "--json")
        _no_crash(result)
        assert result.exit_code == 1  # not satisfied: the AIGC layer is malformed
        report = json.loads(result.stdout)
        assert report["layers"]["aigc"]["error"]["code"] == "aigc.malformedYaml"


def test_unexpected_error_is_one_line_with_exit_2() -> None:
    app = typer.Typer()

    @app.command()
    @guarded
    def broken() -> None:
        raise KeyError("internal detail")

    result = CliRunner().invoke(app, [])
    _no_crash(result)
    assert result.exit_code == 2
    assert "internal error (KeyError)" in result.output and "internal detail" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_label_stdin_over_the_cap_is_refused(monkeypatch) -> None:
    from aimark.cli import label_commands

    monkeypatch.setattr(label_commands, "MAX_INPUT_BYTES", 1000)
    result = run("label", "-", "--profile", "kr", input="x" * 2000)
    _no_crash(result)
    assert result.exit_code == 2 and "larger than" in result.output
