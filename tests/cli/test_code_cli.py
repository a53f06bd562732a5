"""The CLI's code doors: `detect` picks the code gate (extension, --language, --prose, guess), `generate --code`."""

from __future__ import annotations

import json

import pytest

from tests.cli.conftest import run
from tests.helpers import (  # noqa: F401  (keygen's keys seeded)
    ANSWER,
    PROGRAM,
    seeded_keygen_per_module,
    seeded_keygen_per_test,
)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("code")
    paths = {"py": folder / "solution.py", "md": folder / "answer.md", "txt": folder / "answer.txt", "js": folder / "solution.js"}
    paths["py"].write_text(PROGRAM, encoding="utf-8")
    paths["md"].write_text(ANSWER, encoding="utf-8")
    paths["txt"].write_text("A plain answer in prose, long enough to be scored by the detector without trouble.\n", encoding="utf-8")
    paths["js"].write_text("// average\nfunction average(values) {\n  let total = 0;\n  for (const v of values) total += v;\n"
                           "  return total / values.length;\n}\n", encoding="utf-8")
    return paths


def detect_json(*args, input=None) -> dict:
    result = run("detect", *args, "--json", input=input)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize("kind, language", [("py", "python"), ("md", "markdown"), ("js", "javascript"), ("txt", None)])
def test_detect_picks_the_gate_from_the_extension(key_file, files, kind, language):
    assert detect_json(files[kind], "--key", key_file)["code_language"] == language


def test_gated_detection_scores_fewer_tokens_and_prose_switches_it_off(key_file, files):
    gated = detect_json(files["py"], "--key", key_file)
    for off in (["--prose"], ["--language", "none"]):
        whole = detect_json(files["py"], "--key", key_file, *off)
        assert whole["code_language"] is None
        assert whole["num_tokens"] == gated["num_tokens"] and whole["num_scored_tokens"] > gated["num_scored_tokens"]


def test_language_option_forces_a_gate(key_file, files):
    assert detect_json(files["py"], "--key", key_file, "--language", "js")["code_language"] == "javascript"
    assert detect_json(files["txt"], "--key", key_file, "--language", "markdown")["code_language"] == "markdown"


@pytest.mark.parametrize("text, language", [(PROGRAM, "python"), (ANSWER, "markdown"), ("Plain prose that is not code at all, just words.", None)])
def test_stdin_gate_is_guessed_from_the_text(key_file, text, language):
    assert detect_json("-", "--key", key_file, input=text)["code_language"] == language


def test_human_output_names_the_gate(key_file, files):
    result = run("detect", files["py"], "--key", key_file)
    assert result.exit_code == 0 and "code gate: python" in result.output
    result = run("detect", files["py"], "--key", key_file, "--prose")
    assert result.exit_code == 0 and "code gate" not in result.output


def test_spans_honour_the_gate(key_file, files):
    document = detect_json(files["py"], "--key", key_file, "--spans")
    assert document["code_language"] == "python" and "spans" in document
    assert document["num_scored_tokens"] == detect_json(files["py"], "--key", key_file)["num_scored_tokens"]
    result = run("detect", files["py"], "--key", key_file, "--spans")
    assert result.exit_code == 0 and "code gate: python" in result.output


def test_jsonl_uses_the_language_given(key_file):
    line = json.dumps({"text": PROGRAM}) + "\n"
    gated = json.loads(run("detect", "-", "--key", key_file, "--jsonl", "--language", "python", input=line).stdout)
    plain = json.loads(run("detect", "-", "--key", key_file, "--jsonl", input=line).stdout)
    assert gated["code_language"] == "python" and plain["code_language"] is None
    assert gated["num_scored_tokens"] < plain["num_scored_tokens"]


@pytest.mark.parametrize("extra, message", [
    (["--language", "cobol"], "no code gating for language 'cobol'"),
    (["--language", "python", "--prose"], "not both"),
])
def test_bad_gate_options_are_one_line_errors(key_file, files, extra, message):
    result = run("detect", files["py"], "--key", key_file, *extra)
    output = " ".join(result.output.split())  # rich wraps the one message at the terminal width
    assert result.exit_code == 2 and message in output
    assert output.startswith("error:") and output.count("error:") == 1


def test_code_with_nothing_the_gate_counts_is_a_clear_error(tmp_path, tiny_model_dir):
    key_path = tmp_path / "kgw.json"
    assert run("keygen", "--scheme", "kgw", "--out", key_path, "--model", tiny_model_dir).exit_code == 0
    path = tmp_path / "arithmetic.py"
    path.write_text("(1 + 2) * 3 - 4 / 5\n" * 8, encoding="utf-8")  # numbers, operators, layout: nothing KGW's gate counts
    result = run("detect", path, "--key", key_path)
    assert result.exit_code == 2 and "of python is of a class the code gate counts" in " ".join(result.output.split())


def _generate(key_file, *extra):
    result = run("generate", "--key", key_file, "--prompt", "def add(a, b):", "--max-new-tokens", 12, "--raw", "--seed", 0, "--json", *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.splitlines()[0]), result


