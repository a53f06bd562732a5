"""Watermark keys: secret material, key ids, key files and keyrings.

A key names its scheme and that scheme's parameters, carries a secret, and
records which tokenizer it was made for, because a watermark is a property of
token ids: scoring text with another tokenizer silently yields noise.

Secrets never leave this module in readable form: ``repr``, errors and
``public_dict`` show the key id only. transformers' own watermarking config
dicts (``SynthIDTextWatermarkingConfig``, ``WatermarkingConfig``) are accepted
as key files, so text watermarked by transformers can be detected by aimark, and
so is vLLM's ``--watermark-config`` JSON (``gumbel``, ``dual_key_gumbel``).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from aimark.files import PRIVATE_MODE, write_atomic

SCHEMES = ("synthid", "kgw", "gumbel")
KEY_FILE_FORMAT = "aimark-key/1"

#: The keyed PRF over context windows of a keyed-mode key (aimark.schemes._prf): ``siphash24`` (SipHash-2-4,
#: vectorised over all windows; new keys) or ``blake2b`` (keyed BLAKE2b, one call per window). A key file without
#: the parameter was issued before it existed and means ``blake2b``: every such key detects as it always did.
CONTEXT_PRFS = ("siphash24", "blake2b")
LEGACY_CONTEXT_PRF = "blake2b"

# Parameter defaults per scheme. Chosen from the published recommendations
# (see shared/specs/watermark-anchors.md): SynthID m=30, ngram 5, history 1024;
# KGW gamma .25, delta 2, self-hash over a 4-token window.
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "synthid": {"mode": "keyed", "ngram_len": 5, "depth": 30, "context_history_size": 1024, "units": "tokens", "context_prf": "siphash24"},
    "kgw": {
        "mode": "keyed",
        "greenlist_ratio": 0.25,
        "bias": 2.0,
        "seeding_scheme": "selfhash",
        "context_width": 4,
        "context_prf": "siphash24",
    },
    "gumbel": {"mode": "keyed", "context_width": 4, "context_history_size": 1024, "units": "tokens", "context_prf": "siphash24"},
}


#: What a key's keyed values are over: token ids, or (``code-skeleton``, synthid and gumbel) the
#: formatter-invariant skeletons of code tokens (aimark.schemes.code_skeleton).
UNIT_KINDS = ("tokens", "code-skeleton")


class KeyFileError(ValueError):
    """A key file is missing, unreadable, malformed or for another scheme.

    Messages never contain secret material.
    """



@dataclass(frozen=True)
class TokenizerBinding:
    """Identity of the tokenizer a key was made for."""

    name: str
    vocab_size: int
    fingerprint: str  # sha256 over the sorted vocabulary; see tokenizer_fingerprint()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "vocab_size": self.vocab_size, "fingerprint": self.fingerprint}


@dataclass(frozen=True)
class WatermarkKey:
    """One watermark key. ``secret`` is excluded from repr and comparisons."""

    key_id: str
    scheme: str
    params: Mapping[str, Any]
    secret: bytes = field(repr=False, compare=False)
    tokenizer: TokenizerBinding | None = None
    model: str | None = None  # the model (or tokenizer source) the key was issued for

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise KeyFileError(f"unknown watermark scheme {self.scheme!r}; expected one of {', '.join(SCHEMES)}")
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    @property
    def mode(self) -> str:
        return str(self.params.get("mode", "keyed"))

    @property
    def context_prf(self) -> str:
        """The keyed PRF over context windows (keyed mode); a key without the parameter predates it: BLAKE2b."""
        return str(self.params.get("context_prf", LEGACY_CONTEXT_PRF))

    def __repr__(self) -> str:
        # The dataclass repr would print params, and an engine's or transformers' key is a param.
        public = {k: v for k, v in self.params.items() if k not in _SECRET_PARAMS}
        return f"WatermarkKey(key_id={self.key_id!r}, scheme={self.scheme!r}, params={public!r}, model={self.model!r})"

    def public_dict(self) -> dict[str, Any]:
        """Everything about the key except the secret (safe to print or log)."""
        public_params = {k: v for k, v in self.params.items() if k not in _SECRET_PARAMS}
        return {
            "key_id": self.key_id,
            "scheme": self.scheme,
            "params": public_params,
            "tokenizer": self.tokenizer.to_dict() if self.tokenizer else None,
            "model": self.model,
        }

    def __reduce__(self):  # picklable for Ray/multiprocessing workers
        return (
            WatermarkKey,
            (self.key_id, self.scheme, dict(self.params), self.secret, self.tokenizer, self.model),
        )


# Parameters of transformers- and vLLM-compatible keys that are themselves the secret.
_SECRET_PARAMS = frozenset({"keys", "hashing_key", "key"})

# vLLM 0.32's WatermarkConfig (vllm/config/watermarking.py): its fields and their defaults.
VLLM_ALGORITHMS = ("gumbel", "dual_key_gumbel")
VLLM_CONFIG_DEFAULTS: dict[str, Any] = {
    "algorithm": "gumbel",
    "alpha": 0.1,
    "context_width": 4,
    "deduplicate_contexts": "single_turn",
    "deduplicate_contexts_max_history": 8192,
    "prf": "philox",
    "allow_target_only_watermarking": False,
}
_VLLM_FIELDS = frozenset(VLLM_CONFIG_DEFAULTS) | {"key"}
_VLLM_DEDUP_SCOPES = ("none", "single_turn", "all")


def _key_id_for(secret: bytes, scheme: str) -> str:
    digest = hashlib.blake2b(secret, digest_size=8, person=b"aimark-keyid", salt=scheme.encode()[:16]).hexdigest()
    return f"{scheme}-{digest}"


def generate_key(
    scheme: str,
    *,
    tokenizer: TokenizerBinding | None = None,
    model: str | None = None,
    **overrides: Any,
) -> WatermarkKey:
    """A fresh key with a 256-bit secret from ``os.urandom``."""
    if scheme not in SCHEMES:
        raise KeyFileError(f"unknown watermark scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")
    params = dict(DEFAULT_PARAMS[scheme])
    unknown = set(overrides) - set(params)
    if unknown:
        raise KeyFileError(f"unknown parameter(s) for {scheme}: {', '.join(sorted(unknown))}")
    params.update(overrides)
    _validate_params(scheme, params)
    secret = os.urandom(32)
    return WatermarkKey(_key_id_for(secret, scheme), scheme, params, secret, tokenizer, model)


def save_key(key: WatermarkKey, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write a key file readable by its owner only (mode 0600)."""
    path = Path(path)
    document = {
        "format": KEY_FILE_FORMAT,
        **key.public_dict(),
        "params": dict(key.params),
        "secret": key.secret.hex(),
    }
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    # Atomic: `keygen --force` must never leave the old key truncated and the new one unwritten.
    try:
        write_atomic(path, text.encode("utf-8"), mode=PRIVATE_MODE, overwrite=overwrite)
    except FileExistsError:
        raise KeyFileError(f"{path} already exists; refusing to overwrite a key file") from None
    return path


