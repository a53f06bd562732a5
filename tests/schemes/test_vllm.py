"""vLLM's own watermarks read by aimark, checked against vLLM 0.32's code.

The fixture (tests/fixtures/engines/vllm_watermark_samples.json.gz) was made by
scripts/vllm_watermark_samples.py in vLLM's virtualenv: samples drawn with vLLM's watermarkers on the
embedded Gemma's logits, and vLLM's detector's contexts' uniforms, per-token scores and verdicts.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import subprocess
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from aimark.detect import Detector
from aimark.detect.stats import log_p_value
from aimark.keys import key_from_dict
from aimark.schemes import VLLMGumbelScheme, scheme_for_key
from aimark.schemes.philox import SCORE_DOMINANCE_SHIFT, PhiloxPRF, gumbel_scores, uint32_to_uniform
from aimark.schemes.vllm import derive_watermark_key, padded_contexts
from tests.helpers import IdsOnly, assert_rate_at_most, seeded_rng

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "engines" / "vllm_watermark_samples.json.gz"
ALPHA = 0.01  # the fixture's vLLM detectors' p_value_threshold


@lru_cache(maxsize=1)
def fixture() -> dict:
    with gzip.open(FIXTURE, "rt", encoding="utf-8") as handle:
        return json.load(handle)


def configs() -> list[dict]:
    return [run["config"] for run in fixture()["runs"] if run["config"] is not None]


def detector(config: dict, alpha: float = ALPHA) -> Detector:
    return Detector(key_from_dict(config), IdsOnly(), alpha=alpha, check_tokenizer=False)


def vllm_scored_positions(output_ids: list[int], config: dict) -> np.ndarray:
    """Which positions vLLM's detector scores: all, or the first occurrence of each padded context."""
    contexts = padded_contexts(np.asarray(output_ids), config["context_width"])
    if config["deduplicate_contexts"] == "none":
        return np.arange(len(output_ids))
    _, first = np.unique(contexts, axis=0, return_index=True)
    return np.sort(first)


def test_fixture_was_made_by_vllm_032():
    assert fixture()["vllm_version"] == "0.32.0"
    assert len(configs()) == 4 and fixture()["runs"][-1]["config"] is None


def test_philox_uniforms_are_bit_exact_and_scores_within_one_ulp():
    compared = 0
    for run in fixture()["runs"]:
        for sample in run["samples"]:
            for config, recorded in zip(configs(), sample["detections"]):
                positions = vllm_scored_positions(sample["output_ids"], config)
                assert recorded["scored_targets"] == [sample["output_ids"][p] for p in positions]
                contexts = padded_contexts(np.asarray(sample["output_ids"]), config["context_width"])[positions]
                targets = np.asarray(recorded["scored_targets"])
                scheme = scheme_for_key(key_from_dict(config))
                for prf, bits in zip(scheme._prfs, recorded["uniform_bits"]):
                    assert np.array_equal(prf.uniform(contexts, targets).view(np.int32), np.asarray(bits, dtype=np.int32))
                # torch's vectorised log1p and numpy's differ in the last bit for ~3% of the 2**24 uniforms.
                ours = scheme.weighted(scheme.key_scores(contexts, targets))
                np.testing.assert_array_max_ulp(ours, np.asarray(recorded["scores"]), maxulp=2)
                compared += len(targets)
    assert compared > 1000


