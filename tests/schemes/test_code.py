"""The code gate (aimark.schemes.code): lexical classes per language, fences, LM-token masks, names, guesses."""

from __future__ import annotations

import ast
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aimark.schemes.code import (
    BUILTIN, COMMENT, IDENTIFIER, KEYWORD, NUMBER, OPERATOR, OTHER, PROSE, STRING, SUPPORTED_LANGUAGES, WHITESPACE,
    UnsupportedLanguageError, detection_language, free_token_mask, gated_language_for_filename, guess_language,
    lexical_spans, normalise_language, token_classes,
)

# One realistic snippet per language, and (piece, class) pairs it must lex to. A piece is matched by its
# first occurrence; "!" after a class means "not this class" (for the forced syntax the gate drops).
SNIPPETS = {
    "python": (
        "# sum two values\ndef add(left, right):\n    total = left + right  # add\n    return total * 2, 'x', len(\"ab\")\n",
        [("def", KEYWORD), ("return", KEYWORD), ("add", IDENTIFIER), ("total", IDENTIFIER), ("# sum two values", COMMENT),
         ("# add", COMMENT), ("'x'", STRING), ('"ab"', STRING), ("2", NUMBER), ("len", BUILTIN), ("=", OPERATOR), ("(", OPERATOR)],
    ),
    "javascript": (
        "// two numbers\nfunction add(a, b) {\n  const total = a + b; /* sum */\n  return 'x' + total + 42;\n}\n",
        [("function", KEYWORD), ("const", KEYWORD), ("return", KEYWORD), ("add", IDENTIFIER), ("total", IDENTIFIER),
         ("// two numbers", COMMENT), ("/* sum */", COMMENT), ("'x'", STRING), ("42", NUMBER), ("{", OPERATOR), ("+", OPERATOR)],
    ),
    "typescript": (
        "// say hi\nfunction greet(user: User): string {\n  let count: number = 3;\n  return \"hi \" + user.name;\n}\n",
        [("function", KEYWORD), ("let", KEYWORD), ("greet", IDENTIFIER), ("count", IDENTIFIER), ("// say hi", COMMENT),
         ('"hi "', STRING), ("3", NUMBER), (":", OPERATOR), (";", OPERATOR)],
    ),
    "java": (
        "// entry point\npublic class Main {\n  public static void main(String[] args) {\n"
        "    int count = 10;\n    System.out.println(\"hello\");\n  }\n}\n",
        [("public", KEYWORD), ("class", KEYWORD), ("void", KEYWORD), ("int", KEYWORD), ("Main", IDENTIFIER), ("count", IDENTIFIER),
         ("println", IDENTIFIER), ("// entry point", COMMENT), ("hello", STRING), ("10", NUMBER), ("=", OPERATOR)],
    ),
    "c": (
        "/* compute it */\nint square(int value) {\n  // square it\n  return value * value + 7;\n}\n",
        [("int", KEYWORD), ("return", KEYWORD), ("square", IDENTIFIER), ("value", IDENTIFIER), ("/* compute it */", COMMENT),
         ("// square it", COMMENT), ("7", NUMBER), ("+", OPERATOR), ("{", OPERATOR)],
    ),
    "cpp": (
        "// vector sum\nint total(const std::vector<int>& items) {\n  int acc = 0;\n  for (auto item : items) acc += item;\n"
        "  return acc; // done\n}\n",
        [("const", KEYWORD), ("for", KEYWORD), ("auto", KEYWORD), ("total", IDENTIFIER), ("items", IDENTIFIER), ("acc", IDENTIFIER),
         ("// vector sum", COMMENT), ("// done", COMMENT), ("0", NUMBER), ("&", OPERATOR), (";", OPERATOR)],
    ),
    "csharp": (
        "// program\nusing System;\nclass Program {\n  static void Main() {\n    var greeting = \"hello\";\n"
        "    Console.WriteLine(greeting + 5);\n  }\n}\n",
        [("using", KEYWORD), ("class", KEYWORD), ("static", KEYWORD), ("var", KEYWORD), ("Program", IDENTIFIER),
         ("greeting", IDENTIFIER), ("WriteLine", IDENTIFIER), ("// program", COMMENT), ('"hello"', STRING), ("5", NUMBER), ("(", OPERATOR)],
    ),
    "go": (
        "// Summing helpers.\npackage main\n\nfunc add(left int, right int) int {\n\tresult := left + right // sum\n\treturn result * 2\n}\n",
        [("package", KEYWORD), ("func", KEYWORD), ("return", KEYWORD), ("add", IDENTIFIER), ("result", IDENTIFIER),
         ("// Summing helpers.", COMMENT), ("// sum", COMMENT), ("2", NUMBER), (":=", OPERATOR)],
    ),
    "rust": (
        "// adds two numbers\nfn add(left: i32, right: i32) -> i32 {\n    let total = left + right;\n"
        "    println!(\"{}\", \"sum\");\n    total * 3\n}\n",
        [("fn", KEYWORD), ("let", KEYWORD), ("add", IDENTIFIER), ("left", IDENTIFIER), ("total", IDENTIFIER),
         ("// adds two numbers", COMMENT), ("sum", STRING), ("3", NUMBER), ("->", OPERATOR), (";", OPERATOR)],
    ),
    "ruby": (
        "# say hi\ndef greet(person)\n  message = \"Hello, there\"\n  puts message\n  return 42\nend\n",
        [("def", KEYWORD), ("return", KEYWORD), ("end", KEYWORD), ("greet", IDENTIFIER), ("message", IDENTIFIER),
         ("# say hi", COMMENT), ("Hello, there", STRING), ("42", NUMBER), ("=", OPERATOR)],
    ),
    "php": (
        "<?php\n// say hi\nfunction greet($name) {\n    $message = 'Hello ' . $name;\n    return $message . 7;\n}\n",
        [("function", KEYWORD), ("return", KEYWORD), ("greet", IDENTIFIER), ("$name", IDENTIFIER), ("$message", IDENTIFIER),
         ("// say hi", COMMENT), ("'Hello '", STRING), ("7", NUMBER), ("=", OPERATOR), (".", OPERATOR)],
    ),
    "kotlin": (
        "// entry\nfun main() {\n    val greeting = \"hello\"\n    var count = 3\n    println(greeting + count)\n}\n",
        [("fun", KEYWORD), ("val", KEYWORD), ("var", KEYWORD), ("main", IDENTIFIER), ("greeting", IDENTIFIER),
         ("count", IDENTIFIER), ("// entry", COMMENT), ("hello", STRING), ("3", NUMBER), ("=", OPERATOR)],
    ),
    "swift": (
        "// say hi\nfunc greet(person: String) -> String {\n    let greeting = \"Hello, \" + person\n"
        "    var count = 1\n    return greeting\n}\n",
        [("func", KEYWORD), ("let", KEYWORD), ("var", KEYWORD), ("return", KEYWORD), ("greet", IDENTIFIER), ("person", IDENTIFIER),
         ("greeting", IDENTIFIER), ("// say hi", COMMENT), ("Hello, ", STRING), ("1", NUMBER), ("->", OPERATOR)],
    ),
    "shell": (
        "#!/bin/bash\n# copy files\nfor file in *.txt; do\n  target=\"backup/$file\"\n  cp \"$file\" \"$target\"\ndone\nexit 0\n",
        [("for", KEYWORD), ("do", KEYWORD), ("done", KEYWORD), ("target", IDENTIFIER), ("$file", IDENTIFIER), ("$target", IDENTIFIER),
         ("# copy files", COMMENT), ("backup/", STRING), ("0", NUMBER), (";", OPERATOR)],
    ),
    "sql": (
        "-- active adults\nSELECT name, email FROM users WHERE age > 21 AND status = 'active';\n",
        [("SELECT", KEYWORD), ("FROM", KEYWORD), ("WHERE", KEYWORD), ("AND", KEYWORD), ("name", IDENTIFIER), ("users", IDENTIFIER),
         ("-- active adults", COMMENT), ("'active'", STRING), ("21", NUMBER), (">", OPERATOR), (",", OPERATOR)],
    ),
    "markdown": (
        "Here is the function:\n\n```python\ndef add(a, b):\n    return a + b  # sum\n```\n\nIt adds two numbers.\n",
        [("Here is the function:", PROSE), ("It adds two numbers.", PROSE), ("def", KEYWORD), ("return", KEYWORD),
         ("add", IDENTIFIER), ("# sum", COMMENT), ("+", OPERATOR), ("```python", OTHER)],
    ),
}


