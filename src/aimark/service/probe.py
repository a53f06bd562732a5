"""Waiting for a started `aimark serve` to answer (tests, benchmarks, deployment scripts)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path


def wait_until_up(url: str, process: subprocess.Popen | None = None, *, timeout_s: float = 120.0) -> bool:
    """True once GET {url}/readyz answers 200 (the server and all its check workers are up); False when
    `process` exits or the time is up."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        if process is not None and process.poll() is not None:
            return False
        time.sleep(0.2)
    return False


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago, for a child `aimark serve` whose own bound port a caller cannot read.

    (In-process servers should bind port 0 and read the port back instead: no window for another process.)
    """
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serve_process(arguments: list[str], log: Path, *, env: dict[str, str] | None = None,
                  timeout_s: float = 120.0) -> Iterator[str]:
    """`aimark serve ARGUMENTS --port P` in a process of its own (output in ``log``), as a user starts it; yields its
    URL once ready (/readyz) and stops it as a user does (Ctrl-C) afterwards. RuntimeError, with the log, if it
    does not start."""
    import signal
    import sys

    port = free_port()
    with open(log, "wb") as out:
        process = subprocess.Popen([str(Path(sys.executable).parent / "aimark"), "serve", *arguments, "--port", str(port)],
                                   stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_until_up(url, process, timeout_s=timeout_s):
            raise RuntimeError("aimark serve did not start:\n" + Path(log).read_text(errors="replace"))
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
