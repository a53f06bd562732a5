from __future__ import annotations

import json
import os
import pickle

import pytest

from aimark.keys import (
    KeyFileError,
    Keyring,
    check_key_file_permissions,
    generate_key,
    key_from_dict,
    load_key,
    save_key,
)


@pytest.mark.parametrize("scheme", ["synthid", "kgw", "gumbel"])
def test_round_trip_and_mode_0600(tmp_path, scheme):
    key = generate_key(scheme)
    path = save_key(key, tmp_path / "k.json")
    assert oct(os.stat(path).st_mode & 0o777) == "0o600" and check_key_file_permissions(path)
    loaded = load_key(path)
    assert loaded.key_id == key.key_id and loaded.secret == key.secret and dict(loaded.params) == dict(key.params)
    assert pickle.loads(pickle.dumps(loaded)).secret == key.secret


def test_secret_never_shown(tmp_path):
    key = generate_key("synthid")
    secret_hex = key.secret.hex()
    assert secret_hex not in repr(key)
    assert secret_hex not in json.dumps(key.public_dict())
    path = save_key(key, tmp_path / "k.json")
    document = json.loads(path.read_text())
    document["key_id"] = "synthid-0000000000000000"
    path.write_text(json.dumps(document))
    with pytest.raises(KeyFileError) as info:
        load_key(path)
    assert secret_hex not in str(info.value)


def test_refuses_to_overwrite(tmp_path):
    path = save_key(generate_key("kgw"), tmp_path / "k.json")
    with pytest.raises(KeyFileError, match="already exists"):
        save_key(generate_key("kgw"), path)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "not a valid key file"),
        (b"\xff\xfe", "not a valid key file"),
        (b"[1, 2", "not a valid key file"),
        (b"42", "expected a JSON object"),
        (b'{"hello": 1}', "not a key file"),
        (b'{"format": "aimark-key/1", "scheme": "rsa", "params": {}}', "unknown watermark scheme"),
        (b'{"format": "aimark-key/1", "scheme": "kgw", "params": {}, "secret": "zz"}', "no valid secret"),
    ],
)
def test_corrupt_key_files_are_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(KeyFileError, match=message):
        load_key(path)


def test_missing_key_file():
    with pytest.raises(KeyFileError, match="not found"):
        load_key("/nonexistent/key.json")


@pytest.mark.parametrize("scheme, name, value", [("kgw", "greenlist_ratio", 1.5), ("gumbel", "context_prf", "SipHash")])
def test_invalid_parameters_rejected(tmp_path, scheme, name, value):
    key = generate_key(scheme)
    path = save_key(key, tmp_path / "k.json")
    document = json.loads(path.read_text())
    document["params"][name] = value
    path.write_text(json.dumps(document))
    with pytest.raises(KeyFileError, match=name):
        load_key(path)
    with pytest.raises(KeyFileError, match=name):
        generate_key(scheme, **{name: value})


@pytest.mark.parametrize("scheme", ["synthid", "kgw", "gumbel"])
def test_new_keys_use_siphash_and_key_files_without_the_parameter_keep_blake2b(tmp_path, scheme):
    key = generate_key(scheme)
    assert key.params["context_prf"] == "siphash24" == key.context_prf
    path = save_key(key, tmp_path / "new.json")
    assert json.loads(path.read_text())["params"]["context_prf"] == "siphash24"
    assert load_key(path).context_prf == "siphash24"
    # A key file written before the parameter existed: its contexts are BLAKE2b's, whatever new keys default to.
    document = json.loads(path.read_text())
    del document["params"]["context_prf"]
    legacy = key_from_dict(document)
    assert legacy.context_prf == "blake2b" and legacy.params["context_prf"] == "blake2b" and legacy.key_id == key.key_id
    assert load_key(save_key(legacy, tmp_path / "legacy.json")).context_prf == "blake2b"  # and stays so once saved
    assert generate_key(scheme, context_prf="blake2b").context_prf == "blake2b"


def test_engine_keys_have_no_context_prf():
    """transformers- and vLLM-compatible keys hash contexts the engine's way: the parameter is aimark's own."""
    assert "context_prf" not in key_from_dict({"ngram_len": 5, "keys": [1, 2, 3]}).params
    assert "context_prf" not in key_from_dict({"algorithm": "gumbel", "key": 42}).params


def test_transformers_config_dicts_are_keys():
    synthid = key_from_dict({"ngram_len": 5, "keys": [1, 2, 3], "sampling_table_seed": 0})
    assert synthid.scheme == "synthid" and synthid.mode == "transformers" and synthid.params["depth"] == 3
    assert "keys" not in synthid.public_dict()["params"]
    kgw = key_from_dict({"greenlist_ratio": 0.25, "bias": 2.0, "hashing_key": 7, "seeding_scheme": "selfhash", "context_width": 4})
    assert kgw.scheme == "kgw" and kgw.params["seeding_scheme"] == "selfhash"
    assert "hashing_key" not in kgw.public_dict()["params"]


