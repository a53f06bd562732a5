"""What `aimark serve --upstream` adds: latency p50/p99 and requests/s through the gateway against the
upstream directly, at 1, 4 and 16 concurrent clients, plain and streamed.

    python bench/engines/gateway.py                  # embedded model as aimark's own server; bench/results/gateway.{md,json}
    python bench/engines/gateway.py --model DIR      # another model directory for the upstream
    python bench/engines/gateway.py --upstream-url http://127.0.0.1:8001/v1 --upstream-model NAME   # e.g. a vLLM
    python bench/engines/gateway.py --instant-only   # the gateway's own cost only, no model upstream; bench/results/gateway-instant.{md,json}
    python bench/engines/gateway.py --instant-only --signer ed25519       # C2PA with an Ed25519 certificate (default ES256)

Two upstreams, each started here as a real server on 127.0.0.1:
- aimark's own server (`aimark serve --model …`, one model, generation serialised): the end-to-end picture;
  its generation time dominates and varies, so the added latency is within its noise.
- an instant upstream (a stdlib HTTP server answering a fixed OpenAI-shaped answer or stream at once): the
  gateway's own cost, labels, C2PA signing, registry record and proxying, isolated from generation.
The gateway is `aimark serve --upstream` in a process of its own, with notice + C2PA (a TEST ONLY signer) and
a fresh SQLite registry. The same requests (same prompts and seeds) go directly and through the gateway,
one after the other; added = gateway − direct per percentile. Numbers are measured, never asserted; errors
are counted and make the exit status 1.
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
import secrets
import socket
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from aimark.service.probe import serve_process
from bench.service.run import _percentile, _run

RESULTS = Path(__file__).resolve().parents[1] / "results"
CONCURRENCY = (1, 4, 16)
PROMPTS = ["Write a short note about bicycles.", "한국의 전통 음식을 소개해 주세요.", "日本の四季について書いてください。",
           "请介绍中国茶文化。"]


class _Instant(BaseHTTPRequestHandler):
    """An upstream that answers at once: a fixed chat answer, or a stream of eight chunks."""

    protocol_version = "HTTP/1.1"
    ANSWER = json.dumps({"id": "chatcmpl-x", "object": "chat.completion", "created": 1, "model": "instant",
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": "A fixed answer. " * 8},
                                      "finish_reason": "stop"}],
                         "usage": {"prompt_tokens": 8, "completion_tokens": 32, "total_tokens": 40}}).encode()

    @staticmethod
    def _chunk(delta: dict, finish: str | None = None) -> bytes:
        document = {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, "model": "instant",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return b"data: " + json.dumps(document).encode() + b"\n\n"

    def log_message(self, *args):
        pass

    def setup(self):
        super().setup()
        # Headers and body go out in separate writes: without this, Nagle's algorithm and the client's delayed
        # ACK hold the body back ~40 ms, a delay that is the test server's, not the gateway's.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        if not body.get("stream"):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(self.ANSWER)))
            self.end_headers()
            self.wfile.write(self.ANSWER)
            return
        events = [self._chunk({"role": "assistant", "content": ""})]
        events += [self._chunk({"content": "A fixed answer. "}) for _ in range(8)]
        events += [self._chunk({}, "stop"), b"data: [DONE]\n\n"]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for event in events:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")


@contextmanager
def _instant_upstream():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Instant)
    server.daemon_threads = True
    server.socket.listen(256)  # 16 clients connect at once: the default backlog of 5 refuses some
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def _serve(arguments: list[str], log: Path):
    # No verification is measured: leave the cores to generation and proxying.
    return serve_process([*arguments, "--detect-workers", "0"], log, timeout_s=600)


async def _measure(base_url: str, api_key: str | None, model: str, *, stream: bool, concurrency: int, requests: int,
                   max_tokens: int) -> dict:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    limits = httpx.Limits(max_connections=concurrency + 2, max_keepalive_connections=concurrency + 2)
    first_bytes: list[float] = []
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=600, limits=limits) as client:
        async def call(i: int) -> None:
            body = {"model": model, "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
                    "max_tokens": max_tokens, "seed": i, "stream": stream}
            if not stream:
                response = await client.post("/chat/completions", json=body)
                response.raise_for_status()
                if not response.json()["choices"][0]["message"]["content"]:
                    raise RuntimeError("empty answer")
                return
            began = time.perf_counter()
            async with client.stream("POST", "/chat/completions", json=body) as response:
                response.raise_for_status()
                seen_first = False
                async for line in response.aiter_lines():
                    if not seen_first and line.startswith("data: {"):
                        first_bytes.append(time.perf_counter() - began)
                        seen_first = True
                    if line == "data: [DONE]":
                        return
            raise RuntimeError("stream ended without [DONE]")

        await call(0)  # one warm-up request: connections, first-call costs
        latencies, errors, wall, _ = await _run(concurrency, requests, time.monotonic() + 3600, call)
    row = {"requests": len(latencies) + errors, "errors": errors,
           "requests_per_s": round(len(latencies) / wall, 2) if wall else 0.0,
           "p50_ms": round(_percentile(latencies, 50) * 1000, 2), "p99_ms": round(_percentile(latencies, 99) * 1000, 2)}
    if stream:
        row["first_chunk_p50_ms"] = round(_percentile(first_bytes[1:], 50) * 1000, 2)
    return row


def _server_cpu_s(url: str) -> float:
    """CPU seconds (user + system) the `aimark serve` child serving ``url`` has used so far: unlike latency, what
    a request costs the gateway in CPU time hardly moves with the machine's other load."""
    import psutil

    port = url.rsplit(":", 1)[1]
    for child in psutil.Process().children():
        command = child.cmdline()
        if "--port" in command and command[command.index("--port") + 1] == port:
            times = child.cpu_times()
            return times.user + times.system
    raise RuntimeError(f"no aimark serve child on port {port}")


