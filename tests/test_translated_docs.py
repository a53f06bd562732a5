"""The translated docs stay in step with README.md: every `aimark …` command line in README.md's code
blocks appears in README.ko.md, and the Japanese and Chinese guides show the one-step workflow."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```", re.S | re.M)
# A shell comment after a command: two spaces or more, then '#'.
_COMMENT = re.compile(r"\s{2,}#.*$")
_COMMAND = re.compile(r"(?:^|[\s/])aimark\s+[a-z]")


def command_lines(markdown: str) -> list[str]:
    """Lines running `aimark …` in shell code blocks, without their trailing comment (translated freely)."""
    lines = []
    for language, block in _FENCE.findall(markdown):
        if language.strip() not in ("", "sh", "bash", "shell", "console"):
            continue
        for line in block.splitlines():
            if _COMMAND.search(line) and not line.lstrip().startswith("#"):
                lines.append(_COMMENT.sub("", line.strip()))
    return lines


def test_every_readme_command_is_in_the_korean_readme() -> None:
    english = command_lines((ROOT / "README.md").read_text(encoding="utf-8"))
    korean = "\n".join(command_lines((ROOT / "README.ko.md").read_text(encoding="utf-8")))
    assert len(english) > 20  # the extraction found the CLI blocks
    missing = [line for line in english if line not in korean]
    assert missing == [], "README.ko.md lacks these commands from README.md:\n" + "\n".join(missing)


def test_the_extraction_sees_a_command_the_translation_dropped(tmp_path) -> None:
    english = "```sh\naimark label a.md --profile cn   # notice\naimark verify a.md\n```\n"
    korean = "```sh\naimark label a.md --profile cn   # 고지\n```\n"
    assert command_lines(english) == ["aimark label a.md --profile cn", "aimark verify a.md"]
    assert [c for c in command_lines(english) if c not in "\n".join(command_lines(korean))] == ["aimark verify a.md"]


def test_the_guides_show_the_one_step_workflow_in_their_language() -> None:
    for name, words in (("guide.ja.md", ("生成AI", "ガイド")), ("guide.zh.md", ("人工智能", "指南"))):
        text = (ROOT / "docs" / name).read_text(encoding="utf-8")
        commands = command_lines(text)
        for needed in ("aimark init", "aimark label", "aimark verify"):
            assert any(c.startswith(needed) for c in commands), (name, needed)
        assert all(word in text for word in words)
    korean = (ROOT / "README.ko.md").read_text(encoding="utf-8")
    assert "제31조" in korean and "설치" in korean and "검증" in korean
