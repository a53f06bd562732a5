"""Evaluation half of the code benchmark: pass@1, detection, robustness, the per-class gate study.

Detection texts are what a verifier holds. "completion" = the model's code with the HumanEval prompt as
context (never scored); "file" = prompt + completion as one Python file, no context (the attacks that
need a whole program — formatters, renaming, comment removal — are measured in that setting).
"""

from __future__ import annotations

import ast
import inspect
import json
import math
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.code.attacks import FILE_ATTACKS, AttackFailed, random_token_edit

ALPHAS = (1e-2, 1e-3)
# The one-sample run's results (kgw, gumbel, comment boost, per-class and per-layer studies); the sampled run
# (bench/code/sampled.py) writes bench/results/code.md.
SINGLE_SAMPLE = "code-single-sample"
EXECUTION_TIMEOUT_S = 10.0
HUMAN_MODULES = (
    "textwrap", "difflib", "json.encoder", "json.decoder", "argparse", "csv", "string", "fractions", "statistics",
    "heapq", "bisect", "shlex", "calendar", "ipaddress", "pprint", "configparser", "email.utils", "urllib.parse",
    "html", "tokenize", "ast", "dataclasses", "functools", "collections", "gettext", "glob", "fnmatch", "posixpath",
    "ntpath", "base64", "quopri", "imaplib", "smtplib", "ftplib", "mailbox", "wave", "sched", "graphlib", "zipfile",
)
MAX_HUMAN_FUNCTIONS = 300
SWEET_NEGATIVES_PER_SET = 40
SWEET_FILE_NEGATIVES = 60
SWEET_ATTACK_PROBLEMS = 32


def negatives_file_subset(per_set: dict[str, list]) -> list:
    """Negatives for the whole-file setting: the sets interleaved, so any prefix mixes them."""
    out, lists = [], [list(v) for v in per_set.values()]
    while any(lists):
        for items in lists:
            if items:
                out.append(items.pop(0))
    return out


# -- functional correctness ------------------------------------------------------------
def run_program(program: str, timeout: float = EXECUTION_TIMEOUT_S) -> bool:
    """True when ``program`` exits 0 within ``timeout`` in a fresh, isolated interpreter."""
    with tempfile.TemporaryDirectory(prefix="aimark-humaneval-") as folder:
        path = Path(folder) / "program.py"
        path.write_text(program, encoding="utf-8")
        try:
            done = subprocess.run([sys.executable, "-I", str(path)], cwd=folder, capture_output=True, timeout=timeout,
                                  env={"PATH": os.environ.get("PATH", ""), "PYTHONHASHSEED": "0"})
        except subprocess.TimeoutExpired:
            return False
        return done.returncode == 0


def humaneval_program(problem, completion: str) -> str:
    return f"{problem.prompt}{completion}\n\n{problem.test}\n\ncheck({problem.entry_point})\n"


def wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def paired_difference_ci(a: np.ndarray, b: np.ndarray, rng: np.random.Generator, rounds: int = 20000) -> tuple[float, float]:
    """95% bootstrap interval of mean(a) - mean(b) over problems (paired: same problems resampled)."""
    n = len(a)
    picks = rng.integers(0, n, size=(rounds, n))
    differences = a[picks].mean(axis=1) - b[picks].mean(axis=1)
    return float(np.quantile(differences, 0.025)), float(np.quantile(differences, 0.975))


# -- human-written negatives -----------------------------------------------------------------
@dataclass(frozen=True)
class CodeSample:
    source: str  # where it comes from, for the report
    prompt: str  # header (signature + docstring): context, not scored
    completion: str  # the body: scored

    @property
    def file(self) -> str:
        return self.prompt + self.completion


