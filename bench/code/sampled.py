"""Evaluation of the sampled run (``python -m bench.code --sampled``): n completions per problem.

What it measures, every figure from the same generations:

1. pass@1 per scheme with n samples per problem (per-problem pass rates, bootstrap CIs over problems, paired
   differences against no watermark).
2. Model-free detection of the code-skeleton key (and of SynthID over token ids, one sample per problem) on
   completions (the HumanEval prompt as context) and on whole files (prompt + completion) as generated, after
   black, after ruff format, after renaming locals and after stripping comments: the formatter target is TPR at
   1e-3 after each formatter against the TPR of the same files as generated.
3. Detection with the generating model (``Detector.detect_with_model``: every keyed bit weighted by the model's
   sampling distribution) against SWEET's generation and detection, on single completions.
4. Files of k functions (the length study's setting), as generated and after each formatter.

Every choice (the detector variant for section 2, the model-weighted variant for section 3) is made on the even
problems and the headline figures are the odd problems' alone; the even half's figures are reported beside
them. The model's next-token distributions (one forward pass per text, the prompt run once per problem) are
cached in bench/cache/code/distributions.pkl. Writes bench/results/code.md and code.json.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import platform
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.code.attacks import FILE_ATTACKS, AttackFailed
from bench.code.benchmark import CACHE, MAX_NEW_TOKENS, SAMPLED_SCHEMES, SAMPLING, Problem
from bench.code.evaluation import auroc, humaneval_program, paired_difference_ci, rates, run_program, stdlib_functions
from bench.code.sweet import SWEET_ENTROPY_THRESHOLD

DISTRIBUTIONS = CACHE / "distributions.pkl"
# Standard-library functions scored with the model (one forward pass each, ~300 tokens): a fixed subset.
MODEL_HUMAN_FUNCTIONS = 100
# Even problems whose completions are run through the model to choose the model-weighted variant.
CHOICE_PROBLEMS = 40
FUNCTIONS_PER_FILE = (1, 2, 4, 8)
FORMATTERS = ("black", "ruff format", "black -l 40")
GATE_THRESHOLDS = (0.5, 1.2, 2.0)  # entropy gates (nats) compared with the weights on the even problems


@dataclass(frozen=True)
class Text:
    """One text a verifier holds: ``prompt`` is context (never scored), ``completion`` is scored."""

    label: str
    problem: int  # index into the problems, -1 for a standard-library function
    prompt: str
    completion: str

    @property
    def file(self) -> str:
        return self.prompt + self.completion


def _bootstrap_ci(values: np.ndarray, rng: np.random.Generator, rounds: int = 20000) -> tuple[float, float]:
    picks = rng.integers(0, len(values), size=(rounds, len(values)))
    means = values[picks].mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def _p(detector_call: Callable[[], float]) -> float:
    from aimark.detect import DetectionInputError

    try:
        return detector_call()
    except DetectionInputError:
        return 1.0  # nothing scorable: the detector cannot say "watermarked"


# -- 1. pass@1 -------------------------------------------------------------------------------------------
def pass_at_1(problems: list[Problem], by_scheme: dict[str, list[Text]], rng) -> dict:
    from rich.progress import Progress

    jobs = [("canonical", Text("canonical", i, p.prompt, p.canonical_solution)) for i, p in enumerate(problems)]
    jobs += [(scheme, text) for scheme, texts in by_scheme.items() for text in texts]
    outcome: dict[str, dict[int, list[bool]]] = {}
    with Progress() as bar, ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        task = bar.add_task("running HumanEval tests", total=len(jobs))

        def run(job):
            scheme, text = job
            return scheme, text.problem, run_program(humaneval_program(problems[text.problem], text.completion))

        for scheme, index, ok in pool.map(run, jobs):
            outcome.setdefault(scheme, {}).setdefault(index, []).append(ok)
            bar.advance(task)
    rates_by_problem = {s: np.array([np.mean(outcome[s].get(i, [0.0])) for i in range(len(problems))]) for s in outcome}
    quality = {}
    for scheme, values in rates_by_problem.items():
        row = {"pass@1": float(values.mean()), "ci95": _bootstrap_ci(values, rng), "samples_per_problem": len(outcome[scheme][0]),
               "programs": int(sum(len(v) for v in outcome[scheme].values()))}
        if scheme not in ("canonical", "none") and "none" in rates_by_problem:
            row["difference_vs_none"] = float(values.mean() - rates_by_problem["none"].mean())
            row["difference_ci95"] = paired_difference_ci(values, rates_by_problem["none"], rng)
        quality[scheme] = row
    return quality


# -- 2. model-free detection ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelFree:
    name: str
    key_name: str
    language: str | None  # the code gate (and the code profile: SynthID's first 20 layers)


def model_free_variants() -> list[ModelFree]:
    return [
        ModelFree("code-skeleton, every token (30 layers)", "synthid-code", None),
        ModelFree("code-skeleton, code gate (python, 20 layers)", "synthid-code", "python"),
    ]


TOKEN_UNITS = ModelFree("SynthID over token ids, code gate (python, 20 layers)", "synthid", "python")


def completion_p(detector, method: ModelFree, text: Text) -> float:
    return _p(lambda: detector.detect(text.completion, prompt=text.prompt, with_tokens=False, language=method.language).p_value)


def file_p(detector, method: ModelFree, source: str) -> float:
    return _p(lambda: detector.detect(source, with_tokens=False, language=method.language).p_value)


_EDITED: dict[tuple[str, str], str | None] = {}


def edited_file(attack: str, source: str) -> str | None:
    """``source`` after ``attack`` (None where the tool refuses it), computed once per file."""
    if (attack, source) not in _EDITED:
        try:
            _EDITED[(attack, source)] = FILE_ATTACKS[attack](source)
        except AttackFailed:
            _EDITED[(attack, source)] = None
    return _EDITED[(attack, source)]


def attacked_files(texts: Sequence[Text]) -> dict[str, list[str | None]]:
    """Each text's whole file as generated and after each attack (None where the tool refused the file)."""
    out: dict[str, list[str | None]] = {"as generated": [t.file for t in texts]}
    for name in FILE_ATTACKS:
        out[name] = [edited_file(name, t.file) for t in texts]
    return out


