"""Waiting for a started `aimark serve` to answer (tests, benchmarks, deployment scripts)."""

from __future__ import annotations

import socket
import subprocess
import time


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