def test_aimark_scores_the_same_units_as_vllm_and_verdicts_differ_only_on_vllm_false_positives():
    """Where aimark and vLLM disagree, the sample is not watermarked with that key (a control, or another
    run's key) and vLLM flagged it: either it counted repeated (context, token) units (its detector with
    deduplicate_contexts=False), whose scores are copies, not independent evidence, or its dual-key Gamma
    understates the tail. aimark flags no unwatermarked sample vLLM clears; on a key's own samples it may find
    more (with deduplicate_contexts="all" it skips the first tokens, which vLLM sampled without the watermark)."""
    disagreements = []
    for run_index, run in enumerate(fixture()["runs"]):
        for sample in run["samples"]:
            for key_index, (config, recorded) in enumerate(zip(configs(), sample["detections"])):
                result = detector(config).detect_ids(sample["output_ids"])
                if config["deduplicate_contexts"] == "single_turn":
                    assert result.num_scored_tokens == recorded["vllm_num_scored_tokens"]
                if config["algorithm"] == "gumbel" and config["deduplicate_contexts"] == "single_turn":
                    # The same Gamma(n, 1) tail; aimark's total is lowered by n * 2**-24 (float32 uniforms).
                    assert result.p_value == pytest.approx(recorded["vllm_p_value"], rel=1e-4, abs=1e-300)
                if result.watermarked != recorded["vllm_is_watermarked"]:
                    disagreements.append((run_index, key_index, recorded["vllm_p_value"], result.p_value))
                    if run_index == key_index:  # a sample of this key: aimark finds it where vLLM misses it
                        assert result.watermarked, disagreements[-1]
                        continue
                    assert recorded["vllm_is_watermarked"], disagreements[-1]
                    assert (config["deduplicate_contexts"] == "none" and recorded["vllm_num_scored_tokens"] > result.num_scored_tokens) or (
                        config["algorithm"] == "dual_key_gumbel"), disagreements[-1]
    print("disagreements (run, key, vLLM p, aimark p):", disagreements)


def test_watermarked_samples_detected_at_least_as_often_as_by_vllm():
    """Same alpha: aimark misses no sample vLLM detects, except where vLLM's verdict rests on its approximate
    dual-key null; for each such sample, vLLM's own total and count under the exact null are not significant."""
    for index, (config, run) in enumerate(zip(configs(), fixture()["runs"])):
        scorer = detector(config)
        ours = [scorer.detect_ids(s["output_ids"]).watermarked for s in run["samples"]]
        theirs = [s["detections"][index]["vllm_is_watermarked"] for s in run["samples"]]
        for sample, found, vllm_found in zip(run["samples"], ours, theirs):
            if vllm_found and not found:
                recorded = sample["detections"][index]
                assert config["algorithm"] == "dual_key_gumbel", (config, recorded["vllm_p_value"])
                exact = math.exp(log_p_value(scorer.schemes[0].null, recorded["vllm_score"], recorded["vllm_num_scored_tokens"]))
                assert exact > ALPHA >= recorded["vllm_p_value"]
        assert sum(ours) >= len(ours) // 2, (config, sum(ours), sum(theirs))


def test_unwatermarked_controls_and_other_keys_samples_are_not_detected_beyond_alpha():
    """Controls (no watermark) under every key, and each run's samples under the other runs' keys, are H0."""
    trials = hits = 0
    for index, run in enumerate(fixture()["runs"]):
        for other_index, config in enumerate(configs()):
            if other_index != index:
                scorer = detector(config)
                for sample in run["samples"]:
                    trials += 1
                    hits += scorer.detect_ids(sample["output_ids"]).watermarked
    assert trials >= 100
    assert_rate_at_most(hits, trials, ALPHA, "vLLM fixture, wrong key or no watermark")


@pytest.mark.parametrize("config", [
    {"algorithm": "gumbel", "key": 5, "context_width": 4},
    {"algorithm": "dual_key_gumbel", "key": 6, "alpha": 0.3, "context_width": 3, "deduplicate_contexts": "none"},
])
def test_false_positive_rate_on_random_token_sequences(config):
    rng = seeded_rng(f"vllm-fpr-{config['algorithm']}")
    trials, alpha = 1500, 0.01
    scorer = detector(config, alpha=alpha)
    hits = sum(scorer.detect_ids(rng.integers(0, 262144, size=int(rng.integers(8, 120)))).watermarked for _ in range(trials))
    assert_rate_at_most(hits, trials, alpha, f"vllm {config['algorithm']}")


