"""The keyed pseudo-random functions every scheme draws from."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from aimark.detect import Detector
from aimark.keys import key_from_dict
from aimark.schemes import _prf, scheme_for_key
from aimark.schemes._prf import ContextHasher, context_hasher, siphash, to_unit_interval
from aimark.schemes.gumbel import GumbelScheme
from tests.helpers import IdsOnly, fixed_key, require_module, seeded_keys, seeded_rng


def test_unit_interval_stays_open_at_both_ends():
    extremes = np.array([0, 1, 2**11, 2**64 - 2049, 2**64 - 2048, 2**64 - 1], dtype=np.uint64)
    r = to_unit_interval(extremes)
    assert np.all(r > 0) and np.all(r < 1)
    assert np.isfinite(-np.log1p(-r)).all() and -np.log1p(-r).max() < 37  # Gumbel's per-unit score is bounded


def _chi_square_20_bins(r: np.ndarray) -> float:
    counts = np.histogram(r, bins=20, range=(0, 1))[0]
    expected = len(r) / 20
    return float(((counts - expected) ** 2 / expected).sum())


def test_unit_interval_is_uniform_and_monotone():
    """Chi-square over 20 bins at 1e-3 (43.8, 19 dof) on 200,000 values: rejects a density tilted by 2%
    across the interval (r -> r**1.02) with power ~1; that tilt is the control."""
    values = seeded_rng("prf-uniform").integers(0, 2**64, size=200_000, dtype=np.uint64)
    r = to_unit_interval(values)
    assert _chi_square_20_bins(r) < 43.8
    assert _chi_square_20_bins(r**1.02) > 43.8  # control: the same check sees a 2% tilt
    order = np.argsort(values)
    assert np.all(np.diff(r[order]) >= 0)


def test_gumbel_scores_of_a_fresh_key_on_fixed_text_are_exponential():
    tokens = np.arange(5000, dtype=np.int64) % 997 + 3
    keys = seeded_keys("prf-gumbel-exponential")
    values = np.concatenate([GumbelScheme(keys("gumbel")).score(tokens).values for _ in range(20)])
    assert abs(values.mean() - 1) < 0.03 and abs(values.var() - 1) < 0.06
    assert abs((values > 3).mean() - np.exp(-3)) < 0.005


# -- keys issued before ``context_prf`` existed -------------------------------------------------------------------
BLAKE2B_OUTPUTS = Path(__file__).resolve().parents[1] / "fixtures" / "prf" / "blake2b_outputs.json"


@pytest.fixture(scope="module")
def blake2b_outputs() -> dict:
    return json.loads(BLAKE2B_OUTPUTS.read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", ["synthid", "kgw", "kgw-lefthash", "gumbel"])
def test_key_files_without_context_prf_detect_exactly_as_before(blake2b_outputs, name):
    """A hard copy made by the code before SipHash (tests/fixtures/prf/make_blake2b_outputs.py at bf9c49b):
    the same p-values to the last bit, alone and batched, and the same context keys for every width."""
    document = blake2b_outputs["keys"][name]
    assert "context_prf" not in document["params"]
    detector = Detector(key_from_dict(document), IdsOnly(), check_tokenizer=False)
    texts = [np.asarray(t, dtype=np.int64) for t in blake2b_outputs["texts"] + [blake2b_outputs["marked_texts"][name]]]
    expected = blake2b_outputs["results"][name]
    alone = [detector.detect_ids(ids) for ids in texts]
    batched = detector._detect_batch(texts)
    for result, together, want in zip(alone, batched, expected, strict=True):
        for got in (result, together):
            assert (got.log10_p_value, got.p_value, got.num_scored_tokens) == (want["log10_p_value"], want["p_value"], want["num_scored_tokens"])
    assert expected[-1]["log10_p_value"] < -50  # the marked text: the far tail is compared too
    scheme = detector.schemes[0]
    hasher = ContextHasher(bytes.fromhex(document["secret"]), f"{scheme.name}-context".encode())
    for label, rows in blake2b_outputs["windows"].items():
        keys = hasher(np.asarray(rows, dtype=np.uint64).astype("<u4"))
        assert keys.tolist() == blake2b_outputs["context_keys"][name][label], label


# -- SipHash-2-4 (context_prf "siphash24") -------------------------------------------------------------------------
siphash24_reference = require_module("siphash24", "pip install -e '.[test]'")  # an independent C implementation

# The reference implementation's vectors (github.com/veorq/SipHash, vectors.h, vectors_sip64): key 00 01 .. 0f,
# message 00 01 .. (n-1); those of whole 32-bit words, as aimark hashes rows of uint32.
OFFICIAL_VECTORS = {
    0: "310e0edd47db6f72", 4: "b7877127e09427cf", 8: "6224939a79f5f593", 12: "fbe50e86bc8f1e75",
    16: "db9bc2577fcc2a3f", 20: "98eea21af25cd6be", 24: "94af49f6c650adb8", 28: "a5c91da7acaa4dde",
    32: "ce7cf2722f512771", 36: "b4a31508beff4d31", 40: "d0a704536ba93e0e", 44: "f21df2e41d4535f9",
    48: "51a9cb9ecba312e6", 52: "b274cb8ebf87870a", 56: "bd838d3aafbf8db7", 60: "e1915f5cb1eca46c",
}


def _reference(key: bytes, rows: np.ndarray, function=None) -> np.ndarray:
    function = function or siphash24_reference.siphash24
    digests = [function(row.tobytes(), key=key).digest() for row in np.asarray(rows).astype("<u4")]
    return np.frombuffer(b"".join(digests), dtype="<u8").astype(np.uint64)


def test_siphash_gives_the_official_test_vectors():
    key = bytes(range(16))
    for length, digest in OFFICIAL_VECTORS.items():
        words = np.frombuffer(bytes(range(length)), dtype="<u4")[None, :]
        assert siphash(key, words)[0] == int.from_bytes(bytes.fromhex(digest), "little"), length


@pytest.mark.parametrize("width", [0, 1, 2, 3, 4, 5, 7, 8, 13])
def test_siphash_is_bit_exact_against_an_independent_implementation(width, monkeypatch):
    """Random rows of every kind a context is (token ids, skeleton words, -1 padding, the full uint32 range),
    over several chunks (a short last one too), as int64 like the windows detection hands over."""
    monkeypatch.setattr(_prf, "SIPHASH_CHUNK", 1000)
    rng = seeded_rng(f"siphash-width-{width}")
    key = rng.bytes(16)
    rows = rng.integers(0, 2**32, size=(2_345, width)).astype(np.int64)
    rows[:50] = rng.integers(-1, 262_144, size=(50, width))
    np.testing.assert_array_equal(siphash(key, rows), _reference(key, rows))
    strided = np.lib.stride_tricks.sliding_window_view(rng.integers(0, 262_144, size=3_000), width)[::3] if width else rows
    np.testing.assert_array_equal(siphash(key, strided), _reference(key, strided))
    # SipHash-1-3, the faster variant aimark does not use, computed by the same code
    np.testing.assert_array_equal(siphash(key, rows[:300], 1, 3), _reference(key, rows[:300], siphash24_reference.siphash13))


def test_siphash_edge_cases():
    key = bytes(16)
    assert siphash(key, np.empty((0, 4), dtype=np.int64)).shape == (0,)
    with pytest.raises(ValueError, match="2-D"):
        siphash(key, np.arange(4))
    with pytest.raises(ValueError, match="16 bytes"):
        siphash(bytes(8), np.zeros((1, 4), dtype=np.int64))


@pytest.mark.parametrize("domain", [b"synthid-context", b"kgw-context", b"gumbel-context"])
def test_context_keys_are_siphash24_under_a_key_derived_per_domain(domain):
    """The whole construction, spelt out with other code: SipHash-2-4 of the row's little-endian uint32 bytes,
    keyed with 16 bytes of keyed BLAKE2b of "siphash24:" + domain (person "aimark-subkey")."""
    secret = seeded_rng("siphash-domain").bytes(32)
    rows = seeded_rng("siphash-rows").integers(0, 262_144, size=(500, 4))
    derived = hashlib.blake2b(b"siphash24:" + domain, key=secret, digest_size=16, person=b"aimark-subkey").digest()
    hasher = context_hasher(secret, domain, "siphash24")
    np.testing.assert_array_equal(hasher(rows), _reference(derived, rows))
    assert not np.array_equal(hasher(rows), context_hasher(secret, domain, "blake2b")(rows))
    for prf in ("siphash24", "blake2b"):  # picklable for Ray workers and process pools
        original = context_hasher(secret, domain, prf)
        np.testing.assert_array_equal(pickle.loads(pickle.dumps(original))(rows), original(rows))
    with pytest.raises(ValueError, match="context PRF"):
        context_hasher(secret, domain, "md5")


@pytest.mark.parametrize("scheme", ["synthid", "kgw", "gumbel"])
def test_a_key_uses_the_context_prf_it_names(scheme):
    new = fixed_key(scheme, "context-prf")
    old = dataclasses.replace(new, params={**new.params, "context_prf": "blake2b"})
    legacy = dataclasses.replace(new, params={k: v for k, v in new.params.items() if k != "context_prf"})
    assert (new.context_prf, old.context_prf, legacy.context_prf) == ("siphash24", "blake2b", "blake2b")
    windows = seeded_rng("context-prf-windows").integers(0, 262_144, size=(200, 4))
    keys = {name: scheme_for_key(key, vocab_size=262_144).context_keys(windows) for name, key in (("new", new), ("old", old), ("legacy", legacy))}
    np.testing.assert_array_equal(keys["old"], keys["legacy"])
    assert not np.array_equal(keys["new"], keys["old"])
