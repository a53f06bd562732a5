"""The code gate (aimark.schemes.code): lexical classes per language, fences, LM-token masks, names, guesses."""

from __future__ import annotations

import re

import pytest

from aimark.schemes.code import (
    BUILTIN, COMMENT, IDENTIFIER, KEYWORD, NUMBER, OPERATOR, OTHER, PROSE, STRING, SUPPORTED_LANGUAGES, WHITESPACE,
    UnsupportedLanguageError, free_token_mask, gated_language_for_filename, guess_language, lexical_spans,
    normalise_language, token_classes,
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
