"""Pieces of bench/robustness (run.py) that need no model: corpus, cache and fixture, metrics."""

from __future__ import annotations

import json
import math
from collections import Counter

import pytest

from tests.helpers import require_module

require_module("kiwipiepy", "the bench extra provides the segmenters: pip install -e '.[test,bench]'")

from bench.human_text import human_passages, script_share  # noqa: E402
from bench.robustness import run as robustness  # noqa: E402


def test_prompt_corpus_has_fifty_per_language_in_four_styles_with_sources():
    rows = [json.loads(line) for line in robustness.PROMPTS.read_text(encoding="utf-8").splitlines()]
    per_language = Counter(r["language"] for r in rows)
    assert all(per_language[language] >= 50 for language in ("ko", "ja", "zh", "en"))
    assert {r["style"] for r in rows} == {"news", "essay", "dialogue", "instruction"}
    assert all(r["source"] and r["prompt"] for r in rows) and len({r["id"] for r in rows}) == len(rows)
    for row in rows:
        if row["language"] != "en":
            assert script_share(row["prompt"], row["language"]) > 0.4, row


def test_quick_slice_covers_every_style_it_can():
    chosen = robustness.load_prompts(robustness.FULL)
    assert len(chosen) == 4 * 52
    quick = robustness.load_prompts(robustness.QUICK)
    assert len(quick) == 8 and len({(r["language"], r["style"]) for r in quick}) == 8


@pytest.mark.parametrize("language", ["ko", "zh", "en"])
def test_human_passages_are_prose_of_the_language_with_a_source(language):
    passages = human_passages(language, limit=150)
    assert len(passages) == 150
    assert len({p["text"] for p in passages}) == 150
    for passage in passages:
        assert passage["source"]
        if language != "en":
            assert script_share(passage["text"], language) >= 0.5


def test_generation_cache_is_resumable_and_round_trips_through_the_fixture(tmp_path):
    cache = robustness.GenerationCache(tmp_path / "cache" / "generations.jsonl")
    first = {"id": robustness.GenerationCache.key(kind="generation", prompt_id="ko-news-00"), "text": "가나다\u2028라\x85마\u2029"}  # line separators a model may write
    second = {"id": robustness.GenerationCache.key(kind="generation", prompt_id="ko-news-01"), "text": "라마바"}
    cache.add([first])
    cache.add([second])
    reopened = robustness.GenerationCache(tmp_path / "cache" / "generations.jsonl")
    assert reopened.rows == {first["id"]: first, second["id"]: second}
    fixture = tmp_path / "generations.jsonl.gz"
    assert reopened.export(fixture) == 2
    fresh = robustness.GenerationCache(tmp_path / "other" / "generations.jsonl")
    assert fresh.import_from(fixture) == 2 and fresh.rows == reopened.rows
    assert fresh.import_from(fixture) == 2 and len(fresh.path.read_text().strip().split("\n")) == 2  # no duplicates


def test_auc_and_tpr():
    assert robustness.auc([3, 4], [1, 2]) == 1.0
    assert robustness.auc([1, 2], [3, 4]) == 0.0
    assert robustness.auc([1], [1]) == 0.5
    assert math.isnan(robustness.auc([], [1]))
    assert robustness.tpr([1e-4, 1e-2, 0.5], 1e-3) == pytest.approx(1 / 3)


def test_diversity_counts_repeats(tiny):
    repetitive = robustness.diversity(tiny.tokenizer, ["the cat sat on the mat. " * 12])
    varied = robustness.diversity(tiny.tokenizer, ["the quick brown fox"])
    assert repetitive["repetition_4"] > 0.5 and varied["repetition_4"] == 0
    assert repetitive["distinct_2"] < varied["distinct_2"]


@pytest.mark.parametrize("kind", ["paraphrase", "round-trip"])
def test_model_rewrites_return_one_text_per_input(tiny, kind):
    from bench.robustness.attacks import model_rewrites

    rewritten = model_rewrites(tiny, ["The history of the city.", "日本国民は"], "en", kind=kind, max_new_tokens=8, seed=0)
    assert len(rewritten) == 2 and all(isinstance(text, str) for text in rewritten)


