"""The keyed pseudo-random functions every scheme draws from."""

from __future__ import annotations

import numpy as np

from aimark.keys import generate_key
from aimark.schemes._prf import to_unit_interval
from aimark.schemes.gumbel import GumbelScheme


def test_unit_interval_stays_open_at_both_ends():
    extremes = np.array([0, 1, 2**11, 2**64 - 2049, 2**64 - 2048, 2**64 - 1], dtype=np.uint64)
    r = to_unit_interval(extremes)
    assert np.all(r > 0) and np.all(r < 1)
    assert np.isfinite(-np.log1p(-r)).all() and -np.log1p(-r).max() < 37  # Gumbel's per-unit score is bounded


def test_unit_interval_is_uniform_and_monotone():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 2**64, size=200_000, dtype=np.uint64)
    r = to_unit_interval(values)
    counts = np.histogram(r, bins=20, range=(0, 1))[0]
    expected = len(r) / 20
    assert ((counts - expected) ** 2 / expected).sum() < 43.8  # chi-square, 19 dof, p = 0.001
    order = np.argsort(values)
    assert np.all(np.diff(r[order]) >= 0)


def test_gumbel_scores_of_a_fresh_key_on_fixed_text_are_exponential():
    tokens = np.arange(5000, dtype=np.int64) % 997 + 3
    values = np.concatenate([GumbelScheme(generate_key("gumbel")).score(tokens).values for _ in range(20)])
    assert abs(values.mean() - 1) < 0.03 and abs(values.var() - 1) < 0.06
    assert abs((values > 3).mean() - np.exp(-3)) < 0.005