def keyed_pairs(detector, source: str) -> set[tuple[int, int]]:
    """The (context key, unit) pairs detection scores in ``source``: what a formatter must leave for the watermark."""
    from aimark.detect import DetectionInputError

    scheme = detector.schemes[0]
    try:
        ids, scored_from, _ = detector.encode(source)
    except DetectionInputError:
        return set()
    positions, contexts, _ = detector.scored_unit_contexts(scheme, ids, scored_from)
    return set(zip(contexts.tolist(), scheme.unit_of(ids[positions]).tolist()))


def formatter_rows(detector, method: ModelFree, positives: Sequence[Text], negatives: Sequence[Text]) -> dict:
    """Whole-file detection as generated and after each attack. TPR and its ratio to the as-generated TPR are over
    the files every formatter accepted, so the ratio compares the same files; AUROC against the negatives' files
    edited the same way."""
    files = attacked_files(positives)
    negative_files = attacked_files(negatives)
    accepted = [i for i in range(len(positives)) if all(files[f][i] is not None for f in FORMATTERS)]
    base = [file_p(detector, method, files["as generated"][i]) for i in accepted]
    rows = {}
    for attack, edited in files.items():
        kept = [i for i in accepted if edited[i] is not None]
        values = [file_p(detector, method, edited[i]) for i in kept]
        negatives_p = [file_p(detector, method, source) for source in negative_files[attack] if source is not None]
        row = {"tpr": rates(values), "auroc": auroc(values, negatives_p), "files": len(values), "refused": len(positives) - len(kept),
               "fpr": rates(negatives_p), "negative_files": len(negatives_p)}
        base_kept = [base[accepted.index(i)] for i in kept]
        survived = []
        for i in kept:
            before = keyed_pairs(detector, files["as generated"][i])
            if before:
                survived.append(len(before & keyed_pairs(detector, edited[i])) / len(before))
        row["keyed_pairs_kept"] = float(np.mean(survived)) if survived else float("nan")
        for alpha in ("0.01", "0.001"):
            reference = rates(base_kept)[alpha]
            row[f"ratio_to_as_generated@{alpha}"] = row["tpr"][alpha] / reference if reference else float("nan")
        rows[attack] = row
    return rows


