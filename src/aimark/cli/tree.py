"""`aimark verify PATH...` over folders: which files to check, one row per file, and the JSON / JUnit summaries.

Files come from `git ls-files` inside a work tree (tracked and untracked-but-not-ignored), else from a walk that
honours every .gitignore on the way (the `pathspec` package's git semantics). Never followed: .git, symlinks
that leave the tree, dotfiles, kinds aimark has no carrier for (images, archives, lock files ...). A file that cannot be
verified (unreadable, too large, not UTF-8) is an error row, never a crash of the whole run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from aimark.files import write_atomic
from aimark.labels import UnknownFileKindError, file_kind_for

EXIT_OK, EXIT_NOT_SATISFIED, EXIT_ERROR = 0, 1, 2

CONTAINER_SUFFIXES = (".pdf", ".docx", ".docm")
# What XML 1.0 cannot hold (a file name or message may carry any of these): shown as U+FFFD.
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(value: str) -> str:
    return _NOT_XML.sub("\ufffd", value)


@dataclass
class FileRow:
    """One file's outcome: its report, or the reason it has none."""

    path: str
    verdict: str
    missing: list[str] = field(default_factory=list)  # "profile:requirement" that failed the verdict
    error: str | None = None
    report: Any = None  # aimark.verify.VerificationReport

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {"path": self.path, "verdict": self.verdict, "missing": self.missing}
        if self.error is not None:
            document["error"] = self.error
        if self.report is not None:
            document["report"] = self.report.to_dict()
        return document


def is_known_kind(path: str) -> bool:
    """Whether aimark verifies this kind of file in a folder (a text or code kind it labels, or PDF / DOCX).

    Dotfiles (.gitignore, .editorconfig ...) configure tools and are not content anyone is told about.
    """
    if os.path.basename(path).startswith("."):
        return False
    if path.lower().endswith(CONTAINER_SUFFIXES):
        return True
    try:
        file_kind_for(path)
    except UnknownFileKindError:
        return False
    return True


def _git_files(root: Path) -> list[Path] | None:
    """Files git would commit under ``root`` (tracked, and untracked that no ignore rule hides); None outside git."""
    try:
        done = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "."],
                              capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return [root / os.fsdecode(name) for name in dict.fromkeys(done.stdout.split(b"\0")) if name]


def _walk_files(root: Path) -> Iterator[Path]:
    """Every file under ``root`` that the .gitignore files on its way do not exclude."""
    import pathspec

    stack: list[tuple[Path, list[tuple[Path, Any]]]] = [(root, [])]
    while stack:
        directory, specs = stack.pop()
        ignore_file = directory / ".gitignore"
        if ignore_file.is_file() and not ignore_file.is_symlink():
            try:
                lines = ignore_file.read_text(encoding="utf-8", errors="replace").splitlines()
                specs = [*specs, (directory, pathspec.GitIgnoreSpec.from_lines(lines))]
            except OSError:
                pass
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if entry.name == ".git":
                continue
            path = Path(entry.path)
            is_dir = entry.is_dir(follow_symlinks=False)
            if any(spec.match_file(path.relative_to(base).as_posix() + ("/" if is_dir else "")) for base, spec in specs):
                continue
            if is_dir:
                stack.append((path, specs))
            else:
                yield path


def files_to_verify(paths: Iterable[str]) -> Iterator[tuple[str, Path | None, str | None]]:
    """(display name, path, reason it is skipped or None) for every file the PATHs name, in a stable order."""
    seen: set[Path] = set()
    for given in paths:
        root = Path(given)
        if not root.is_dir():
            # Named files (pre-commit passes every staged one) are filtered by kind as a folder's are;
            # a missing one is an error row.
            if not root.exists() or is_known_kind(root.name):
                yield given, root, None
            continue
        top = root.resolve()
        listed = _git_files(root)
        candidates = sorted(listed) if listed is not None else sorted(_walk_files(root))
        for path in candidates:
            if path.is_symlink():
                try:
                    target = path.resolve(strict=True)
                except (OSError, RuntimeError):
                    continue  # dangling or looping
                if not target.is_relative_to(top):
                    continue  # a link out of the tree is not this tree's content
            if not path.is_file() or not is_known_kind(path.name):
                continue
            key = path.resolve()
            if key in seen:
                continue
            seen.add(key)
            yield str(path), path, None


