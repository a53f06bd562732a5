"""The tokenizer detection needs, loaded with the `tokenizers` library alone (no torch, no transformers).

transformers' fast tokenizer wraps the very ``tokenizers.Tokenizer`` that ``tokenizer.json`` describes, so
encoding through it directly gives the same ids and offsets (tests/engines/test_tokenizer.py checks it);
importing transformers (and the torch it pulls in) costs a cold ``aimark detect`` seconds and about
500 MB. What is fixed per tokenizer file (the fingerprint keys are bound to, the special-token ids) is
computed once and cached, keyed by the SHA-256 of the tokenizer files, so a later start skips fingerprinting
the whole vocabulary. A cache that does not parse, names other files or fails its checksum is recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from aimark.engines.models import (
    ModelLoadError,
    Progress,
    _quiet,
    aimark_home,
    canonical_model_ref,
    load_tokenizer,
    model_dir,
)
from aimark.files import write_atomic
from aimark.keys import tokenizer_fingerprint

TOKENIZER_FILE = "tokenizer.json"
# transformers' named special tokens (SPECIAL_TOKENS_ATTRIBUTES), then the lists of extra ones.
_NAMED_SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
_EXTRA_SPECIAL_TOKENS = ("additional_special_tokens", "extra_special_tokens")
_CONFIG_FILES = ("tokenizer_config.json", "special_tokens_map.json")
_CACHE_FORMAT = 1


class DetectionTokenizer:
    """The part of a transformers fast tokenizer's interface detection uses, over a ``tokenizers.Tokenizer``."""

    def __init__(self, backend, *, special_ids: list[int], fingerprint: str, name: str):
        self.backend = backend
        self.all_special_ids = list(special_ids)
        self.name_or_path = name
        self._aimark_fingerprint = fingerprint  # read by aimark.detect.detector.fingerprint_of
        self._size = backend.get_vocab_size(with_added_tokens=True)

    def __len__(self) -> int:
        return self._size

    def get_vocab(self) -> dict[str, int]:
        return self.backend.get_vocab(with_added_tokens=True)

    def __call__(self, text: str | list[str], *, add_special_tokens: bool = True, return_offsets_mapping: bool = False) -> dict[str, Any]:
        """``{"input_ids": ..., "offset_mapping": ...}`` for one text or a list, as transformers returns them."""
        if isinstance(text, str):
            encoding = self.backend.encode(text, add_special_tokens=add_special_tokens)
            result: dict[str, Any] = {"input_ids": encoding.ids}
            if return_offsets_mapping:
                result["offset_mapping"] = encoding.offsets
            return result
        encodings = self.backend.encode_batch(list(text), add_special_tokens=add_special_tokens)
        result = {"input_ids": [e.ids for e in encodings]}
        if return_offsets_mapping:
            result["offset_mapping"] = [e.offsets for e in encodings]
        return result

    def batch_decode(self, rows, *, skip_special_tokens: bool = False) -> list[str]:
        return self.backend.decode_batch([list(row) for row in rows], skip_special_tokens=skip_special_tokens)


def load_detection_tokenizer(model: str | os.PathLike[str] | None = None, progress: Progress | None = None):
    """The model's tokenizer for detection: a :class:`DetectionTokenizer` from ``tokenizer.json``, or, for a
    model directory without one (a slow, sentencepiece-only tokenizer), transformers' own."""
    directory = model_dir(model, progress)
    if not (directory / TOKENIZER_FILE).is_file():
        return load_tokenizer(model, progress)
    from tokenizers import Tokenizer

    say = _quiet(progress)
    say("loading the tokenizer")
    try:
        backend = Tokenizer.from_file(str(directory / TOKENIZER_FILE))
        configs = {name: _read_json(directory / name) for name in _CONFIG_FILES}
    except Exception as exc:  # noqa: BLE001 - tokenizers raises a bare Exception on a broken file
        raise ModelLoadError(f"cannot load a tokenizer from {directory}: {' '.join(str(exc).split())}") from None
    # transformers encodes without truncation or padding unless asked; a tokenizer.json may carry either.
    backend.no_truncation()
    backend.no_padding()
    tables = _per_tokenizer_tables(directory, backend, configs, say)
    return DetectionTokenizer(backend, special_ids=tables["special_ids"], fingerprint=tables["fingerprint"], name=canonical_model_ref(model))


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    document = json.loads(path.read_text(encoding="utf-8"))
    return document if isinstance(document, dict) else {}


