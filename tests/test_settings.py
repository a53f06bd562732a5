"""Provider settings: found from the working directory up, environment over the file, flags over both, and
a malformed file rejected with its path and the field at fault."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from aimark.cli import app
from aimark.settings import SettingsError, find_settings_file, load_settings, starter_file

runner = CliRunner()


def test_the_starter_file_loads_as_it_stands_and_init_refuses_to_overwrite(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["init", "--profile", "cn"])
    assert result.exit_code == 0, result.output
    written = (tmp_path / "aimark.toml").read_text(encoding="utf-8")
    assert written == starter_file("cn") and written.count("\n# ") > 10  # commented
    settings = load_settings(tmp_path, environ={})
    assert settings.label.default_profile == "cn" and settings.provider.content_producer is None
    assert settings.source == tmp_path / "aimark.toml"

    (tmp_path / "aimark.toml").write_text("# mine\n", encoding="utf-8")
    again = runner.invoke(app, ["init"])
    assert again.exit_code == 2 and "--force" in again.stderr
    assert (tmp_path / "aimark.toml").read_text(encoding="utf-8") == "# mine\n"
    assert runner.invoke(app, ["init", "--force"]).exit_code == 0
    assert (tmp_path / "aimark.toml").read_text(encoding="utf-8") == starter_file("all")


def test_found_by_walking_up_and_relative_paths_are_the_files(tmp_path) -> None:
    (tmp_path / "aimark.toml").write_text('[signing]\ncertificate_chain = "pki/chain.pem"\nprivate_key = "/abs/key.pem"\n'
                                          '[watermark]\nkey = "keys/k.json"\n', encoding="utf-8")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert find_settings_file(deep) == tmp_path / "aimark.toml"
    settings = load_settings(deep, environ={})
    assert settings.signing.certificate_chain == tmp_path / "pki" / "chain.pem"
    assert settings.signing.private_key == Path("/abs/key.pem") and settings.signing.configured
    assert settings.watermark.key == tmp_path / "keys" / "k.json"


def test_pyproject_tool_table_counts_only_when_it_has_tool_aimark(tmp_path) -> None:
    inner = tmp_path / "project"
    inner.mkdir()
    (inner / "pyproject.toml").write_text("[project]\nname = 'x'\n", encoding="utf-8")
    assert find_settings_file(inner) is None or find_settings_file(inner).parent != inner
    (inner / "pyproject.toml").write_text("[project]\nname = 'x'\n[tool.aimark.provider]\ncontent_producer = 'P0001'\n",
                                          encoding="utf-8")
    assert find_settings_file(inner) == inner / "pyproject.toml"
    assert load_settings(inner, environ={}).provider.content_producer == "P0001"


def test_environment_over_the_file_and_flags_over_both(tmp_path) -> None:
    (tmp_path / "aimark.toml").write_text('[provider]\ncontent_producer = "FILE"\n[label]\ndefault_profile = "kr"\n',
                                          encoding="utf-8")
    settings = load_settings(tmp_path, environ={"AIMARK_CONTENT_PRODUCER": "ENV", "AIMARK_SIGNING_KEY": "k.pem"})
    assert settings.provider.content_producer == "ENV" and settings.label.default_profile == "kr"
    assert settings.signing.private_key == Path("k.pem")  # the environment's paths are the caller's
    flagged = settings.with_overrides(provider={"content_producer": "FLAG", "detection_endpoint": None})
    assert flagged.provider.content_producer == "FLAG" and flagged.label.default_profile == "kr"


@pytest.mark.parametrize("text, expected", [
    ("[provider\n", "not valid TOML"),
    ("[provider]\ncontent_prodcer = 'x'\n", "provider.content_prodcer: unknown setting"),
    ("[provider]\ncontent_producer = 'has space'\n", "provider.content_producer: must be printable ASCII"),
    ("[label]\ndefault_profile = 'us'\n", "label.default_profile"),
    ("[provider]\ndetection_endpoint = 'ftp://x'\n", "provider.detection_endpoint: must be an http"),
    ("[provider]\ndetection_endpoint = 'https://user:pw@host/'\n", "provider.detection_endpoint"),
    ("provider = 3\n", "provider"),
])
def test_a_malformed_file_names_its_path_and_field(tmp_path, text, expected) -> None:
    path = tmp_path / "aimark.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SettingsError) as caught:
        load_settings(tmp_path, environ={})
    assert str(path) in str(caught.value) and expected in str(caught.value)


def test_invalid_utf8_and_a_bad_variable_are_clear_errors(tmp_path) -> None:
    (tmp_path / "aimark.toml").write_bytes(b"[provider]\ncontent_producer = '\xff'\n")
    with pytest.raises(SettingsError, match="not valid UTF-8"):
        load_settings(tmp_path, environ={})
    (tmp_path / "aimark.toml").write_text("", encoding="utf-8")
    with pytest.raises(SettingsError, match="AIMARK_PROFILE.*label.default_profile"):
        load_settings(tmp_path, environ={"AIMARK_PROFILE": "mars"})


def test_commands_report_a_malformed_file_without_a_traceback(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "aimark.toml").write_text("[signing]\nprivate_kee = 'x'\n", encoding="utf-8")
    (tmp_path / "a.txt").write_text("hi\n", encoding="utf-8")
    for command in (["label", "a.txt", "--profile", "kr"], ["verify", "a.txt", "--profile", "kr"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2 and "signing.private_kee: unknown setting" in result.stderr
        assert "Traceback" not in result.output
