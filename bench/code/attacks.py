"""Edits a code watermark must survive: formatters, renaming, comment/docstring removal, token edits.

Each attack takes a whole Python source file and returns the edited file, or raises AttackFailed when
the tool rejects the input (black on a syntax error): the benchmark counts those instead of hiding them.
"""

from __future__ import annotations

import ast
import io
import random
import subprocess
import sys
import tokenize
from collections.abc import Callable


class AttackFailed(RuntimeError):
    pass


def black_format(source: str, line_length: int = 88) -> str:
    import black

    try:
        return black.format_str(source, mode=black.Mode(line_length=line_length))
    except Exception as exc:  # black raises its own InvalidInput and assorted parser errors
        raise AttackFailed(f"black: {exc}") from None


def black_narrow(source: str) -> str:
    """black at 40 columns: most statements wrap, so black adds the parentheses and trailing commas it only adds
    to long lines at its default width (HumanEval's short functions rarely have any)."""
    return black_format(source, line_length=40)


def ruff_format(source: str) -> str:
    done = subprocess.run([sys.executable, "-m", "ruff", "format", "--stdin-filename", "x.py", "-"], input=source,
                          capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise AttackFailed(f"ruff: {done.stderr.strip()[:200]}")
    return done.stdout


def _parse(source: str) -> ast.Module:
    try:
        return ast.parse(source)
    except SyntaxError as exc:
        raise AttackFailed(f"not valid Python: {exc}") from None


def _local_names(function: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    arguments = function.args
    names = {a.arg for a in arguments.posonlyargs + arguments.args + arguments.kwonlyargs}
    names |= {a.arg for a in (arguments.vararg, arguments.kwarg) if a is not None}
    declared_elsewhere: set[str] = set()
    for node in ast.walk(function):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            declared_elsewhere.update(node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node is not function:
            declared_elsewhere.add(node.name)  # nested definitions keep their names (they may be called by name)
    return names - declared_elsewhere


def rename_locals(source: str) -> str:
    """Rename every argument and local variable of every function to v0, v1, … (tokens, so layout stays)."""
    tree = _parse(source)
    taken = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)} | {
        node.arg for node in ast.walk(tree) if isinstance(node, ast.arg)}
    renames: list[tuple[int, int, dict[str, str]]] = []  # (first line, last line, mapping)
    counter = 0
    for function in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
        mapping = {}
        for name in sorted(_local_names(function)):
            while f"v{counter}" in taken:
                counter += 1
            mapping[name] = f"v{counter}"
            counter += 1
        renames.append((function.lineno, function.end_lineno or function.lineno, mapping))
    lines = source.splitlines(keepends=True)
    edits: list[tuple[int, int, int, str]] = []
    previous = None
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.NAME and not (previous is not None and previous.string == "."):
            row = token.start[0]
            for first, last, mapping in renames:
                if first <= row <= last and token.string in mapping:
                    edits.append((row, token.start[1], token.end[1], mapping[token.string]))
                    break
        if token.type not in (tokenize.NL, tokenize.COMMENT):
            previous = token
    for row, start, end, name in sorted(edits, reverse=True):
        line = lines[row - 1]
        lines[row - 1] = line[:start] + name + line[end:]
    return "".join(lines)


def strip_comments_and_docstrings(source: str) -> str:
    tree = _parse(source)
    drop_lines: set[int] = set()
    pass_after: dict[int, str] = {}
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(body, list) or not body:
            continue
        first = body[0]
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
            drop_lines.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
            if len(body) == 1:  # keep the block valid
                pass_after[first.lineno] = " " * first.col_offset + "pass\n"
    lines = source.splitlines(keepends=True)
    comments: dict[int, int] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.start[1]
    out = []
    for number, line in enumerate(lines, start=1):
        if number in drop_lines:
            if number in pass_after:
                out.append(pass_after[number])
            continue
        if number in comments:
            kept = line[: comments[number]].rstrip()
            if not kept:
                continue
            line = kept + "\n"
        out.append(line)
    return "".join(out)


def random_token_edit(text: str, rng: random.Random, tokenizer, share: float = 0.10) -> str:
    """Delete, insert or substitute ``share`` of the model tokens (each edit's kind at random;
    inserted/substituted tokens come from the text itself, so the edit stays plausible code)."""
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    if not ids:
        return text
    chosen = set(rng.sample(range(len(ids)), max(1, round(share * len(ids)))))
    out: list[int] = []
    for index, token in enumerate(ids):
        if index not in chosen:
            out.append(token)
            continue
        kind = rng.choice(("delete", "insert", "substitute"))
        if kind == "insert":
            out.extend((token, rng.choice(ids)))
        elif kind == "substitute":
            out.append(rng.choice(ids))
    return tokenizer.decode(out, skip_special_tokens=True)


FILE_ATTACKS: dict[str, Callable[[str], str]] = {
    "black": black_format,
    "ruff format": ruff_format,
    "black -l 40": black_narrow,
    "rename locals": rename_locals,
    "strip comments+docstrings": strip_comments_and_docstrings,
}
