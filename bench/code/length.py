"""Study: how detection of watermarked code grows with the amount of code a verifier holds.

    python -m bench.code.length      # ~25 min on 2 CPU cores the first time (SWEET needs one
                                     # forward pass of Qwen2.5-Coder per text; cached), then ~1 min

HumanEval completions are short (median ~48 tokens), and every watermark's power is bounded by the
number of tokens it can score, so one completion is a hard test. Real AI-written files hold several
functions. This joins k independently generated HumanEval completions (k = 1, 2, 4, 8) into one file
and scores it the way a verifier would: every function's prompt (signature + docstring, written by the
user) is context, never scored; the completions are. Negatives are joined the same way from one set at
a time (HumanEval canonical solutions, unwatermarked model completions, standard-library functions), so
a negative file is human code or unwatermarked model code of the same size.

Detection over a joined file is exact: its scored units are deduplicated across the whole file, as
``Detector`` does for one text, so the p-value is the scheme's exact null tail. SWEET's masks come from
one forward pass of the generating model per function (its entropy at each completion token), as in
its detector.

Groups are drawn from ``PERMUTATIONS`` random partitions of the problems (and of each negative set), so
the AUROC at each k pools every group of every partition; the report also gives its spread over
partitions. Writes bench/results/code-length.md and code-length.json.
"""

from __future__ import annotations

import json
import time
from itertools import pairwise

import numpy as np

from bench.code.benchmark import (
    RESULTS,
    SWEET_MASKS,
    benchmark_keys,
    humaneval_problems,
    load_generations,
)
from bench.code.evaluation import METHODS, auroc, rates, stdlib_functions
from bench.code.sweet import MaskCache

FUNCTIONS_PER_FILE = (1, 2, 4, 8)
PERMUTATIONS = 10
MIN_TOKENS = (0, 15, 30, 60)  # single completions of at least this many tokens (SWEET's paper drops short ones)
TARGET_AUROC = 0.94  # SWEET's published HumanEval figure


class SegmentScorer:
    """Per (method, function): token ids and the positions that count; a file's p-value joins them."""

    def __init__(self, keys: dict, tokenizer, sweet):
        from aimark.detect import Detector

        self.detectors = {name: Detector(key, tokenizer, check_tokenizer=False) for name, key in keys.items()}
        self.sweet = sweet
        self._segments: dict = {}

    def segment(self, method, prompt: str, completion: str) -> tuple[np.ndarray, np.ndarray]:
        """(ids of prompt + completion, which of them count) for one function."""
        from aimark.detect import DetectionInputError

        cache_key = (method.name, prompt, completion)
        if cache_key not in self._segments:
            if method.needs_model:
                ids, _, mask = self.sweet[(prompt, completion)]  # a MaskCache, or a plain dict in tests
                ids, allowed = np.asarray(ids, dtype=np.int64), np.asarray(mask, dtype=bool)
            else:
                detector = self.detectors[method.key_name]
                try:
                    ids, scored_from, offsets = detector.encode(completion, prompt=prompt)
                    gate = detector.code_gate(completion, offsets, scored_from, len(ids), method.language)
                    allowed = gate[0] if gate is not None else np.arange(len(ids)) >= scored_from
                except DetectionInputError:  # an empty completion: its prompt is context, nothing counts
                    ids = detector.encode(prompt)[0]
                    allowed = np.zeros(len(ids), dtype=bool)
            self._segments[cache_key] = (ids, allowed)
        return self._segments[cache_key]

    def p_value(self, method, functions: list[tuple[str, str]]) -> float:
        """Exact p-value of a file made of ``functions`` (prompt, completion): completions scored, prompts context."""
        from aimark.detect import DetectionInputError

        parts = [self.segment(method, prompt, completion) for prompt, completion in functions]
        ids = np.concatenate([ids for ids, _ in parts])
        allowed = np.concatenate([mask for _, mask in parts])
        if not allowed.any():
            return 1.0
        try:
            return self.detectors[method.key_name].detect_ids(ids, allowed=allowed, language=method.language).p_value
        except DetectionInputError:  # nothing left after deduplication: the detector cannot say "watermarked"
            return 1.0

    def scored_tokens(self, method, functions) -> int:
        return int(sum(self.segment(method, p, c)[1].sum() for p, c in functions))


