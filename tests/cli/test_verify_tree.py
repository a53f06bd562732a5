"""`aimark verify DIR...`: the walk (git or .gitignore), one row per file, JSON and JUnit, exit codes, hostile trees."""

from __future__ import annotations

import json
import os
import subprocess
from xml.etree import ElementTree

import pytest

from aimark.cli import app, tree
from tests.cli.conftest import run, runner


def _labelled(tmp_path, name="notes.txt", text="사람이 아닌 모델이 쓴 답입니다.\n"):
    source = tmp_path / "src.txt"
    source.write_text(text, encoding="utf-8")
    result = run("label", source, "--profile", "kr")
    assert result.exit_code == 0
    return result.stdout_bytes


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "project"
    (root / "src" / "deep").mkdir(parents=True)
    (root / "build").mkdir()
    (root / "README.md").write_bytes(_labelled(tmp_path))
    (root / "src" / "app.py").write_text("print('hello')\n")
    (root / "src" / "deep" / "bad.txt").write_bytes(b"\xff\xfe not utf-8")
    (root / "build" / "out.txt").write_text("ignored build output\n")
    (root / "debug.log").write_text("ignored log\n")
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (root / ".gitignore").write_text("build/\n*.log\n")
    (root / "src" / ".gitignore").write_text("scratch-*.txt\n")  # a nested rule, relative to its own folder
    (root / "src" / "deep" / "scratch-1.txt").write_text("ignored scratch\n")
    (root / "src" / "escape.txt").symlink_to("/etc/hostname")
    return root


def test_a_folder_gives_one_row_per_known_file_and_the_worst_exit_code(project):
    result = run("verify", project, "--profile", "kr", "--json")
    assert result.exit_code == 2  # one file is not UTF-8: an error row, and exit 2
    document = json.loads(result.stdout)
    rows = {os.path.relpath(f["path"], project): f for f in document["files"]}
    assert set(rows) == {"README.md", os.path.join("src", "app.py"), os.path.join("src", "deep", "bad.txt")}
    assert rows["README.md"]["verdict"] == "satisfied"
    assert rows[os.path.join("src", "app.py")]["verdict"] == "not_satisfied"
    assert rows[os.path.join("src", "app.py")]["missing"] == ["kr:kr.output-notice"]
    assert rows[os.path.join("src", "deep", "bad.txt")]["verdict"] == "error"
    assert document["summary"] == {"files": 3, "satisfied": 1, "not_satisfied": 1, "error": 1}


def test_exit_codes_follow_the_worst_file(project):
    (project / "src" / "deep" / "bad.txt").unlink()
    assert run("verify", project, "--profile", "kr").exit_code == 1
    (project / "src" / "app.py").unlink()
    result = run("verify", project, "--profile", "kr")
    assert result.exit_code == 0 and "1 files: 1 satisfied" in result.output


def test_inside_git_the_file_list_is_gits(project):
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    (project / "src" / "untracked-ignored.txt").write_text("x\n")
    (project / ".git" / "info" / "exclude").write_text("src/untracked-ignored.txt\n")
    rows = [os.path.relpath(name, project) for name, _, _ in tree.files_to_verify([str(project)])]
    assert sorted(rows) == sorted(["README.md", os.path.join("src", "app.py"), os.path.join("src", "deep", "bad.txt")])


def test_junit_has_a_testcase_per_file_with_failures_and_errors(project, tmp_path):
    report = tmp_path / "report.xml"
    assert run("verify", project, "--profile", "kr", "--junit", report).exit_code == 2
    suite = ElementTree.parse(report).getroot().find("testsuite")
    assert suite.get("tests") == "3" and suite.get("failures") == "1" and suite.get("errors") == "1"
    cases = {os.path.basename(c.get("name")): c for c in suite.findall("testcase")}
    assert cases["app.py"].find("failure").get("message") == "not satisfied: kr:kr.output-notice"
    assert cases["bad.txt"].find("error") is not None
    assert cases["README.md"].find("failure") is None


def test_hostile_files_are_error_rows_not_a_crash(project, monkeypatch):
    huge = project / "huge.txt"
    with open(huge, "wb") as handle:
        handle.truncate(1024 + 1)
    unreadable = project / "secret.md"
    unreadable.write_text("x")
    unreadable.chmod(0)
    deep = project
    for level in range(60):
        deep = deep / f"d{level}"
    deep.mkdir(parents=True)
    (deep / "leaf.txt").write_bytes(_labelled(project.parent, text="깊은 곳의 답.\n"))
    monkeypatch.setattr("aimark.cli.label_commands.MAX_INPUT_BYTES", 1024)
    result = run("verify", project, "--profile", "kr", "--json")
    rows = {os.path.basename(f["path"]): f for f in json.loads(result.stdout)["files"]}
    assert rows["huge.txt"]["verdict"] == "error" and "larger than" in rows["huge.txt"]["error"]
    if os.geteuid() != 0:  # root reads any file
        assert rows["secret.md"]["verdict"] == "error" and "cannot read" in rows["secret.md"]["error"]
    assert rows["leaf.txt"]["verdict"] == "satisfied"
    assert result.exit_code == 2


def test_a_file_name_that_xml_cannot_hold_still_gives_valid_junit(tmp_path):
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "bell\x07name.txt").write_text("plain\n")
    (folder / "[bold]markup[red].txt").write_text("plain\n")
    report = tmp_path / "r.xml"
    assert run("verify", folder, "--profile", "eu", "--junit", report).exit_code == 1
    names = [case.get("name") for case in ElementTree.parse(report).getroot().iter("testcase")]
    assert any(name.endswith("bell\ufffdname.txt") for name in names)
    table = runner.invoke(app, ["verify", str(folder), "--profile", "eu"], env={"COLUMNS": "500"})
    assert "[bold]markup[red].txt" in table.output  # a name is shown as written, not read as rich markup


def test_a_single_file_is_verified_exactly_as_before(project):
    result = run("verify", project / "README.md", "--profile", "kr", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["file"].endswith("README.md")  # the one-report document, not the summary


def test_a_named_file_that_does_not_exist_is_an_error_row(project):
    result = run("verify", project / "README.md", project / "gone.txt", "--profile", "kr", "--json")
    rows = {os.path.basename(f["path"]): f for f in json.loads(result.stdout)["files"]}
    assert rows["README.md"]["verdict"] == "satisfied"
    assert rows["gone.txt"]["verdict"] == "error" and "cannot read" in rows["gone.txt"]["error"]
    assert result.exit_code == 2


def test_standard_input_is_not_mixed_with_folders(project):
    result = run("verify", "-", project, "--profile", "kr")
    assert result.exit_code == 2 and "standard input" in result.output