def _compare(direct_url: str, direct_key: str | None, gateway_url: str, gateway_key: str, model: str, args,
             requests_for) -> list[dict]:
    rows = []
    for stream in (False, True):
        for concurrency in CONCURRENCY:
            requests = requests_for(concurrency)
            measured = {}
            for name, url, key in (("direct", direct_url, direct_key), ("gateway", f"{gateway_url}/v1", gateway_key)):
                print(f"  {name:7} stream={stream!s:5} clients={concurrency:2} requests={requests}", file=sys.stderr)
                cpu_before = _server_cpu_s(gateway_url) if name == "gateway" else 0.0
                measured[name] = asyncio.run(_measure(url, key, model, stream=stream, concurrency=concurrency,
                                                      requests=requests, max_tokens=args.max_tokens))
                if name == "gateway":  # the warm-up request included
                    measured[name]["cpu_ms_per_request"] = round((_server_cpu_s(gateway_url) - cpu_before) * 1000
                                                                 / (requests + 1), 2)
            direct, gateway = measured["direct"], measured["gateway"]
            rows.append({"stream": stream, "clients": concurrency, "direct": direct, "gateway": gateway,
                         "added_p50_ms": round(gateway["p50_ms"] - direct["p50_ms"], 2),
                         "added_p99_ms": round(gateway["p99_ms"] - direct["p99_ms"], 2),
                         "throughput_ratio": round(gateway["requests_per_s"] / direct["requests_per_s"], 3)
                         if direct["requests_per_s"] else None})
    return rows


