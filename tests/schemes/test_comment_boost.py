"""The comment boost: comment tracking from the text, and the extra tilt confined to comment rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aimark.schemes import SynthIDScheme
from aimark.schemes.code import (
    CODE_SYNTHID_LAYERS,
    CommentTracker,
    code_detection_scheme,
    in_line_comment,
)
from aimark.schemes.processor import CommentBoost, WatermarkLogitsProcessor
from tests.helpers import fixed_key


@pytest.mark.parametrize("line, marker, expected", [
    ("    # sort the values", "#", True),
    ("    x = 1  # one", "#", True),
    ("    s = '# not a comment'", "#", False),
    ('    s = "a \\" # still a string', "#", False),
    ('    s = "done" # now one', "#", True),
    ("    return x", "#", False),
    ("  const url = 'http://a.b'; // fetch", "//", True),
    ("  const url = 'http://a.b';", "//", False),
    ("SELECT 1 -- why", "--", True),
    ("", "#", False),
])
def test_in_line_comment(line, marker, expected):
    assert in_line_comment(line, marker) is expected


def test_tracker_decodes_each_row(tiny):
    tokenizer = tiny.tokenizer  # its vocabulary has no line break: one line per row
    texts = ["x = compute(y) # double it", "x = compute(y)", "s = 'a # b'"]
    encoded = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    width = max(map(len, encoded))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    rows = np.array([[pad] * (width - len(e)) + e for e in encoded])
    assert CommentTracker(tokenizer, "py")(rows).tolist() == [True, False, False]
    assert CommentTracker(tokenizer, "markdown")(rows).tolist() == [False, False, False]  # no line-comment marker


def test_tracker_looks_at_the_last_line_only():
    class Decoder:
        def batch_decode(self, rows, skip_special_tokens=True):
            return [["def f(x):\n    # double it", "x = 1  # one\ny = 2", "a = 1\n"][row[-1]] for row in rows]

    assert CommentTracker(Decoder(), "python")(np.array([[0], [1], [2]])).tolist() == [True, False, False]


def test_boost_tilts_the_model_distribution_of_comment_rows_only():
    from aimark.schemes.processor import top_candidates

    scheme = SynthIDScheme(fixed_key("synthid"))
    detector_scheme = code_detection_scheme(scheme)
    assert detector_scheme.scored_layers == CODE_SYNTHID_LAYERS
    inside = np.array([True, False])
    boost = CommentBoost(lambda ids: inside[: len(ids)], detector_scheme, 2.0)
    plain = WatermarkLogitsProcessor(scheme, top_k=8)
    boosted = WatermarkLogitsProcessor(scheme, top_k=8, comment_boost=boost)
    torch.manual_seed(0)
    input_ids = torch.randint(0, 1000, (2, 12))
    scores = torch.randn(2, 1000)
    a, b = plain(input_ids, scores.clone()), boosted(input_ids, scores.clone())
    assert torch.equal(torch.isfinite(a), torch.isfinite(b))
    assert torch.equal(a[1], b[1])  # the row outside a comment is untouched
    # Row 0: the model's top-k log-probabilities, tilted, renormalised, then the tournament.
    log_probs, ids = top_candidates(scores[:1], top_k=8, temperature=1.0, top_p=1.0)
    windows = input_ids[:1, -scheme.context_width :].numpy()
    context = scheme.context_keys(windows)
    tilted = log_probs.numpy().astype(np.float64) + 2.0 * detector_scheme.tilt(context, ids.numpy())
    tilted -= np.log(np.exp(tilted).sum(axis=1, keepdims=True))
    expected = scheme.reweight(tilted, ids.numpy(), windows, context)[0]
    np.testing.assert_allclose(b[0, ids[0]].numpy(), expected, rtol=1e-5, atol=1e-5)
    assert not np.allclose(b[0, ids[0]].numpy(), a[0, ids[0]].numpy())


def test_tilt_is_standardised_under_the_null():
    scheme = code_detection_scheme(SynthIDScheme(fixed_key("synthid")))
    rng = np.random.default_rng(0)
    tilt = scheme.tilt(rng.integers(0, 2**63, size=(4000, 1), dtype=np.uint64), rng.integers(0, 50000, size=(4000, 8)))
    assert abs(tilt.mean()) < 0.03 and abs(tilt.std() - 1) < 0.03


def test_boost_needs_a_scheme_with_a_tilt_and_a_sane_strength():
    from aimark.schemes import KGWScheme

    with pytest.raises(ValueError, match="no tilt"):
        CommentBoost(lambda ids: ids, KGWScheme(fixed_key("kgw")), 2.0)
    with pytest.raises(ValueError, match="strength"):
        CommentBoost(lambda ids: ids, SynthIDScheme(fixed_key("synthid")), 0.0)


def test_generate_refuses_a_boost_without_a_language(tiny):
    from aimark.engines import generate

    with pytest.raises(ValueError, match="code_language"):
        generate(tiny, ["def f():"], key=fixed_key("synthid"), max_new_tokens=2, chat=False, comment_boost=2.0)


def test_every_supported_language_but_markdown_has_a_line_comment_marker():
    from aimark.schemes.code import LINE_COMMENT_MARKERS, SUPPORTED_LANGUAGES

    assert set(LINE_COMMENT_MARKERS) == set(SUPPORTED_LANGUAGES) - {"markdown"}
    for marker in set(LINE_COMMENT_MARKERS.values()):
        assert in_line_comment(f"x = f(1) {marker} note", marker) and not in_line_comment(f"s = '{marker} in a string'", marker)
