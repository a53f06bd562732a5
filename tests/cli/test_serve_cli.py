"""`aimark serve` as a user starts it (a real process on 127.0.0.1), and `aimark registry`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from aimark.cli import app
from aimark.service.probe import wait_until_up

runner = CliRunner()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def served(tmp_path, tiny_model_dir):
    """`aimark serve --model TINY` with an API key file and a SQLite registry; yields (url, api key, db url, log)."""
    api_key = "amk-cli-test-key-0123456789"
    (tmp_path / "api-keys").write_text(f"# test keys\n{api_key}\n", encoding="utf-8")
    db_url = f"sqlite:///{tmp_path / 'registry.sqlite3'}"
    port = _free_port()
    log = tmp_path / "serve.log"
    env = {**os.environ, "AIMARK_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    env.pop("AIMARK_API_KEYS", None)
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "aimark"), "serve", "--model", str(tiny_model_dir), "--port", str(port),
             "--db-url", db_url, "--api-key-file", str(tmp_path / "api-keys"), "--profile", "kr", "--lang", "ko"],
            stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_until_up(url, process):
            pytest.fail("aimark serve did not start:\n" + log.read_text(errors="replace"))
        yield url, api_key, db_url, log
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def test_serve_generates_labelled_registered_output_and_keeps_secrets_out_of_its_log(served, tmp_path):
    url, api_key, db_url, log = served
    response = httpx.post(f"{url}/v1/chat/completions", headers={"Authorization": f"Bearer {api_key}"}, timeout=60,
                          json={"messages": [{"role": "user", "content": "안녕하세요"}], "max_tokens": 16})
    assert response.status_code == 200, response.text
    text = response.json()["choices"][0]["message"]["content"]
    assert text.startswith("이 콘텐츠는 생성형 인공지능으로 생성되었습니다.")  # profile kr, Korean
    assert "\ufeff" not in text  # no --cert: notice only, no C2PA wrapper
    assert httpx.post(f"{url}/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]}).status_code == 401
    page = httpx.get(f"{url}/")
    assert page.status_code == 200 and "server" not in page.headers
    report = httpx.post(f"{url}/v1/verify", json={"text": text}).json()
    assert report["layers"]["registry"]["matches"][0]["content_id"] == response.json()["aimark"]["content_id"]
    assert [p["profile"] for p in report["profiles"]] == ["kr"]

    count = runner.invoke(app, ["registry", "count", "--db-url", db_url])
    assert count.exit_code == 0 and count.stdout.strip() == "1"
    key_file = next((tmp_path / "home" / "service" / "keys").glob("*.json"))
    secret = __import__("json").loads(key_file.read_text())["secret"]
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    served_log = log.read_text(errors="replace")
    assert "verification page: http://127.0.0.1" in served_log
    assert api_key not in served_log and secret not in served_log


def test_registry_purge_keeps_what_is_within_the_retention(tmp_path):
    from aimark.registry import IssuedRecord, Registry

    db_url = f"sqlite:///{tmp_path / 'r.sqlite3'}"
    registry = Registry(db_url)
    now = datetime.now(UTC)
    registry.record(IssuedRecord("aimark-old", "old text here", "k", "m", "all", now - timedelta(days=200)))
    registry.record(IssuedRecord("aimark-mid", "middle text here", "k", "m", "all", now - timedelta(days=100)))
    registry.close()
    result = runner.invoke(app, ["registry", "purge", "--db-url", db_url])
    assert result.exit_code == 0 and "deleted 1 record" in result.stdout
    result = runner.invoke(app, ["registry", "purge", "--db-url", db_url, "--retention-days", "30"])
    assert "deleted 1 record" in result.stdout
    assert runner.invoke(app, ["registry", "count", "--db-url", db_url]).stdout.strip() == "0"


@pytest.mark.parametrize("arguments, message", [
    (["--label", "c2pa"], "C2PA labels need signing credentials"),
    (["--profile", "us"], "unknown profile"),
    (["--lang", "fr"], "unknown notice language"),
    (["--cert", "chain.pem"], "--cert and --private-key go together"),
])
def test_serve_refuses_bad_settings_before_loading_anything(arguments, message):
    result = runner.invoke(app, ["serve", "--no-auth", *arguments])
    assert result.exit_code == 2 and message in result.output


def test_serve_without_a_configured_api_key_creates_one_in_a_private_file(tmp_path, monkeypatch):
    from aimark.cli import serve_commands

    monkeypatch.setenv("AIMARK_HOME", str(tmp_path))
    monkeypatch.delenv("AIMARK_API_KEYS", raising=False)
    digests = serve_commands._api_key_digests(None, no_auth=False)
    key_file = tmp_path / "service" / "api-key"
    assert len(digests) == 1 and oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert serve_commands._api_key_digests(None, no_auth=False) == digests  # kept, not replaced


def test_cli_verify_consults_the_registry_when_asked(tmp_path):
    import json

    from aimark.registry import IssuedRecord, Registry

    db_url = f"sqlite:///{tmp_path / 'r.sqlite3'}"
    text = "A short answer the service gave.\n"
    registry = Registry(db_url)
    registry.record(IssuedRecord("aimark-cli", text, "k", "m", "all", datetime.now(UTC)))
    registry.close()
    (tmp_path / "answer.txt").write_text(text, encoding="utf-8")
    as_json = runner.invoke(app, ["verify", str(tmp_path / "answer.txt"), "--profile", "eu", "--registry", db_url, "--json"])
    layer = json.loads(as_json.stdout)["layers"]["registry"]
    assert layer["checked"] is True and layer["matches"][0]["content_id"] == "aimark-cli"
    human = runner.invoke(app, ["verify", str(tmp_path / "answer.txt"), "--profile", "eu", "--registry", db_url])
    assert "registry: exact copy of aimark-cli" in human.stdout
    bad = runner.invoke(app, ["verify", str(tmp_path / "answer.txt"), "--profile", "eu", "--registry", "nonsense://x"])
    assert bad.exit_code == 2