def _find(text: str, piece: str) -> int:
    """Index of the first occurrence of ``piece`` as a whole word (``int`` is not found in ``point``)."""
    pattern = ("(?<![\\w$])" if piece[0].isalnum() else "") + re.escape(piece) + (r"(?!\w)" if piece[-1].isalnum() else "")
    return re.search(pattern, text).start()


def _class_at(spans, index: int) -> str | None:
    return next((label for start, end, label in spans if start <= index < end), None)


def test_every_supported_language_has_a_snippet():
    assert set(SNIPPETS) == set(SUPPORTED_LANGUAGES)


@pytest.mark.parametrize("language", sorted(SNIPPETS))
def test_classes_per_language(language):
    text, expected = SNIPPETS[language]
    spans = lexical_spans(text, language)
    for piece, label in expected:
        index = _find(text, piece)
        # The whole piece lies in spans of that class (a string may be lexed as quote + body + quote).
        got = {_class_at(spans, i) for i in range(index, index + len(piece)) if not text[i].isspace()}
        assert got == {label}, f"{language}: {piece!r} lexed as {got}, expected {label}"


@pytest.mark.parametrize("language", sorted(SNIPPETS))
def test_spans_are_ordered_disjoint_and_inside_the_text(language):
    text, _ = SNIPPETS[language]
    for sample in (text, text[: len(text) // 2], text + "\n" + text):
        spans = lexical_spans(sample, language)
        assert spans
        previous_end = 0
        for start, end, _label in spans:
            assert previous_end <= start < end <= len(sample)
            previous_end = end


@pytest.mark.parametrize("fragment", [
    'x = """never closed\nmore text\n',      # unclosed triple-quoted string: tokenize raises TokenError
    "    return value\n  bad = 1\n",          # dedent to a level never opened: IndentationError
    "def f(:\n  ",                            # not Python at all past the first tokens
    "print('open\n",                          # unclosed single-quoted string
])
def test_python_fragments_tokenize_rejects_fall_back_without_raising(fragment):
    spans = lexical_spans(fragment, "python")
    assert spans and all(0 <= s < e <= len(fragment) for s, e, _ in spans)
    assert _class_at(spans, fragment.index(fragment.split()[0][0])) is not None


def test_unclosed_triple_quote_is_still_a_string_and_bad_dedent_keeps_names():
    text = 'x = """never closed\nmore text\n'
    spans = lexical_spans(text, "python")
    assert _class_at(spans, 0) == IDENTIFIER and _class_at(spans, text.index("never")) == STRING
    text = "    return value\n  bad = 1\n"
    spans = lexical_spans(text, "python")
    assert _class_at(spans, text.index("return")) == KEYWORD and _class_at(spans, text.index("bad")) == IDENTIFIER


def test_markdown_unknown_fence_language_is_prose():
    text = "Text before.\n```brainfuck\n+++[>+<-].\n```\nafter\n"
    spans = lexical_spans(text, "markdown")
    assert _class_at(spans, text.index("+++")) == PROSE
    assert _class_at(spans, text.index("after")) == PROSE


def test_markdown_fence_without_info_is_prose_and_fence_lines_are_not_counted():
    text = "Intro\n```\nplain block\n```\nOutro\n"
    spans = lexical_spans(text, "markdown")
    assert _class_at(spans, text.index("plain")) == PROSE
    assert _class_at(spans, text.index("```")) == OTHER


def test_markdown_unclosed_fence_lexes_the_rest_as_code():
    text = "Run this:\n```js\nlet total = 1; // one\n"
    spans = lexical_spans(text, "markdown")
    assert _class_at(spans, text.index("Run")) == PROSE
    assert _class_at(spans, text.index("let")) == KEYWORD
    assert _class_at(spans, text.index("total")) == IDENTIFIER
    assert _class_at(spans, text.index("// one")) == COMMENT
    assert spans[-1][1] <= len(text)


def test_markdown_fence_alias_and_two_blocks():
    text = "A:\n```py\nimport os\n```\nB:\n~~~rust\nfn main() {}\n~~~\nend\n"
    spans = lexical_spans(text, "markdown")
    assert _class_at(spans, text.index("import")) == KEYWORD and _class_at(spans, text.index("os")) == IDENTIFIER
    assert _class_at(spans, text.index("fn")) == KEYWORD and _class_at(spans, text.index("main")) == IDENTIFIER
    assert _class_at(spans, text.index("B:")) == PROSE and _class_at(spans, text.index("end")) == PROSE


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model_dir))