def model_free_detection(problems, by_scheme, negatives_by_set, keys, tokenizer, halves) -> dict:
    from aimark.detect import Detector

    detectors = {name: Detector(keys[name], tokenizer, check_tokenizer=False) for name in ("synthid-code", "synthid")}
    out: dict = {"variants": {}, "choice": None}
    variants = model_free_variants()
    for method in [*variants, TOKEN_UNITS]:
        generated_by = method.key_name
        rows = {}
        for half, parity in halves.items():
            positives = [t for t in by_scheme[generated_by] if t.problem % 2 == parity]
            negatives = {label: [t for t in texts if t.problem < 0 or t.problem % 2 == parity] for label, texts in negatives_by_set.items()}
            detector = detectors[method.key_name]
            pos = [completion_p(detector, method, t) for t in positives]
            neg = {label: [completion_p(detector, method, t) for t in texts] for label, texts in negatives.items()}
            pooled = [p for values in neg.values() for p in values]
            rows[half] = {"positives": len(pos), "negatives": {k: len(v) for k, v in neg.items()}, "tpr": rates(pos), "auroc": auroc(pos, pooled),
                          "fpr_by_set": {k: rates(v) for k, v in neg.items()}, "median_p": float(np.median(pos))}
        out["variants"][method.name] = {"key": method.key_name, "language": method.language, "completions": rows}
        print(f"  {method.name}: AUROC even {rows['even']['auroc']:.3f} / odd {rows['odd']['auroc']:.3f}")
    choice = max(variants, key=lambda m: out["variants"][m.name]["completions"]["even"]["auroc"])
    out["choice"] = choice.name
    # Whole files and their edits, odd problems (the headline), for the chosen variant and for token units.
    for method in (choice, TOKEN_UNITS):
        positives = [t for t in by_scheme[method.key_name] if t.problem % 2 == 1]
        negatives = [t for texts in negatives_by_set.values() for t in texts if t.problem < 0 or t.problem % 2 == 1]
        out["variants"][method.name]["files_odd"] = formatter_rows(detectors[method.key_name], method, positives, negatives)
        print(f"  {method.name}: whole files " + ", ".join(
            f"{a} {100 * r['tpr']['0.001']:.1f}%" for a, r in out["variants"][method.name]["files_odd"].items()))
    return out


# -- 3. detection with the model ------------------------------------------------------------------------------
class DistributionCache:
    """The model's next-token distributions per (prompt, completion) as the detector tokenises them, on disk."""

    def __init__(self, path: Path, loader: Callable[[], object], tokenizer):
        self.path, self._loader, self._loaded, self.tokenizer = path, loader, None, tokenizer
        self.items: dict = pickle.loads(path.read_bytes()) if path.exists() else {}
        self.computed = 0

    def ensure(self, detector, texts: Sequence[Text], progress: Callable[[str], None] = print) -> None:
        """Compute what is missing, grouped by prompt (each prompt run once), saving after each group."""
        from aimark.engines.scoring import next_token_distributions

        missing = [t for t in dict.fromkeys(texts) if (t.prompt, t.completion) not in self.items]
        by_prompt: dict[str, list[Text]] = {}
        for text in missing:
            by_prompt.setdefault(text.prompt, []).append(text)
        began = time.perf_counter()
        for number, (prompt, group) in enumerate(by_prompt.items(), start=1):
            if self._loaded is None:
                from aimark.engines import CODE_MODEL, load_model

                self._loaded = load_model(CODE_MODEL)
            encoded = [detector.encode(t.completion, prompt=t.prompt) for t in group]
            start = list(self._loaded.tokenizer("", add_special_tokens=True)["input_ids"])
            prefix = start + encoded[0][0][: encoded[0][1]].tolist()
            sequences = [ids[scored_from:].tolist() for ids, scored_from, _ in encoded]
            for text, dist in zip(group, next_token_distributions(self._loaded, sequences, prefix=prefix)):
                self.items[(text.prompt, text.completion)] = (dist.ids.astype(np.int32), dist.log_probs.astype(np.float32), dist.entropy.astype(np.float32))
            self.computed += len(group)
            if number % 4 == 0 or number == len(by_prompt):
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.path.write_bytes(pickle.dumps(self.items))
                progress(f"  model passes: {number}/{len(by_prompt)} prompts, {self.computed} texts, {time.perf_counter() - began:.0f} s")

    def aligned(self, detector, text: Text):
        """(ids, scored_from, NextTokenDistributions with one row per id) for ``text``."""
        from aimark.detect.with_model import NextTokenDistributions

        ids, scored_from, _ = detector.encode(text.completion, prompt=text.prompt)
        top, log_probs, entropy = self.items[(text.prompt, text.completion)]
        kept = top.shape[1]
        return ids, scored_from, NextTokenDistributions(
            np.concatenate([np.zeros((scored_from, kept), dtype=np.int64), top.astype(np.int64)]),
            np.concatenate([np.full((scored_from, kept), -np.inf), log_probs.astype(np.float64)]),
            np.concatenate([np.full(scored_from, np.nan), entropy.astype(np.float64)]),
        )