def stdlib_functions(limit: int = MAX_HUMAN_FUNCTIONS) -> list[CodeSample]:
    """Functions from the standard library's own source, split like HumanEval (header | body)."""
    import importlib

    samples: list[CodeSample] = []
    for name in HUMAN_MODULES:
        try:
            module = importlib.import_module(name)
            source = inspect.getsource(module)
        except (ImportError, OSError, TypeError):
            continue
        lines = source.splitlines(keepends=True)
        for node in ast.parse(source).body:
            if not isinstance(node, ast.FunctionDef) or not node.body:
                continue
            body = node.body
            first = body[0]
            has_doc = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)
            if has_doc and len(body) == 1:
                continue
            split_line = (first.end_lineno if has_doc else node.body[0].lineno - 1) or node.lineno
            start = (node.decorator_list[0].lineno if node.decorator_list else node.lineno) - 1
            prompt = "".join(lines[start:split_line])
            completion = "".join(lines[split_line : node.end_lineno])
            if 150 <= len(completion) <= 2500:
                samples.append(CodeSample(f"stdlib:{name}.{node.name}", prompt, completion))
    rng = random.Random(0)
    rng.shuffle(samples)
    return samples[:limit]


# -- detection ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Method:
    """One way of detecting: a key, a gate, and whether the model is needed (SWEET)."""

    name: str
    generated_by: str  # which scheme's generations are its positives
    key_name: str
    language: str | None  # code gate
    needs_model: bool = False


METHODS = (
    Method("KGW (plain)", "kgw", "kgw", None),
    Method("KGW + aimark code gate", "kgw", "kgw", "python"),
    Method("SynthID (plain)", "synthid", "synthid", None),
    Method("SynthID + aimark code gate", "synthid", "synthid", "python"),
    Method("Gumbel (plain)", "gumbel", "gumbel", None),
    Method("Gumbel + aimark code gate", "gumbel", "gumbel", "python"),
    Method("SWEET (needs the model)", "sweet", "sweet", None, needs_model=True),
    Method("SynthID + comment boost + code detector", "synthid-comments", "synthid", "python"),
)


class Scorer:
    """p-values per (method, text); SWEET's need one forward pass of the model per text."""

    def __init__(self, keys: dict, tokenizer, model_loader: Callable[[], object]):
        from aimark.detect import Detector

        self.detectors = {name: Detector(key, tokenizer, check_tokenizer=False) for name, key in keys.items()}
        self.tokenizer = tokenizer
        from bench.code.benchmark import SWEET_MASKS
        from bench.code.sweet import MaskCache

        self._sweet_masks = MaskCache(SWEET_MASKS, model_loader)

    def p_value(self, method: Method, completion: str, prompt: str | None) -> float:
        from aimark.detect import DetectionInputError

        detector = self.detectors[method.key_name]
        try:
            if method.needs_model:
                return self._sweet(detector, completion, prompt)
            return detector.detect(completion, prompt=prompt, with_tokens=False, language=method.language).p_value
        except DetectionInputError:
            return 1.0  # nothing scorable: the detector cannot say "watermarked"

    def _sweet(self, detector, completion: str, prompt: str | None) -> float:
        ids, scored_from, mask = self._sweet_masks[(prompt or "", completion)]
        return detector.detect_ids(ids, scored_from=scored_from, allowed=mask).p_value

    def prefetch_sweet(self, pairs) -> None:
        """One batched forward pass per new (prompt, completion): SWEET's detector needs the model."""
        self._sweet_masks.ensure(pairs)


def auroc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """P(score of a positive > score of a negative), ties counted half; scores are -log p."""
    from scipy.stats import rankdata

    pos = -np.log(np.clip(np.asarray(positives, dtype=float), 1e-300, 1.0))
    neg = -np.log(np.clip(np.asarray(negatives, dtype=float), 1e-300, 1.0))
    if not len(pos) or not len(neg):
        return float("nan")
    ranks = rankdata(np.concatenate([pos, neg]))
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def rates(p_values: Sequence[float]) -> dict[str, float]:
    values = np.asarray(p_values, dtype=float)
    return {f"{alpha:g}": float((values <= alpha).mean()) if len(values) else float("nan") for alpha in ALPHAS}


