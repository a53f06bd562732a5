"""p-values on unwatermarked text are valid: P(p <= alpha) <= alpha, within binomial error.

Each test could fail: a detector that ignores dedup, uses a normal
approximation at small n, or mis-specifies q produces too many small p-values.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from aimark.detect import Detector
from aimark.engines import generate
from aimark.keys import generate_key

ALPHAS = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5)


def _assert_valid(p_values, label: str) -> None:
    p = np.asarray(p_values)
    n = len(p)
    for alpha in ALPHAS:
        hits = int((p <= alpha).sum())
        # One-sided binomial test at 1e-4 per alpha: reject only if hits are implausibly many.
        tail = stats.binom.sf(hits - 1, n, alpha)
        assert tail > 1e-4, f"{label}: {hits}/{n} p-values <= {alpha} (expected <= {alpha * n:.1f})"


def _p_values(texts, tokenizer, schemes=("synthid", "kgw", "gumbel"), keys_per_scheme=12):
    """p-values over (text, fresh key) pairs.

    Every pair gets its own key: texts share n-grams, so one key's p-values on
    different texts are dependent, and pooling them would test that dependence,
    not the null.
    """
    out = {}
    for scheme in schemes:
        values = []
        for _ in range(keys_per_scheme):
            for text in texts:
                detector = Detector(generate_key(scheme), tokenizer)
                try:
                    values.append(detector.detect(text, with_tokens=False).p_value)
                except ValueError:
                    continue
        out[scheme] = values
    return out


def test_human_text_p_values_are_valid(tiny, human_passages):
    texts = human_passages[:150]
    for scheme, values in _p_values(texts, tiny.tokenizer).items():
        assert len(values) == 12 * len(texts)
        _assert_valid(values, f"{scheme} on human text")


def test_gumbel_p_values_are_uniform_on_human_text(tiny, human_passages):
    # Gamma(n,1) is continuous: p-values must be uniform, not just conservative.
    values = _p_values(human_passages[:150], tiny.tokenizer, schemes=("gumbel",), keys_per_scheme=8)["gumbel"]
    assert stats.kstest(values, "uniform").pvalue > 1e-3


def test_repetitive_text_does_not_produce_false_positives(tiny):
    # Small models loop; without scoring each unit once, every repeat adds the same
    # green/g-value again and the count drifts far from its null.
    texts = [("The cat sat on the mat and looked at the door. " * 40), ("데이터 " * 300), ("def f(x):\n    return x\n" * 60)]
    values = _p_values(texts, tiny.tokenizer, keys_per_scheme=300)
    for scheme, p in values.items():
        _assert_valid(p, f"{scheme} on repetitive text")


def test_empirical_fpr_at_001_within_binomial_bound_on_model_samples(tiny):
    samples = [g.text for g in generate(tiny, ["The history of the"] * 16 + ["日本国民は"] * 8, key=None, max_new_tokens=80, min_new_tokens=40, seed=7, chat=False, batch_size=12)]
    samples = [s for s in samples if s.strip()]
    values = _p_values(samples, tiny.tokenizer, keys_per_scheme=60)
    for scheme, p in values.items():
        p = np.asarray(p)
        upper = stats.binom.ppf(1 - 1e-4, len(p), 0.01)
        assert (p <= 0.01).sum() <= upper, scheme


def test_the_validity_check_has_teeth_without_dedup(tiny, monkeypatch):
    # Negative control: with every repeated unit counted again, the same check must fail.
    import aimark.detect.detector as detector_module

    monkeypatch.setattr(detector_module, "first_occurrences", lambda values: np.ones(len(values), dtype=bool))
    values = _p_values(["The cat sat on the mat and looked at the door. " * 40], tiny.tokenizer, schemes=("kgw",), keys_per_scheme=300)
    with pytest.raises(AssertionError):
        _assert_valid(values["kgw"], "kgw without dedup")
