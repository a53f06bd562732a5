"""Core benchmark on the embedded model: generation overhead, detection throughput, tokens-to-detect, quality.

Everything is measured in one run on one machine, against transformers' own
watermark processors as the reference, and reported as ratios:

    python -m bench.core                 # full run, writes bench/results/core.{md,json}
    python -m bench.core --quick         # smaller, for a smoke check
    python -m bench.core --detection-only  # re-measure detection only; generation rows kept from core.json

Nothing here is a test: numbers are measured, never asserted.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import platform
import re
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from transformers import (
    LogitsProcessorList,
    SynthIDTextWatermarkingConfig,
    SynthIDTextWatermarkLogitsProcessor,
    WatermarkDetector,
    WatermarkingConfig,
)

from aimark.detect import Detector
from aimark.engines import format_prompt, load_model
from aimark.engines.generation import DEFAULT_REPETITION_PENALTY, _stop_ids
from aimark.keys import generate_key
from aimark.schemes import scheme_for_key
from aimark.schemes.processor import WatermarkLogitsProcessor

RESULTS = Path(__file__).resolve().parents[1] / "results"

PROMPTS = [
    ("ko", "인공지능이 우리 일상생활을 어떻게 바꾸고 있는지 설명하는 짧은 글을 써 주세요."),
    ("ja", "日本の四季の魅力について、短い文章を書いてください。"),
    ("zh", "请写一篇短文，介绍中国茶文化的历史。"),
    ("en", "Write a short essay about how bicycles changed city life."),
    ("code", "Write a Python function that returns the n-th Fibonacci number, with a docstring."),
    ("ko", "한국의 전통 음식 중 하나를 골라 그 역사와 만드는 법을 소개해 주세요."),
    ("zh", "请描述一次难忘的旅行经历。"),
    ("en", "Explain to a child why the sky is blue."),
]

SYNTHID_REFERENCE = {"ngram_len": 5, "keys": list(range(101, 131)), "context_history_size": 1024, "sampling_table_seed": 0, "sampling_table_size": 65536}
# transformers' KGW at its default context width 1; aimark's KGW hashes a window of 4 (the labels say so).
KGW_REFERENCE = {"greenlist_ratio": 0.25, "bias": 2.0, "hashing_key": 15485863, "context_width": 1}
# Row names of earlier results files, for --detection-only over an old core.json.
RENAMED = {"transformers KGW lefthash": "transformers KGW lefthash (h=1)", "transformers KGW selfhash": "transformers KGW selfhash (h=1)"}


def human_passages(count: int) -> list[str]:
    """Human-written English from the standard library's docstrings (offline)."""
    import argparse as a, collections, csv, email, http.client, logging, pathlib, subprocess, textwrap, threading, typing, unittest, urllib.request, zipfile, json as j, decimal, asyncio, sqlite3, tarfile, os  # noqa: E401

    passages, seen = [], set()
    for module in (a, collections, csv, email, http.client, logging, pathlib, subprocess, textwrap, threading, typing, unittest, urllib.request, zipfile, j, decimal, asyncio, sqlite3, tarfile, os):
        for _, obj in inspect.getmembers(module):
            doc = inspect.getdoc(obj)
            if doc and doc not in seen and len(doc.split()) >= 40:
                seen.add(doc)
                passages.append(re.sub(r"\s+", " ", doc))
    return passages[:count]


def timed_generate(loaded, prompts, processors, sampling, tokens):
    tokenizer = loaded.tokenizer
    tokenizer.padding_side = "left"
    inputs = tokenizer([format_prompt(tokenizer, p) for p in prompts], return_tensors="pt", padding=True)
    torch.manual_seed(0)
    start = time.perf_counter()
    with torch.inference_mode():
        output = loaded.model.generate(
            **inputs,
            logits_processor=LogitsProcessorList(processors),
            max_new_tokens=tokens,
            min_new_tokens=tokens,
            repetition_penalty=DEFAULT_REPETITION_PENALTY,
            eos_token_id=_stop_ids(tokenizer, loaded.model.generation_config),
            pad_token_id=tokenizer.pad_token_id,
            **sampling,
        )
    elapsed = time.perf_counter() - start
    new = output[:, inputs["input_ids"].shape[1]:]
    texts = [tokenizer.decode(row, skip_special_tokens=True) for row in new]
    return elapsed, texts, inputs, new