def model_weighted_p(detector, cache: DistributionCache, text: Text, sampling) -> float:
    ids, scored_from, distributions = cache.aligned(detector, text)
    return _p(lambda: detector.detect_with_model(ids, distributions, scored_from=scored_from, sampling=sampling).p_value)


def entropy_gated_p(detector, cache: DistributionCache, text: Text, threshold: float) -> float:
    """The key's own statistic over the positions whose raw entropy exceeds ``threshold`` (SWEET's selection)."""
    ids, scored_from, distributions = cache.aligned(detector, text)
    allowed = np.nan_to_num(distributions.entropy, nan=0.0) > threshold
    allowed[:scored_from] = False
    return _p(lambda: detector.detect_ids(ids, scored_from=scored_from, allowed=allowed).p_value)


def with_model_detection(by_scheme, negatives_by_set, keys, tokenizer, halves, cache: DistributionCache, *,
                         human_functions: int = MODEL_HUMAN_FUNCTIONS, choice_problems: int = CHOICE_PROBLEMS) -> dict:
    from aimark.detect import Detector
    from aimark.detect.with_model import Sampling

    sampling = Sampling(SAMPLING["temperature"], SAMPLING["top_k"], SAMPLING["top_p"])
    aimark = Detector(keys["synthid-code"], tokenizer, check_tokenizer=False)
    sweet = Detector(keys["sweet"], tokenizer, check_tokenizer=False)
    # Which texts get a model pass: even problems (the first CHOICE_PROBLEMS of them) for the choice, odd ones all.
    even_problems = sorted({t.problem for t in by_scheme["synthid-code"] if t.problem % 2 == 0})[:choice_problems]

    def chosen(texts, parity):
        return [t for t in texts if t.problem < 0 or (t.problem % 2 == parity and (parity == 1 or t.problem in even_problems))]

    human = [t for t in negatives_by_set["human: standard-library functions"]][:human_functions]
    negative_sets = {label: texts for label, texts in negatives_by_set.items() if not label.startswith("human: standard")}
    negative_sets[f"human: standard-library functions (first {human_functions})"] = human
    texts = {half: {"synthid-code": chosen(by_scheme["synthid-code"], parity), "sweet": chosen(by_scheme["sweet"], parity),
                    "negatives": {label: chosen(items, parity) for label, items in negative_sets.items()}}
             for half, parity in halves.items()}
    everything = [t for half in texts.values() for group in (half["synthid-code"], half["sweet"], *half["negatives"].values()) for t in group]
    cache.ensure(aimark, everything)

    variants: dict[str, Callable[[Detector, Text], float]] = {"weighted by the model (log-likelihood ratios)": lambda d, t: model_weighted_p(d, cache, t, sampling)}
    for threshold in GATE_THRESHOLDS:
        variants[f"entropy gate > {threshold} nats"] = lambda d, t, threshold=threshold: entropy_gated_p(d, cache, t, threshold)
    out: dict = {"aimark": {}, "sweet": {}, "model_free": {}, "sampling": sampling.__dict__}
    rng = np.random.default_rng(0)

    def problems_of(items):
        return [t.problem for t in items]

    for half in halves:
        neg_sets = texts[half]["negatives"]
        neg_problems = [t.problem for items in neg_sets.values() for t in items]
        sweet_pos = [entropy_gated_p(sweet, cache, t, SWEET_ENTROPY_THRESHOLD) for t in texts[half]["sweet"]]
        sweet_neg = {label: [entropy_gated_p(sweet, cache, t, SWEET_ENTROPY_THRESHOLD) for t in items] for label, items in neg_sets.items()}
        out["sweet"][half] = _detection_row(sweet_pos, sweet_neg)
        for name, score in variants.items():
            pos = [score(aimark, t) for t in texts[half]["synthid-code"]]
            neg = {label: [score(aimark, t) for t in items] for label, items in neg_sets.items()}
            row = out["aimark"].setdefault(name, {})[half] = _detection_row(pos, neg)
            # Each detector against its own p-values on the same negative texts: the difference's interval pairs the
            # problems (both schemes' samples and the negatives of a problem are drawn together).
            row["auroc_minus_sweet"] = row["auroc"] - out["sweet"][half]["auroc"]
            row["auroc_minus_sweet_ci95"] = auroc_difference_ci(
                list(zip(problems_of(texts[half]["synthid-code"]), pos)), list(zip(problems_of(texts[half]["sweet"]), sweet_pos)),
                list(zip(neg_problems, [p for values in neg.values() for p in values])),
                list(zip(neg_problems, [p for values in sweet_neg.values() for p in values])), rng)
        method = model_free_variants()[0]
        free_pos = [completion_p(aimark, method, t) for t in texts[half]["synthid-code"]]
        free_neg = {label: [completion_p(aimark, method, t) for t in items] for label, items in neg_sets.items()}
        out["model_free"][half] = _detection_row(free_pos, free_neg)
    out["choice"] = max(variants, key=lambda name: out["aimark"][name]["even"]["auroc"])
    out["even_problems_used"] = len(even_problems)
    out["human_functions"] = len(human)
    return out