def _table(rows: list[dict]) -> list[str]:
    lines = ["| mode | clients | direct p50 / p99 ms | gateway p50 / p99 ms | added p50 / p99 ms | direct req/s | "
             "gateway req/s | gateway/direct throughput | gateway CPU ms/request | errors |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        d, g = row["direct"], row["gateway"]
        mode = "stream" if row["stream"] else "plain"
        if row["stream"]:
            mode += f" (first chunk p50 {d['first_chunk_p50_ms']} → {g['first_chunk_p50_ms']} ms)"
        lines.append(f"| {mode} | {row['clients']} | {d['p50_ms']} / {d['p99_ms']} | {g['p50_ms']} / {g['p99_ms']} | "
                     f"{row['added_p50_ms']} / {row['added_p99_ms']} | {d['requests_per_s']} | {g['requests_per_s']} | "
                     f"{row['throughput_ratio']} | {g.get('cpu_ms_per_request', '')} | {d['errors'] + g['errors']} |")
    return lines


def _uvicorn_stack() -> str:
    """What the gateway's uvicorn runs on: it takes httptools and uvloop when they are installed (aimark[serve])."""
    import importlib.util

    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return f"uvicorn on {http} + {loop}"


def _load(result: dict) -> str:
    # Other work on the machine moves every figure here: the 1-minute load average at the start and the end.
    return f" (load average {result['load'][0]} → {result['load'][1]})" if result.get("load") else ""


def _markdown(result: dict) -> str:
    lines = ["# Gateway overhead (`bench/engines/gateway.py`)", "",
             f"{result['when']} · {result['machine']}{_load(result)} · 127.0.0.1, async httpx clients · gateway: `aimark serve "
             f"--upstream` (one process, {result.get('server', 'uvicorn')}), labels notice + C2PA (TEST ONLY "
             f"{result.get('args', {}).get('signer', 'es256').upper()} signer) unless said, SQLite registry", "",
             f"Command: `{result['command']}`", ""]
    for section in result["upstreams"]:
        lines += [f"## Upstream: {section['title']}", "", section["note"], ""]
        lines += _table(section["rows"]) + [""]
    lines += ["Added latency is the gateway's percentile minus the direct one over the same requests (same prompts and "
              "seeds), run one after the other; on a shared machine a negative figure is noise. Gateway CPU ms/request: "
              "user + system CPU time of the gateway process over the run, per request (the machine's other load moves "
              "it far less than latency). Target (issue 15): ≤ 5 ms p50 added, no loss of throughput.", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model directory for aimark's own server (default: the embedded model)")
    parser.add_argument("--upstream-url", default=None, help="measure this running upstream instead of starting aimark's own")
    parser.add_argument("--upstream-model", default="aimark", help="the `model` sent to --upstream-url")
    parser.add_argument("--max-tokens", type=int, default=4, help="new tokens per request to a model upstream")
    parser.add_argument("--model-requests", type=int, default=3, help="requests per client per run on a model upstream")
    parser.add_argument("--instant-requests", type=int, default=50, help="requests per client per run on the instant upstream")
    parser.add_argument("--signer", default="es256", help="the TEST ONLY C2PA signer's algorithm: es256 or ed25519")
    parser.add_argument("--instant-only", action="store_true", help="measure the instant upstream only (no model upstream)")
    parser.add_argument("--out", type=Path, default=None,
                        help="default bench/results/gateway.md, with --instant-only bench/results/gateway-instant.md")
    args = parser.parse_args()
    args.out = args.out or RESULTS / ("gateway-instant.md" if args.instant_only else "gateway.md")

    work = Path(tempfile.mkdtemp(prefix="aimark-gateway-bench-"))
    load_before = os.getloadavg()[0]
    from aimark.provenance.test_pki import generate_test_pki

    pki = (generate_test_pki() if args.signer == "es256" else generate_test_pki(algorithm=args.signer)).write(work / "pki")
    api_key = "amk-bench-" + secrets.token_urlsafe(16)
    (work / "api-keys").write_text(api_key + "\n", encoding="utf-8")
    os.chmod(work / "api-keys", 0o600)
    labels = ["--cert", str(pki["certificate_chain"]), "--private-key", str(pki["private_key"])]

    def gateway_args(upstream: str, name: str, *, c2pa: bool = True) -> list[str]:
        return ["--upstream", upstream, "--upstream-key-file", str(work / "api-keys"), "--api-key-file", str(work / "api-keys"),
                "--db-url", f"sqlite:///{work / f'gateway-{name}.sqlite3'}", *(labels if c2pa else [])]

    upstreams = []
    for c2pa in (True, False):
        with _instant_upstream() as instant, \
                _serve(gateway_args(instant, f"instant-{c2pa}", c2pa=c2pa), work / "gateway-instant.log") as gateway:
            print(f"instant upstream, C2PA {c2pa}", file=sys.stderr)
            rows = _compare(instant, None, gateway, api_key, "instant", args, lambda c: c * args.instant_requests)
        upstreams.append({"title": f"instant (a fixed answer at once: the gateway's own cost), labels notice"
                                   f"{' + C2PA' if c2pa else ' only'}", "rows": rows,
                          "note": f"{args.instant_requests} requests per client per run; a plain answer of 32 tokens' text, "
                                  "a stream of 10 chunks."})
    if not args.instant_only:
        if args.upstream_url:
            with _serve(gateway_args(args.upstream_url, "model"), work / "gateway-model.log") as gateway:
                print(f"upstream {args.upstream_url}", file=sys.stderr)
                rows = _compare(args.upstream_url, api_key, gateway, api_key, args.upstream_model, args,
                                lambda c: c * args.model_requests)
            title = f"`{args.upstream_model}` at a given URL"
        else:
            own = ["--api-key-file", str(work / "api-keys"), "--db-url", f"sqlite:///{work / 'upstream.sqlite3'}"]
            own += ["--model", args.model] if args.model else []
            with _serve(own, work / "upstream.log") as upstream, \
                    _serve(gateway_args(f"{upstream}/v1", "model"), work / "gateway-model.log") as gateway:
                model_name = httpx.get(f"{upstream}/v1/info").json()["model"]
                print(f"aimark's own server, {model_name}", file=sys.stderr)
                rows = _compare(f"{upstream}/v1", api_key, gateway, api_key, "aimark", args, lambda c: c * args.model_requests)
            title = f"aimark's own server (`aimark serve`, model `{model_name}`, one model: requests queue)"
        upstreams.append({"title": title, "rows": rows,
                          "note": f"{args.model_requests} requests per client per run, {args.max_tokens} new tokens each."})

    result = {"when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
              "load": [round(load_before, 2), round(os.getloadavg()[0], 2)], "server": _uvicorn_stack(),
              "command": "python bench/engines/gateway.py " + " ".join(sys.argv[1:]),
              "args": vars(args) | {"out": str(args.out)}, "upstreams": upstreams}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(_markdown(result), encoding="utf-8")
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(_markdown(result))
    errors = sum(row[side]["errors"] for section in upstreams for row in section["rows"] for side in ("direct", "gateway"))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