# -- the per-class study ------------------------------------------------------------------
def class_signal(detector, texts: Sequence[tuple[str, str]]) -> dict[str, dict[str, float]]:
    """Per lexical class: units kept, mean normalised excess over the null, and the z of the pooled count.

    This is what chose ``aimark.schemes.code.CODE_FREE_CLASSES`` (see :func:`gate_rule`).
    """
    from aimark.detect import DetectionInputError
    from aimark.schemes.base import BinomialNull
    from aimark.schemes.code import token_classes

    scheme = detector.schemes[0]
    null = scheme.null
    if isinstance(null, BinomialNull):
        mean0 = null.trials_per_unit * null.success_probability
        var0 = null.trials_per_unit * null.success_probability * (1 - null.success_probability)
    else:  # GammaNull: one Exp(1) value per unit
        mean0, var0 = 1.0, 1.0
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for completion, prompt in texts:
        try:
            ids, scored_from, offsets = detector.encode(completion, prompt=prompt)
        except DetectionInputError:
            continue
        classes = token_classes(completion, offsets, "python")
        for label in set(classes):
            allowed = np.zeros(len(ids), dtype=bool)
            allowed[scored_from:] = [c == label for c in classes]
            _, values = detector.scored_units(scheme, ids, scored_from, allowed)
            totals[label][0] += float(values.sum()) - mean0 * len(values)
            totals[label][1] += len(values)
    report = {}
    for label, (excess, count) in sorted(totals.items(), key=lambda item: -item[1][1]):
        report[label] = {
            "units": int(count),
            "units_per_text": count / max(1, len(texts)),
            "excess_per_unit_sd": excess / count / math.sqrt(var0) if count else 0.0,
            "z": excess / math.sqrt(var0 * count) if count else 0.0,
        }
    return report


def gate_rule(signal: dict[str, dict[str, float]]) -> frozenset[str]:
    """Classes whose excess per unit is at least half the mean excess per unit over all classes.

    Adding n_c units of excess e_c to a count of N units with mean excess m raises its expected z
    roughly when e_c > m / 2: weaker classes dilute the count more than they add to it.
    """
    from aimark.schemes.code import PROSE

    units = sum(row["units"] for row in signal.values())
    mean = sum(row["excess_per_unit_sd"] * row["units"] for row in signal.values()) / max(1, units)
    return frozenset(label for label, row in signal.items() if row["excess_per_unit_sd"] >= mean / 2) | {PROSE}


def gated_p_value(
    detector, completion: str, prompt: str, keep: Callable[[list[tuple[int, int]]], np.ndarray] | None, language: str | None = None
) -> float:
    """p-value of ``completion`` (``prompt`` as context) scoring only the tokens ``keep(offsets)`` marks.

    ``keep`` gets the completion tokens' character offsets and returns one flag per token; ``None``
    scores every token. ``language`` scores with the code profile (``Detector.schemes_for``). A text
    left with nothing to score counts as not detected (p = 1).
    """
    from aimark.detect import DetectionInputError

    try:
        ids, scored_from, offsets = detector.encode(completion, prompt=prompt)
        allowed = None
        if keep is not None:
            allowed = np.zeros(len(ids), dtype=bool)
            allowed[scored_from:] = keep(offsets)
        return detector.detect_ids(ids, scored_from=scored_from, allowed=allowed, language=language).p_value
    except DetectionInputError:
        return 1.0


def gate_check(detector, positives, negatives, gates: dict[str, frozenset[str] | None]) -> dict[str, dict]:
    """TPR, measured FPR and AUROC of ``detector`` with each named class set (``None`` = every token)."""
    from aimark.schemes.code import free_token_mask

    def p_value(completion: str, prompt: str, classes) -> float:
        # Every row with the code profile (SynthID's scored layers), so rows differ only by the classes counted.
        keep = None if classes is None else (lambda offsets: free_token_mask(completion, offsets, "python", classes))
        return gated_p_value(detector, completion, prompt, keep, language="python")

    out = {}
    for name, classes in gates.items():
        pos = [p_value(c, p, classes) for c, p in positives]
        neg = [p_value(c, p, classes) for c, p in negatives]
        out[name] = {"classes": sorted(classes) if classes is not None else None, "tpr": rates(pos), "fpr": rates(neg), "auroc": auroc(pos, neg),
                     "positives": len(pos), "negatives": len(neg)}
    return out


