"""Shared by the CLI tests: one invocation helper and a synthid key for the tiny model."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from aimark.cli import app

runner = CliRunner()


def run(*args, input=None):
    result = runner.invoke(app, [str(a) for a in args], input=input)
    assert "Traceback" not in (result.output or "")
    return result


@pytest.fixture(scope="module")
def key_file(tmp_path_factory, tiny_model_dir):
    path = tmp_path_factory.mktemp("keys") / "key.json"
    result = run("keygen", "--scheme", "synthid", "--out", path, "--model", tiny_model_dir, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["scheme"] == "synthid"
    return path