@pytest.mark.parametrize("language", ["python", "javascript", "markdown", "sql"])
def test_free_token_mask_has_one_flag_per_tokenizer_token(tokenizer, language):
    text, _ = SNIPPETS[language]
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = [tuple(o) for o in encoding["offset_mapping"]]
    mask = free_token_mask(text, offsets, language)
    assert mask.dtype == bool and mask.shape == (len(encoding["input_ids"]),)
    assert 0 < mask.sum() < len(mask)  # some tokens are free, some (keywords, brackets) are not
    classes = token_classes(text, offsets, language)
    for flag, label, (start, end) in zip(mask, classes, offsets):
        assert flag == (label in {IDENTIFIER, STRING, COMMENT, NUMBER, PROSE}), (text[start:end], label)


def test_token_classes_use_the_first_non_space_character(tokenizer):
    text = "def add(left):\n    return left  # done\n"
    offsets = [(0, 3), (3, 7), (14, 19), (19, 25), (31, 38), (14, 15)]
    assert token_classes(text, offsets, "python") == [KEYWORD, IDENTIFIER, WHITESPACE, KEYWORD, COMMENT, WHITESPACE]
    mask = free_token_mask(text, offsets, "python")
    assert mask.tolist() == [False, True, False, False, True, False]
    assert free_token_mask(text, [], "python").shape == (0,)


