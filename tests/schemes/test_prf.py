"""The keyed pseudo-random functions every scheme draws from."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from aimark.detect import Detector
from aimark.keys import key_from_dict
from aimark.schemes._prf import ContextHasher, to_unit_interval
from aimark.schemes.gumbel import GumbelScheme
from tests.helpers import IdsOnly, seeded_keys, seeded_rng


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