def layer_study(detector, halves: dict[str, list[tuple[str, str]]]) -> dict:
    """SynthID: per tournament layer, the excess of the watermarked units' bits, and the pooled z of the count
    over the first D layers for every D, per half of the problems (code gate on). The D where z peaks is
    what ``aimark.schemes.code.CODE_SYNTHID_LAYERS`` ships."""
    from aimark.detect import DetectionInputError
    from aimark.schemes.code import free_classes_for, free_token_mask

    scheme = detector.schemes[0]
    out = {}
    for half, texts in halves.items():
        counts, units = np.zeros(scheme.depth), 0
        for completion, prompt in texts:
            try:
                ids, scored_from, offsets = detector.encode(completion, prompt=prompt)
            except DetectionInputError:
                continue
            allowed = np.zeros(len(ids), dtype=bool)
            allowed[scored_from:] = free_token_mask(completion, offsets, "python", free_classes_for(scheme.name))
            # Count of the first D layers for each D; per-layer counts are its differences.
            firsts = [detector.scored_units(scheme.with_scored_layers(d), ids, scored_from, allowed)[1].sum() for d in range(1, scheme.depth + 1)]
            counts += np.diff(np.asarray(firsts, dtype=float), prepend=0.0)
            units += len(detector.scored_units(scheme, ids, scored_from, allowed)[1])
        q = scheme.null.success_probability
        excess = counts / max(units, 1) - q
        z = np.cumsum(counts - q * units) / np.sqrt(q * (1 - q) * units * np.arange(1, scheme.depth + 1))
        out[half] = {"units": units, "excess_per_layer": excess.tolist(), "z_first_layers": z.tolist(), "best_layers": int(np.argmax(z)) + 1}
    return out


def gate_selection(problems, completions: dict[str, list[str]], detectors: dict, human: list) -> dict:
    """Per scheme: per-class signal on the even problems, the rule's class set, and a check on the odd ones."""
    from aimark.schemes.code import DEFAULT_FREE_CLASSES, free_classes_for

    study, checks = {}, {}
    for key_name in ("synthid", "gumbel", "kgw"):
        if key_name not in completions:
            continue
        detector = detectors[key_name]
        halves = {parity: [(c, p.prompt) for i, (p, c) in enumerate(zip(problems, completions[key_name])) if i % 2 == parity] for parity in (0, 1)}
        study[key_name] = {"watermarked (even problems)": class_signal(detector, halves[0])}
        if "none" in completions:
            study[key_name]["no watermark (null check)"] = class_signal(detector, [(c, p.prompt) for p, c in zip(problems, completions["none"])])
        odd = [p for i, p in enumerate(problems) if i % 2 == 1]
        negatives = [(p.canonical_solution, p.prompt) for p in odd] + [(h.completion, h.prompt) for h in human]
        if "none" in completions:
            negatives += [(c, p.prompt) for i, (p, c) in enumerate(zip(problems, completions["none"])) if i % 2 == 1]
        rule = gate_rule(study[key_name]["watermarked (even problems)"])
        checks[key_name] = {
            "rule_picks": sorted(rule),
            "aimark_ships": sorted(free_classes_for(key_name)),
            "odd_problems": gate_check(detector, halves[1], negatives, {
                "every token (no class gate)": None,
                "old one-size gate (identifier, string, comment, number)": DEFAULT_FREE_CLASSES,
                "aimark's gate for this scheme": free_classes_for(key_name),
            }),
        }
    layers = {}
    if "synthid" in completions:
        layers = layer_study(detectors["synthid"], {
            f"{name} problems": [(c, p.prompt) for i, (p, c) in enumerate(zip(problems, completions["synthid"])) if i % 2 == parity]
            for name, parity in (("even", 0), ("odd", 1))})
    return {"class_study": study, "gate_check": checks, "layer_study": layers}