def test_free_classes_can_be_narrowed():
    text = "x = 1  # one\n"
    offsets = [(0, 1), (4, 5), (7, 12)]
    assert free_token_mask(text, offsets, "python", free_classes={IDENTIFIER}).tolist() == [True, False, False]


@pytest.mark.parametrize("alias, name", [
    ("py", "python"), ("Python3", "python"), (" JS ", "javascript"), ("ts", "typescript"), ("c++", "cpp"), ("C#", "csharp"),
    ("golang", "go"), ("rs", "rust"), ("rb", "ruby"), ("kt", "kotlin"), ("bash", "shell"), ("sh", "shell"), ("md", "markdown"),
    ("sql", "sql"),
])
def test_normalise_language_aliases(alias, name):
    assert normalise_language(alias) == name


def test_normalise_language_none_and_unsupported():
    assert normalise_language(None) is None
    with pytest.raises(UnsupportedLanguageError, match="cobol"):
        normalise_language("cobol")
    with pytest.raises(ValueError):
        lexical_spans("x", "brainfuck")
    assert issubclass(UnsupportedLanguageError, ValueError)


@pytest.mark.parametrize("filename, language", [
    ("solution.py", "python"), ("app.TS", "typescript"), ("main.rs", "rust"), ("lib.cpp", "cpp"), ("Program.cs", "csharp"),
    ("run.sh", "shell"), ("q.sql", "sql"), ("README.md", "markdown"), ("notes.txt", None), ("page.html", None),
    ("Makefile", None), (None, None), ("-", None),
])
def test_gated_language_for_filename(filename, language):
    assert gated_language_for_filename(filename) == language


@pytest.mark.parametrize("text, language", [
    ("Here it is:\n```python\nprint(1)\n```\n", "markdown"),
    ("~~~\nplain\n~~~\n", "markdown"),
    ("import os\n\nprint(os.getcwd())\n", "python"),
    ("def f(x):\n    return x * 2\n", "python"),
    ("total = 0\nfor i in range(3):\n    total += i\n", "python"),
    ("The cat sat on the mat. It was happy.", None),
    ("hello", None),  # parses as Python (a bare name) but holds no statement prose would not produce
    ("print('hi')", None),
    ("function add(a, b) { return a + b; }", None),
    ("def broken(:\n", None),
    ("", None),
])
def test_guess_language(text, language):
    assert guess_language(text) == language


# -- hostile input: every scan linear, every answer as before ------------------------------------
_OLD_FENCE = re.compile(r"^(?P<indent>[ \t]{0,3})(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)$", re.MULTILINE)


