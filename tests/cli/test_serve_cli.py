"""`aimark serve` as a user starts it (a real process on 127.0.0.1), and `aimark registry`."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from aimark.cli import app
from aimark.service.probe import serve_process

runner = CliRunner()



@pytest.fixture
def served(tmp_path, tiny_model_dir):
    """`aimark serve --model TINY` with an API key file and a SQLite registry; yields (url, api key, db url, log)."""
    api_key = "amk-cli-test-key-0123456789"
    (tmp_path / "api-keys").write_text(f"# test keys\n{api_key}\n", encoding="utf-8")
    db_url = f"sqlite:///{tmp_path / 'registry.sqlite3'}"
    log = tmp_path / "serve.log"
    env = {**os.environ, "AIMARK_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    env.pop("AIMARK_API_KEYS", None)
    with serve_process(["--model", str(tiny_model_dir), "--db-url", db_url, "--api-key-file", str(tmp_path / "api-keys"),
                        "--profile", "kr", "--lang", "ko"], log, env=env) as url:
        yield url, api_key, db_url, log


def test_serve_generates_labelled_registered_output_and_keeps_secrets_out_of_its_log(served, tmp_path):
    url, api_key, db_url, log = served
    response = httpx.post(f"{url}/v1/chat/completions", headers={"Authorization": f"Bearer {api_key}"}, timeout=60,
                          json={"messages": [{"role": "user", "content": "안녕하세요"}], "max_tokens": 16})
    assert response.status_code == 200, response.text
    text = response.json()["choices"][0]["message"]["content"]
    assert text.startswith("이 콘텐츠는 생성형 인공지능으로 생성되었습니다.")  # profile kr, Korean
    assert "\ufeff" not in text  # no --cert: notice only, no C2PA wrapper
    assert httpx.post(f"{url}/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]}, timeout=60).status_code == 401
    page = httpx.get(f"{url}/", timeout=60)
    assert page.status_code == 200 and "server" not in page.headers
    report = httpx.post(f"{url}/v1/verify", json={"text": text}, timeout=60).json()
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
    # Six months is the floor (CN Measures Art. 9): a shorter retention is refused and deletes nothing.
    result = runner.invoke(app, ["registry", "purge", "--db-url", db_url, "--retention-days", "30"])
    assert result.exit_code == 2 and "183" in result.output
    assert runner.invoke(app, ["registry", "count", "--db-url", db_url]).stdout.strip() == "1"


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


def _no_aimark_dirs(monkeypatch, home: Path) -> None:
    """HOME at a temporary directory, nothing else pointing aimark anywhere: the defaults are what is tested."""
    monkeypatch.setenv("HOME", str(home))
    for variable in ("AIMARK_HOME", "AIMARK_DB_URL", "XDG_DATA_HOME", "XDG_CACHE_HOME", "AIMARK_API_KEYS"):
        monkeypatch.delenv(variable, raising=False)


def test_the_api_key_lives_in_the_data_directory_and_one_left_in_the_old_cache_is_moved(tmp_path, monkeypatch):
    from aimark.cli import serve_commands
    from aimark.service.config import read_api_keys

    _no_aimark_dirs(monkeypatch, tmp_path)
    old = tmp_path / ".cache" / "aimark" / "service" / "api-key"
    old.parent.mkdir(parents=True)
    old.write_text("amk-made-by-an-older-aimark\n")
    digests = serve_commands._api_key_digests(None, no_auth=False)
    moved = tmp_path / ".local" / "share" / "aimark" / "service" / "api-key"
    assert digests == read_api_keys(moved) and moved.read_text() == "amk-made-by-an-older-aimark\n"
    assert not old.exists()  # clearing ~/.cache can no longer take the clients' key
    assert oct((tmp_path / ".local" / "share" / "aimark").stat().st_mode & 0o777) == "0o700"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    serve_commands._api_key_digests(None, no_auth=False)
    assert (tmp_path / "data" / "aimark" / "service" / "api-key").is_file()


def _registry_with_an_output_of(model: str, db_url: str, *, days_ago: float = 0, key_id: str = "synthid-0ld0ld0ld0ld0ld0") -> None:
    from aimark.registry import IssuedRecord, Registry

    registry = Registry(db_url)
    registry.record(IssuedRecord(f"aimark-{days_ago}", f"An output issued {days_ago} days ago under the old key.",
                                 key_id, model, "all", datetime.now(UTC) - timedelta(days=days_ago)))
    registry.close()


def test_serve_refuses_to_replace_a_lost_key_while_the_registry_holds_its_outputs(tmp_path, tiny_model_dir, monkeypatch):
    from aimark.engines import canonical_model_ref

    monkeypatch.setenv("AIMARK_HOME", str(tmp_path / "home"))
    db_url = f"sqlite:///{tmp_path / 'registry.sqlite3'}"
    _registry_with_an_output_of(canonical_model_ref(str(tiny_model_dir)), db_url)
    arguments = ["serve", "--model", str(tiny_model_dir), "--db-url", db_url, "--no-auth", "--port", "1"]
    result = runner.invoke(app, arguments)
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert "synthid-0ld0ld0ld0ld0ld0" in message and "--new-key" in message and "restore" in message
    assert not list((tmp_path / "home").rglob("*.json"))  # no key was made


def test_start_with_new_key_makes_one_and_purges_expired_records(tmp_path, tiny_model_dir):
    from aimark.engines import canonical_model_ref
    from aimark.registry import Registry
    from aimark.service.config import ServiceConfig
    from aimark.service.runtime import ServiceKeyError, ServiceRuntime

    db_url = f"sqlite:///{tmp_path / 'registry.sqlite3'}"
    model = canonical_model_ref(str(tiny_model_dir))
    _registry_with_an_output_of(model, db_url, days_ago=400)
    _registry_with_an_output_of(model, db_url, days_ago=10)
    config = ServiceConfig(model=str(tiny_model_dir), db_url=db_url, require_api_key=False, registry_min_evidence=40)
    with pytest.raises(ServiceKeyError):
        ServiceRuntime.start(config, home=tmp_path / "data")
    runtime = ServiceRuntime.start(config, home=tmp_path / "data", new_key=True)
    try:
        assert runtime.registry.min_evidence == 40
        assert runtime.registry.get("aimark-400") is None and runtime.registry.get("aimark-10") is not None  # on start
        assert runtime.registry._purger is not None and runtime.registry._purger.is_alive()
        key_file = next((tmp_path / "data" / "service" / "keys").glob("*.json"))
        assert runtime.key.key_id != "synthid-0ld0ld0ld0ld0ld0" and oct(key_file.stat().st_mode & 0o777) == "0o600"
    finally:
        runtime.close()
    assert not runtime.registry._purger.is_alive()  # retention stops with the service
    again = ServiceRuntime.start(config, home=tmp_path / "data")  # its own key now exists: no flag needed
    assert again.key.key_id == runtime.key.key_id
    again.close()
    Registry(db_url).close()


def test_a_service_key_left_in_the_old_cache_is_moved_and_used(tmp_path, tiny_model_dir, monkeypatch):
    from aimark.engines import canonical_model_ref, load_model
    from aimark.keys import load_key
    from aimark.service.runtime import default_service_key, service_key_path

    _no_aimark_dirs(monkeypatch, tmp_path)
    loaded = load_model(str(tiny_model_dir))
    made = default_service_key(loaded, tmp_path / "elsewhere")  # a key as an older aimark kept it
    old = service_key_path(loaded.name, tmp_path / ".cache" / "aimark")
    old.parent.mkdir(parents=True)
    service_key_path(loaded.name, tmp_path / "elsewhere").rename(old)
    notes: list[str] = []
    found = default_service_key(loaded, notify=notes.append)
    new = service_key_path(canonical_model_ref(str(tiny_model_dir)), tmp_path / ".local" / "share" / "aimark")
    assert found.key_id == made.key_id == load_key(new).key_id and not old.exists()
    assert len(notes) == 1 and str(old) in notes[0] and str(new) in notes[0]
