"""The hooks in .pre-commit-hooks.yaml, run by pre-commit itself in a fresh git repository.

The hook definitions are this repository's own; they run as `repo: local` hooks with `language: system`
and the entry resolved in this interpreter's environment, because `language: python` would make pre-commit
pip-install aimark (and torch) into a new virtualenv, which has no place in a unit test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

import aimark
from tests.helpers import require_module

require_module("pre_commit", "pip install pre-commit (the test extra)")

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _local_config(profile: str) -> str:
    hooks = []
    for hook in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text()):
        command, *rest = hook["entry"].split()
        entry = " ".join([str(BIN / command) if command == "python" else f"{sys.executable} -c 'from aimark.cli import main; main()'", *rest])
        hooks.append({**hook, "language": "system", "entry": entry, "args": ["--profile", profile]})
    return yaml.safe_dump({"repos": [{"repo": "local", "hooks": hooks}]}, allow_unicode=True)


def _git(repo: Path, *args: str, env) -> subprocess.CompletedProcess:
    done = subprocess.run(["git", "-C", str(repo), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, timeout=120)
    return done  # git runs hooks with their output on stderr: both are in .stdout


def test_label_check_fails_an_unlabelled_commit_and_passes_once_labelled(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {**os.environ, "PYTHONPATH": str(Path(aimark.__file__).parents[1]), "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
           "AIMARK_HOME": str(tmp_path / "aimark-home"), "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org", "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    assert _git(repo, "init", "-q", env=env).returncode == 0
    (repo / ".pre-commit-config.yaml").write_text(_local_config("kr"), encoding="utf-8")
    installed = subprocess.run([sys.executable, "-m", "pre_commit", "install"], cwd=repo, capture_output=True, text=True, env=env, timeout=120)
    assert installed.returncode == 0, installed.stderr
    (repo / "answer.py").write_text("def answer():\n    return 42\n")
    _git(repo, "add", ".pre-commit-config.yaml", "answer.py", env=env)

    # Only the check runs by default: the labelling hook is opt-in (skipped here through SKIP).
    refused = _git(repo, "commit", "-q", "-m", "unlabelled", env={**env, "SKIP": "aimark-label"})
    assert refused.returncode != 0, refused.stdout
    assert "aimark label check" in refused.stdout and "Failed" in refused.stdout
    assert "kr.output-notice" in refused.stdout

    # The opt-in hook labels the staged file and stops the commit so the change can be reviewed...
    labelled = _git(repo, "commit", "-q", "-m", "labelling", env=env)
    assert labelled.returncode != 0 and "labelled answer.py" in labelled.stdout
    assert "AI" in (repo / "answer.py").read_text(encoding="utf-8") or "인공지능" in (repo / "answer.py").read_text(encoding="utf-8")
    # ...then, staged, the file passes both hooks.
    _git(repo, "add", "answer.py", env=env)
    accepted = _git(repo, "commit", "-q", "-m", "labelled", env=env)
    assert accepted.returncode == 0, accepted.stdout
    assert _git(repo, "log", "--oneline", env=env).stdout.count("\n") == 1