def load_key(path: str | os.PathLike[str]) -> WatermarkKey:
    """Read an aimark key file or a transformers watermarking config dict (JSON)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"key file not found: {path}") from None
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from None
    if len(raw) > 1 << 20:
        raise KeyFileError(f"{path} is not a key file (larger than 1 MiB)")
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise KeyFileError(f"{path} is not a valid key file (not UTF-8 JSON)") from None
    if not isinstance(document, dict):
        raise KeyFileError(f"{path} is not a valid key file (expected a JSON object)")
    try:
        return key_from_dict(document)
    except KeyFileError as exc:
        raise KeyFileError(f"{path}: {exc}") from None


def key_from_dict(document: Mapping[str, Any]) -> WatermarkKey:
    """Build a key from an aimark key document or a transformers config dict."""
    if document.get("format") == KEY_FILE_FORMAT:
        return _aimark_key_from_dict(document)
    if "keys" in document and "ngram_len" in document:
        return _synthid_config_key(document)
    if "greenlist_ratio" in document or "hashing_key" in document or "seeding_scheme" in document:
        return _kgw_config_key(document)
    if "key" in document or "algorithm" in document:
        return vllm_config_key(document)
    raise KeyFileError("not a key file: neither an aimark key, a transformers watermarking config nor a vLLM watermark config")


def _aimark_key_from_dict(document: Mapping[str, Any]) -> WatermarkKey:
    scheme = document.get("scheme")
    if scheme not in SCHEMES:
        raise KeyFileError(f"unknown watermark scheme {scheme!r}")
    params = document.get("params")
    if not isinstance(params, dict):
        raise KeyFileError("key file has no 'params' object")
    secret_hex = document.get("secret")
    try:
        secret = bytes.fromhex(secret_hex) if isinstance(secret_hex, str) else b""
    except ValueError:
        secret = b""
    if len(secret) < 16:
        raise KeyFileError("key file has no valid secret (expected at least 16 bytes of hex)")
    expected_id = _key_id_for(secret, scheme)
    if document.get("key_id") != expected_id:
        raise KeyFileError("key id does not match the secret: the key file is corrupt or was edited")
    # An engine's config (mode "vllm") is complete as written: aimark's own defaults are not its fields. A key
    # file without context_prf was written before SipHash: its contexts are BLAKE2b's, not the new default.
    if params.get("mode") == "vllm":
        merged = dict(params)
    else:
        merged = {**DEFAULT_PARAMS[scheme], "context_prf": LEGACY_CONTEXT_PRF, **params}
    _validate_params(scheme, merged)
    binding = document.get("tokenizer")
    tokenizer = None
    if binding is not None:
        try:
            tokenizer = TokenizerBinding(str(binding["name"]), int(binding["vocab_size"]), str(binding["fingerprint"]))
        except (KeyError, TypeError, ValueError):
            raise KeyFileError("key file has a malformed 'tokenizer' entry") from None
    return WatermarkKey(expected_id, scheme, merged, secret, tokenizer, document.get("model"))


def _validate_params(scheme: str, params: Mapping[str, Any]) -> None:
    def bad(name: str, why: str) -> KeyFileError:
        return KeyFileError(f"invalid {scheme} parameter {name!r}: {why}")

    if scheme == "gumbel" and params.get("mode") == "vllm":
        _validate_vllm_config({k: v for k, v in params.items() if k != "mode"}, require_all=True)
        return
    if params.get("mode") not in ("keyed", "transformers"):
        raise bad("mode", "expected 'keyed' or 'transformers'")
    units = params.get("units", "tokens")
    if units not in UNIT_KINDS:
        raise bad("units", f"expected one of {', '.join(UNIT_KINDS)}")
    if units != "tokens" and scheme == "kgw":
        raise bad("units", "kgw's green lists are over token ids; code-skeleton units work with synthid and gumbel keys")
    if units != "tokens" and params["mode"] != "keyed":
        raise bad("units", f"{units} units need an aimark keyed key (mode 'keyed'), not mode {params['mode']!r}")
    if params.get("context_prf", LEGACY_CONTEXT_PRF) not in CONTEXT_PRFS:
        raise bad("context_prf", f"expected one of {', '.join(CONTEXT_PRFS)}")
    if scheme == "synthid":
        if not (isinstance(params["ngram_len"], int) and params["ngram_len"] >= 2):
            raise bad("ngram_len", "expected an integer >= 2")
        if not (isinstance(params["depth"], int) and 1 <= params["depth"] <= 64):
            raise bad("depth", "expected an integer in 1..64")
    if scheme == "kgw":
        if not 0.0 < float(params["greenlist_ratio"]) < 1.0:
            raise bad("greenlist_ratio", "expected 0 < ratio < 1")
        if params["seeding_scheme"] not in ("lefthash", "selfhash"):
            raise bad("seeding_scheme", "expected 'lefthash' or 'selfhash'")
        if not (isinstance(params["context_width"], int) and params["context_width"] >= 1):
            raise bad("context_width", "expected an integer >= 1")
    if scheme == "gumbel" and not (isinstance(params["context_width"], int) and params["context_width"] >= 1):
        raise bad("context_width", "expected an integer >= 1")


def _synthid_config_key(document: Mapping[str, Any]) -> WatermarkKey:
    keys = document.get("keys")
    if not (isinstance(keys, list) and keys and all(isinstance(k, int) for k in keys)):
        raise KeyFileError("SynthID config: 'keys' must be a non-empty list of integers")
    params = {
        "mode": "transformers",
        "ngram_len": int(document["ngram_len"]),
        "depth": len(keys),
        "keys": list(keys),
        "sampling_table_size": int(document.get("sampling_table_size", 2**16)),
        "sampling_table_seed": int(document.get("sampling_table_seed", 0)),
        "context_history_size": int(document.get("context_history_size", 1024)),
    }
    if params["ngram_len"] < 2:
        raise KeyFileError("SynthID config: 'ngram_len' must be >= 2")
    secret = json.dumps({k: params[k] for k in ("keys", "sampling_table_seed", "sampling_table_size")}).encode()
    return WatermarkKey(_key_id_for(secret, "synthid"), "synthid", params, secret)


def _kgw_config_key(document: Mapping[str, Any]) -> WatermarkKey:
    params = {
        "mode": "transformers",
        "greenlist_ratio": float(document.get("greenlist_ratio", 0.25)),
        "bias": float(document.get("bias", 2.0)),
        "hashing_key": int(document.get("hashing_key", 15485863)),
        "seeding_scheme": str(document.get("seeding_scheme", "lefthash")),
        "context_width": int(document.get("context_width", 1)),
    }
    if "vocab_size" in document:
        params["vocab_size"] = int(document["vocab_size"])
    _validate_params("kgw", params)
    secret = json.dumps({"hashing_key": params["hashing_key"]}).encode()
    return WatermarkKey(_key_id_for(secret, "kgw"), "kgw", params, secret)


def _validate_vllm_config(document: Mapping[str, Any], *, require_all: bool = False) -> None:
    """Check a vLLM watermark config as vLLM's own WatermarkConfig would (messages never show the key)."""

    def bad(name: str, why: str) -> KeyFileError:
        return KeyFileError(f"vLLM watermark config: {name!r} {why}")

    unknown = set(document) - _VLLM_FIELDS
    if unknown:
        raise KeyFileError(
            f"vLLM watermark config: unknown field(s) {', '.join(sorted(map(str, unknown)))}; "
            f"expected {', '.join(sorted(_VLLM_FIELDS))}"
        )
    missing = (_VLLM_FIELDS if require_all else {"key"}) - set(document)
    if missing:
        raise KeyFileError(f"vLLM watermark config: missing field(s) {', '.join(sorted(missing))}")
    key = document["key"]
    if isinstance(key, bool) or not isinstance(key, int) or not 0 <= key <= 2**64 - 1:
        raise bad("key", "must be an integer in 0..2**64-1 (Philox keys fit in 64 bits)")
    algorithm = document.get("algorithm", "gumbel")
    if algorithm not in VLLM_ALGORITHMS:
        raise bad("algorithm", f"must be one of {', '.join(VLLM_ALGORITHMS)} (vLLM 0.32's algorithms aimark reads), not {algorithm!r}")
    alpha = document.get("alpha", 0.1)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= float(alpha) <= 1.0:
        raise bad("alpha", "must be a number in [0, 1]")
    width = document.get("context_width", 4)
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise bad("context_width", "must be an integer >= 1")
    if document.get("deduplicate_contexts", "single_turn") not in _VLLM_DEDUP_SCOPES:
        raise bad("deduplicate_contexts", f"must be one of {', '.join(_VLLM_DEDUP_SCOPES)}")
    history = document.get("deduplicate_contexts_max_history", 8192)
    if history is not None and (isinstance(history, bool) or not isinstance(history, int) or history < 1):
        raise bad("deduplicate_contexts_max_history", "must be an integer >= 1 or null")
    if document.get("prf", "philox") != "philox":
        raise bad("prf", "must be 'philox' (the PRF vLLM 0.32 ships)")
    if not isinstance(document.get("allow_target_only_watermarking", False), bool):
        raise bad("allow_target_only_watermarking", "must be true or false")