def test_philox_uniforms_are_uniform():
    rng = seeded_rng("philox-uniform")
    contexts = rng.integers(-1, 262144, size=(20000, 4))
    u = PhiloxPRF(int(rng.integers(0, 2**63))).uniform(contexts, rng.integers(0, 262144, size=20000)).astype(np.float64)
    from scipy import stats

    assert stats.kstest(u, "uniform").pvalue > 1e-4


def test_discretised_score_is_below_exp1_plus_the_shift():
    """Recompute the shift over every value vLLM's float32 uniform takes: P(score >= s) <= exp(-(s - shift))."""
    cells = 2**24
    scores = np.sort(gumbel_scores(uint32_to_uniform(np.arange(cells, dtype=np.uint64) << np.uint64(8))))
    distinct, first = np.unique(scores, return_index=True)
    at_least = (cells - first) / cells
    shift = float(np.max(np.log(at_least) + distinct))
    assert 0 < shift <= SCORE_DOMINANCE_SHIFT


def test_derived_keys_match_vllm_definition():
    import hashlib

    assert derive_watermark_key(42, b"key_a") == int.from_bytes(hashlib.sha256(b"key_a" + (42).to_bytes(8, "big")).digest()[:8], "big")
    # Recorded by vLLM's own derive_watermark_key (vllm.config.watermarking) for the fixture's dual-key configs.
    assert derive_watermark_key(2**64 - 1, b"key_b") != derive_watermark_key(2**64 - 1, b"key_a")


def test_prompt_is_not_context_and_all_mode_skips_the_first_tokens():
    config = {"algorithm": "gumbel", "key": 11, "context_width": 3, "deduplicate_contexts": "all"}
    scheme = VLLMGumbelScheme(key_from_dict(config))
    ids = np.asarray([5, 6, 7, 8, 9, 10, 11])
    scored = scheme.score(ids)
    assert scored.positions.tolist() == [3, 4, 5, 6]
    # A context that occurs in the prompt was sampled without the watermark: left out when the prompt is known.
    with_prompt = scheme.score(ids, prompt_ids=np.asarray([1, 6, 7, 8, 2]))
    assert with_prompt.positions.tolist() == [3, 5, 6]
    # The Detector passes only the text after the prompt to the scheme: the same values with or without a prompt.
    scorer = detector({**config, "deduplicate_contexts": "single_turn"})
    alone = scorer.scored_units(scorer.schemes[0], ids, 0)
    after_prompt = scorer.scored_units(scorer.schemes[0], np.concatenate([[1, 2, 3, 4], ids]), 4)
    assert np.array_equal(alone[1], after_prompt[1]) and np.array_equal(alone[0] + 4, after_prompt[0])


@pytest.mark.parametrize("config_index", range(4))
def test_batched_detection_gives_each_texts_own_p_value(config_index):
    # detect_many scores the rows of a whole batch in one call: vLLM's padded contexts and 'all' mode's skipped
    # first tokens must give the same units, counts and p-values as scoring each text alone.
    config = configs()[config_index]
    scorer = detector(config)
    samples = [np.asarray(s["output_ids"], dtype=np.int64) for run in fixture()["runs"] for s in run["samples"]][:24]
    samples.append(np.asarray([7, 7, 7, 7, 7, 7, 7, 7], dtype=np.int64))  # one repeated context only
    batched = scorer._detect_batch(samples)
    for ids, together in zip(samples, batched):
        alone = scorer._detect_ids(ids, scored_from=0, offsets=None)
        assert together.num_scored_tokens == alone.num_scored_tokens
        assert together.log10_p_value == pytest.approx(alone.log10_p_value, rel=1e-12, abs=1e-12)


def test_generation_with_a_vllm_key_is_refused():
    scheme = VLLMGumbelScheme(key_from_dict({"key": 1}))
    with pytest.raises(NotImplementedError, match="watermark with vLLM"):
        scheme.reweight(np.zeros((1, 2)), np.zeros((1, 2), dtype=np.int64), np.zeros((1, 4), dtype=np.int64), np.zeros(1, np.uint64))


# -- live, when vLLM's virtualenv is installed (bash scripts/vllm_venv.sh); not in CI, which has the fixture --