def auroc_difference_ci(a_positives: list[tuple[int, float]], b_positives: list[tuple[int, float]],
                        a_negatives: list[tuple[int, float]], b_negatives: list[tuple[int, float]],
                        rng: np.random.Generator, rounds: int = 2000) -> tuple[float, float]:
    """95% bootstrap interval of AUROC(a) - AUROC(b), items given as (problem, p-value); the negatives are the same
    texts in the same order, each scored by its method's own detector.

    The unit resampled is the problem: one draw of the half's problems brings both methods' positives and the
    negatives written for those problems (canonical solutions, unwatermarked samples), so the two AUROCs share
    every draw; negatives tied to no problem (problem < 0: standard-library functions) are resampled one by one,
    the same ones for both methods."""
    empty = np.empty(0)

    def grouped(items):
        out: dict[int, list[float]] = {}
        for problem, p in items:
            out.setdefault(problem, []).append(p)
        return {k: np.asarray(v) for k, v in out.items()}

    a_pos, b_pos = grouped(a_positives), grouped(b_positives)
    a_neg, b_neg = grouped([x for x in a_negatives if x[0] >= 0]), grouped([x for x in b_negatives if x[0] >= 0])
    a_loose = np.asarray([p for problem, p in a_negatives if problem < 0])
    b_loose = np.asarray([p for problem, p in b_negatives if problem < 0])
    problems = np.asarray(sorted(set(a_pos) | set(b_pos)))
    differences = []
    for _ in range(rounds):
        drawn = rng.choice(problems, size=len(problems))
        loose = rng.integers(0, len(a_loose), size=len(a_loose)) if len(a_loose) else np.empty(0, dtype=int)

        def sample(pos, neg, loose_values):
            return (np.concatenate([pos.get(k, empty) for k in drawn]),
                    np.concatenate([neg.get(k, empty) for k in drawn] + [loose_values[loose]]))
        differences.append(auroc(*sample(a_pos, a_neg, a_loose)) - auroc(*sample(b_pos, b_neg, b_loose)))
    return float(np.nanquantile(differences, 0.025)), float(np.nanquantile(differences, 0.975))


def _detection_row(positives: list[float], negatives: dict[str, list[float]]) -> dict:
    pooled = [p for values in negatives.values() for p in values]
    return {"positives": len(positives), "negatives": {k: len(v) for k, v in negatives.items()}, "tpr": rates(positives),
            "auroc": auroc(positives, pooled), "fpr": rates(pooled), "fpr_by_set": {k: rates(v) for k, v in negatives.items()},
            "median_p": float(np.median(positives)) if positives else float("nan")}