def _special_ids(backend, configs: dict[str, dict]) -> list[int]:
    """transformers' ``all_special_ids``: the named special tokens, then the extra ones, deduplicated in order."""
    merged = {**configs.get("special_tokens_map.json", {}), **configs.get("tokenizer_config.json", {})}
    tokens: list[str] = []
    for attribute in _NAMED_SPECIAL_TOKENS:
        tokens.append(_token_content(merged.get(attribute)))
    for attribute in _EXTRA_SPECIAL_TOKENS:
        extra = merged.get(attribute) or []
        tokens.extend(_token_content(t) for t in (extra.values() if isinstance(extra, dict) else extra))
    ids: list[int] = []
    for token in dict.fromkeys(t for t in tokens if t):
        index = backend.token_to_id(token)
        if index is not None and index not in ids:
            ids.append(index)
    return ids


def _token_content(value) -> str | None:
    if isinstance(value, dict):  # an AddedToken as saved: {"content": ..., "special": ...}
        value = value.get("content")
    return value if isinstance(value, str) else None


def _files_digest(directory: Path) -> str:
    digest = hashlib.sha256()
    for name in (TOKENIZER_FILE, *_CONFIG_FILES):
        path = directory / name
        digest.update(f"{name}\0".encode())
        if path.is_file():
            with path.open("rb") as handle:
                while chunk := handle.read(8 << 20):
                    digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def _files_stat(directory: Path) -> list:
    """Size and modification time of each tokenizer file: when they are unchanged the stored hash stands
    (hashing Gemma's 33 MB tokenizer.json costs a start 0.1 s), as git's index trusts unchanged files."""
    signature = []
    for name in (TOKENIZER_FILE, *_CONFIG_FILES):
        try:
            info = (directory / name).stat()
        except OSError:
            signature.append([name, None, None])
        else:
            signature.append([name, info.st_size, info.st_mtime_ns])
    return signature


def tables_cache_path(directory: Path) -> Path:
    """Beside the model for aimark's own converted models; under aimark's cache for any other directory
    (a user's model directory may be read-only or shared, and is not ours to write into)."""
    models = aimark_home() / "models"
    directory = directory.resolve()
    if directory.parent == models.resolve():
        return directory / "aimark-tokenizer.json"
    return models / "tokenizers" / f"{hashlib.sha256(str(directory).encode()).hexdigest()[:32]}.json"


def _checksum(tables: dict) -> str:
    return hashlib.sha256(json.dumps(tables, sort_keys=True).encode()).hexdigest()


def _per_tokenizer_tables(directory: Path, backend, configs: dict[str, dict], say: Progress) -> dict:
    path = tables_cache_path(directory)
    signature = _files_stat(directory)
    cached = _read_tables(path)
    if cached is not None and cached["files_stat"] == signature:
        return cached
    digest = _files_digest(directory)
    if cached is not None and cached["files_sha256"] == digest:
        tables = {**cached, "files_stat": signature}  # touched, not changed: the tables stand
    else:
        say("fingerprinting the tokenizer (once per tokenizer file)")
        tables = {
            "format": _CACHE_FORMAT,
            "files_sha256": digest,
            "files_stat": signature,
            "fingerprint": tokenizer_fingerprint(backend.get_vocab(with_added_tokens=True)),
            "special_ids": _special_ids(backend, configs),
        }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps({**tables, "checksum": _checksum(tables)}).encode())
    except OSError:
        pass  # a read-only cache costs the next start the same work again, nothing else
    return tables


def _read_tables(path: Path) -> dict | None:
    """The cached tables, or None when there are none or they do not parse, check or have the expected shape."""
    try:
        document = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict):
        return None
    checksum = document.pop("checksum", None)
    valid = (
        document.get("format") == _CACHE_FORMAT
        and checksum == _checksum(document)
        and isinstance(document.get("files_sha256"), str)
        and isinstance(document.get("files_stat"), list)
        and isinstance(document.get("fingerprint"), str)
        and isinstance(document.get("special_ids"), list)
        and all(isinstance(i, int) and not isinstance(i, bool) for i in document["special_ids"])
    )
    return document if valid else None