# -- the whole evaluation ---------------------------------------------------------------------
def evaluate(
    problems, generations: dict, keys: dict, *, out: Path, human_limit: int = MAX_HUMAN_FUNCTIONS, previous: dict | None = None
) -> dict:
    """The whole evaluation; with ``previous`` (an earlier code.json of the same generations) only the
    detectors that need no model are re-scored: pass@1 and SWEET's rows are kept (``--rescore``)."""
    from rich.progress import Progress

    from aimark.engines import CODE_MODEL, load_model, load_tokenizer

    from bench.code.benchmark import BATCH_SIZE, GENERATED_SCHEMES, MAX_NEW_TOKENS, SAMPLING

    began = time.perf_counter()
    tokenizer = load_tokenizer(CODE_MODEL)
    scorer = Scorer(keys, tokenizer, lambda: load_model(CODE_MODEL))
    rng = np.random.default_rng(0)
    ids = [p.task_id for p in problems]
    schemes = [s for s in GENERATED_SCHEMES if all((s, t) in generations for t in ids)]
    completions = {s: [generations[(s, t)]["completion"] for t in ids] for s in schemes}

    # 1. pass@1 ------------------------------------------------------------------------
    jobs = [] if previous else [(s, i) for s in ["canonical", *schemes] for i in range(len(problems))]
    passed: dict[str, np.ndarray] = {s: np.zeros(len(problems)) for s in ["canonical", *schemes]}
    with Progress() as bar, ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        task = bar.add_task("running HumanEval tests", total=len(jobs))

        def run(job):
            scheme, index = job
            problem = problems[index]
            completion = problem.canonical_solution if scheme == "canonical" else completions[scheme][index]
            return job, run_program(humaneval_program(problem, completion))

        for (scheme, index), ok in pool.map(run, jobs):
            passed[scheme][index] = ok
            bar.advance(task)
    quality = dict(previous["quality"]) if previous else {}
    for scheme in [] if previous else ["canonical", *schemes]:
        k, n = int(passed[scheme].sum()), len(problems)
        row = {"passed": k, "n": n, "pass@1": k / n, "ci95": wilson(k, n)}
        if scheme not in ("canonical", "none") and "none" in passed:
            row["difference_vs_none"] = float(passed[scheme].mean() - passed["none"].mean())
            row["difference_ci95"] = paired_difference_ci(passed[scheme], passed["none"], rng)
        if scheme != "canonical":
            row["mean_tokens"] = float(np.mean([generations[(scheme, t)]["num_tokens"] for t in ids]))
        quality[scheme] = row

    # 2. detection: positives per method, shared negatives --------------------------------
    human = stdlib_functions(human_limit)
    negatives: dict[str, list[CodeSample]] = {
        "human: HumanEval canonical solutions": [CodeSample(f"canonical:{p.task_id}", p.prompt, p.canonical_solution) for p in problems],
        f"human: standard-library functions ({len(human)})": human,
    }
    if "none" in schemes:
        negatives["model, no watermark"] = [CodeSample(f"none:{p.task_id}", p.prompt, c) for p, c in zip(problems, completions["none"])]
    methods = [m for m in METHODS if m.generated_by in schemes and not (previous and m.needs_model)]
    edit_rng = random.Random(1)
    kept = [m.name for m in METHODS if previous and m.needs_model and m.name in previous["detection"]]
    detection: dict[str, dict] = {name: previous["detection"][name] for name in kept}
    robustness: dict[str, dict] = {name: previous["robustness"][name] for name in kept}
    with Progress() as bar:
        task = bar.add_task("detecting", total=len(methods))
        for method in methods:
            # SWEET needs a forward pass of the model per text (~2 s on 2 CPU cores): it is scored on
            # subsets, whose sizes the report states.
            take = (lambda items, n: items[:n]) if method.needs_model else (lambda items, n: items)

            def score(samples: Sequence[CodeSample], mode: str) -> list[float]:
                pairs = [(s.completion, s.prompt) if mode == "completion" else (s.file, None) for s in samples]
                if method.needs_model:
                    scorer.prefetch_sweet([(prompt or "", text) for text, prompt in pairs])
                return [scorer.p_value(method, text, prompt) for text, prompt in pairs]

            per_set = {label: take(samples, SWEET_NEGATIVES_PER_SET) for label, samples in negatives.items()}
            negative_completion = {label: score(samples, "completion") for label, samples in per_set.items()}
            attack_set = take(negatives_file_subset(per_set), SWEET_FILE_NEGATIVES)
            negative_file = score(attack_set, "file")
            all_neg = [p for values in negative_completion.values() for p in values]
            positives = [CodeSample(p.task_id, p.prompt, c) for p, c in zip(problems, completions[method.generated_by])]
            clean = score(positives, "completion")
            attacked_positives = take(positives, SWEET_ATTACK_PROBLEMS)
            clean_file = score(attacked_positives, "file")
            detection[method.name] = {
                "generated_by": method.generated_by,
                "needs_model": method.needs_model,
                "positives": len(positives),
                "negatives": {label: len(values) for label, values in negative_completion.items()},
                "tpr": rates(clean),
                "auroc": auroc(clean, all_neg),
                "fpr_by_negative_set": {label: rates(values) for label, values in negative_completion.items()},
                "auroc_by_negative_set": {label: auroc(clean, values) for label, values in negative_completion.items()},
                "median_p": float(np.median(clean)),
            }
            attacked: dict[str, dict] = {
                "none (whole file)": {"tpr": rates(clean_file), "auroc": auroc(clean_file, negative_file), "failed": 0, "n": len(clean_file)}
            }
            for attack_name, attack in FILE_ATTACKS.items():
                edited, failed = [], 0
                for sample in attacked_positives:
                    try:
                        edited.append(CodeSample(sample.source, "", attack(sample.file)))
                    except AttackFailed:
                        failed += 1
                values = score(edited, "file")
                attacked[attack_name] = {"tpr": rates(values), "auroc": auroc(values, negative_file), "failed": failed, "n": len(values)}
            token_edited = [CodeSample(s.source, s.prompt, random_token_edit(s.completion, edit_rng, tokenizer)) for s in attacked_positives]
            values = score(token_edited, "completion")
            attacked["10% random token edit (completion)"] = {"tpr": rates(values), "auroc": auroc(values, all_neg), "failed": 0, "n": len(values)}
            robustness[method.name] = attacked
            bar.advance(task)

    # 3. which lexical classes carry the signal (selection: even problems; check: odd ones) ---------
    selection = gate_selection(problems, completions, scorer.detectors, human)
    order = [m.name for m in METHODS]
    detection = dict(sorted(detection.items(), key=lambda item: order.index(item[0])))
    robustness = dict(sorted(robustness.items(), key=lambda item: order.index(item[0])))

    report = {
        "model": CODE_MODEL,
        "problems": len(problems),
        "samples_per_problem": 1,
        "sampling": {**SAMPLING, "max_new_tokens": MAX_NEW_TOKENS, "batch_size": BATCH_SIZE},
        "keys": {name: {"scheme": key.scheme, "params": {k: v for k, v in key.params.items() if k != "keys"}} for name, key in keys.items()},
        "quality": quality,
        "detection": detection,
        "robustness": robustness,
        **selection,
        "negatives": {label: len(samples) for label, samples in negatives.items()},
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "evaluation_seconds": time.perf_counter() - began,
        "rescored": bool(previous),  # pass@1 and the model-needing rows come from the run before
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{SINGLE_SAMPLE}.json").write_text(json.dumps(report, indent=1, default=float))
    (out / f"{SINGLE_SAMPLE}.md").write_text(render_markdown(report))
    plot(report, out / f"{SINGLE_SAMPLE}.png")
    print((out / f"{SINGLE_SAMPLE}.md").read_text())
    return report


# -- report ----------------------------------------------------------------------------------
def _pct(value: float) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}"


