"""Test helpers: reproducible keys and randomness, and the CI rule for what a test needs.

Keys: ``fixed_key`` is one pinned secret per (scheme, label), for tests whose assertion is about one key's
output. Statistical tests that need many keys draw them from ``seeded_keys(label)``: a stream of secrets
derived from the session seed (``AIMARK_TEST_SEED``, default :data:`DEFAULT_TEST_SEED`) and the label, so a
failure is reproduced by rerunning the one test with the seed the report prints (tests/conftest.py adds it),
and a run under another seed draws other keys. ``aimark.keys.generate_key`` itself stays on os.urandom;
tests/test_keys.py checks that real randomness.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os

import numpy as np
import pytest

from aimark.keys import DEFAULT_PARAMS, WatermarkKey, _key_id_for, generate_key

SEED_VARIABLE = "AIMARK_TEST_SEED"
DEFAULT_TEST_SEED = 20261202


def session_seed() -> int:
    raw = os.environ.get(SEED_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_TEST_SEED
    try:
        seed = int(raw)
    except ValueError:
        raise pytest.UsageError(f"{SEED_VARIABLE} must be a non-negative integer, not {raw!r}") from None
    if seed < 0:
        raise pytest.UsageError(f"{SEED_VARIABLE} must be a non-negative integer, not {raw!r}")
    return seed


def seeded_rng(label: str) -> np.random.Generator:
    """A generator that depends only on the session seed and ``label`` (not on which tests ran before)."""
    label_entropy = int.from_bytes(hashlib.sha256(label.encode()).digest()[:16], "big")
    return np.random.default_rng([session_seed(), label_entropy])


def seeded_torch(label: str):
    """A torch.Generator for ``label`` (pass it as ``generator=`` to torch.randn and friends)."""
    import torch

    return torch.Generator().manual_seed(int(seeded_rng(label).integers(0, 2**63 - 1)))


class SeededKeys:
    """Fresh-looking keys from a seeded stream: ``keys("synthid")`` takes generate_key's arguments."""

    def __init__(self, label: str):
        self.label = label
        self._rng = seeded_rng(f"keys/{label}")
        self._templates: dict = {}

    def __call__(self, scheme: str, **kwargs) -> WatermarkKey:
        signature = (scheme, tuple(sorted(kwargs.items(), key=lambda item: item[0])))
        if signature not in self._templates:  # validated once, as keygen validates (statistical tests draw 10^5 keys)
            self._templates[signature] = generate_key(scheme, **kwargs)
        template, secret = self._templates[signature], self._rng.bytes(32)
        return dataclasses.replace(template, key_id=_key_id_for(secret, scheme), secret=secret)


def seeded_keys(label: str) -> SeededKeys:
    return SeededKeys(label)


@contextlib.contextmanager
def seeded_generate_key(label: str):
    """Within the block, aimark.keys.generate_key draws from ``seeded_keys(label)``: for commands that make
    their own key (``aimark keygen``, ``aimark demo``), which import it from aimark.keys when they run."""
    import aimark.keys

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(aimark.keys, "generate_key", SeededKeys(label))
        yield


@pytest.fixture(scope="module", autouse=True)
def seeded_keygen_per_module(request):
    """Import into a test module (with seeded_keygen_per_test) to seed every key `aimark keygen`/`demo` make
    there: module-scoped fixtures draw from the module's stream, each test from its own."""
    with seeded_generate_key(request.module.__name__):
        yield


@pytest.fixture(autouse=True)
def seeded_keygen_per_test(request):
    with seeded_generate_key(request.node.nodeid):
        yield


def fixed_key(scheme: str, label: str = "test", **params) -> WatermarkKey:
    secret = hashlib.sha256(f"aimark-{label}-{scheme}".encode()).digest()
    return WatermarkKey(_key_id_for(secret, scheme), scheme, {**DEFAULT_PARAMS[scheme], **params}, secret)


class IdsOnly:
    """What Detector needs of a tokenizer to score token ids (``detect_ids``): the vocabulary size, no special tokens."""

    all_special_ids: list[int] = []

    def __len__(self) -> int:
        return 262144


# One-sided binomial test of a false-positive rate: fail only when the hits are implausibly many for the
# nominal rate (chance 1e-4 per check for a calibrated detector).
RATE_TEST_LEVEL = 1e-4


def _critical_hits(trials: int, alpha: float, level: float) -> int:
    """The fewest hits the rate test rejects: smallest h with P(Binomial(trials, alpha) >= h) <= level."""
    from scipy import stats

    return int(stats.binom.isf(level, trials, alpha)) + 1


def assert_rate_at_most(hits: int, trials: int, alpha: float, label: str, level: float = RATE_TEST_LEVEL) -> None:
    assert trials > 0, f"{label}: nothing was scored"
    assert hits < _critical_hits(trials, alpha, level), f"{label}: {hits}/{trials} at or below {alpha:g} (expected {alpha * trials:.1f})"


def rate_test_power(trials: int, alpha: float, inflation: float = 2.0, level: float = RATE_TEST_LEVEL) -> float:
    """P(assert_rate_at_most fails) for a detector whose false-positive rate at ``alpha`` is ``inflation * alpha``."""
    from scipy import stats

    return float(stats.binom.sf(_critical_hits(trials, alpha, level) - 1, trials, inflation * alpha))


def ci_strict() -> bool:
    """Under CI=true a missing package or service fails the test: there nothing may pass by not running."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def missing(what: str, how: str = "") -> None:
    """Skip (a developer's machine) or fail (CI) because ``what`` is not available."""
    if ci_strict():
        pytest.fail(f"{what} is required in CI{f' ({how})' if how else ''}", pytrace=False)
    pytest.skip(f"{what} not available{f' ({how})' if how else ''}", allow_module_level=True)


def require_module(name: str, how: str = ""):
    """``pytest.importorskip`` that fails under CI instead of skipping; works at module level."""
    try:
        return __import__(name, fromlist=["_"])
    except ImportError:
        missing(f"the {name} package", how)


# A small human-written program, and a chat answer holding it in a fenced block (code gate tests).
PROGRAM = '''def moving_average(values, window):
    """Average of each run of `window` consecutive values."""
    if window <= 0:
        raise ValueError("window must be positive")
    totals = []
    running = 0.0
    for index, value in enumerate(values):
        running += value
        if index >= window:
            running -= values[index - window]
        if index + 1 >= window:
            totals.append(running / window)  # one average per full window
    return totals
'''
ANSWER = "Here is a helper that averages a sliding window:\n\n```python\n" + PROGRAM + "```\n\nIt runs in linear time.\n"