# -- 4. files of k functions, with formatters ----------------------------------------------------------------------
def length_rows(detector, method: ModelFree, positives: list[Text], negatives: dict[str, list[Text]], rng_seed: int = 0) -> dict:
    """Files of k odd-problem functions (prompt + completion each), whole file scored, as generated and after each
    formatter; negatives are files of k functions from one negative set."""
    from bench.code.length import groups

    out = {}
    for k in FUNCTIONS_PER_FILE:
        rng = np.random.default_rng(k + rng_seed)
        files = ["".join(t.file + "\n\n" for t in group) for group in groups(positives, k, rng)]
        negative_files = ["".join(t.file + "\n\n" for t in group) for items in negatives.values() for group in groups(items, k, rng)]
        row = {}
        for attack in ("as generated", *FORMATTERS):
            edit = (lambda s: s) if attack == "as generated" else FILE_ATTACKS[attack]

            def apply(source, edit=edit):
                try:
                    return edit(source)
                except AttackFailed:
                    return source  # a file the formatter refuses stays as it was
            pos = [file_p(detector, method, apply(f)) for f in files]
            neg = [file_p(detector, method, apply(f)) for f in negative_files]
            row[attack] = {"tpr": rates(pos), "auroc": auroc(pos, neg), "files": len(pos), "negative_files": len(neg), "fpr": rates(neg)}
        out[str(k)] = row
    return out


# -- the whole evaluation ------------------------------------------------------------------------------------------
def evaluate_sampled(problems: list[Problem], samples: dict, keys: dict, *, out: Path, human_functions: int = MODEL_HUMAN_FUNCTIONS,
                     choice_problems: int = CHOICE_PROBLEMS) -> dict:
    from aimark.engines import CODE_MODEL, load_model, load_tokenizer

    began = time.perf_counter()
    tokenizer = load_tokenizer(CODE_MODEL)
    rng = np.random.default_rng(0)
    by_scheme: dict[str, list[Text]] = {}
    tokens: dict[str, list[int]] = {}
    for scheme, count in SAMPLED_SCHEMES.items():
        rows = [(i, k, samples.get((scheme, p.task_id, k))) for i, p in enumerate(problems) for k in range(count)]
        missing = sum(r is None for _, _, r in rows)
        if missing:
            raise SystemExit(f"{missing} {scheme} completions are missing: run python -m bench.code --sampled --generate-only first")
        by_scheme[scheme] = [Text(f"{scheme}:{problems[i].task_id}:{k}", i, problems[i].prompt, r["completion"]) for i, k, r in rows]
        tokens[scheme] = [r["num_tokens"] for _, _, r in rows]
    halves = {"even": 0, "odd": 1}
    print("1. pass@1")
    quality = pass_at_1(problems, {s: by_scheme[s] for s in SAMPLED_SCHEMES if SAMPLED_SCHEMES[s] > 1}, rng)
    for scheme in quality:
        if scheme in tokens:
            quality[scheme]["mean_tokens"] = float(np.mean(tokens[scheme]))
    human = stdlib_functions()
    negatives_by_set = {
        "human: HumanEval canonical solutions": [Text("canonical", i, p.prompt, p.canonical_solution) for i, p in enumerate(problems)],
        "human: standard-library functions": [Text(h.source, -1, h.prompt, h.completion) for h in human],
        "model, no watermark": by_scheme["none"],
    }
    print("2. model-free detection and formatters")
    model_free = model_free_detection(problems, by_scheme, negatives_by_set, keys, tokenizer, halves)
    print("3. detection with the model vs SWEET")
    cache = DistributionCache(DISTRIBUTIONS, lambda: load_model(CODE_MODEL), tokenizer)
    with_model = with_model_detection(by_scheme, negatives_by_set, keys, tokenizer, halves, cache, human_functions=human_functions,
                                      choice_problems=choice_problems)
    print("4. files of k functions, with formatters")
    from aimark.detect import Detector

    chosen = next(m for m in model_free_variants() if m.name == model_free["choice"])
    odd_negatives = {label: [t for t in texts if t.problem < 0 or t.problem % 2 == 1] for label, texts in negatives_by_set.items()}
    length = {}
    for method in (chosen, TOKEN_UNITS):  # every sample of the odd problems (token-id keys have one per problem)
        odd_positives = [t for t in by_scheme[method.key_name] if t.problem % 2 == 1]
        length[method.name] = length_rows(Detector(keys[method.key_name], tokenizer, check_tokenizer=False), method, odd_positives, odd_negatives)
    report = {
        "model": CODE_MODEL, "problems": len(problems), "samples": SAMPLED_SCHEMES,
        "sampling": {**SAMPLING, "max_new_tokens": MAX_NEW_TOKENS},
        "keys": {name: {"scheme": key.scheme, "params": {k: v for k, v in key.params.items() if k != "keys"}} for name, key in keys.items()
                 if name in ("synthid-code", "synthid", "sweet")},
        "quality": quality, "model_free": model_free, "with_model": with_model, "length": length,
        "negatives": {label: len(texts) for label, texts in negatives_by_set.items()},
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "model_passes_computed": cache.computed, "evaluation_seconds": time.perf_counter() - began,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "code.json").write_text(json.dumps(report, indent=1, default=float))
    (out / "code.md").write_text(render(report))
    print((out / "code.md").read_text())
    return report


