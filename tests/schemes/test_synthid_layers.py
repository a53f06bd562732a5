"""SynthID detection over the tournament's first layers only (the code detector's profile)."""

from __future__ import annotations

import numpy as np
import pytest

from aimark.schemes import BinomialNull, SynthIDScheme
from aimark.schemes.code import CODE_SYNTHID_LAYERS, code_detection_scheme
from aimark.schemes.kgw import KGWScheme
from tests.helpers import fixed_key


def test_scored_layers_count_the_first_bits_of_each_unit():
    scheme = SynthIDScheme(fixed_key("synthid"))
    ids = np.random.default_rng(0).integers(0, 5000, size=200)
    full = scheme.score(ids)
    first = scheme.with_scored_layers(7)
    part = first.score(ids)
    windows = np.lib.stride_tricks.sliding_window_view(ids[:-1], scheme.context_width)
    bits = scheme.g_values(scheme.context_keys(windows), ids[scheme.context_width :])
    assert np.array_equal(full.values, bits.sum(axis=1)) and np.array_equal(part.values, bits[:, :7].sum(axis=1))
    assert np.array_equal(part.units, full.units) and np.array_equal(part.positions, full.positions)
    assert first.null == BinomialNull(7, 0.5) and scheme.null == BinomialNull(scheme.depth, 0.5)
    assert scheme.scored_layers == scheme.depth  # the original is untouched
    np.testing.assert_allclose(first.token_scores(part.values), part.values / 7)


@pytest.mark.parametrize("layers", [0, 31, -1])
def test_scored_layers_outside_the_depth_are_refused(layers):
    with pytest.raises(ValueError, match="between 1 and the key's depth"):
        SynthIDScheme(fixed_key("synthid")).with_scored_layers(layers)


def test_generation_does_not_depend_on_the_scored_layers():
    scheme = SynthIDScheme(fixed_key("synthid"))
    rng = np.random.default_rng(1)
    log_probs = np.log(rng.dirichlet(np.ones(8), size=3))
    candidates = rng.integers(0, 5000, size=(3, 8))
    windows = rng.integers(0, 5000, size=(3, scheme.context_width))
    keys = scheme.context_keys(windows)
    np.testing.assert_array_equal(scheme.reweight(log_probs, candidates, windows, keys),
                                  scheme.with_scored_layers(3).reweight(log_probs, candidates, windows, keys))


def test_code_profile_applies_to_deep_synthid_keys_only():
    deep = SynthIDScheme(fixed_key("synthid"))
    assert code_detection_scheme(deep).scored_layers == CODE_SYNTHID_LAYERS < deep.depth
    shallow = SynthIDScheme(fixed_key("synthid", depth=CODE_SYNTHID_LAYERS - 5))
    assert code_detection_scheme(shallow) is shallow
    kgw = KGWScheme(fixed_key("kgw"))
    assert code_detection_scheme(kgw) is kgw