def test_keyring_loads_lists_and_rejects_duplicates(tmp_path):
    a, b = generate_key("kgw"), generate_key("gumbel")
    path_a = save_key(a, tmp_path / "a.json")
    ring = Keyring.load([path_a, save_key(b, tmp_path / "b.json")])
    assert [k.key_id for k in ring] == [a.key_id, b.key_id]
    with pytest.raises(KeyFileError, match="twice"):
        Keyring.load([path_a, path_a])



def test_keyring_names_the_tokenizer_model_its_keys_share():
    """The model detection tokenizes with: the caller's, else the keys' one model, else None (the embedded
    default); keys of different models need the caller to choose."""
    plain, of_a = generate_key("kgw"), generate_key("synthid", model="model-a")
    assert Keyring([plain]).tokenizer_model() is None
    assert Keyring([plain, of_a]).tokenizer_model() == "model-a"
    mixed = Keyring([of_a, generate_key("gumbel", model="model-b")])
    with pytest.raises(KeyFileError, match="different models"):
        mixed.tokenizer_model()
    assert mixed.tokenizer_model("model-b") == "model-b"

# -- vLLM's --watermark-config as a key file --------------------------------------------------------


def test_vllm_watermark_config_is_a_key_file_and_round_trips(tmp_path):
    path = tmp_path / "vllm.json"
    path.write_text(json.dumps({"algorithm": "dual_key_gumbel", "key": 2**64 - 1, "alpha": 0.3, "deduplicate_contexts": "all"}))
    key = load_key(path)
    assert key.scheme == "gumbel" and key.mode == "vllm" and key.key_id.startswith("gumbel-")
    assert key.params["context_width"] == 4 and key.params["deduplicate_contexts_max_history"] == 8192
    # The vLLM key is the secret: never in repr or the public view.
    assert str(2**64 - 1) not in repr(key) and "key" not in key.public_dict()["params"]
    saved = load_key(save_key(key, tmp_path / "aimark.json"))
    assert saved.key_id == key.key_id and dict(saved.params) == dict(key.params)
    # The key id names key and algorithm: the same integer with the other algorithm is another key.
    assert key_from_dict({"algorithm": "gumbel", "key": 2**64 - 1}).key_id != key.key_id
    assert key_from_dict({"key": 42}).params["algorithm"] == "gumbel"


def test_keyring_holds_vllm_configs_next_to_aimark_keys(tmp_path):
    ring = tmp_path / "ring.json"
    ring.write_text(json.dumps([{"algorithm": "gumbel", "key": 1}, {"algorithm": "dual_key_gumbel", "key": 1}]))
    own = save_key(generate_key("kgw"), tmp_path / "kgw.json")
    keyring = Keyring.load([ring, own])
    assert [k.mode for k in keyring] == ["vllm", "vllm", "keyed"]


@pytest.mark.parametrize(
    "document, message",
    [
        ({"algorithm": "gumbel"}, "missing field"),
        ({"key": -1}, "'key' must be an integer"),
        ({"key": 2**64}, "'key' must be an integer"),
        ({"key": True}, "'key' must be an integer"),
        ({"key": "42"}, "'key' must be an integer"),
        ({"key": 1, "algorithm": "sbw"}, "'algorithm' must be one of gumbel, dual_key_gumbel"),
        ({"key": 1, "alpha": 1.5}, "'alpha' must be a number"),
        ({"key": 1, "alpha": float("nan")}, "'alpha' must be a number"),
        ({"key": 1, "context_width": 0}, "'context_width' must be an integer >= 1"),
        ({"key": 1, "deduplicate_contexts": "turn"}, "'deduplicate_contexts' must be one of"),
        ({"key": 1, "deduplicate_contexts_max_history": 0}, "'deduplicate_contexts_max_history'"),
        ({"key": 1, "prf": "hmac_sha256"}, "'prf' must be 'philox'"),
        ({"key": 1, "watermark": True}, "unknown field(s) watermark"),
    ],
)
def test_malformed_vllm_configs_are_clear_errors_without_the_key(tmp_path, document, message):
    path = tmp_path / "vllm.json"
    path.write_text(json.dumps(document))
    with pytest.raises(KeyFileError) as info:
        load_key(path)
    assert message in str(info.value) and str(path) in str(info.value)
    assert "2147483647" not in str(info.value)
