"""`aimark detect`, `verify`, `label` and `unlabel` start without torch or transformers (nor scipy.stats):
each runs in a fresh process and reports the modules it ended with. None of them loads the provenance stack
(c2pa, cryptography, pypdf, lxml) for a plain text file: only a file that carries a manifest or AIGC metadata needs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import aimark

# Runs the CLI like the console script does, then prints which of the heavy modules got imported.
_WRAPPER = """
import atexit, json, sys
HEAVY = ("torch", "transformers", "scipy.stats", "sqlalchemy", "fastapi", "c2pa", "pypdf", "cryptography", "lxml")
atexit.register(lambda: sys.stderr.write("\\nMODULES " + json.dumps([m for m in HEAVY if m in sys.modules]) + "\\n"))
from aimark.cli import main
sys.argv = ["aimark", *sys.argv[1:]]
main()
"""


def _heavy_modules(args, tmp_path: Path, stdin: bytes | None = None) -> tuple[int, list[str]]:
    env = {**os.environ, "PYTHONPATH": str(Path(aimark.__file__).parents[1]), "AIMARK_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-c", _WRAPPER, *map(str, args)], input=stdin, capture_output=True, env=env, timeout=120)
    report = [line for line in done.stderr.decode().splitlines() if line.startswith("MODULES ")]
    assert report, done.stderr.decode()[-2000:]
    return done.returncode, json.loads(report[-1].removeprefix("MODULES "))


@pytest.fixture(scope="module")
def answer(tmp_path_factory):
    path = tmp_path_factory.mktemp("cold") / "answer.txt"
    path.write_text("인공지능 기본법. 日本の四季。中国茶文化。The quick brown fox jumps over the lazy dog, twice over.\n", encoding="utf-8")
    return path


def test_detect_imports_neither_torch_nor_transformers(tmp_path, key_file, answer):
    code, modules = _heavy_modules(["detect", answer, "--key", key_file, "--json"], tmp_path)
    assert code == 0 and modules == []


def test_verify_with_a_key_imports_neither_torch_nor_transformers(tmp_path, key_file, answer):
    code, modules = _heavy_modules(["verify", answer, "--profile", "kr", "--key", key_file], tmp_path)
    assert code == 1 and modules == []  # no notice: not satisfied, and no model stack loaded to say so


@pytest.mark.parametrize("command", [["label", "-", "--profile", "kr"], ["unlabel", "-"], ["verify", "-", "--profile", "all"]])
def test_label_unlabel_verify_import_no_heavy_module(tmp_path, command):
    code, modules = _heavy_modules(command, tmp_path, stdin=b"plain text to label\n")
    assert code in (0, 1) and modules == []
