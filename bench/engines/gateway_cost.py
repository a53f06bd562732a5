"""What one gateway request costs, part by part, in this process: CPU time medians over many repetitions.

    python bench/engines/gateway_cost.py                      # ES256 TEST ONLY signer, 300 repetitions; prints Markdown
    python bench/engines/gateway_cost.py --signer ed25519 --repeat 1000 --out bench/results/gateway-cost.md

bench/engines/gateway.py measures latency through real sockets and processes, which the load of a shared
machine moves by milliseconds. This script measures CPU time (time.thread_time, or process time for whole
requests), which that load moves far less, so figures from before and after a change compare:

- each part of issuing an answer, called as the gateway calls it (IssuingRuntime): parsing the upstream's
  answer, the notice, the C2PA manifest (definition, signature, A.8 wrapper), the registry fingerprint,
  the registry record (fingerprint + insert + commit, SQLite), the JSON response;
- a whole request in process: the gateway app (create_app over GatewayRuntime) called through httpx's ASGI
  transport, over the instant upstream of bench/engines/gateway.py (a real HTTP server on a thread of this
  process), plain and streamed, with notice + C2PA and with the notice only; and the same client asking the
  upstream directly (its cost is in the whole-request figures too: subtract it for the gateway's own).

No watermark key is given (no detection runs), as in bench/engines/gateway.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a file: make bench.* importable (see bench/_paths.py)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import _paths  # noqa: F401

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone

import httpx

from bench.engines.gateway import _Instant, _instant_upstream

API_KEY = "amk-bench-cost-0123456789abcdef"


def _cpu_ms(call: Callable[[], object], repeat: int) -> float:
    call()  # first-call costs (imports, native set-up) are not per request
    times = []
    for _ in range(repeat):
        began = time.thread_time()
        call()
        times.append(time.thread_time() - began)
    return round(statistics.median(times) * 1000, 3)


def _runtime(upstream_url: str, work: Path, pki, labels: tuple[str, ...]):
    from aimark.provenance import SigningCredentials
    from aimark.service.config import ServiceConfig, api_key_digest
    from aimark.service.gateway import GatewayRuntime, UpstreamConfig

    config = ServiceConfig(profile="all", language="en", labels=labels, detect_workers=0,
                           credentials=SigningCredentials.from_pem(pki.certificate_chain_pem, pki.private_key_pem),
                           api_key_digests=frozenset({api_key_digest(API_KEY)}),
                           db_url=f"sqlite:///{work / ('-'.join(labels) + '.sqlite3')}")
    return GatewayRuntime.start(config, UpstreamConfig(upstream_url))


def _parts(runtime, repeat: int) -> dict[str, float]:
    from fastapi.responses import JSONResponse

    from aimark.provenance import new_content_id
    from aimark.service import gateway

    generated = json.loads(_Instant.ANSWER)["choices"][0]["message"]["content"]
    labelled = runtime.notice_prefix() + generated
    text = runtime.labelled(generated, new_content_id(), "instant")
    answer = json.loads(_Instant.ANSWER)
    answer["choices"][0]["message"]["content"] = text
    return {
        "parse the upstream's answer": _cpu_ms(lambda: gateway._answer_texts(gateway._loads(_Instant.ANSWER), chat=True), repeat),
        "notice": _cpu_ms(runtime.notice_prefix, repeat),
        "C2PA manifest: definition, signature, A.8 wrapper": _cpu_ms(
            lambda: runtime.manifest_suffix(labelled, new_content_id(), "instant"), repeat),
        "registry fingerprint": _cpu_ms(lambda: runtime.registry.fingerprint(generated), repeat),
        "registry record: fingerprint, insert, commit": _cpu_ms(
            lambda: runtime.record(new_content_id(), text, generated, model="instant"), repeat),
        "JSON response (labelled answer)": _cpu_ms(lambda: JSONResponse(answer).body, repeat),
    }


async def _requests(app, upstream_url: str, repeat: int, *, stream: bool) -> dict[str, float]:
    body = {"model": "instant", "messages": [{"role": "user", "content": "Write a short note about bicycles."}],
            "max_tokens": 4, "stream": stream}

    async def through(client: httpx.AsyncClient, path: str) -> None:
        async with client.stream("POST", path, json=body) as response:
            if response.status_code != 200:
                raise RuntimeError(f"HTTP {response.status_code}: {(await response.aread())[:300]!r}")
            async for _ in response.aiter_bytes():
                pass

    async def measure(client: httpx.AsyncClient, path: str) -> tuple[float, float]:
        for _ in range(20):
            await through(client, path)
        wall, cpu = [], []
        for _ in range(repeat):
            began, began_cpu = time.perf_counter(), time.process_time()
            await through(client, path)
            wall.append(time.perf_counter() - began)
            cpu.append(time.process_time() - began_cpu)
        return round(statistics.median(wall) * 1000, 3), round(statistics.median(cpu) * 1000, 3)

    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with app.router.lifespan_context(app), \
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway", headers=headers) as gw, \
            httpx.AsyncClient(base_url=upstream_url) as direct:
        gateway_wall, gateway_cpu = await measure(gw, "/v1/chat/completions")
        direct_wall, direct_cpu = await measure(direct, "/chat/completions")
    return {"gateway_wall_ms": gateway_wall, "gateway_cpu_ms": gateway_cpu,
            "direct_wall_ms": direct_wall, "direct_cpu_ms": direct_cpu}


def _markdown(result: dict) -> str:
    lines = ["# Gateway cost per request, in process (`bench/engines/gateway_cost.py`)", "",
             f"{result['when']} · {result['machine']} (load average {result['load'][0]} → {result['load'][1]}) · "
             f"signer {result['signer']} (TEST ONLY) · SQLite registry · {result['repeat']} repetitions, medians", "",
             f"Command: `{result['command']}`", "",
             "## Parts (CPU ms, this thread)", "", "| part | CPU ms |", "| --- | --- |"]
    lines += [f"| {name} | {ms} |" for name, ms in result["parts"].items()]
    lines += ["", "## Whole requests (httpx ASGI client → gateway app → instant upstream on a thread of this process)", "",
              "CPU: process time per request (client, gateway and upstream threads together); wall: elapsed. "
              "Direct: the same client asking the upstream itself.", "",
              "| labels | mode | gateway CPU ms | direct CPU ms | gateway − direct CPU ms | gateway wall ms | direct wall ms |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in result["requests"]:
        lines.append(f"| {row['labels']} | {row['mode']} | {row['gateway_cpu_ms']} | {row['direct_cpu_ms']} | "
                     f"{round(row['gateway_cpu_ms'] - row['direct_cpu_ms'], 3)} | {row['gateway_wall_ms']} | "
                     f"{row['direct_wall_ms']} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=300, help="repetitions per figure (medians)")
    parser.add_argument("--signer", default="es256", help="the TEST ONLY signer's algorithm: es256 or ed25519")
    parser.add_argument("--out", type=Path, default=None, help="also write the Markdown (and .json beside it) here")
    args = parser.parse_args()

    from aimark.provenance.test_pki import generate_test_pki
    from aimark.service.app import create_app

    # Called without `algorithm` for ES256, so that this script also measures an aimark from before that choice.
    pki = generate_test_pki() if args.signer == "es256" else generate_test_pki(algorithm=args.signer)
    work = Path(tempfile.mkdtemp(prefix="aimark-gateway-cost-"))
    load_before = os.getloadavg()[0]
    parts, requests = {}, []
    with _instant_upstream() as upstream_url:
        for labels in (("notice", "c2pa"), ("notice",)):
            runtime = _runtime(upstream_url, work, pki, labels)
            try:
                if "c2pa" in labels:
                    parts = _parts(runtime, args.repeat)
                for stream in (False, True):
                    measured = asyncio.run(_requests(create_app(runtime), upstream_url, args.repeat, stream=stream))
                    requests.append({"labels": " + ".join(labels), "mode": "stream" if stream else "plain", **measured})
            finally:
                runtime.close()
    result = {"when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
              "load": [round(load_before, 2), round(os.getloadavg()[0], 2)], "signer": args.signer,
              "repeat": args.repeat, "command": "python bench/engines/gateway_cost.py " + " ".join(sys.argv[1:]),
              "parts": parts, "requests": requests}
    text = _markdown(result)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
        args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