def test_generate_code_uses_no_repetition_penalty_and_records_the_language(key_file, generate_calls):
    document, result = _generate(key_file, "--code", "--language", "py")
    assert generate_calls[-1]["repetition_penalty"] == 1.0
    assert document["language"] == "python" and document["scheme"] == "synthid"
    assert "note:" not in result.output  # synthid is the code scheme


def test_generate_prose_is_unchanged(key_file, generate_calls):
    document, _ = _generate(key_file)
    assert generate_calls[-1]["repetition_penalty"] == 1.15
    assert "language" not in document
    _generate(key_file, "--code", "--repetition-penalty", 1.3)
    assert generate_calls[-1]["repetition_penalty"] == 1.3  # an explicit penalty wins over --code's default


def test_generate_code_guesses_the_language_of_the_output(key_file, monkeypatch):
    import aimark.engines
    from aimark.engines import Generation

    def fake(loaded, prompts, **kwargs):
        return [Generation(p, ANSWER if i == 0 else "no code here", 40, "stop", "synthid", "k") for i, p in enumerate(prompts)]

    monkeypatch.setattr(aimark.engines, "generate", fake)
    result = run("generate", "--key", key_file, "--prompt", "x", "--code", "--json")
    assert json.loads(result.stdout)["language"] == "markdown"
    result = run("generate", "--key", key_file, "--prompt", "x", "--code")
    assert result.exit_code == 0 and "language: markdown" in result.output and "```python" in result.stdout


def test_generate_code_with_another_scheme_notes_the_recommended_one(tmp_path, tiny_model_dir, generate_calls):
    key_path = tmp_path / "kgw.json"
    assert run("keygen", "--scheme", "kgw", "--out", key_path, "--model", tiny_model_dir).exit_code == 0
    document, result = _generate(key_path, "--code")
    assert document["scheme"] == "kgw" and "language" in document
    notes = [line for line in result.stderr.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "synthid" in notes[0]


def test_generate_unsupported_language_is_an_error(key_file):
    result = run("generate", "--key", key_file, "--prompt", "x", "--language", "cobol")
    assert result.exit_code == 2 and "cobol" in result.output


def test_generate_comment_boost_is_passed_and_needs_a_language(key_file, generate_calls):
    _generate(key_file, "--code", "--language", "python", "--comment-boost", 2)
    assert generate_calls[-1]["comment_boost"] == 2.0 and generate_calls[-1]["code_language"] == "python"
    _generate(key_file, "--code", "--language", "python")
    assert generate_calls[-1]["comment_boost"] == 0.0  # off unless asked: the default stays distortion-free
    result = run("generate", "--key", key_file, "--prompt", "x", "--code", "--comment-boost", 2)
    assert result.exit_code == 2 and "--comment-boost needs --language" in result.output


def test_generate_comment_boost_with_a_kgw_key_is_a_clear_error(tmp_path, tiny_model_dir):
    key_path = tmp_path / "kgw.json"
    assert run("keygen", "--scheme", "kgw", "--out", key_path, "--model", tiny_model_dir).exit_code == 0
    result = run("generate", "--key", key_path, "--prompt", "x", "--raw", "--max-new-tokens", 4, "--language", "python", "--comment-boost", 2)
    assert result.exit_code == 2 and "no tilt" in result.output and "Traceback" not in result.output


def test_detect_with_model_uses_the_generating_model(key_file, files, tiny_model_dir, tmp_path):
    """--with-model: the provider's detector loads the model (the key's, or --model) and reports the same JSON shape;
    generated text is detected, human text is not, and a gumbel key is a clear error."""
    from aimark.engines import generate, load_model
    from aimark.keys import load_key

    loaded = load_model(str(tiny_model_dir))
    (output,) = generate(loaded, ["The story of the river"], key=load_key(key_file), max_new_tokens=48, chat=False, seed=11,
                         repetition_penalty=1.0)
    generated = tmp_path / "generated.txt"
    generated.write_text(output.text, encoding="utf-8")
    found = detect_json(generated, "--key", key_file, "--with-model", "--model", tiny_model_dir, "--temperature", "1.0")
    assert found["watermarked"] and found["p_value"] < 1e-6
    human = detect_json(files["txt"], "--key", key_file, "--with-model", "--model", tiny_model_dir)
    assert not human["watermarked"]
    gumbel = tmp_path / "gumbel.json"
    assert run("keygen", "--scheme", "gumbel", "--out", gumbel, "--model", tiny_model_dir).exit_code == 0
    refused = run("detect", generated, "--key", gumbel, "--with-model", "--model", tiny_model_dir)
    assert refused.exit_code == 2 and "synthid and kgw" in refused.output
    assert run("detect", generated, "--key", key_file, "--with-model", "--spans").exit_code == 2


def test_keygen_code_makes_a_formatter_invariant_key(tmp_path, tiny_model_dir):
    from aimark.keys import load_key

    path = tmp_path / "code-key.json"
    result = run("keygen", "--code", "--scheme", "synthid", "--out", path, "--model", tiny_model_dir, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["params"]["units"] == "code-skeleton"
    assert load_key(path).params["units"] == "code-skeleton"
    refused = run("keygen", "--code", "--scheme", "kgw", "--out", tmp_path / "kgw.json", "--model", tiny_model_dir)
    assert refused.exit_code == 2 and "synthid or gumbel" in refused.output
