"""bench/calibration's fast path: many keys over a passage set must equal Detector.detect."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aimark.detect import Detector
from aimark.schemes import scheme_for_key
from bench.calibration.run import PassageSet, tail_counts


@pytest.mark.parametrize("scheme_name", ["gumbel", "synthid"])
def test_fast_path_equals_the_detector_for_fresh_keys(tiny, human_passages, keys, scheme_name):
    texts = list(human_passages[:12]) + [human_passages[0] + " " + human_passages[0]]  # a repeated passage: dedup matters
    passages = PassageSet(Detector(keys(scheme_name), tiny.tokenizer), texts)
    for _ in range(3):
        key = keys(scheme_name)
        fast = passages.log_p_values(scheme_for_key(key))
        detector = Detector(key, tiny.tokenizer)
        for index, text in enumerate(texts):
            result = detector.detect(text, with_tokens=False)
            assert result.num_scored_tokens == passages.units[index]
            assert fast[index] == pytest.approx(math.log(result.p_value), rel=1e-9, abs=1e-12)


def test_a_scheme_whose_units_depend_on_the_key_is_refused(tiny, human_passages, keys):
    with pytest.raises(ValueError, match="depend on the key"):
        PassageSet(Detector(keys("kgw"), tiny.tokenizer), list(human_passages[:12]))


def test_tail_counts_compare_with_the_expected_count():
    rng = np.random.default_rng(0)
    uniform = np.log(rng.random((1000, 100)))
    rows = {r["alpha"]: r for r in tail_counts(uniform)}
    assert rows[1e-2]["expected"] == pytest.approx(1000) and abs(rows[1e-2]["observed"] - 1000) < 130
    assert rows[1e-2]["p_at_least"] > 1e-3 and rows[1e-2]["p_at_most"] > 1e-3
    inflated = rows | {a: r for a, r in ((r["alpha"], r) for r in tail_counts(uniform - 1.0))}
    assert inflated[1e-2]["p_at_least"] < 1e-6  # p-values shrunk by e: far too many hits, and the test says so