def render_markdown(report: dict) -> str:
    q, d, r = report["quality"], report["detection"], report["robustness"]
    lines = [
        "# Code watermark benchmark (HumanEval)",
        "",
        f"Model {report['model']} (Q4_K_M GGUF, de-quantized to float32), {report['problems']} HumanEval problems, "
        f"{report['samples_per_problem']} sample per problem and scheme; sampling {report['sampling']}. "
        "Made by `python -m bench.code` (one run: generation, then evaluation).",
        "",
        "## Quality: pass@1",
        "",
        "| scheme | pass@1 % | 95% CI | vs no watermark (points, paired 95% CI) | mean tokens |",
        "|---|---:|---|---|---:|",
    ]
    for scheme, row in q.items():
        ci = f"{_pct(row['ci95'][0])}–{_pct(row['ci95'][1])}"
        diff = ""
        if "difference_vs_none" in row:
            lo, hi = row["difference_ci95"]
            diff = f"{100 * row['difference_vs_none']:+.1f} ({100 * lo:+.1f} to {100 * hi:+.1f})"
        lines.append(f"| {scheme} | {_pct(row['pass@1'])} | {ci} | {diff} | {row.get('mean_tokens', 0):.0f} |")
    lines += [
        "",
        "## Detection (completion scored, HumanEval prompt as context)",
        "",
        "TPR at FPR α uses the exact p-value as threshold (p ≤ α); the FPR columns are the measured share of "
        f"negatives at p ≤ α (negatives: {', '.join(f'{k} ({v})' for k, v in report['negatives'].items())}). "
        "AUROC: -log p of positives against all negatives.",
        "",
        "| method | needs model | TPR @1e-2 | TPR @1e-3 | AUROC | median p | measured FPR @1e-2 / 1e-3 (all negatives) | positives / negatives |",
        "|---|---|---:|---:|---:|---:|---|---|",
    ]
    for name, row in d.items():
        fprs = row["fpr_by_negative_set"]
        sizes = row["negatives"]
        pooled = {a: sum(f[a] * sizes[label] for label, f in fprs.items()) / max(1, sum(sizes.values())) for a in ("0.01", "0.001")}
        lines.append(
            f"| {name} | {'yes' if row['needs_model'] else 'no'} | {_pct(row['tpr']['0.01'])} | {_pct(row['tpr']['0.001'])} | "
            f"{row['auroc']:.3f} | {row['median_p']:.2g} | {_pct(pooled['0.01'])} / {_pct(pooled['0.001'])} | "
            f"{row['positives']} / {sum(row['negatives'].values())} |"
        )
    lines += ["", "Per negative set (AUROC; measured FPR at 1e-2):", ""]
    for name, row in d.items():
        parts = [f"{label}: {row['auroc_by_negative_set'][label]:.3f}; {_pct(row['fpr_by_negative_set'][label]['0.01'])}%" for label in row["auroc_by_negative_set"]]
        lines.append(f"- {name}: " + " · ".join(parts))
    attack_names = list(next(iter(r.values())).keys()) if r else []
    lines += [
        "",
        "## Robustness (TPR at p ≤ 1e-2 / AUROC, after the edit)",
        "",
        "Whole-file attacks run on prompt + completion as one file, scored without context; failures = inputs the tool rejected. "
        f"SWEET (one model forward pass per text) is scored on the first {SWEET_ATTACK_PROBLEMS} problems here and on "
        f"{SWEET_NEGATIVES_PER_SET} negatives per set above; the other methods on all.",
        "",
        "| method | " + " | ".join(attack_names) + " |",
        "|---|" + "---|" * len(attack_names),
    ]
    for name, attacks in r.items():
        cells = []
        for attack in attack_names:
            a = attacks[attack]
            cell = f"{_pct(a['tpr']['0.01'])} / {a['auroc']:.3f}"
            if a.get("failed"):
                cell += f" ({a['failed']} failed)"
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for key_name, groups in report["class_study"].items():
        lines += ["", f"## Which tokens carry the signal ({key_name} key; units = scored units after dedup)", ""]
        lines += ["| set | class | units/text | excess per unit (sd) | z (pooled) |", "|---|---|---:|---:|---:|"]
        for group, classes in groups.items():
            for label, row in classes.items():
                lines.append(f"| {group} | {label} | {row['units_per_text']:.1f} | {row['excess_per_unit_sd']:+.3f} | {row['z']:+.1f} |")
    checks = report.get("gate_check", {})
    if checks:
        lines += [
            "",
            "## The code gate per scheme (chosen on even problems, checked on odd ones)",
            "",
            "Rule: a class counts when its excess per unit (tables above, even problems) is at least half the mean "
            "excess per unit of all the scheme's units. The check scores the odd problems' completions against the "
            "odd canonical solutions, the standard-library functions and the odd unwatermarked completions.",
            "",
            "| scheme | gate | classes counted | TPR @1e-2 | TPR @1e-3 | AUROC | measured FPR @1e-2 | positives / negatives |",
            "|---|---|---|---:|---:|---:|---:|---|",
        ]
        for key_name, check in checks.items():
            for gate, row in check["odd_problems"].items():
                classes = "all" if row["classes"] is None else ", ".join(row["classes"])
                lines.append(
                    f"| {key_name} | {gate} | {classes} | {_pct(row['tpr']['0.01'])} | {_pct(row['tpr']['0.001'])} | {row['auroc']:.3f} | "
                    f"{_pct(row['fpr']['0.01'])} | {row['positives']} / {row['negatives']} |"
                )
        lines += [""] + [
            f"- {key_name}: the rule picks {', '.join(c['rule_picks'])}; aimark ships {', '.join(c['aimark_ships'])}"
            + ("" if c["rule_picks"] == c["aimark_ships"] else " (**differs**: update CODE_FREE_CLASSES or say why)")
            for key_name, c in checks.items()
        ]
    layers = report.get("layer_study", {})
    if layers:
        from aimark.schemes.code import CODE_SYNTHID_LAYERS

        depth = len(next(iter(layers.values()))["excess_per_layer"])
        lines += ["", "## Which SynthID layers carry the signal (synthid key, code gate on)", "",
                  "Excess = share of 1-bits at that tournament layer minus 1/2 over the watermarked completions' scored units; "
                  "z = pooled z of the count over the first D layers. Each layer sharpens the distribution the next reweights, "
                  "so on low-entropy code the last layers find nothing left to move.", "",
                  "| half | units | " + " | ".join(f"layer {d}" for d in (1, 5, 10, 15, 20, 25, depth)) + " | z at D = 10 / 20 / "
                  f"{depth} | D with the largest z |", "|---|---:|" + "---:|" * 7 + "---|---:|"]
        for half, row in layers.items():
            ex, z = row["excess_per_layer"], row["z_first_layers"]
            lines.append(f"| {half} | {row['units']} | " + " | ".join(f"{ex[d - 1]:+.3f}" for d in (1, 5, 10, 15, 20, 25, depth))
                         + f" | {z[9]:.1f} / {z[19]:.1f} / {z[depth - 1]:.1f} | {row['best_layers']} |")
        means = {half: (np.mean(row["excess_per_layer"][:20]), np.mean(row["excess_per_layer"][20:])) for half, row in layers.items()}
        lines += ["", "Mean excess per bit, layers 1–20 / 21–" + f"{depth}: " + "; ".join(f"{h} {a:+.4f} / {b:+.4f}" for h, (a, b) in means.items())
                  + f". aimark's code detector counts the first {CODE_SYNTHID_LAYERS} layers (`CODE_SYNTHID_LAYERS`)."]
    if report.get("rescored"):
        lines += ["", "Detection rows of the methods that need no model were re-scored on the same generations after a detector "
                      "change (`python -m bench.code --rescore`); pass@1 and SWEET's rows come from the full run before."]
    lines += ["", f"Evaluation took {report['evaluation_seconds'] / 60:.1f} min on {report['machine']['cpus']} CPUs.", ""]
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    quality, detection = report["quality"], report["detection"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    base = quality.get("none", {}).get("pass@1")
    for name, row in detection.items():
        q = quality[row["generated_by"]]
        x = 100 * q["pass@1"]
        lo, hi = 100 * q["ci95"][0], 100 * q["ci95"][1]
        ax.errorbar(x, row["auroc"], xerr=[[x - lo], [hi - x]], fmt="s" if row["needs_model"] else "o", capsize=3, label=name)
    if base is not None:
        ax.axvline(100 * base, color="grey", linestyle="--", label="no watermark pass@1")
    ax.set_xlabel("HumanEval pass@1 (%), 95% CI")
    ax.set_ylabel("AUROC (watermarked vs human + unwatermarked code)")
    ax.set_title("Code watermarks: correctness vs detectability")
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