# -- report ----------------------------------------------------------------------------------------------------------
def _pct(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}"


def render(report: dict) -> str:
    q, mf, wm = report["quality"], report["model_free"], report["with_model"]
    samples = ", ".join(f"{scheme} {n}" for scheme, n in report["samples"].items())
    lines = [
        "# Code watermark benchmark (HumanEval, sampled run)",
        "",
        f"Model {report['model']} (Q4_K_M GGUF, de-quantized to float32), {report['problems']} HumanEval problems; completions per "
        f"problem: {samples}; sampling {report['sampling']}. Made by `python -m bench.code --sampled` (generation: "
        "`--generate-only --shard 1/2` and `2/2` in parallel; evaluation: `--evaluate-only`). Every choice below was made on the even "
        "problems; **the odd problems' figures are the result**, the even half's are beside them.",
        "",
        "## Quality: pass@1",
        "",
        "Per problem, the share of its samples that pass; pass@1 is the mean over problems; 95% CIs bootstrap the problems (paired for "
        "differences).",
        "",
        "| scheme | samples per problem | pass@1 % | 95% CI | vs no watermark (points, paired 95% CI) | mean tokens |",
        "|---|---:|---:|---|---|---:|",
    ]
    for scheme, row in q.items():
        diff = ""
        if "difference_vs_none" in row:
            lo, hi = row["difference_ci95"]
            diff = f"{100 * row['difference_vs_none']:+.1f} ({100 * lo:+.1f} to {100 * hi:+.1f})"
        mean_tokens = f"{row['mean_tokens']:.0f}" if row.get("mean_tokens") else ""
        lines.append(f"| {scheme} | {row['samples_per_problem']} | {_pct(row['pass@1'])} | {_pct(row['ci95'][0])}–{_pct(row['ci95'][1])} | {diff} | {mean_tokens} |")
    lines += [
        "",
        "## Without the model: completions (HumanEval prompt as context)",
        "",
        "TPR at α uses the exact p-value as threshold (p ≤ α); FPR is measured on the negatives: " + ", ".join(
            f"{label} ({n})" for label, n in report["negatives"].items()) + " (the half's problems only, all standard-library functions).",
        "",
        "| detector | half | positives | TPR @1e-2 | TPR @1e-3 | AUROC | median p | measured FPR @1e-2 / 1e-3 |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, variant in mf["variants"].items():
        for half in ("odd", "even"):
            row = variant["completions"][half]
            fpr = _pooled_fpr(row)
            lines.append(f"| {name}{' (chosen)' if name == mf['choice'] else ''} | {half} | {row['positives']} | {_pct(row['tpr']['0.01'])} | "
                         f"{_pct(row['tpr']['0.001'])} | {row['auroc']:.3f} | {row['median_p']:.2g} | {fpr} |")
    lines += [
        "",
        "## Without the model: whole files after formatters and edits (odd problems)",
        "",
        "A file = HumanEval prompt + completion, scored with no context. TPR and its ratio to the as-generated TPR are over the files every "
        "formatter accepts; AUROC against the negatives' files edited the same way. `black -l 40` wraps most statements (the parentheses "
        "and trailing commas black adds to long lines; HumanEval's short functions rarely have any at 88 columns). "
        "Target: TPR at 1e-3 after black and after ruff format ≥ 90% of the TPR as generated.",
        "",
        "| detector | edit | files | scored (context, unit) pairs kept | TPR @1e-2 | TPR @1e-3 | TPR @1e-3 / as generated | AUROC | refused by the tool | measured FPR @1e-3 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, variant in mf["variants"].items():
        for attack, row in variant.get("files_odd", {}).items():
            ratio = row["ratio_to_as_generated@0.001"]
            lines.append(f"| {name} | {attack} | {row['files']} | {_pct(row['keyed_pairs_kept'])}% | {_pct(row['tpr']['0.01'])} | {_pct(row['tpr']['0.001'])} | "
                         f"{'' if math.isnan(ratio) else f'{100 * ratio:.0f}%'} | {row['auroc']:.3f} | {row['refused']} | {_pct(row['fpr']['0.001'])} |")
    lines += [
        "",
        "## With the model (the provider's detector) against SWEET: single completions",
        "",
        f"aimark: the code-skeleton key's generations (distortion-free SynthID tournament), detected with `detect --with-model` "
        f"(sampling {wm['sampling']}). SWEET: its own generations (entropy-gated KGW, γ 0.25, δ 3.0) and its own detector (entropy > "
        f"{SWEET_ENTROPY_THRESHOLD} nats). The variant aimark reports was chosen on {wm['even_problems_used']} even problems; the same "
        f"negatives for every row (standard-library functions: the first {wm['human_functions']}). The difference to SWEET's AUROC has a "
        f"paired bootstrap interval: problems resampled, each bringing both schemes' samples and its negatives.",
        "",
        "| detector | needs model | half | positives / negatives | TPR @1e-2 | TPR @1e-3 | AUROC | AUROC − SWEET's (95% CI) | median p | measured FPR @1e-2 / 1e-3 |",
        "|---|---|---|---|---:|---:|---:|---|---:|---|",
    ]
    rows = [(f"aimark, {name}" + (" (chosen)" if name == wm["choice"] else ""), "yes", halves) for name, halves in wm["aimark"].items()]
    rows += [("SWEET (its generation and detection)", "yes", wm["sweet"]), ("aimark without the model (code-skeleton, every token)", "no", wm["model_free"])]
    for name, needs, halves in rows:
        for half in ("odd", "even"):
            row = halves[half]
            versus = ""
            if "auroc_minus_sweet_ci95" in row:
                low, high = row["auroc_minus_sweet_ci95"]
                versus = f"{row['auroc_minus_sweet']:+.3f} ({low:+.3f} to {high:+.3f})"
            lines.append(f"| {name} | {needs} | {half} | {row['positives']} / {sum(row['negatives'].values())} | {_pct(row['tpr']['0.01'])} | "
                         f"{_pct(row['tpr']['0.001'])} | {row['auroc']:.3f} | {versus} | {row['median_p']:.2g} | "
                         f"{_pct(row['fpr']['0.01'])} / {_pct(row['fpr']['0.001'])} |")
    lines += ["", "## Files of k functions (odd problems), as generated and after formatters", "",
              "k HumanEval files (prompt + completion) joined into one and scored with no context; negatives: files of k functions from one "
              "negative set. A file a formatter refuses stays as it was.", ""]
    for name, length in report["length"].items():
        ks = list(length)
        lines += [f"**{name}**", "", "| edit | " + " | ".join(f"k = {k}: TPR @1e-3 / AUROC" for k in ks) + " |", "|---|" + "---|" * len(ks)]
        for attack in ("as generated", *FORMATTERS):
            lines.append(f"| {attack} | " + " | ".join(f"{_pct(length[k][attack]['tpr']['0.001'])} / {length[k][attack]['auroc']:.3f}" for k in ks) + " |")
        lines += ["", "Files (positives / negatives): " + " · ".join(
            f"k = {k}: {length[k]['as generated']['files']} / {length[k]['as generated']['negative_files']}" for k in ks) + ".", ""]
    lines += [f"Evaluation took {report['evaluation_seconds'] / 60:.1f} min on {report['machine']['cpus']} CPUs "
              f"({report['model_passes_computed']} model passes computed, the rest cached).", ""]
    return "\n".join(lines)


def _pooled_fpr(row: dict) -> str:
    sizes, fprs = row["negatives"], row["fpr_by_set"]
    total = max(1, sum(sizes.values()))
    return " / ".join(_pct(sum(fprs[label][alpha] * sizes[label] for label in sizes) / total) for alpha in ("0.01", "0.001"))