def test_scheme_variants_get_their_own_fixed_keys():
    default, short = robustness.bench_key("synthid"), robustness.bench_key("synthid@ngram_len=3")
    assert default.params["ngram_len"] == 5 and short.params["ngram_len"] == 3
    assert default.key_id != short.key_id and robustness.bench_key("synthid").key_id == default.key_id
    with pytest.raises(ValueError, match="unknown synthid parameter"):
        robustness.bench_key("synthid@ngram=3")


def test_sizing_options_shrink_the_plan_and_drop_lengths_beyond_it():
    import argparse

    from bench.robustness.run import FULL, resized

    def args(**given):
        fields = {"max_new_tokens": None, "prompts_per_language": None, "long_prompts_per_language": None, "rewrite_documents": None, "batch_size": None}
        return argparse.Namespace(**{**fields, **given})

    plan = resized(FULL, args(max_new_tokens=220, prompts_per_language=10, rewrite_documents=0, long_prompts_per_language=0))
    assert plan.lengths == (50, 100, 200) and plan.max_new_tokens == 220 and plan.rewrite_length == 200 and plan.long_prompts_per_language == 0
    assert plan.prompts_per_language == 10 and plan.rewrite_documents == 0 and plan.rewrites == () and plan.attacks == FULL.attacks
    assert resized(FULL, args()) == FULL
    with pytest.raises(SystemExit):
        resized(FULL, args(max_new_tokens=40))
    with pytest.raises(SystemExit):
        resized(FULL, args(batch_size=0))


def _paired_generations(control: dict[str, list[float]], factor: float, noise: float, seed: int = 1):
    import numpy as np

    rng = np.random.default_rng(seed)
    generations, ppl = [], {}
    for language, values in control.items():
        for i, value in enumerate(values):
            prompt = f"{language}-{i}"
            for scheme, ppl_value in (("none", value), ("synthid", value * factor * float(np.exp(rng.normal(0, noise))))):
                gid = f"{scheme}:{prompt}"
                generations.append({"id": gid, "prompt_id": prompt, "scheme": scheme, "language": language})
                ppl[gid] = ppl_value
    return generations, ppl


def test_perplexity_change_is_the_ratio_of_medians_and_its_interval_covers_the_truth():
    import numpy as np

    from bench.robustness.run import perplexity_change

    rng = np.random.default_rng(0)
    control = {lang: list(np.exp(rng.normal(3, 0.5, 52))) for lang in ("ko", "en")}
    exact, ppl = _paired_generations(control, 1.10, noise=0.0)
    change = perplexity_change(exact, ppl, "synthid", "ko")
    assert change["ppl_vs_control"] == pytest.approx(0.10) and change["ppl_ci_low"] == pytest.approx(0.10) and change["ppl_ci_high"] == pytest.approx(0.10)
    noisy, ppl = _paired_generations(control, 1.10, noise=0.2)
    one, pooled = perplexity_change(noisy, ppl, "synthid", "ko"), perplexity_change(noisy, ppl, "synthid", None)
    for change in (one, pooled):
        assert change["ppl_ci_low"] < 0.10 < change["ppl_ci_high"]
        assert change["ppl_ci_low"] < change["ppl_vs_control"] < change["ppl_ci_high"]
    assert pooled["ppl_ci_high"] - pooled["ppl_ci_low"] < one["ppl_ci_high"] - one["ppl_ci_low"]  # twice the prompts
    missing = perplexity_change(noisy, ppl, "kgw", "ko")
    assert math.isnan(missing["ppl_vs_control"])


@pytest.mark.parametrize("language", ["ko", "ja", "zh", "en"])
def test_calibration_corpus_has_five_hundred_human_passages_per_language(language):
    from tests.services import _missing

    passages = human_passages(language, limit=500)
    if len(passages) < 500:  # ko and ja need Debian documentation packages (scripts/ci_services.sh installs them)
        _missing(f"human {language} text: {len(passages)} passages < 500 (see bench/corpus/README.md)")
    assert len({p["text"] for p in passages}) == 500