def _old_markdown_spans(text: str) -> list:
    """The fence splitter as first written (quadratic in the number of fences, backtracking regex)."""
    spans, position = [], 0
    fences = list(_OLD_FENCE.finditer(text))
    index = 0
    while index < len(fences):
        opening = fences[index]
        closing = next((f for f in fences[index + 1 :] if f.group("fence")[0] == opening.group("fence")[0]
                        and len(f.group("fence")) >= len(opening.group("fence")) and not f.group("info").strip()), None)
        body_start = opening.end() + 1
        body_end = closing.start() if closing else len(text)
        if opening.start() > position:
            spans.append((position, opening.start(), PROSE))
        spans.append((opening.start(), min(body_start, len(text)), OTHER))
        info = opening.group("info").strip().split(maxsplit=1)
        try:
            language = normalise_language(info[0]) if info else None
        except UnsupportedLanguageError:
            language = None
        body = text[body_start:body_end]
        if body and language not in (None, "markdown"):
            spans.extend((s + body_start, e + body_start, label) for s, e, label in lexical_spans(body, language))
        elif body:
            spans.append((body_start, body_end, PROSE))
        if closing is None:
            return spans
        spans.append((closing.start(), closing.end(), OTHER))
        position = closing.end()
        index = fences.index(closing) + 1
    if position < len(text):
        spans.append((position, len(text), PROSE))
    return spans


_FENCE_PIECES = st.sampled_from(["```", "~~~", "````", "`", "~", " ", "\t", "\n", "py", "js", "x = 1", "md", "\r"])


@settings(max_examples=400, deadline=None)
@given(text=st.lists(_FENCE_PIECES, max_size=24).map("".join))
def test_fence_scan_finds_what_the_old_regex_found(text):
    from aimark.schemes.code import _FENCE

    assert [m.span() + m.groups() for m in _FENCE.finditer(text)] == [m.span() + m.groups() for m in _OLD_FENCE.finditer(text)]
    assert lexical_spans(text, "markdown") == _old_markdown_spans(text)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("text", [
    "```" + " " * 100_000 + "`",  # before: ~35 s in the fence regex (n² ways to split the spaces)
    "```" + "\t " * 50_000 + "x`\n" + "~~~" + " " * 50_000 + "`",
])
def test_fence_check_is_linear_on_space_runs(text):
    assert guess_language(text) is None
    assert detection_language(text) is None


@pytest.mark.timeout(10)
def test_a_flood_of_fences_is_split_in_linear_time():
    # Before: each opening sliced the rest of the fence list and looked its closing up again (fences²).
    text = "```py\nx = 1\n```\n" * 10 + "```\n```\n" * 100_000  # before: past the 10 s guard (fences² list copies)
    spans = lexical_spans(text, "markdown")
    assert sum(1 for s, e, label in spans if label == OTHER and text[s:e].startswith("```")) == 200_020
    assert _class_at(spans, text.index("x")) == IDENTIFIER


@pytest.mark.timeout(30)
@pytest.mark.parametrize("text", [
    "not " * 25_000 + "x",  # MemoryError in the parser
    "-" * 100_000 + "1",  # MemoryError
    "x = " + "1+" * 50_000 + "1",  # RecursionError building the tree
    "f" + "()" * 50_000,  # RecursionError
    "x = " + "[" * 100_000,  # too many nested parentheses (SyntaxError)
])
def test_code_the_parser_cannot_hold_is_not_python(text):
    assert guess_language(text) is None
    assert detection_language(text) is None


def test_a_long_program_is_still_python_and_only_its_start_is_parsed():
    from aimark.schemes.code import GUESS_PARSE_LIMIT

    program = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(GUESS_PARSE_LIMIT // 20))
    assert len(program) > GUESS_PARSE_LIMIT and guess_language(program) == "python"
    # A syntax error past the limit is not read: the start already shows a program.
    assert guess_language(program + "def broken(:\n") == "python"
    # Cut before a top-level line, so the statement spanning the limit is left out, not cut in two
    # (cut at the limit itself, this one would end inside an open bracket: a syntax error).
    block = "def f(x):\n    return [\n" + "        x,\n" * 50 + "    ]\n\n"
    long_statements = block * (2 * GUESS_PARSE_LIMIT // len(block))
    with pytest.raises(SyntaxError):
        ast.parse(long_statements[:GUESS_PARSE_LIMIT])
    assert guess_language(long_statements) == "python"


@pytest.mark.timeout(10)
def test_an_identifier_with_100000_combining_marks_is_guessed_in_linear_time():
    # Python's parser NFKC-normalises identifiers; a letter with 50,000 marks took it 12 s.
    assert guess_language("a" + "\u0301\u0316" * 49_999) is None  # 99,999 characters: all parsed
    assert guess_language("x" + "\u0301\u0316" * 40_000 + " = 1\n") == "python"