def groups(items: list, k: int, rng: np.random.Generator) -> list[list]:
    """One random partition of ``items`` into groups of ``k`` (a remainder is dropped)."""
    order = rng.permutation(len(items))
    return [[items[i] for i in order[start : start + k]] for start in range(0, len(order) - k + 1, k)]


def main() -> int:
    from aimark.engines import CODE_MODEL, load_model, load_tokenizer

    began = time.perf_counter()
    problems = humaneval_problems()
    generations = load_generations()
    keys = benchmark_keys()
    human = stdlib_functions()
    positives = {m.name: [(p.prompt, generations[(m.generated_by, p.task_id)]["completion"]) for p in problems] for m in METHODS}
    negative_sets = {
        "HumanEval canonical solutions": [(p.prompt, p.canonical_solution) for p in problems],
        "model, no watermark": [(p.prompt, generations[("none", p.task_id)]["completion"]) for p in problems],
        "standard-library functions": [(h.prompt, h.completion) for h in human],
    }
    needing_model = [m for m in METHODS if m.needs_model]
    pairs = [pair for m in needing_model for pair in positives[m.name]]
    sweet = MaskCache(SWEET_MASKS, lambda: load_model(CODE_MODEL))
    texts = pairs + [pair for items in negative_sets.values() for pair in items] if needing_model else []
    print(f"SWEET masks: {len(texts)} texts")
    computed = sweet.ensure(texts, progress=print)
    mask_seconds = time.perf_counter() - began

    tokenizer = load_tokenizer(CODE_MODEL)
    scorer = SegmentScorer(keys, tokenizer, sweet)
    completion_tokens = {pair: len(tokenizer(pair[1], add_special_tokens=False)["input_ids"]) for items in (*positives.values(), *negative_sets.values()) for pair in items}
    results: dict[str, dict] = {}
    for method in METHODS:
        by_k = {}
        for k in FUNCTIONS_PER_FILE:
            rng = np.random.default_rng(k)
            pos, neg, aurocs, tokens = [], [], [], []
            for _ in range(PERMUTATIONS if k > 1 else 1):
                files = groups(positives[method.name], k, rng)
                negative_files = [g for items in negative_sets.values() for g in groups(items, k, rng)]
                p = [scorer.p_value(method, f) for f in files]
                n = [scorer.p_value(method, f) for f in negative_files]
                pos += p
                neg += n
                aurocs.append(auroc(p, n))
                tokens += [sum(completion_tokens[pair] for pair in f) for f in files]
            by_k[str(k)] = {"auroc": auroc(pos, neg), "auroc_range": [float(min(aurocs)), float(max(aurocs))], "tpr": rates(pos),
                            "fpr": rates(neg), "positive_files": len(pos), "negative_files": len(neg),
                            "mean_completion_tokens": float(np.mean(tokens))}
        by_length = {}
        single_neg = [pair for items in negative_sets.values() for pair in items]
        for floor in MIN_TOKENS:
            p = [scorer.p_value(method, [pair]) for pair in positives[method.name] if completion_tokens[pair] >= floor]
            n = [scorer.p_value(method, [pair]) for pair in single_neg if completion_tokens[pair] >= floor]
            by_length[str(floor)] = {"auroc": auroc(p, n), "tpr": rates(p), "positives": len(p), "negatives": len(n)}
        results[method.name] = {"needs_model": method.needs_model, "by_functions": by_k, "by_min_tokens": by_length}
        print(f"{method.name:28s} " + "  ".join(f"k={k}: {row['auroc']:.3f}" for k, row in by_k.items()))
    report = {"results": results, "functions_per_file": FUNCTIONS_PER_FILE, "permutations": PERMUTATIONS, "min_tokens": MIN_TOKENS,
              "negative_sets": {label: len(items) for label, items in negative_sets.items()},
              "sweet_mask_seconds": mask_seconds, "sweet_texts_computed": computed, "seconds": time.perf_counter() - began}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "code-length.json").write_text(json.dumps(report, indent=1, default=float))
    (RESULTS / "code-length.md").write_text(render(report))
    print((RESULTS / "code-length.md").read_text())
    return 0