def test_rewrite_fidelity_measures_what_a_rewrite_kept_in_any_script():
    from bench.robustness.run import char_ngram_f1, in_language

    korean = "대한민국은 민주공화국이다. 대한민국의 주권은 국민에게 있고, 모든 권력은 국민으로부터 나온다."
    assert char_ngram_f1(korean, korean) == 1.0
    assert char_ngram_f1(korean, korean.replace(" ", "")) == 1.0  # spacing is not content
    assert 0.3 < char_ngram_f1(korean, korean[:30] + " 오늘은 날씨가 맑고 바람이 분다.") < 0.9
    assert char_ngram_f1(korean, "The weather is fine today.") == 0.0
    assert in_language(korean, "ko") and not in_language("The weather is fine today.", "ko")
    assert in_language("The weather is fine today.", "en") and not in_language("今日は天気が良いです。", "en")


class _CharTokenizer:
    """One token per character: enough for the report's bookkeeping, no model needed."""

    def __call__(self, text, add_special_tokens=False, return_tensors=None):
        return {"input_ids": [ord(c) for c in text]}

    def decode(self, ids, skip_special_tokens=True):
        return "".join(map(chr, ids))


def test_report_states_long_form_rewrites_and_perplexity_intervals(tmp_path):
    from dataclasses import replace

    from bench.robustness.run import FULL, rewrite_rows, summarise, write_report

    plan = replace(FULL, schemes=("synthid",), languages=("ko",), rewrites=("paraphrase",), rewrite_length=40, attacks=(("none", 0.0),))
    text = "대한민국은 민주공화국이다. 대한민국의 주권은 국민에게 있고, 모든 권력은 국민으로부터 나온다. " * 2
    generations, ppl, power = [], {}, []
    for i in range(6):
        for scheme, value in (("synthid", 10.0 + i), ("none", 10.0 + i)):
            gid = f"{scheme}-{i}"
            generations.append({"id": gid, "prompt_id": f"ko-news-{i:02d}", "scheme": scheme, "language": "ko", "text": text[i:]})
            ppl[gid] = value
        power.append({"scheme": "synthid", "language": "ko", "attack": "none", "strength": 0.0, "length": 100, "p_value": 1e-6, "generation": f"synthid-{i}"})
        power.append({"scheme": "synthid", "language": "ko", "attack": "none", "strength": 0.0, "length": 600, "p_value": 1e-9, "generation": f"long-{i}"})
    rewrites = {("synthid-0", "paraphrase"): text[:30], ("synthid-1", "paraphrase"): "An English text that kept nothing."}
    power += [{"scheme": "synthid", "language": "ko", "attack": "paraphrase", "strength": 1.0, "length": 40, "p_value": p, "generation": g}
              for (g, _), p in zip(rewrites, (1e-4, 0.5))]
    rewritten = rewrite_rows(_CharTokenizer(), plan, generations, rewrites)
    assert rewritten[0]["in_language"] and not rewritten[1]["in_language"] and rewritten[0]["chrf3"] > 0.5 > rewritten[1]["chrf3"]
    summary = summarise(plan, power, [], ppl, generations, [], {}, _CharTokenizer(), 1.0, long_generations=generations[:2], rewritten=rewritten)
    assert {r["length"] for r in summary["power"]} == {40, 100, 600}  # rewrites are measured at rewrite_length
    (row,) = summary["rewrites"]
    assert row["n"] == 2 and row["in_language"] == 0.5 and row["tpr@0.001"] == 0.5 and row["tpr@0.001_in_language"] == 1.0
    pooled = next(r for r in summary["quality"] if r["language"] == "all")
    assert pooled["ppl_vs_control"] == 0.0 and pooled["ppl_ci_low"] == pooled["ppl_ci_high"] == 0.0
    write_report(summary, [], tmp_path, quick=False)
    report = (tmp_path / "robustness.md").read_text(encoding="utf-8")
    assert "## Model rewrites" in report and "median_chrf3_unrelated" in report and "ppl_ci_low" in report
