"""`aimark serve` takes what its flags leave unset from the provider's settings (aimark.toml, AIMARK_*)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from aimark.cli import app
from aimark.provenance.test_pki import generate_test_pki


@pytest.fixture
def started(monkeypatch):
    """Stops `serve` right where it would load the model, keeping the config it built."""
    from aimark.engines import ModelLoadError
    from aimark.service.runtime import ServiceRuntime

    seen = []

    def start(config, **_):
        seen.append(config)
        raise ModelLoadError("stopped by the test before loading a model")

    monkeypatch.setattr(ServiceRuntime, "start", staticmethod(start))
    return seen


def test_serve_uses_the_settings_and_flags_override_them(tmp_path, monkeypatch, started) -> None:
    pki = generate_test_pki().write(tmp_path / "pki")
    (tmp_path / "aimark.toml").write_text(
        '[provider]\ndetection_endpoint = "https://verify.example.com/v1/verify"\n'
        '[label]\ndefault_profile = "kr"\nnotice_language = "ko"\n'
        f'[signing]\ncertificate_chain = "{pki["certificate_chain"]}"\nprivate_key = "{pki["private_key"]}"\n'
        f'trust_anchors = "{pki["trust_anchor"]}"\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["serve", "--no-auth"])
    assert result.exit_code == 2 and "stopped by the test" in result.stderr
    (config,) = started
    assert (config.profile, config.language, config.labels) == ("kr", "ko", ("notice", "c2pa"))
    assert config.credentials is not None and config.trust_anchors == pki["trust_anchor"].read_bytes()
    assert config.detection_endpoint == "https://verify.example.com/v1/verify"

    assert CliRunner().invoke(app, ["serve", "--no-auth", "--profile", "cn", "--lang", "zh"]).exit_code == 2
    assert (started[1].profile, started[1].language) == ("cn", "zh")