def verify_paths(paths: Iterable[str], check: Callable[[bytes, str], Any], *, limit: int) -> list[FileRow]:
    """One row per file: ``check(content, name)`` returns a VerificationReport; errors become error rows."""
    rows = []
    for name, path, _ in files_to_verify(paths):
        rows.append(_verify_one(name, path, check, limit))
    return rows


def _verify_one(name: str, path: Path, check: Callable[[bytes, str], Any], limit: int) -> FileRow:
    try:
        with open(path, "rb") as handle:
            content = handle.read(limit + 1)
    except OSError as err:
        return FileRow(name, "error", error=f"cannot read: {err.strerror or type(err).__name__}")
    if len(content) > limit:
        return FileRow(name, "error", error=f"larger than {limit // (1024 * 1024)} MiB")
    try:
        report = check(content, name)
    except (ValueError, OSError, RecursionError, MemoryError) as err:
        return FileRow(name, "error", error=" ".join(str(err).split()) or type(err).__name__)
    missing = [f"{p.profile}:{r.id}" for p in report.profiles for r in p.requirements if r.fails_verdict]
    error = "; ".join(e.message for e in report.input_errors) or None
    return FileRow(name, report.verdict, missing, error, report)


def summary(rows: list[FileRow]) -> dict[str, int]:
    counts = {"files": len(rows), "satisfied": 0, "not_satisfied": 0, "error": 0}
    for row in rows:
        counts[row.verdict] = counts.get(row.verdict, 0) + 1
    return counts


def junit_xml(rows: list[FileRow], profile: str) -> bytes:
    """JUnit XML: one testcase per file; a failure when not satisfied, an error when it could not be verified."""
    counts = summary(rows)
    suite = ElementTree.Element("testsuite", name=f"aimark verify --profile {profile}", tests=str(len(rows)),
                                failures=str(counts["not_satisfied"]), errors=str(counts["error"]), skipped="0")
    for row in rows:
        case = ElementTree.SubElement(suite, "testcase", classname=f"aimark.{profile}", name=_xml_text(row.path))
        if row.verdict == "not_satisfied":
            failure = ElementTree.SubElement(case, "failure", message=f"not satisfied: {', '.join(row.missing)}", type="not_satisfied")
            failure.text = _xml_text(_failure_details(row))
        elif row.verdict == "error":
            error = ElementTree.SubElement(case, "error", message=_xml_text(row.error or "error"), type="error")
            error.text = _xml_text(row.error or "")
    root = ElementTree.Element("testsuites")
    root.append(suite)
    return ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)


def _failure_details(row: FileRow) -> str:
    lines = []
    for profile in row.report.profiles if row.report is not None else ():
        for requirement in profile.requirements:
            if requirement.fails_verdict:
                lines.append(f"{profile.profile} {requirement.status} {requirement.id} ({requirement.clause}): {requirement.detail}")
    return "\n".join(lines)


def verify_many(files: list[str], profile: str, check: Callable[[bytes, str], Any], *, as_json: bool, junit: Path | None,
                limit: int) -> int:
    """Verify every file the PATHs hold; print one table (or one JSON document); the worst file's exit code."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from aimark.cli.io import fail

    rows = verify_paths(files, check, limit=limit)
    counts = summary(rows)
    if junit is not None:
        try:
            write_atomic(junit, junit_xml(rows, profile))
        except OSError as err:
            fail(f"cannot write {junit}: {err.strerror or type(err).__name__}")
    if as_json:
        document = {"profile": profile, "summary": counts, "files": [row.to_dict() for row in rows]}
        sys.stdout.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
    else:
        console = Console(highlight=False)
        table = Table(title=f"aimark verify --profile {profile}", title_justify="left")
        for column in ("file", "verdict", "missing / error"):
            table.add_column(column, overflow="fold")
        for row in rows:
            colour = {"satisfied": "green", "not_satisfied": "red"}.get(row.verdict, "bold red")
            # A file name or an error may hold "[...]": shown as written, never read as markup.
            table.add_row(escape(row.path), f"[{colour}]{row.verdict}[/]", escape(row.error or ", ".join(row.missing)))
        console.print(table)
        console.print(f"{counts['files']} files: {counts['satisfied']} satisfied, {counts['not_satisfied']} not satisfied, "
                      f"{counts['error']} errors")
    if counts["error"]:
        return EXIT_ERROR
    return EXIT_NOT_SATISFIED if counts["not_satisfied"] else EXIT_OK
