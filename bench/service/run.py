"""Bounded load test of `aimark serve` on 127.0.0.1: throughput and latency of /v1/verify and of generation,
with no errors allowed and every issued output counted in the registry afterwards.

    python -m bench.service                       # embedded model, SQLite registry; writes bench/results/service.{md,json}
    python -m bench.service --model DIR           # another model directory
    python -m bench.service --db-url postgresql+psycopg://user:pw@127.0.0.1/db

The server is started as a user would start it (a child process), with a fresh key, API key and registry;
requests come from an async httpx client. Nothing here is a test: numbers are measured, never asserted, but
errors and lost registry rows are reported and make the exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx

from aimark.registry import redact_url
from aimark.service.probe import free_port, wait_until_up

RESULTS = Path(__file__).resolve().parents[1] / "results"
PROMPTS = [
    "Write a short note about how bicycles changed city life.",
    "인공지능이 일상생활을 어떻게 바꾸는지 짧게 설명해 주세요.",
    "日本の四季の魅力について短く書いてください。",
    "请简短介绍中国茶文化的历史。",
]
HUMAN = ("The committee met on Tuesday to review the budget for next year. Members agreed to postpone the vote until "
         "the auditors deliver their report, which is expected before the end of the month. ")



def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def _summary(name: str, latencies: list[float], wall: float, errors: int, extra: dict | None = None) -> dict:
    return {"endpoint": name, "requests": len(latencies) + errors, "errors": errors,
            "requests_per_s": round(len(latencies) / wall, 2) if wall else 0.0,
            "p50_ms": round(_percentile(latencies, 50) * 1000, 1), "p99_ms": round(_percentile(latencies, 99) * 1000, 1),
            "wall_s": round(wall, 2), **(extra or {})}


async def _run(concurrency: int, count: int, deadline: float, call) -> tuple[list[float], int, float, list]:
    """`count` calls of `call(i)` with at most `concurrency` in flight, stopping at `deadline`."""
    latencies: list[float] = []
    results: list = []
    errors = 0
    semaphore = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        nonlocal errors
        async with semaphore:
            if time.monotonic() > deadline:
                return
            start = time.perf_counter()
            try:
                result = await call(i)
            except Exception as err:  # noqa: BLE001 - counted and reported
                errors += 1
                print(f"  request {i} failed: {type(err).__name__}: {err}", file=sys.stderr)
                return
            latencies.append(time.perf_counter() - start)
            results.append(result)

    began = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    return latencies, errors, time.perf_counter() - began, results


async def bench(url: str, api_key: str, args) -> dict:
    deadline = time.monotonic() + args.time_limit
    headers = {"Authorization": f"Bearer {api_key}"}
    limits = httpx.Limits(max_connections=max(args.concurrency, args.generate_concurrency) + 4)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        async def generate(i: int) -> dict:
            body = {"messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}], "max_tokens": args.max_tokens,
                    "seed": i}
            response = await client.post("/v1/chat/completions", json=body, headers=headers)
            response.raise_for_status()
            return response.json()

        async def generate_stream(i: int) -> str:
            body = {"prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": args.max_tokens, "stream": True, "seed": i}
            content_id = None
            async with client.stream("POST", "/v1/completions", json=body, headers=headers) as response:
                response.raise_for_status()
                async for line in response.aiter_lines():
                    if line.startswith("data: {"):
                        content_id = json.loads(line[6:])["aimark"]["content_id"]
                    if line == "data: [DONE]":
                        return content_id
            raise RuntimeError("stream ended without [DONE]")

        print(f"generation: {args.generate_requests} chat + {args.stream_requests} streamed requests, "
              f"{args.max_tokens} tokens each, concurrency {args.generate_concurrency}", file=sys.stderr)
        gen_latencies, gen_errors, gen_wall, generated = await _run(args.generate_concurrency, args.generate_requests,
                                                                     deadline, generate)
        stream_latencies, stream_errors, stream_wall, streamed = await _run(args.generate_concurrency, args.stream_requests,
                                                                             deadline, generate_stream)
        tokens = sum(g["usage"]["completion_tokens"] for g in generated)
        texts = [g["choices"][0]["message"]["content"] for g in generated] or [HUMAN * 3]
        samples = texts + [HUMAN * 3]

        async def verify(i: int) -> dict:
            response = await client.post("/v1/verify", json={"text": samples[i % len(samples)]})
            response.raise_for_status()
            return response.json()

        print(f"verification: {args.verify_requests} requests, concurrency {args.concurrency}", file=sys.stderr)
        ver_latencies, ver_errors, ver_wall, reports = await _run(args.concurrency, args.verify_requests, deadline, verify)
        found_in_registry = sum(1 for r in reports if r["layers"]["registry"]["matches"])

    issued_ids = [g["aimark"]["content_id"] for g in generated] + [c for c in streamed if c]
    return {
        "generation": _summary("/v1/chat/completions", gen_latencies, gen_wall, gen_errors,
                               {"completion_tokens": tokens, "tokens_per_s": round(tokens / gen_wall, 2) if gen_wall else 0}),
        "streaming": _summary("/v1/completions (stream)", stream_latencies, stream_wall, stream_errors),
        "verify": _summary("/v1/verify", ver_latencies, ver_wall, ver_errors,
                           {"reports_with_registry_match": found_in_registry}),
        "issued_ids": issued_ids,
    }


def _registry_rows(db_url: str) -> int:
    from aimark.registry import Registry

    registry = Registry(db_url)
    try:
        return registry.count()
    finally:
        registry.close()


def _registry_check(db_url: str, issued_ids: list[str], rows_before: int) -> dict:
    """Rows added during the run (a reused database may hold earlier rows) and issued ids not found."""
    from aimark.registry import Registry

    registry = Registry(db_url)
    try:
        rows = registry.count() - rows_before
        missing = [i for i in issued_ids if registry.get(i) is None]
    finally:
        registry.close()
    return {"issued": len(issued_ids), "rows": rows, "missing": len(missing)}


def _markdown(result: dict) -> str:
    lines = [
        "# Service load test (`python -m bench.service`)", "",
        f"{result['when']} · {result['machine']} · model `{result['model']}` · registry `{result['registry_backend']}` · "
        f"127.0.0.1, async httpx client", "",
        f"Command: `{result['command']}`", "",
        "| endpoint | requests | errors | requests/s | p50 ms | p99 ms | notes |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key in ("verify", "generation", "streaming"):
        row = result[key]
        notes = ""
        if key == "generation":
            notes = f"{row['completion_tokens']} tokens, {row['tokens_per_s']} tokens/s (one model, requests queue)"
        if key == "verify":
            notes = f"{row['reports_with_registry_match']} reports found their text in the registry"
        lines.append(f"| `{row['endpoint']}` | {row['requests']} | {row['errors']} | {row['requests_per_s']} | "
                     f"{row['p50_ms']} | {row['p99_ms']} | {notes} |")
    registry = result["registry"]
    lines += ["", f"Registry: {registry['issued']} outputs issued, {registry['rows']} rows added (counted afterwards), "
                  f"{registry['missing']} issued content ids missing.", "",
              f"Concurrency: verify {result['args']['concurrency']}, generation {result['args']['generate_concurrency']}; "
              f"{result['args']['max_tokens']} new tokens per generation request. Generation is serialised on one model "
              "(a request waits for the one before), so its latency grows with the queue.", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model directory (default: the embedded model)")
    parser.add_argument("--db-url", default=None, help="registry URL (default: a fresh SQLite file)")
    parser.add_argument("--verify-requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--generate-requests", type=int, default=8)
    parser.add_argument("--stream-requests", type=int, default=4)
    parser.add_argument("--generate-concurrency", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=24)
    parser.add_argument("--time-limit", type=float, default=300, help="stop sending new requests after this many seconds")
    parser.add_argument("--out", type=Path, default=RESULTS / "service.md")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="aimark-bench-"))
    api_key = "amk-bench-" + secrets.token_urlsafe(16)
    (work / "api-keys").write_text(api_key + "\n", encoding="utf-8")
    os.chmod(work / "api-keys", 0o600)
    db_url = args.db_url or f"sqlite:///{work / 'registry.sqlite3'}"
    key_file = work / "key.json"
    aimark = str(Path(sys.executable).parent / "aimark")
    keygen = [aimark, "keygen", "--out", str(key_file)] + (["--model", args.model] if args.model else [])
    subprocess.run(keygen, check=True, capture_output=True)
    rows_before = _registry_rows(db_url)
    port = free_port()
    command = [aimark, "serve", "--port", str(port), "--key", str(key_file), "--api-key-file", str(work / "api-keys"),
               "--db-url", db_url, "--verify-rate", "1000000", "--verify-burst", "100000"]
    command += ["--model", args.model] if args.model else []
    log = open(work / "serve.log", "wb")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_until_up(url, server, timeout_s=300):
            print((work / "serve.log").read_text(errors="replace"), file=sys.stderr)
            return 1
        model_name = httpx.get(f"{url}/v1/info").json()["model"]
        measured = asyncio.run(bench(url, api_key, args))
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)
        log.close()

    registry = _registry_check(db_url, measured.pop("issued_ids"), rows_before)

    result = {
        "when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "model": model_name, "registry_backend": redact_url(db_url).split(":", 1)[0],
        "command": "python -m bench.service " + " ".join(redact_url(a) if "://" in a else a for a in sys.argv[1:]),
        "args": vars(args) | {"out": str(args.out)}, **measured, "registry": registry,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(_markdown(result), encoding="utf-8")
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    print(_markdown(result))
    errors = sum(result[k]["errors"] for k in ("verify", "generation", "streaming"))
    return 1 if errors or registry["missing"] or registry["rows"] != registry["issued"] else 0


if __name__ == "__main__":
    sys.exit(main())
