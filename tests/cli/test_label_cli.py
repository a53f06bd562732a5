"""The label / unlabel / sign / verify commands, run through typer as a user would."""

from __future__ import annotations

import json
import sys
import types

import pytest
from typer.testing import CliRunner

from aimark.cli import app
from aimark.provenance.test_pki import generate_test_pki

runner = CliRunner()


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return generate_test_pki().write(tmp_path_factory.mktemp("certs"))


def _run(*args: str, input: bytes | None = None):
    return runner.invoke(app, list(args), input=input)


def test_label_then_unlabel_round_trips_a_file(tmp_path) -> None:
    source = tmp_path / "main.go"
    source.write_bytes(b"package main\r\n\r\nfunc main() {}")
    labelled = tmp_path / "labelled.go"
    assert _run("label", str(source), "--profile", "kr", "--lang", "ja", "--position", "end", "-o", str(labelled)).exit_code == 0
    assert "// このコンテンツは生成AI" in labelled.read_text(encoding="utf-8")
    restored = tmp_path / "restored.go"
    assert _run("unlabel", str(labelled), "-o", str(restored)).exit_code == 0
    assert restored.read_bytes() == source.read_bytes()


def test_label_from_stdin_with_a_lang_code() -> None:
    result = _run("label", "-", "--profile", "cn", "--lang-code", "sql", input=b"SELECT 1;\n")
    assert result.exit_code == 0
    assert result.stdout_bytes.decode().startswith("-- 本内容由人工智能生成。")


@pytest.mark.parametrize("args, content, message", [
    (["--profile", "us"], b"x\n", "unknown profile"),
    (["--profile", "kr", "--lang", "fr"], b"x\n", "unknown language"),
    (["--profile", "kr"], b"\xff\xfe", "UTF-16"),
    (["--profile", "kr"], b"bad \xc3", "not valid UTF-8"),
    (["--profile", "kr", "--position", "middle"], b"x\n", "position"),
])
def test_label_errors_exit_2_with_a_reason(tmp_path, args, content, message) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(content)
    result = _run("label", str(path), *args)
    assert result.exit_code == 2 and message in result.stderr


def test_unknown_extension_asks_for_lang_code(tmp_path) -> None:
    path = tmp_path / "a.unknownext"
    path.write_text("x\n")
    result = _run("label", str(path), "--profile", "eu")
    assert result.exit_code == 2 and "--lang-code" in result.stderr


def _signed_markdown(tmp_path, certs) -> bytes:
    source = tmp_path / "doc.md"
    source.write_text("# 보고서\n\n" + "생성된 본문입니다. " * 30 + "\n", encoding="utf-8")
    labelled = tmp_path / "labelled.md"
    assert _run("label", str(source), "--profile", "all", "--lang", "ko", "-o", str(labelled)).exit_code == 0
    signed = tmp_path / "signed.md"
    result = _run("sign", str(labelled), "--cert", str(certs["certificate_chain"]), "--private-key",
                  str(certs["private_key"]), "--model", "gemma-3-270m", "--aigc-producer", "P0001", "-o", str(signed))
    assert result.exit_code == 0, result.stderr
    assert "PRIVATE KEY" not in result.stdout + result.stderr
    return signed.read_bytes()


def test_sign_then_verify_json(tmp_path, certs) -> None:
    signed = tmp_path / "signed.md"
    signed.write_bytes(_signed_markdown(tmp_path, certs))
    result = _run("verify", str(signed), "--profile", "cn", "--trust", str(certs["trust_anchor"]), "--json")
    assert result.exit_code == 0, result.stdout
    document = json.loads(result.stdout)
    assert set(document) == {"schema_version", "file", "carrier", "verdict", "input_errors", "warnings", "profiles", "layers"}
    assert document["verdict"] == "satisfied" and document["carrier"] == "markdown"
    assert set(document["layers"]) == {"text", "notice", "c2pa", "aigc", "watermark", "registry"}
    requirement = document["profiles"][0]["requirements"][0]
    assert set(requirement) == {"id", "description", "clause", "layer", "mandatory", "status", "detail"}


def test_verify_tampered_exits_1_and_names_the_reason(tmp_path, certs) -> None:
    tampered = tmp_path / "tampered.md"
    tampered.write_bytes(_signed_markdown(tmp_path, certs).replace("보고서".encode(), "보고".encode()))
    result = _run("verify", str(tampered), "--profile", "kr", "--trust", str(certs["trust_anchor"]))
    assert result.exit_code == 1
    assert "assertion.dataHash.mismatch" in result.stdout and "verdict: not_satisfied" in result.stdout


@pytest.mark.parametrize("name, content", [("a.docx", b"PK\x03\x04broken"), ("a.pdf", b"%PDF-1.4 nothing"), ("a.txt", b"\xff\xfe\xfd")])
def test_verify_unreadable_input_exits_2(tmp_path, name, content) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    result = _run("verify", str(path), "--profile", "all", "--json")
    assert result.exit_code == 2 and json.loads(result.stdout)["verdict"] == "error"


def test_verify_bad_options_exit_2(tmp_path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("x")
    assert _run("verify", str(path), "--profile", "us").exit_code == 2
    assert _run("verify", str(tmp_path / "missing.txt"), "--profile", "eu").exit_code == 2
    assert _run("verify", str(path), "--profile", "eu", "--trust", str(path)).exit_code == 2


def test_verify_key_without_detector_is_a_clear_error(tmp_path, monkeypatch) -> None:
    # A stand-in module without the function: the real detector (and its heavy imports) is not needed.
    monkeypatch.setitem(sys.modules, "aimark.verify.watermark", types.ModuleType("aimark.verify.watermark"))
    path = tmp_path / "a.txt"
    path.write_text("x")
    result = _run("verify", str(path), "--profile", "eu", "--key", str(path))
    assert result.exit_code == 2 and "watermark_check_from_keyfile" in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2


def test_verify_key_wires_the_detector(tmp_path, monkeypatch) -> None:
    calls = []

    def fake_from_keyfile(key_path: str, alpha: float = 1e-3):
        calls.append(key_path)
        return lambda text: {"watermarked": True, "p_value": 1e-9, "scheme": "kgw", "key_id": "kid", "num_scored_tokens": 250}

    detector = types.ModuleType("aimark.verify.watermark")
    detector.watermark_check_from_keyfile = fake_from_keyfile
    monkeypatch.setitem(sys.modules, "aimark.verify.watermark", detector)
    path = tmp_path / "a.txt"
    path.write_text("This content was generated by AI.\n" + "word " * 300)
    key = tmp_path / "key.json"
    key.write_text("{}")
    result = _run("verify", str(path), "--profile", "eu", "--key", str(key), "--json")
    assert calls == [str(key)] and result.exit_code == 0, result.stdout
    assert json.loads(result.stdout)["layers"]["watermark"]["result"]["key_id"] == "kid"


def test_notice_prints_output_and_advance_notices() -> None:
    assert _run("notice", "--profile", "cn").stdout.strip() == "本内容由人工智能生成。"
    advance = _run("notice", "--profile", "kr", "--advance", "--lang", "ja")
    assert advance.exit_code == 0 and "生成AI" in advance.stdout
    assert _run("notice", "--profile", "kr", "--lang", "fr").exit_code == 2


def test_label_refuses_a_signed_file(tmp_path, certs) -> None:
    signed = tmp_path / "signed.md"
    signed.write_bytes(_signed_markdown(tmp_path, certs))
    result = _run("label", str(signed), "--profile", "eu")
    assert result.exit_code == 2 and "label first, then sign" in result.stderr