def configurations(loaded, top_k):
    keys = {name: generate_key(name) for name in ("synthid", "kgw", "gumbel")}
    plain = {"do_sample": True, "top_k": top_k, "top_p": 1.0, "temperature": 1.0}

    def ours(name):
        processor = WatermarkLogitsProcessor(scheme_for_key(keys[name]), top_k=top_k, pad_token_id=loaded.tokenizer.pad_token_id)
        return [processor], WatermarkLogitsProcessor.generation_kwargs(), keys[name]

    return {
        "plain (no watermark)": ([], plain, None),
        "aimark synthid": ours("synthid"),
        "aimark kgw (selfhash, h=4)": ours("kgw"),
        "aimark gumbel": ours("gumbel"),
        "transformers SynthID": ([], {**plain, "watermarking_config": SynthIDTextWatermarkingConfig(**SYNTHID_REFERENCE)}, None),
        "transformers KGW lefthash (h=1)": ([], {**plain, "watermarking_config": WatermarkingConfig(seeding_scheme="lefthash", **KGW_REFERENCE)}, None),
        "transformers KGW selfhash (h=1)": ([], {**plain, "watermarking_config": WatermarkingConfig(seeding_scheme="selfhash", **KGW_REFERENCE)}, None),
    }


def perplexity(loaded, inputs, new_tokens) -> float:
    """Perplexity of the generated tokens under the same model (prompt as context)."""
    ids = torch.cat([inputs["input_ids"], new_tokens], dim=1)
    mask = torch.cat([inputs["attention_mask"], torch.ones_like(new_tokens)], dim=1)
    with torch.inference_mode():
        logits = loaded.model(input_ids=ids, attention_mask=mask).logits[:, inputs["input_ids"].shape[1] - 1 : -1]
    nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), new_tokens.reshape(-1), reduction="mean")
    return float(math.exp(nll))


def tokens_to_detect(detector, text, step=5, alpha=1e-3):
    ids = detector.tokenizer(text, add_special_tokens=False)["input_ids"]
    for length in range(step, len(ids) + 1, step):
        try:
            if detector.detect_ids(ids[:length]).p_value < alpha:
                return length
        except ValueError:
            continue
    return None


def bench_generation(loaded, args):
    rows = {}
    prompts = [p for _, p in PROMPTS][: args.batch]
    configs = configurations(loaded, args.top_k)
    # Warm-up (allocator, kernels) outside the timings.
    timed_generate(loaded, prompts[:2], [], {"do_sample": True, "top_k": args.top_k}, 8)
    slow = {"transformers SynthID", "transformers KGW selfhash (h=1)"}
    for name, (processors, sampling, key) in configs.items():
        tokens = args.slow_tokens if name in slow else args.tokens
        times = []
        for _ in range(args.repeats if name not in slow else 1):
            for p in processors:
                p.reset()
            elapsed, texts, inputs, new = timed_generate(loaded, prompts, processors, sampling, tokens)
            times.append(elapsed)
        rows[name] = {"tokens_per_row": tokens, "seconds": min(times), "tokens_per_s": len(prompts) * tokens / min(times), "texts": texts, "key": key}
        rows[name]["perplexity"] = perplexity(loaded, inputs, new)
        print(f"{name:32s} {rows[name]['tokens_per_s']:8.1f} tok/s  ppl {rows[name]['perplexity']:.2f}", flush=True)
    # The slow reference processors ran on fewer tokens: compare them with plain at that length too.
    elapsed, *_ = timed_generate(loaded, prompts, [], configs["plain (no watermark)"][1], args.slow_tokens)
    plain_short = len(prompts) * args.slow_tokens / elapsed
    for name, row in rows.items():
        baseline = plain_short if name in slow else rows["plain (no watermark)"]["tokens_per_s"]
        row["slowdown_vs_plain"] = baseline / row["tokens_per_s"]
    return rows


