"""The CLI end to end on a tiny local model directory (the --model path)."""

from __future__ import annotations

import json

import pytest

from tests.cli.conftest import run

# Keys keygen and demo make are seeded (their real randomness: tests/test_keys.py).
from tests.helpers import (  # noqa: F401
    seeded_generate_key,
    seeded_keygen_per_module,
    seeded_keygen_per_test,
)


@pytest.fixture(scope="module")
def generated(key_file, tmp_path_factory):
    prompts = tmp_path_factory.mktemp("prompts") / "prompts.txt"
    prompts.write_text("The history of the\n日本国民は\n", encoding="utf-8")
    result = run("generate", "--key", key_file, "--prompt-file", prompts, "--max-new-tokens", 200, "--min-new-tokens", 200, "--raw", "--seed", 0, "--json")
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.strip().split("\n")]  # a text may hold U+2028


def test_generate_batch_json(generated, key_file):
    assert len(generated) == 2
    key_id = json.loads(key_file.read_text())["key_id"]
    assert all(g["key_id"] == key_id and g["scheme"] == "synthid" and g["text"] for g in generated)


def test_detect_json_from_stdin(generated, key_file):
    result = run("detect", "-", "--key", key_file, "--json", input=generated[0]["text"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["watermarked"] is True and document["p_value"] < 1e-3 and document["alpha"] == 1e-3
    assert {"scheme", "key_id", "num_scored_tokens"} <= set(document)


def test_control_is_not_detected(key_file, tiny_model_dir):
    result = run("generate", "--scheme", "none", "--prompt", "The history of the", "--model", tiny_model_dir, "--max-new-tokens", 80, "--raw", "--seed", 5, "--json")
    assert result.exit_code == 0, result.output
    text = json.loads(result.stdout)["text"]
    detected = run("detect", "-", "--key", key_file, "--json", input=text)
    assert json.loads(detected.stdout)["watermarked"] is False


def test_detect_jsonl_streams_in_order_with_errors_in_place(generated, key_file):
    lines = [json.dumps({"text": generated[0]["text"]}), "not json", json.dumps({"text": ""}), json.dumps({"text": generated[1]["text"]})]
    result = run("detect", "-", "--key", key_file, "--jsonl", input="\n".join(lines) + "\n")
    assert result.exit_code == 2
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 4
    assert "error" in rows[1] and "error" in rows[2]
    for row, generation in ((rows[0], generated[0]), (rows[3], generated[1])):
        single = json.loads(run("detect", "-", "--key", key_file, "--json", input=generation["text"]).stdout)
        assert row == single


@pytest.mark.parametrize(
    "stdin, extra, message",
    [
        ("", [], "empty"),
        (b"\xff\xfe\x00broken", [], "not valid UTF-8"),
        ("ok", [], "nothing to score"),
    ],
)
def test_detect_bad_input_is_one_line_error(key_file, stdin, extra, message):
    result = run("detect", "-", "--key", key_file, *extra, input=stdin)
    assert result.exit_code == 2
    assert message in result.output


def test_detect_bad_key_files(tmp_path, key_file):
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text("{not json")
    for path, message in [(tmp_path / "missing.json", "not found"), (corrupt, "not a valid key file")]:
        result = run("detect", "-", "--key", path, input="some text here")
        assert result.exit_code == 2 and message in result.output


def test_key_for_another_tokenizer_is_refused(tmp_path, tiny_model_dir):
    key_path = tmp_path / "k.json"
    result = run("keygen", "--scheme", "kgw", "--out", key_path, "--model", tiny_model_dir)
    assert result.exit_code == 0
    document = json.loads(key_path.read_text())
    document["tokenizer"]["fingerprint"] = "f" * 64
    key_path.write_text(json.dumps(document))
    result = run("detect", "-", "--key", key_path, "--model", tiny_model_dir, input="some text that is long enough to score")
    assert result.exit_code == 2 and "tokenizer" in result.output


def test_generate_needs_key_or_control(tiny_model_dir):
    result = run("generate", "--prompt", "hi", "--model", tiny_model_dir)
    assert result.exit_code == 2 and "--scheme none" in result.output


def test_verify_with_key_runs_the_real_detector(generated, key_file, tmp_path):
    text_file = tmp_path / "out.txt"
    text_file.write_text(generated[0]["text"], encoding="utf-8")
    result = run("verify", text_file, "--profile", "eu", "--key", key_file, "--json")
    assert result.exit_code in (0, 1), result.output
    layer = json.loads(result.stdout)["layers"]["watermark"]
    assert layer["result"]["key_id"] == json.loads(key_file.read_text())["key_id"]
    assert layer["result"]["watermarked"] is True


def test_generate_label_sign_verify_end_to_end(generated, key_file, tmp_path):
    """The watermark survives the visible notice and the C2PA text wrapper, and verify finds all three."""
    from pathlib import Path

    certs = Path(__file__).resolve().parents[2] / "examples" / "certs"
    key_id = json.loads(key_file.read_text())["key_id"]
    text_file = tmp_path / "answer.txt"
    text_file.write_text(generated[0]["text"], encoding="utf-8")
    labelled, signed = tmp_path / "labelled.txt", tmp_path / "signed.txt"
    assert run("label", text_file, "--profile", "all", "--lang", "en", "-o", labelled).exit_code == 0
    result = run("sign", labelled, "--cert", certs / "signer_chain.pem", "--private-key", certs / "signer_key.pem",
                 "--watermark-scheme", "synthid", "--watermark-key-id", key_id, "-o", signed)
    assert result.exit_code == 0, result.output
    result = run("verify", signed, "--profile", "all", "--key", key_file, "--trust", certs / "trust_anchor.pem", "--json")
    report = json.loads(result.stdout)
    assert report["layers"]["watermark"]["result"]["watermarked"] is True
    assert report["layers"]["watermark"]["result"]["key_id"] == key_id
    assert report["layers"]["c2pa"]["bound"] is True and report["layers"]["c2pa"]["trusted"] is True
    # One edit to the signed text breaks the C2PA hard binding but not the watermark.
    tampered = tmp_path / "tampered.txt"
    tampered.write_text(signed.read_text(encoding="utf-8").replace(" ", "  ", 1), encoding="utf-8")
    report = json.loads(run("verify", tampered, "--profile", "eu", "--key", key_file, "--trust", certs / "trust_anchor.pem", "--json").stdout)
    assert report["layers"]["watermark"]["result"]["watermarked"] is True
    assert report["layers"]["c2pa"]["signature_valid"] is True and report["layers"]["c2pa"]["bound"] is False
    assert report["verdict"] == "not_satisfied"


@pytest.fixture
def same_demo_key(request):
    """`demo` makes its own key; each ``with same_demo_key():`` block gives the run inside it the same seeded
    key, so two runs see the same texts and verdicts, reproducibly."""
    return lambda: seeded_generate_key(f"demo/{request.node.nodeid}")


def demo_verdicts(document: dict) -> list[tuple[str, str, bool | None]]:
    """(language, kind, watermarked) per row of `demo --json`; None where the text could not be scored."""
    return [(r["language"], r["kind"], r["detection"]["watermarked"] if r["detection"] else None) for r in document["results"]]


EXPECTED_DEMO = [(language, kind, kind == "watermarked") for language in ("ko", "ja", "zh", "en", "code") for kind in ("watermarked", "control")]


def test_demo_verdicts_are_right_and_the_table_counts_them(tiny_model_dir, same_demo_key):
    """No control near the watermark's p-values, every watermarked generation that scored 32 tokens or more detected (the tiny model
    sometimes samples EOS within a few tokens: then there is little or nothing to score), and the table of a second run
    with the same key reports the same count, with exit status 0 exactly when all 10 are right.
    The README's command on the embedded model must get all 10: tests/engines/test_embedded.py."""
    with same_demo_key():
        document = json.loads(run("demo", "--model", tiny_model_dir, "--max-new-tokens", 64, "--json").stdout)
    assert "secret" not in json.dumps(document["key"])
    verdicts = demo_verdicts(document)
    assert [row[:2] for row in verdicts] == [row[:2] for row in EXPECTED_DEMO]
    scored = [r["detection"]["num_scored_tokens"] if r["detection"] else 0 for r in document["results"]]
    # A control may be a chance false positive (5 controls at alpha 1e-3: 0.5% of keys; seed 2 draws one, p 4.7e-4);
    # the watermark leaking into the controls would give p-values far below 1e-5.
    control_p = [r["detection"]["p_value"] for r in document["results"] if r["kind"] == "control" and r["detection"]]
    assert len(control_p) >= 4 and min(control_p) > 1e-5, control_p
    long_marked = [watermarked for (_, kind, watermarked), n in zip(verdicts, scored) if kind == "watermarked" and n >= 32]
    assert len(long_marked) >= 4 and all(long_marked)
    correct = sum(got == expected for got, expected in zip(verdicts, EXPECTED_DEMO))
    with same_demo_key():
        table = run("demo", "--model", tiny_model_dir, "--max-new-tokens", 64)
    assert f"{correct}/10 verdicts as expected" in table.output, table.output
    assert table.exit_code == (0 if correct == 10 else 1)


def test_prompt_file_lines_end_at_newlines_only(tmp_path):
    from aimark.cli.core_commands import _read_prompts

    prompts = tmp_path / "prompts.txt"
    prompts.write_bytes("first\u2028still the first\r\n\nsecond\x0cpage\n".encode())
    assert _read_prompts(None, prompts) == ["first\u2028still the first", "second\x0cpage"]