def vllm_config_key(document: Mapping[str, Any]) -> WatermarkKey:
    """A detection key from vLLM's ``--watermark-config`` JSON (``{"algorithm": "gumbel", "key": 42}``)."""
    _validate_vllm_config(document)
    params: dict[str, Any] = {"mode": "vllm", **VLLM_CONFIG_DEFAULTS, **document}
    params["alpha"] = float(params["alpha"])
    # The key id names the secret the tokens depend on: the key and, through the derived keys, the algorithm.
    secret = json.dumps({"engine": "vllm", "algorithm": params["algorithm"], "key": params["key"]}).encode()
    return WatermarkKey(_key_id_for(secret, "gumbel"), "gumbel", params, secret)


class Keyring:
    """An ordered set of keys, tried together at detection time."""

    def __init__(self, keys: Iterable[WatermarkKey]):
        self._keys = tuple(keys)
        if not self._keys:
            raise KeyFileError("a keyring needs at least one key")
        ids = [k.key_id for k in self._keys]
        if len(set(ids)) != len(ids):
            raise KeyFileError("the keyring holds the same key twice")

    @classmethod
    def load(cls, paths: Iterable[str | os.PathLike[str]]) -> Keyring:
        """Load key files; a JSON file holding a list of key documents is a keyring."""
        keys: list[WatermarkKey] = []
        for path in paths:
            path = Path(path)
            try:
                document = json.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise KeyFileError(f"key file not found: {path}") from None
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                raise KeyFileError(f"{path} is not a valid key file (not UTF-8 JSON)") from None
            if isinstance(document, list):
                try:
                    keys.extend(key_from_dict(entry) for entry in document)
                except KeyFileError as exc:
                    raise KeyFileError(f"{path}: {exc}") from None
            else:
                keys.append(load_key(path))
        return cls(keys)

    def tokenizer_model(self, model: str | None = None) -> str | None:
        """The model whose tokenizer detection with these keys uses: ``model`` when given, else the one model the
        keys name (None: none names one, the embedded default)."""
        if model is not None:
            return model
        models = {key.model for key in self._keys if key.model}
        if len(models) > 1:
            raise KeyFileError("the keys were made for different models; pass --model (model= in Python) to choose the tokenizer")
        return models.pop() if models else None

    def __iter__(self) -> Iterator[WatermarkKey]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"Keyring({', '.join(k.key_id for k in self._keys)})"


def check_key_file_permissions(path: str | os.PathLike[str]) -> bool:
    """True when the key file is not readable by group or others."""
    mode = os.stat(path).st_mode
    return not mode & (stat.S_IRWXG | stat.S_IRWXO)


def tokenizer_fingerprint(vocab: Mapping[str, int]) -> str:
    """A stable fingerprint of a vocabulary (token string -> id)."""
    digest = hashlib.sha256()
    for token, index in sorted(vocab.items(), key=lambda item: item[1]):
        digest.update(f"{index}\t{token}\n".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()