def bench_detection(loaded, args):
    passages = human_passages(args.passages)
    tokenizer = loaded.tokenizer
    total_bytes = sum(len(p.encode()) for p in passages)
    # The raw tokenizer gets the warm-up the detectors get (first-call setup, caches), and its best of three
    # passes: a cold single pass made it look slower, and every detector's share of its speed larger.
    token_count = sum(len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in passages)
    raw_seconds = math.inf
    for _ in range(3):
        start = time.perf_counter()
        for passage in passages:
            tokenizer(passage, add_special_tokens=False)
        raw_seconds = min(raw_seconds, time.perf_counter() - start)
    out = {"passages": len(passages), "tokens": token_count, "megabytes": total_bytes / 1e6,
           "raw tokenizer": {"tokens_per_s": token_count / raw_seconds, "mb_per_s": total_bytes / 1e6 / raw_seconds}}
    # Warm-up outside the timings: the tokenizer's caches, otherwise the first timed detector pays them.
    Detector(generate_key("synthid"), tokenizer).detect(passages[0], with_tokens=False)
    for scheme in ("synthid", "kgw", "gumbel"):
        detector = Detector(generate_key(scheme), tokenizer)
        start = time.perf_counter()
        for passage in passages:
            detector.detect(passage, with_tokens=False)
        seconds = time.perf_counter() - start
        out[f"aimark {scheme} (one call per text)"] = {"tokens_per_s": token_count / seconds, "mb_per_s": total_bytes / 1e6 / seconds}
        start = time.perf_counter()
        for _ in detector.detect_many(passages):
            pass
        seconds = time.perf_counter() - start
        out[f"aimark {scheme} (detect_many, batched)"] = {"tokens_per_s": token_count / seconds, "mb_per_s": total_bytes / 1e6 / seconds}
    # transformers' SynthID: g-values + repetition mask (what its detectors consume), one call per text.
    reference = SynthIDTextWatermarkLogitsProcessor(**SYNTHID_REFERENCE, device="cpu")
    start = time.perf_counter()
    for passage in passages:
        ids = torch.tensor([tokenizer(passage, add_special_tokens=False)["input_ids"]])
        reference.compute_g_values(ids)
        reference.compute_context_repetition_mask(ids)
    seconds = time.perf_counter() - start
    out["transformers SynthID g-values + mask"] = {"tokens_per_s": token_count / seconds, "mb_per_s": total_bytes / 1e6 / seconds}
    # transformers' WatermarkDetector (KGW): a vocabulary permutation per scored token; a few passages suffice.
    few = passages[: args.kgw_reference_passages]
    few_tokens = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in few]
    hf = WatermarkDetector(model_config=loaded.model.config, device="cpu", watermarking_config=WatermarkingConfig(seeding_scheme="lefthash", **KGW_REFERENCE), ignore_repeated_ngrams=True)
    start = time.perf_counter()
    for ids in few_tokens:
        hf(torch.tensor([ids]))
    seconds = time.perf_counter() - start
    few_count = sum(len(ids) for ids in few_tokens)
    few_bytes = sum(len(p.encode()) for p in few)
    out["transformers WatermarkDetector (KGW)"] = {"tokens_per_s": few_count / seconds, "mb_per_s": few_bytes / 1e6 / seconds, "note": f"{len(few)} passages"}
    for name, row in out.items():
        if isinstance(row, dict) and name != "raw tokenizer":
            row["share_of_raw_tokenizer"] = row["tokens_per_s"] / out["raw tokenizer"]["tokens_per_s"]
    return out


def power_rows(loaded, generation):
    rows = []
    languages = [lang for lang, _ in PROMPTS]
    for name, row in generation.items():
        if row["key"] is None:
            continue
        detector = Detector(row["key"], loaded.tokenizer)
        per_language: dict[str, list] = {}
        for language, text in zip(languages, row["texts"]):
            per_language.setdefault(language, []).append(tokens_to_detect(detector, text))
        rows.append((name, per_language))
    return rows


def _fmt_median(values):
    found = [v for v in values if v is not None]
    if not found:
        return f"not detected (0/{len(values)})"
    text = f"{statistics.median(found):.0f}"
    return text if len(found) == len(values) else f"{text} ({len(found)}/{len(values)} detected)"


