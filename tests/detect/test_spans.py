"""Span localisation: family-wise error on human text, power on a planted watermarked span."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from aimark.cli import app
from aimark.detect import DetectionInputError, Detector, detect_spans
from aimark.detect.spans import window_grid
from aimark.engines import generate
from tests.helpers import assert_rate_at_most, fixed_key, rate_test_power

FWER_ALPHA = 0.05


def _documents(passages: list[str], length: int, count: int) -> list[str]:
    """Human documents of about ``length`` characters."""
    documents, current = [], ""
    for passage in passages * 4:
        current = f"{current} {passage}".strip()
        if len(current) >= length:
            documents.append(current[:length])
            current = ""
        if len(documents) == count:
            break
    return documents


def test_window_grid_covers_every_unit_and_the_whole_document():
    starts, widths = window_grid(1000, min_width=32)
    assert set(np.unique(widths)) == {32, 64, 128, 256, 512, 1000}
    assert (starts + widths <= 1000).all() and (starts >= 0).all()
    covered = np.zeros(1000, dtype=bool)
    for start, width in zip(starts[widths == 32], widths[widths == 32]):
        covered[start : start + width] = True
    assert covered.all()
    assert window_grid(10, min_width=32)[1].tolist() == [10]
    assert len(window_grid(0)[0]) == 0


@pytest.mark.parametrize("scheme", ["synthid", "kgw", "gumbel"])
def test_family_wise_error_on_human_text_is_at_most_alpha(tiny, human_passages, keys, scheme):
    """P(any span reported) <= alpha over seeded keys; without the correction the same scan fails this.

    240 scans at alpha = 0.05: the rate check's power is 0.29 against a doubled family-wise rate and 0.96
    against three times it (rate_test_power); the uncorrected scan (min window p <= alpha) is the control.
    """
    documents = _documents(human_passages, 1000, 60)
    assert len(documents) == 60
    any_span, uncorrected_hits, trials = 0, 0, 0
    for _ in range(4):
        for document in documents:
            result = detect_spans(Detector(keys(scheme), tiny.tokenizer), document, alpha=FWER_ALPHA)
            trials += 1
            any_span += bool(result.spans)
            assert bool(result.spans) == result.watermarked
            assert result.min_window_p_value <= result.p_value
            uncorrected_hits += result.min_window_p_value <= FWER_ALPHA
    assert rate_test_power(trials, FWER_ALPHA, 3.0) > 0.95
    assert_rate_at_most(any_span, trials, FWER_ALPHA, f"{scheme} spans on human text")
    # Negative control: the uncorrected scan must exceed alpha, so this test can see a missing correction.
    assert uncorrected_hits / trials > 2 * FWER_ALPHA, f"{scheme}: uncorrected scan hit only {uncorrected_hits}/{trials}"


@pytest.fixture(scope="module")
def planted(tiny, human_passages):
    """Watermarked spans planted at known offsets inside ~1500-character human documents."""
    key = fixed_key("synthid", "spans")
    marked = generate(tiny, ["The history of the", "日本国民は", "The rules are"], key=key, max_new_tokens=160, min_new_tokens=160, seed=3, chat=False)
    hosts = _documents(human_passages[40:], 1400, 3)
    documents = []
    for host, generation in zip(hosts, marked):
        cut = host.rfind(" ", 0, 600) + 1
        start, end = cut, cut + len(generation.text)
        documents.append((host[:cut] + generation.text + host[cut:], (start, end)))
    return key, documents


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> float:
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0]))
    return inter / (max(a[1], b[1]) - min(a[0], b[0]))


def test_planted_span_is_found_with_good_overlap(tiny, planted, keys):
    key, documents = planted
    detector = Detector(key, tiny.tokenizer)
    for document, truth in documents:
        result = detect_spans(detector, document)
        assert result.watermarked and result.p_value <= 1e-3
        best = max(result.spans, key=lambda span: _overlap((span.start, span.end), truth))
        assert _overlap((best.start, best.end), truth) >= 0.6, (best, truth)
        assert best.p_value <= 1e-3 and best.first_token < best.end_token
        # Another key sees nothing in the same document.
        assert detect_spans(Detector(keys("synthid"), tiny.tokenizer), document).spans == ()


def test_span_scan_beats_whole_document_test_on_a_diluted_span(tiny, planted, human_passages):
    key, documents = planted
    detector = Detector(key, tiny.tokenizer)
    document, (start, end) = documents[0]
    long_host = " ".join(_documents(human_passages[80:], 4000, 1))
    diluted = long_host[:2000] + document[start:end] + long_host[2000:]
    whole = detector.detect(diluted, with_tokens=False)
    scan = detect_spans(detector, diluted)
    assert scan.p_value < whole.p_value
    assert scan.watermarked


def test_json_shape_and_prompt_offsets(tiny, planted):
    key, documents = planted
    document, _ = documents[0]
    prompt = "Prefix given as context. "
    result = detect_spans(Detector(key, tiny.tokenizer), prompt + document, prompt=prompt)
    shape = result.to_dict()
    assert set(shape) == {
        "scheme", "key_id", "p_value", "log10_p_value", "watermarked", "alpha",
        "num_scored_tokens", "num_tokens", "keys_tried", "code_language", "windows_scanned", "min_width", "min_window_p_value", "spans",
    }  # fmt: skip
    assert shape["spans"] and set(shape["spans"][0]) == {"start", "end", "first_token", "end_token", "num_scored_tokens", "p_value", "log10_p_value"}
    assert all(span["start"] >= len(prompt) for span in shape["spans"])
    assert shape["key_id"] == key.key_id
    assert shape["num_tokens"] == Detector(key, tiny.tokenizer).detect(document, with_tokens=False).num_tokens


def test_keyring_pays_for_every_key(tiny, planted, keys):
    key, documents = planted
    document, _ = documents[0]
    single = detect_spans(Detector(key, tiny.tokenizer), document)
    ring = detect_spans(Detector([keys("synthid"), key], tiny.tokenizer), document)
    assert ring.key_id == key.key_id and ring.keys_tried == 2
    assert ring.windows_scanned == 2 * single.windows_scanned
    assert ring.log10_p_value == pytest.approx(single.log10_p_value + np.log10(2), abs=1e-9)


def test_too_short_text_is_an_input_error(tiny):
    with pytest.raises(DetectionInputError):
        detect_spans(Detector(fixed_key("synthid"), tiny.tokenizer), "abc")


def test_cli_detect_spans_json(tiny_model_dir, planted, tmp_path):
    from aimark.keys import save_key

    key, documents = planted
    key_path = tmp_path / "key.json"
    save_key(key, key_path)
    document, truth = documents[1]
    runner = CliRunner()
    result = runner.invoke(app, ["detect", "-", "--key", str(key_path), "--model", str(tiny_model_dir), "--spans", "--json"], input=document)
    assert result.exit_code == 0, result.output
    shape = json.loads(result.stdout)
    assert shape["watermarked"] and any(_overlap((s["start"], s["end"]), truth) >= 0.6 for s in shape["spans"])
    human = runner.invoke(app, ["detect", "-", "--key", str(key_path), "--model", str(tiny_model_dir), "--spans"], input=document)
    assert human.exit_code == 0 and "span chars" in human.output
    refused = runner.invoke(app, ["detect", "-", "--key", str(key_path), "--spans", "--jsonl"], input=document)
    assert refused.exit_code == 2
