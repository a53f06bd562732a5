"""Shared by the calibration tests: null p-values over (text, seeded key) pairs, scored as the detector scores.

Each text is tokenised (and, for code, lexed) once: neither depends on the key. Each pair is then scored with
``Detector.scored_units`` (the detector's own unit selection and dedup) and its exact tail, and a sample of
pairs is checked against ``Detector.detect``, so the fast path cannot drift from what users run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from aimark.detect import Detector
from aimark.detect.stats import log_p_values
from aimark.schemes import scheme_for_key
from aimark.schemes.base import BinomialNull, GammaNull
from aimark.schemes.code import code_detection_scheme
from tests.helpers import assert_rate_at_most, seeded_keys

ALPHAS = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5)
PAIRS = 50_000  # per scheme: rate_test_power(50_000, 1e-3) = 0.987 against a doubled rate at 1e-3
MIN_POWER = 0.98


@dataclass(frozen=True)
class NullDraws:
    """Unit totals and counts of (text, key) pairs under one scheme, and the null they should follow."""

    null: BinomialNull | GammaNull
    totals: np.ndarray
    units: np.ndarray

    def p_values(self, null=None) -> np.ndarray:
        return np.exp(log_p_values(self.null if null is None else null, self.totals, self.units))

    def normal_approximation_p_values(self) -> np.ndarray:
        """What a z-test detector would report: the total standardised by the null's mean and variance."""
        if isinstance(self.null, BinomialNull):
            mean = self.null.trials_per_unit * self.null.success_probability
            variance = mean * (1 - self.null.success_probability)
        else:
            mean = variance = 1.0
        return stats.norm.sf((self.totals - self.units * mean) / np.sqrt(self.units * variance))


def null_draws(tokenizer, texts, scheme_name: str, keys_per_text: int, label: str, *, language: str | None = None, check: int = 60) -> NullDraws:
    """Scores of ``keys_per_text`` seeded keys on each text (with ``language``, through the code gate and profile)."""
    keys = seeded_keys(f"calibration/{label}/{scheme_name}")
    template = Detector(keys(scheme_name), tokenizer)
    encoded = []
    for text in texts:
        ids, scored_from, offsets = template.encode(text)
        gate = template.code_gate(text, offsets, scored_from, len(ids), language)  # lexical classes: key-independent
        encoded.append((ids, scored_from, None if gate is None else gate[0]))
    totals, units, nulls, pairs = [], [], set(), []
    for index, (ids, scored_from, gate) in enumerate(encoded):
        for _ in range(keys_per_text):
            key = keys(scheme_name)
            scheme = scheme_for_key(key, vocab_size=len(tokenizer))
            if language is not None:
                scheme = code_detection_scheme(scheme)
            _, values = template.scored_units(scheme, ids, scored_from, gate)
            totals.append(float(values.sum()))
            units.append(len(values))
            nulls.add(scheme.null)
            pairs.append((index, key))
    draws = NullDraws(nulls.pop(), np.asarray(totals), np.asarray(units))
    assert not nulls, "every key of a scheme must have the same null"
    # Vacuous-pass guard: every pair scored something, so the sample is as large as stated.
    assert len(draws.units) == keys_per_text * len(texts) and draws.units.min() > 0, f"{scheme_name}: texts with nothing to score"
    p = draws.p_values()
    for pair in range(0, len(pairs), max(1, len(pairs) // check)):
        index, key = pairs[pair]
        result = Detector(key, tokenizer).detect(texts[index], with_tokens=False, language=language)
        assert result.num_scored_tokens == draws.units[pair]
        assert math.isclose(result.p_value, p[pair], rel_tol=1e-9, abs_tol=1e-300), "the scoring path must be the detector's"
    return draws


def assert_valid(p_values, label: str, alphas=ALPHAS) -> None:
    p = np.asarray(p_values)
    for alpha in alphas:
        assert_rate_at_most(int((p <= alpha).sum()), len(p), alpha, label)