VLLM_PYTHON = Path(os.environ.get("AIMARK_VLLM_VENV", "/work/vllm-venv")) / "bin" / "python"
_LIVE_SCRIPT = r"""
import json, sys, torch
from vllm.v1.watermarking import DualKeyGumbelWatermarkDetector, GumbelWatermarkDetector, PhiloxPRF
cases = json.load(sys.stdin)
answers = []
for case in cases:
    prf = PhiloxPRF(case["key"])
    u = prf.uniform(torch.tensor(case["contexts"]), torch.tensor(case["tokens"]).unsqueeze(-1)).squeeze(-1)
    config = case["config"]
    if config["algorithm"] == "gumbel":
        detector = GumbelWatermarkDetector(config["key"], config["context_width"], 0.01, "philox", True)
    else:
        detector = DualKeyGumbelWatermarkDetector(config["key"], config["context_width"], 0.01, "philox", True, config["alpha"])
    verdict = detector.detect(case["ids"])
    answers.append({"bits": u.view(torch.int32).tolist(), "score": verdict.score, "n": verdict.num_scored_tokens, "p": verdict.p_value})
json.dump(answers, sys.stdout)
"""


def _vllm_importable() -> bool:
    """A half-installed virtualenv (an interrupted pip) has a python but no vLLM: that is not a live vLLM."""
    if not VLLM_PYTHON.exists():
        return False
    probe = subprocess.run([str(VLLM_PYTHON), "-c", "import vllm.v1.watermarking"], capture_output=True, timeout=120)
    return probe.returncode == 0


def test_live_vllm_prf_and_detector_agree_with_aimark():
    if not _vllm_importable():
        # Only where vLLM's virtualenv is complete (bash scripts/vllm_venv.sh); the fixture tests above hold
        # values vLLM's own code computed. Naming AIMARK_VLLM_VENV says it must be there: then a broken one fails.
        if "AIMARK_VLLM_VENV" in os.environ:
            pytest.fail(f"AIMARK_VLLM_VENV is set but {VLLM_PYTHON} cannot import vllm.v1.watermarking")
        pytest.skip(f"no vLLM virtualenv with vllm.v1.watermarking at {VLLM_PYTHON} (bash scripts/vllm_venv.sh makes it)")
    rng = seeded_rng("vllm-live")
    cases = []
    for width, key in [(1, 0), (3, 2**64 - 1), (4, int(rng.integers(0, 2**63))), (5, 42), (9, int(rng.integers(0, 2**63)))]:
        contexts = rng.integers(-1, 262144, size=(64, width))
        config = {"algorithm": "dual_key_gumbel" if width % 2 else "gumbel", "key": key, "alpha": 0.3, "context_width": width}
        ids = rng.integers(0, 50, size=120)  # a small alphabet: repeated contexts and units
        cases.append({"key": key, "contexts": contexts.tolist(), "tokens": rng.integers(0, 262144, size=64).tolist(), "config": config, "ids": ids.tolist()})
    completed = subprocess.run([str(VLLM_PYTHON), "-c", _LIVE_SCRIPT], input=json.dumps(cases), capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    for case, answer in zip(cases, json.loads(completed.stdout)):
        ours = PhiloxPRF(case["key"]).uniform(np.asarray(case["contexts"]), np.asarray(case["tokens"]))
        assert np.array_equal(ours.view(np.int32), np.asarray(answer["bits"], dtype=np.int32))
        scorer = detector({**case["config"], "deduplicate_contexts": "single_turn"})
        positions, values = scorer.scored_units(scorer.schemes[0], np.asarray(case["ids"]), 0)
        # vLLM's detector keeps the first occurrence of each context; so does aimark (with single_turn).
        assert len(values) == answer["n"] and values.sum() == pytest.approx(answer["score"], rel=1e-12)
        if case["config"]["algorithm"] == "gumbel":
            assert scorer.detect_ids(case["ids"]).p_value == pytest.approx(answer["p"], rel=1e-4)
