"""Waiting for a started `aimark serve` to answer (tests, benchmarks, deployment scripts)."""

from __future__ import annotations

import subprocess
import time


def wait_until_up(url: str, process: subprocess.Popen | None = None, *, timeout_s: float = 120.0) -> bool:
    """True once GET {url}/healthz answers 200; False when `process` exits or the time is up."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        if process is not None and process.poll() is not None:
            return False
        time.sleep(0.2)
    return False
