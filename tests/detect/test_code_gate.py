"""The detector's code gate: which tokens count, exact p-values on human code, and its input errors.

The calibration test can fail: a gate that looked at the key, or scored a repeated identifier each time it
recurs (code repeats names far more than prose), gives too many small p-values on human-written code.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from aimark.detect import DetectionInputError, Detector
from tests.detect.calibration import MIN_POWER, PAIRS, assert_valid, null_draws
from tests.helpers import fixed_key, rate_test_power


@pytest.mark.parametrize("scheme", ["synthid", "kgw", "gumbel"])
def test_the_gate_scores_fewer_tokens_than_the_whole_text(tiny, human_code, scheme):
    detector = Detector(fixed_key(scheme), tiny.tokenizer)
    fewer = 0
    for source in human_code[:20]:
        whole = detector.detect(source)
        gated = detector.detect(source, language="python")
        assert gated.num_tokens == whole.num_tokens
        assert 0 < gated.num_scored_tokens <= whole.num_scored_tokens
        fewer += gated.num_scored_tokens < whole.num_scored_tokens
        assert gated.code_language == "python" and whole.code_language is None
    assert fewer > 0


@pytest.mark.parametrize("scheme", ["synthid", "kgw", "gumbel"])
def test_each_scheme_counts_only_its_own_classes(tiny, human_code, scheme):
    from aimark.schemes.code import free_classes_for, token_classes

    detector = Detector(fixed_key(scheme), tiny.tokenizer)
    counted = set()
    for source in human_code[:10]:
        result = detector.detect(source, language="python")
        classes = token_classes(source, [(t.start, t.end) for t in result.tokens], "python")
        counted |= {label for label, t in zip(classes, result.tokens) if t.score is not None}
    assert counted and counted <= free_classes_for(scheme)


def test_kgw_gate_skips_operators_layout_and_numbers(tiny):
    source = "def scale(values, factor):\n    # multiply each one\n    return [v * factor + 10 for v in values]\n"
    result = Detector(fixed_key("kgw"), tiny.tokenizer).detect(source, language="py")
    scored = {source[t.start : t.end].strip() for t in result.tokens if t.score is not None}
    assert scored and not scored & {"(", ")", "[", "]", ":", ",", "*", "+", "10"}
    assert result.code_language == "python"


@pytest.fixture(scope="module")
def short_human_code(human_code) -> list[str]:
    """The 50 shortest human functions (8-10 lines): scoring cost grows with length, the null does not change."""
    return sorted(human_code, key=len)[:50]


@pytest.mark.parametrize("scheme", ["synthid", "kgw", "gumbel"])
def test_gated_p_values_on_human_code_are_calibrated(tiny, short_human_code, scheme):
    """P(p <= alpha) <= alpha over ~50,000 (function, seeded key) pairs through the gate and the code profile:
    power 0.987 against a doubled false-positive rate at 1e-3 (at n = 1,000 and alpha = 0.01 it was 0.16)."""
    draws = null_draws(tiny.tokenizer, short_human_code, scheme, math.ceil(PAIRS / len(short_human_code)), "code-gate", language="python")
    assert rate_test_power(len(draws.units), 1e-3) >= MIN_POWER
    assert_valid(draws.p_values(), f"{scheme} gated on human code")


def test_control_the_code_check_fails_when_repeated_identifiers_count_again(tiny, short_human_code, monkeypatch):
    """Code repeats names far more than prose: without dedup the same check rejects the gated p-values."""
    import aimark.detect.detector as detector_module

    monkeypatch.setattr(detector_module, "first_occurrences", lambda values: np.ones(len(values), dtype=bool))
    draws = null_draws(tiny.tokenizer, short_human_code, "kgw", 20, "code-gate-no-dedup", language="python", check=5)  # 1,000 pairs
    with pytest.raises(AssertionError, match="at or below"):
        assert_valid(draws.p_values(), "kgw gated without dedup")


def test_detect_ids_allowed_mask_must_match_the_ids(tiny):
    detector = Detector(fixed_key("synthid"), tiny.tokenizer)
    ids = tiny.tokenizer("def add(a, b):\n    return a + b\n" * 4, add_special_tokens=False)["input_ids"]
    with pytest.raises(ValueError, match="one flag per token id"):
        detector.detect_ids(ids, allowed=[True] * (len(ids) - 1))
    everything = detector.detect_ids(ids, allowed=[True] * len(ids))
    assert everything.num_scored_tokens == detector.detect_ids(ids).num_scored_tokens
    half = detector.detect_ids(ids, allowed=[i % 2 == 0 for i in range(len(ids))])
    assert half.num_scored_tokens < everything.num_scored_tokens


def test_text_with_no_free_tokens_is_a_clear_input_error(tiny):
    only_syntax = "(1 + 2) * 3 - 4 / 5\n" * 8  # numbers, operators and layout: nothing KGW's gate counts
    detector = Detector(fixed_key("kgw"), tiny.tokenizer)
    assert detector.detect(only_syntax).num_scored_tokens > 0  # without the gate it scores
    with pytest.raises(DetectionInputError, match="of python is of a class the code gate counts"):
        detector.detect(only_syntax, language="python")


def test_unsupported_language_is_a_value_error(tiny):
    with pytest.raises(ValueError, match="no code gating"):
        Detector(fixed_key("synthid"), tiny.tokenizer).detect("x = 1\n" * 10, language="cobol")


def test_to_dict_carries_code_language(tiny, human_code):
    detector = Detector(fixed_key("synthid"), tiny.tokenizer)
    assert detector.detect(human_code[0], language="python").to_dict()["code_language"] == "python"
    assert detector.detect(human_code[0]).to_dict()["code_language"] is None


def test_detect_many_with_a_language_matches_detect(tiny, human_code):
    detector = Detector(fixed_key("kgw"), tiny.tokenizer)
    texts = [human_code[1], "", human_code[2]]
    results = list(detector.detect_many(texts, language="python"))
    assert isinstance(results[1], DetectionInputError)
    for text, result in zip(texts[::2], results[::2]):
        single = detector.detect(text, language="python", with_tokens=False)
        assert result.p_value == single.p_value and result.num_scored_tokens == single.num_scored_tokens
        assert result.code_language == "python"


def test_span_scan_with_a_language_reports_it_and_explains_no_free_tokens(tiny, human_code):
    from aimark.detect import detect_spans

    detector = Detector(fixed_key("synthid"), tiny.tokenizer)
    found = detect_spans(detector, human_code[3], language="python")
    assert found.code_language == "python" and found.to_dict()["code_language"] == "python"
    assert found.num_scored_tokens == detector.detect(human_code[3], language="python").num_scored_tokens
    assert detect_spans(detector, human_code[3]).to_dict()["code_language"] is None
    with pytest.raises(DetectionInputError, match="of python is of a class the code gate counts"):
        detect_spans(Detector(fixed_key("kgw"), tiny.tokenizer), "(1 + 2) * 3\n" * 12, language="python")


@pytest.mark.parametrize("text, language, filename, expected", [
    ("x = compute(1)\nprint(x)\n", None, None, "python"),          # guessed from the text
    ("x = compute(1)\nprint(x)\n", "none", "a.py", None),           # switched off
    ("x = compute(1)\nprint(x)\n", "prose", None, None),
    ("let x = 1;\n", None, "a.js", "javascript"),                   # the extension decides
    ("plain words here", None, "notes.md", "markdown"),
    ("plain words here", None, "notes.txt", None),                  # prose file, prose text
    ("See:\n```py\nx = 1\n```\n", None, "answer.txt", "markdown"),  # prose file holding a fenced block
    ("anything", "RS", "a.py", "rust"),                             # an explicit language wins
])
def test_detection_language(text, language, filename, expected):
    from aimark.schemes.code import detection_language

    assert detection_language(text, language=language, filename=filename) == expected


def test_code_detection_scores_synthid_with_the_code_profile(tiny, human_code):
    """With a language, SynthID counts its first CODE_SYNTHID_LAYERS layers; the p-value is that count's exact tail."""
    import math

    from aimark.detect.stats import log_p_value
    from aimark.schemes.code import CODE_SYNTHID_LAYERS

    detector = Detector(fixed_key("synthid"), tiny.tokenizer)
    source = human_code[4]
    ids, scored_from, offsets = detector.encode(source)
    gate = detector.code_gate(source, offsets, scored_from, len(ids), "python")
    (code_scheme,) = detector.schemes_for("python")
    assert code_scheme.scored_layers == CODE_SYNTHID_LAYERS and detector.schemes[0].scored_layers == 30
    _, values = detector.scored_units(code_scheme, ids, scored_from, gate[0])
    assert values.max() <= CODE_SYNTHID_LAYERS
    expected = log_p_value(code_scheme.null, float(values.sum()), len(values))
    result = detector.detect(source, language="python", with_tokens=False)
    assert math.isclose(math.log(result.p_value), expected, rel_tol=1e-9, abs_tol=1e-12)
    by_ids = detector.detect_ids(ids, scored_from=scored_from, allowed=gate[0], language="python")
    assert by_ids.p_value == result.p_value and by_ids.code_language == "python"
    _, all_layers = detector.scored_units(detector.schemes[0], ids, scored_from, gate[0])
    plain_gate = detector.detect_ids(ids, scored_from=scored_from, allowed=gate[0])  # no language: the key's own depth
    assert math.isclose(math.log(plain_gate.p_value), log_p_value(detector.schemes[0].null, float(all_layers.sum()), len(all_layers)),
                        rel_tol=1e-9, abs_tol=1e-12)