def write_report(args, generation, detection, power, seconds, *, full_run: dict | None = None):
    """Write core.md/json; ``full_run`` (an earlier core.json) supplies generation and power with --detection-only."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    date, minutes = (full_run["date"], full_run["seconds"] / 60) if full_run else (now, seconds / 60)
    lines = [
        "# Core benchmark",
        "",
        f"Run {date}, {minutes:.1f} min, `python -m bench.core{' --quick' if args.quick else ''}` on {platform.processor() or platform.machine()} "
        f"({torch.get_num_threads()} torch threads), embedded Gemma 3 270M (float32, CPU), batch {args.batch}, top-k {args.top_k}, temperature 1.0, repetition penalty {DEFAULT_REPETITION_PENALTY} (all configurations).",
        "",
        "## Generation",
        "",
        "| configuration | new tokens / row | tokens/s | slowdown vs plain | perplexity |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, row in generation.items():
        lines.append(f"| {name} | {row['tokens_per_row']} | {row['tokens_per_s']:.1f} | {row['slowdown_vs_plain']:.3f}× | {row['perplexity']:.2f} |")
    lines += [
        "",
        (f"Slowdown = plain tokens/s ÷ configuration tokens/s at the same length; the two slow reference processors ran {args.slow_tokens} tokens per row"
         " and are compared with plain at that length. Perplexity: the generated tokens under the same model (prompt as context); one batch, so it is noisy."
         " transformers' KGW rows run at context width h = 1 (`KGW_REFERENCE`, its default); aimark's KGW hashes a window of h = 4,"
         " so the rows differ in the work per token as well as in implementation."),
        "",
        "## Detection throughput (one process, no model)",
        "",
        *([f"Re-measured {now} with `python -m bench.core --detection-only` ({seconds / 60:.1f} min); the other sections are from the full run above.", ""]
          if full_run else []),
        (f"{detection['passages']} human-written passages (standard-library docstrings), {detection['tokens']} Gemma tokens, {detection['megabytes']:.2f} MB;"
         " the raw tokenizer is timed warm (best of three passes), as the detectors are after their warm-up."),
        "",
        "| detector | tokens/s | MB/s | share of raw tokenizer speed |",
        "|---|---:|---:|---:|",
    ]
    for name, row in detection.items():
        if isinstance(row, dict):
            share = f"{row['share_of_raw_tokenizer']:.0%}" if "share_of_raw_tokenizer" in row else "100%"
            note = f" ({row['note']})" if "note" in row else ""
            lines.append(f"| {name}{note} | {row['tokens_per_s']:,.0f} | {row['mb_per_s']:.2f} | {share} |")
    lines += [
        "",
        "## Tokens to detect (p < 1e-3), median per language",
        "",
        "| scheme | " + " | ".join(sorted({lang for lang, _ in PROMPTS})) + " |",
        "|---|" + "---:|" * len({lang for lang, _ in PROMPTS}),
    ]
    for name, per_language in power:
        lines.append(f"| {name} | " + " | ".join(_fmt_median(per_language[lang]) for lang in sorted(per_language)) + " |")
    lines += ["", f"Prefixes scored every 5 tokens of each of the {args.batch} generations above ({args.tokens} tokens each)."]
    (RESULTS / "core.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    serialisable = {name: {k: v for k, v in row.items() if k not in ("texts", "key")} for name, row in generation.items()}
    report = {"date": date, "seconds": full_run["seconds"] if full_run else seconds, "args": vars(args), "generation": serialisable,
              "detection": detection, "tokens_to_detect": {name: per for name, per in power}}
    if full_run:
        report["detection_run"] = {"date": now, "seconds": seconds, "command": "python -m bench.core --detection-only"}
    (RESULTS / "core.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--slow-tokens", type=int, default=40)
    parser.add_argument("--top-k", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--passages", type=int, default=200)
    parser.add_argument("--kgw-reference-passages", type=int, default=5)
    parser.add_argument("--detection-only", action="store_true", help="re-measure detection; keep generation and power from core.json")
    args = parser.parse_args()
    if args.quick:
        args.tokens, args.slow_tokens, args.repeats, args.passages, args.kgw_reference_passages = 40, 10, 1, 30, 2
    started = time.perf_counter()
    loaded = load_model()
    if args.detection_only:
        try:
            full_run = json.loads((RESULTS / "core.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise SystemExit(f"--detection-only needs an earlier full run's {RESULTS / 'core.json'} ({err})") from None
        for name, args_value in full_run["args"].items():
            if name not in ("passages", "kgw_reference_passages", "detection_only"):
                setattr(args, name, args_value)  # the header describes the run whose generation rows it shows
        generation = {RENAMED.get(name, name): row for name, row in full_run["generation"].items()}
        power = [(RENAMED.get(name, name), per) for name, per in full_run["tokens_to_detect"].items()]
        detection = bench_detection(loaded, args)
        write_report(args, generation, detection, power, time.perf_counter() - started, full_run=full_run)
        print((RESULTS / "core.md").read_text())
        return
    generation = bench_generation(loaded, args)
    detection = bench_detection(loaded, args)
    power = power_rows(loaded, generation)
    write_report(args, generation, detection, power, time.perf_counter() - started)
    print((RESULTS / "core.md").read_text())


if __name__ == "__main__":
    main()
