"""Visible labels: wording per profile, comment syntax per language, exact round trip."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aimark.labels import (
    FILE_KINDS,
    LANGUAGES,
    NOTICE_TEXT,
    PROFILES,
    LabelError,
    UnknownFileKindError,
    add_label,
    add_label_text,
    file_kind_for,
    find_labels,
    notice_satisfies,
    remove_label,
    remove_label_text,
)

LINE_PIECES = st.sampled_from(
    [
        "\n", "\r\n", "\r", "\ufeff", "#!/usr/bin/env python3", "# -*- coding: utf-8 -*-",
        '<?xml version="1.0"?>', "<?php", "<!DOCTYPE html>", "---", "...", "title: x", "print('hi')",
        "이 콘텐츠는", "本内容由人工智能生成。", "aimark:label", "[aimark:label profile=kr lang=ko at=start]",
        " ", "\t", "*/", "-->", "x",
    ]
)
TEXTS = st.lists(st.one_of(LINE_PIECES, st.text(max_size=6)), max_size=12).map("".join)


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_notice_satisfies_its_profile_rule(profile: str, lang: str) -> None:
    assert notice_satisfies(NOTICE_TEXT[profile][lang], profile)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_all_notice_meets_every_profile(lang: str) -> None:
    assert all(notice_satisfies(NOTICE_TEXT["all"][lang], profile) for profile in PROFILES)


def test_cn_rule_needs_both_elements() -> None:
    assert notice_satisfies("本内容由人工智能生成", "cn")
    assert notice_satisfies("AI合成内容", "cn")
    assert not notice_satisfies("本内容由人工智能撰写", "cn")  # no generation element
    assert not notice_satisfies("本内容由机器生成", "cn")  # no AI element


def test_kr_rule_needs_generative_ai() -> None:
    assert notice_satisfies("이 콘텐츠는 생성형 인공지능으로 생성되었습니다.", "kr")
    assert not notice_satisfies("이 콘텐츠는 인공지능으로 작성되었습니다.", "kr")


def test_kr_korean_notice_is_the_statutory_wording() -> None:
    assert NOTICE_TEXT["kr"]["ko"] == "이 콘텐츠는 생성형 인공지능으로 생성되었습니다."


EXPECTED_COMMENT = {
    "a.py": "# ", "a.js": "// ", "a.ts": "// ", "A.java": "// ", "a.c": "/* ", "a.cpp": "// ", "a.cs": "// ",
    "a.go": "// ", "a.rs": "// ", "a.kt": "// ", "a.swift": "// ", "a.rb": "# ", "a.php": "// ",
    "a.sh": "# ", "a.sql": "-- ", "a.html": "<!-- ", "a.xml": "<!-- ", "a.css": "/* ", "a.yaml": "# ",
}


@pytest.mark.parametrize("filename, prefix", sorted(EXPECTED_COMMENT.items()))
def test_code_gets_a_comment_in_its_own_syntax(filename: str, prefix: str) -> None:
    kind = file_kind_for(filename)
    labelled = add_label_text("body\n", kind, "kr", "ko")
    first = labelled.splitlines()[0]
    assert first.startswith(prefix + NOTICE_TEXT["kr"]["ko"])
    assert first.endswith(kind.suffix)


def test_markdown_notice_is_visible_with_hidden_marker() -> None:
    labelled = add_label_text("# Title\n", file_kind_for("a.md"), "cn", "zh")
    assert labelled.startswith("本内容由人工智能生成。 <!-- aimark:label profile=cn lang=zh at=start -->\n\n# Title\n")


def test_lang_code_override_and_unknown_extension() -> None:
    assert file_kind_for("script", "python").name == "python"
    assert file_kind_for("x.weird", "rs").name == "rust"
    with pytest.raises(UnknownFileKindError):
        file_kind_for("x.weird")
    with pytest.raises(UnknownFileKindError):
        file_kind_for("x.py", "klingon")


@pytest.mark.parametrize(
    "filename, original, expected_first_lines",
    [
        ("a.py", "#!/usr/bin/env python3\n# -*- coding: utf-8 -*-\nx = 1\n", 2),
        ("a.py", "# coding: latin-1\nx = 1\n", 1),
        ("a.sh", "#!/bin/sh\necho hi\n", 1),
        ("a.xml", '<?xml version="1.0"?>\n<a/>\n', 1),
        ("a.php", "<?php\necho 1;\n", 1),
        ("a.html", "<!DOCTYPE html>\n<html></html>\n", 1),
        ("a.md", "---\ntitle: x\n---\nbody\n", 3),
    ],
)
def test_start_label_goes_after_lines_that_must_stay_first(filename, original, expected_first_lines) -> None:
    kind = file_kind_for(filename)
    labelled = add_label_text(original, kind, "eu", "en")
    lines = labelled.splitlines()
    assert lines[:expected_first_lines] == original.splitlines()[:expected_first_lines]
    assert "aimark:label" in lines[expected_first_lines]
    assert remove_label_text(labelled, kind)[0] == original


def test_preamble_only_file_without_final_newline() -> None:
    kind = file_kind_for("a.sh")
    labelled = add_label_text("#!/bin/sh", kind, "eu")
    assert labelled.startswith("#!/bin/sh\n# ")
    assert remove_label_text(labelled, kind)[0] == "#!/bin/sh"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    original=TEXTS,
    kind_name=st.sampled_from(sorted(FILE_KINDS)),
    profile=st.sampled_from(sorted(NOTICE_TEXT)),
    lang=st.sampled_from(LANGUAGES),
    at=st.sampled_from(["start", "end"]),
)
def test_round_trip_is_byte_identical_on_every_kind(original, kind_name, profile, lang, at) -> None:
    kind = FILE_KINDS[kind_name]
    try:
        labelled = add_label(original.encode("utf-8", "surrogatepass"), kind, profile, lang, at)
    except LabelError:
        # Only refusals we expect: the input is not UTF-8 (lone surrogates) or already carries a label.
        assert find_labels(original) or any(0xD800 <= ord(c) <= 0xDFFF for c in original)
        return
    restored, removed = remove_label(labelled, kind)
    assert restored == original.encode("utf-8")
    assert len(removed) == 1
    # Labelling changes nothing but the inserted label: the original's characters survive in order.
    assert labelled.decode().replace(removed[0].text, "", 1).replace("\r", "").replace("\n", "") == original.replace(
        "\r", ""
    ).replace("\n", "")


@pytest.mark.parametrize("kind_name", sorted(FILE_KINDS))
@pytest.mark.parametrize(
    "original",
    ["", "x", "x\n", "x\r\ny\r\n", "x\r\ny", "\ufeffx\r\n", "\ufeff", "a\rb", "\n", "\r\n\r\n", "x\n\n"],
)
@pytest.mark.parametrize("at", ["start", "end"])
def test_round_trip_edge_cases(kind_name: str, original: str, at: str) -> None:
    kind = FILE_KINDS[kind_name]
    labelled = add_label_text(original, kind, "kr", "ko", at)
    assert remove_label_text(labelled, kind)[0] == original


@settings(max_examples=100, deadline=None)
@given(
    originals=st.lists(st.sampled_from(["x\n", "line two\r\n", "\n", "print('hi')\n", "본문\n"]), min_size=1, max_size=8),
    kind_name=st.sampled_from(sorted(FILE_KINDS)),
    positions=st.lists(st.sampled_from(["start", "end"]), min_size=8, max_size=8),
)
def test_every_label_of_a_concatenation_is_removed_exactly(originals, kind_name, positions) -> None:
    # A file made of many labelled answers pasted one after another: each label goes, nothing else does.
    kind = FILE_KINDS[kind_name]
    pasted = "".join(add_label_text(text, kind, "kr", "ko", at) for text, at in zip(originals, positions))
    restored, removed = remove_label_text(pasted, kind)
    assert restored == "".join(originals) and len(removed) == len(originals)


def test_a_flood_of_labels_is_removed_in_one_pass() -> None:
    # 20,000 labelled lines: removal used to copy the whole text once per label (quadratic).
    kind = file_kind_for("a.py")
    originals = [f"x{i} = {i}\n" for i in range(20_000)]
    pasted = "".join(add_label_text(text, kind, "cn", "zh") for text in originals)
    restored, removed = remove_label_text(pasted)
    assert restored == "".join(originals) and len(removed) == 20_000


def test_crlf_file_gets_crlf_label() -> None:
    labelled = add_label_text("a\r\nb\r\n", file_kind_for("a.py"), "kr")
    assert labelled.count("\r\n") == 3 and "\n" not in labelled.replace("\r\n", "")


def test_bom_stays_first() -> None:
    labelled = add_label_text("\ufeffx = 1\n", file_kind_for("a.py"), "kr")
    assert labelled.startswith("\ufeff# 이 콘텐츠는")


def test_removal_never_takes_a_user_line_that_only_resembles_a_label() -> None:
    kind = file_kind_for("a.py")
    user = "# 이 콘텐츠는 생성형 인공지능으로 생성되었습니다. [aimark:label profile=kr lang=ko at=start] edited\nx\n"
    assert remove_label_text(user, kind) == (user, [])


def test_labelling_twice_is_refused() -> None:
    kind = file_kind_for("a.py")
    with pytest.raises(LabelError, match="already"):
        add_label_text(add_label_text("x\n", kind, "kr"), kind, "cn")


@pytest.mark.parametrize("content", [b"\xff\xfe\x00a", b"abc\xc3(", b"\xed\xa0\x80"])
def test_invalid_utf8_is_refused_with_a_reason(content: bytes) -> None:
    with pytest.raises(LabelError, match="UTF"):
        add_label(content, file_kind_for("a.txt"), "kr")


def test_advance_notices_state_generative_ai() -> None:
    from aimark.labels import ADVANCE_NOTICE_TEXT

    assert set(ADVANCE_NOTICE_TEXT) == set(LANGUAGES)
    assert all(notice_satisfies(text, "kr") for text in ADVANCE_NOTICE_TEXT.values())