def tokens_to_reach(by_k: dict, target: float) -> float | None:
    """Completion tokens at which AUROC first reaches ``target``, interpolated linearly in log(tokens)."""
    points = [(row["mean_completion_tokens"], row["auroc"]) for row in by_k.values()]
    for (t0, a0), (t1, a1) in pairwise(points):
        if a0 >= target:
            return t0
        if a1 >= target:
            share = (target - a0) / (a1 - a0)
            return float(np.exp(np.log(t0) + share * (np.log(t1) - np.log(t0))))
    return points[0][0] if points and points[0][1] >= target else None


def render(report: dict) -> str:
    ks = [str(k) for k in report["functions_per_file"]]
    results = report["results"]
    any_row = next(iter(results.values()))
    lines = [
        "# Code detection against the amount of code (study)",
        "",
        f"`python -m bench.code.length`, {report['seconds']:.0f} s ({report['sweet_mask_seconds']:.0f} s of it SWEET's model passes over "
        f"{report['sweet_texts_computed']} texts; the rest read from bench/cache/code/sweet-masks.pkl; all 764 take ~20 min on 2 CPU cores). "
        "A file = k HumanEval functions generated independently, prompts as context, completions scored; negatives are files of "
        "k functions from one set: " + ", ".join(f"{label} ({n})" for label, n in report["negative_sets"].items())
        + f". AUROC pools every group of {report['permutations']} random partitions (range over partitions in brackets); "
        "TPR uses the exact p-value as threshold.",
        "",
        "| method | needs model | " + " | ".join(f"k = {k}: AUROC" for k in ks) + " | TPR @1e-3 at k = " + ks[-1] + " | completion tokens to AUROC " + f"{TARGET_AUROC} |",
        "|---|---|" + "---:|" * len(ks) + "---:|---:|",
    ]
    for name, row in results.items():
        cells = []
        for k in ks:
            cell = row["by_functions"][k]
            spread = f" ({cell['auroc_range'][0]:.2f}–{cell['auroc_range'][1]:.2f})" if int(k) > 1 else ""
            cells.append(f"{cell['auroc']:.3f}{spread}")
        reach = tokens_to_reach(row["by_functions"], TARGET_AUROC)
        lines.append(f"| {name} | {'yes' if row['needs_model'] else 'no'} | " + " | ".join(cells)
                     + f" | {100 * row['by_functions'][ks[-1]]['tpr']['0.001']:.1f} | {'not reached' if reach is None else f'~{reach:.0f}'} |")
    files = " · ".join(f"k = {k}: {any_row['by_functions'][k]['positive_files']} / {any_row['by_functions'][k]['negative_files']}" for k in ks)
    tokens = "; ".join(f"{name.split(' (')[0].split(' +')[0]} " + " / ".join(f"{row['by_functions'][k]['mean_completion_tokens']:.0f}" for k in ks)
                       for name, row in results.items() if "+" not in name)
    lines += ["", (f"Files scored (positives / negatives): {files}. Mean completion tokens per watermarked file at k = {' / '.join(ks)} "
                   f"(each scheme's own completions): {tokens}."),
              "", "## Single completions with at least N tokens (SWEET's paper drops short ones)", "",
              "| method | " + " | ".join(f"N = {n}" for n in report["min_tokens"]) + " |",
              "|---|" + "---:|" * len(report["min_tokens"])]
    for name, row in results.items():
        lines.append(f"| {name} | " + " | ".join(
            f"{row['by_min_tokens'][str(n)]['auroc']:.3f} ({row['by_min_tokens'][str(n)]['positives']}/{row['by_min_tokens'][str(n)]['negatives']})"
            for n in report["min_tokens"]) + " |")
    lines += ["", "Cells: AUROC (positives / negatives kept)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
