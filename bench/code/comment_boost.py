"""Study: push the watermark harder inside code comments (they never execute), detect with the code detector.

    python -m bench.code.comment_boost [--problems 32] [--strength 2.0]    # ~5 min on 2 CPU cores

Generates the first N HumanEval problems with aimark's SynthID code key as bench/code did (same
prompts, sampling, batches and seeds), but with ``comment_boost``: inside a line comment the model's
distribution is tilted by ``strength`` nats per standard deviation of the code detector's statistic
before the tournament. Compared with the committed plain-SynthID generations of the same problems
(two samples, not a paired draw: a re-run of the plain generation reproduces 10 of 16 texts of a batch
exactly, so the random streams are not shared). Reports how many comment steps the boost could move
(more than one candidate after top-p), the per-class signal, p-values and pass@1.
Writes bench/results/code-comment-boost.md.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from bench.code.benchmark import (
    BATCH_SIZE,
    MAX_NEW_TOKENS,
    RESULTS,
    SAMPLING,
    STOP_STRINGS,
    benchmark_keys,
    humaneval_problems,
    load_generations,
)
from bench.code.evaluation import humaneval_program, run_program


def main(argv: list[str] | None = None) -> int:
    from aimark.detect import Detector
    from aimark.engines import CODE_MODEL, generate, load_model
    from aimark.schemes import processor
    from aimark.schemes.code import token_classes

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--problems", type=int, default=32)
    parser.add_argument("--strength", type=float, default=2.0)
    parser.add_argument("--all-problems", action="store_true",
                        help="score bench/code's 'synthid-comments' generations of all 164 problems instead (pass@1 with "
                             "paired intervals, AUROC against the code benchmark's negatives)")
    args = parser.parse_args(argv)
    if args.all_problems:
        return full_comparison()
    problems = humaneval_problems(args.problems)
    keys = benchmark_keys()
    plain = load_generations()
    loaded = load_model(CODE_MODEL)

    steps = []  # per comment step: candidates after top-p, entropy, total-variation distance moved
    tilt = processor.WatermarkLogitsProcessor._tilt_comments

    def recording(self, input_ids, rows, context_keys, candidates, log_probs):
        out = tilt(self, input_ids, rows, context_keys, candidates, log_probs)
        inside = np.asarray(self.comment_boost.rows_in_comment(input_ids[rows].cpu().numpy()), dtype=bool)
        for before, after in zip(log_probs[inside], out[inside]):
            finite = np.isfinite(before)
            p, q = np.exp(before[finite]), np.exp(after[finite])
            steps.append((int(finite.sum()), float(-(p * np.log(p)).sum()), float(0.5 * np.abs(p - q).sum())))
        return out

    processor.WatermarkLogitsProcessor._tilt_comments = recording
    boosted = []
    for start in range(0, len(problems), BATCH_SIZE):  # bench/code's batches and seeds
        batch = problems[start : start + BATCH_SIZE]
        boosted += [g.text for g in generate(
            loaded, [p.prompt for p in batch], key=keys["synthid"], max_new_tokens=MAX_NEW_TOKENS, batch_size=BATCH_SIZE, chat=False,
            stop_strings=STOP_STRINGS, seed=start, code_language="python", comment_boost=args.strength, **SAMPLING)]
    baseline = [plain[("synthid", p.task_id)]["completion"] for p in problems]

    detector = Detector(keys["synthid"], loaded.tokenizer, check_tokenizer=False)
    report = {"problems": len(problems), "strength": args.strength, "sets": {}}
    for name, texts in (("plain SynthID (committed)", baseline), ("SynthID + comment boost", boosted)):
        per_class: dict[str, list[float]] = {}
        p_values = []
        for problem, text in zip(problems, texts):
            result = detector.detect(text, prompt=problem.prompt, language="python") if text.strip() else None
            p_values.append(result.p_value if result else 1.0)
            if result:
                for token, label in zip(result.tokens, token_classes(text, [(t.start, t.end) for t in result.tokens], "python")):
                    if token.score is not None:
                        per_class.setdefault(label, []).append(token.score)
        sd = np.sqrt(0.25 / 20)
        report["sets"][name] = {
            "p_values": p_values,
            "median_p": float(np.median(p_values)),
            "p_le_1e-2": int(sum(p <= 1e-2 for p in p_values)),
            "excess_sd": {label: (len(v), float((np.mean(v) - 0.5) / sd)) for label, v in sorted(per_class.items())},
            "passed": int(sum(run_program(humaneval_program(p, t)) for p, t in zip(problems, texts))),
            "with_comments": int(sum("#" in t for t in texts)),
        }
    moved = [s for s in steps if s[0] > 1]
    report["comment_steps"] = {"all": len(steps), "more_than_one_candidate": len(moved),
                               "mean_entropy_movable": float(np.mean([s[1] for s in moved])) if moved else 0.0,
                               "mean_tv_movable": float(np.mean([s[2] for s in moved])) if moved else 0.0}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "code-comment-boost.json").write_text(json.dumps(report, indent=1))
    (RESULTS / "code-comment-boost.md").write_text(render(report))
    print((RESULTS / "code-comment-boost.md").read_text())
    return 0


def full_comparison() -> int:
    """pass@1 and detection of the comment-boosted generations of every problem, against plain SynthID and none."""
    from aimark.detect import DetectionInputError, Detector
    from aimark.engines import CODE_MODEL, load_tokenizer
    from bench.code.benchmark import COMMENT_BOOST
    from bench.code.evaluation import (
        auroc,
        paired_difference_ci,
        rates,
        stdlib_functions,
    )

    problems = humaneval_problems()
    generations = load_generations()
    detector = Detector(benchmark_keys()["synthid"], load_tokenizer(CODE_MODEL), check_tokenizer=False)
    texts = {s: [generations[(s, p.task_id)]["completion"] for p in problems] for s in ("none", "synthid", "synthid-comments")}
    passed = {s: np.array([run_program(humaneval_program(p, t)) for p, t in zip(problems, ts)], dtype=float) for s, ts in texts.items()}

    def code_p(completion: str, prompt: str) -> float:
        try:  # the product's code detector: lexical gate and SynthID's scored layers
            return detector.detect(completion, prompt=prompt, with_tokens=False, language="python").p_value
        except DetectionInputError:
            return 1.0

    negatives = [code_p(p.canonical_solution, p.prompt) for p in problems] + [code_p(t, p.prompt) for p, t in zip(problems, texts["none"])]
    negatives += [code_p(h.completion, h.prompt) for h in stdlib_functions()]
    rng = np.random.default_rng(0)
    rows = {}
    for scheme in ("synthid", "synthid-comments"):
        positives = [code_p(t, p.prompt) for p, t in zip(problems, texts[scheme])]
        rows[scheme] = {"pass@1": float(passed[scheme].mean()), "vs_none": float(passed[scheme].mean() - passed["none"].mean()),
                        "vs_none_ci": paired_difference_ci(passed[scheme], passed["none"], rng), "auroc": auroc(positives, negatives),
                        "tpr": rates(positives), "with_comments": int(sum("#" in t for t in texts[scheme]))}
    rows["synthid-comments"]["vs_synthid_ci"] = paired_difference_ci(passed["synthid-comments"], passed["synthid"], rng)
    lines = ["", f"## All {len(problems)} problems (`python -m bench.code.comment_boost --all-problems`, strength {COMMENT_BOOST})", "",
             ("Generations from `python -m bench.code --generate-only` (scheme `synthid-comments`); detection with the code detector "
             f"against the code benchmark's {len(negatives)} negatives (canonical solutions, unwatermarked completions, standard-library functions)."), "",
             "| scheme | pass@1 % | vs no watermark (paired 95% CI) | AUROC | TPR @1e-2 | TPR @1e-3 | completions with comments |",
             "|---|---:|---|---:|---:|---:|---:|"]
    for scheme, row in rows.items():
        lo, hi = row["vs_none_ci"]
        lines.append(f"| {scheme} | {100 * row['pass@1']:.1f} | {100 * row['vs_none']:+.1f} ({100 * lo:+.1f} to {100 * hi:+.1f}) | "
                     f"{row['auroc']:.3f} | {100 * row['tpr']['0.01']:.1f} | {100 * row['tpr']['0.001']:.1f} | {row['with_comments']} |")
    lo, hi = rows["synthid-comments"]["vs_synthid_ci"]
    lines += ["", (f"Boost minus plain SynthID, pass@1: {100 * (rows['synthid-comments']['pass@1'] - rows['synthid']['pass@1']):+.1f} points "
                  f"(paired 95% CI {100 * lo:+.1f} to {100 * hi:+.1f}).")]
    path = RESULTS / "code-comment-boost.md"
    text = path.read_text() if path.exists() else ""
    marker = "\n## All "
    path.write_text((text.split(marker)[0].rstrip("\n") + "\n" if text else "") + "\n".join(lines) + "\n")
    (RESULTS / "code-comment-boost-all.json").write_text(json.dumps(rows, indent=1))
    print("\n".join(lines))
    return 0


def render(report: dict) -> str:
    steps = report["comment_steps"]
    lines = [
        "# Pushing the watermark harder inside comments (study)",
        "",
        (f"`python -m bench.code.comment_boost --problems {report['problems']} --strength {report['strength']}`: the first "
        f"{report['problems']} HumanEval problems, aimark's SynthID code key, same sampling, batches and seeds as bench/code; "
        "compared with the committed plain-SynthID generations of the same problems (two samples, not paired draws)."),
        "",
        (f"Steps inside a comment: {steps['all']}; with more than one candidate after top-p (the only ones a tilt can move): "
        f"{steps['more_than_one_candidate']}, mean entropy there {steps['mean_entropy_movable']:.2f} nats, mean total-variation "
        f"distance the tilt moved {steps['mean_tv_movable']:.2f}."),
        "",
        "| set | completions with comments | p ≤ 1e-2 | median p | pass@1 | comment excess (sd/unit, units) | every class |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for name, row in report["sets"].items():
        comment = row["excess_sd"].get("comment", (0, 0.0))
        classes = ", ".join(f"{label} {value:+.2f}" for label, (_, value) in row["excess_sd"].items())
        lines.append(f"| {name} | {row['with_comments']} | {row['p_le_1e-2']} | {row['median_p']:.2g} | "
                     f"{row['passed']}/{report['problems']} | {comment[1]:+.2f} ({comment[0]}) | {classes} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
