"""External services some tests need: PostgreSQL, Chromium, and a vLLM server with aimark's plugin.

CI (`CI=true`) starts them with scripts/ci_services.sh (vLLM's virtualenv: scripts/vllm_venv.sh, from
scripts/test.sh); there a missing service fails the test instead of
skipping it (tests.helpers.missing, the same rule as for missing packages), so the PostgreSQL and browser
tests can never pass by not running.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.helpers import missing

CHROMIUM = os.environ.get("AIMARK_TEST_CHROMIUM", "/usr/bin/chromium")


def _missing(what: str) -> None:
    missing(what, "run scripts/ci_services.sh first")


def postgres_url(schema_hint: str) -> str:
    """A URL to a fresh, empty PostgreSQL schema (dropped tables from earlier runs cannot leak in)."""
    url = os.environ.get("AIMARK_TEST_PG_URL")
    if not url:
        _missing("PostgreSQL (AIMARK_TEST_PG_URL)")
    import sqlalchemy as sa

    schema = "t_" + re.sub(r"[^a-z0-9_]", "_", schema_hint.lower())[-40:]
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError as err:
        _missing(f"PostgreSQL at AIMARK_TEST_PG_URL ({type(err).__name__})")
    finally:
        engine.dispose()
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{schema}"


def chromium_path() -> str:
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        _missing(f"Chromium ({CHROMIUM})")
    try:
        import playwright  # noqa: F401
    except ImportError:
        _missing("the playwright package")
    return CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")


# -- vLLM with aimark's logits processor (scripts/vllm_venv.sh makes its virtualenv) -------------------------

VLLM_VENV = os.environ.get("AIMARK_VLLM_VENV", "/work/vllm-venv")
VLLM_PLUGIN = "aimark.engines.vllm_plugin:AimarkWatermarkProcessor"
VLLM_SERVED_NAME = "gemma-3-270m"
# First start on 2 cores: ~200 s (torch.compile); later starts read vLLM's compile cache (~/.cache/vllm).
VLLM_START_TIMEOUT_S = 900


@dataclasses.dataclass
class VLLMServer:
    """A running ``vllm serve`` of the embedded Gemma with aimark's plugin (tests/conftest.py: ``vllm_server``).

    ``key_path`` is the key every request is watermarked with unless it names another (``keys``/``key_paths``:
    one key per scheme, by scheme name; ``key_ids`` for ``vllm_xargs={"aimark_key_id": ...}``)."""

    base_url: str
    model: str
    key_path: Path
    key_paths: dict[str, Path]
    keys: dict
    log_path: Path
    process: subprocess.Popen
    model_dir: Path | None = None  # the served model's directory: its tokenizer is the one detection needs

    @property
    def key_ids(self) -> dict[str, str]:
        return {scheme: key.key_id for scheme, key in self.keys.items()}

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)

    def stop(self) -> None:
        stop_process_group(self.process)


def vllm_python() -> Path:
    python = Path(VLLM_VENV) / "bin" / "python"
    if not python.exists():
        _missing_vllm(f"vLLM's virtualenv ({python})")
    return python


def _missing_vllm(what: str) -> None:
    missing(what, "bash scripts/vllm_venv.sh makes it; AIMARK_VLLM_VENV names another")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def stop_process_group(process: subprocess.Popen) -> None:
    """Stop a server started with ``start_new_session=True`` and everything it spawned (vLLM's engine core and
    workers: left running, they keep the port, the KV cache and, on a GPU, its memory)."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def wait_until_healthy(base_url: str, process: subprocess.Popen, log_path: Path, timeout_s: float) -> None:
    """Return once ``base_url``/health answers 200; RuntimeError with the log's tail if the server exits or the
    time runs out (the caller stops it)."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"vLLM exited with status {process.returncode} while starting:\n{log_tail(log_path)}")
        try:
            if httpx.get(f"{base_url}/health", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(2)
    raise RuntimeError(f"vLLM did not answer /health within {timeout_s:.0f} s:\n{log_tail(log_path)}")


def start_vllm_server(directory: Path, keys: dict, model_dir: Path, *, plugin: bool = True, async_scheduling: bool = False) -> VLLMServer:
    """Start vLLM's OpenAI server on the embedded model with aimark's plugin (or, ``plugin=False``, plain vLLM,
    as bench/engines compares; async scheduling only without the plugin); return once /health answers."""
    from aimark.engines.models import GEMMA_CHAT_TEMPLATE
    from aimark.keys import save_key

    python = vllm_python()
    key_paths = {scheme: save_key(key, directory / f"{scheme}-key.json", overwrite=True) for scheme, key in keys.items()}
    port = free_port()
    repo = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        # The V1 runner: Model Runner V2 needs Triton, which has no CPU build (shared/specs/engines.md).
        "VLLM_USE_V2_MODEL_RUNNER": "0",
        "VLLM_CPU_KVCACHE_SPACE": "2",
        "AIMARK_VLLM_KEYS": os.pathsep.join(str(p) for p in key_paths.values()),
        # This checkout's aimark, whatever checkout the virtualenv's editable install points at.
        "PYTHONPATH": str(repo / "src"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    # vllm-cpu's `vllm` command asks for the "vllm" distribution's version and fails (it is "vllm-cpu");
    # the module entry point is the same server.
    command = [
        str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
        "--served-model-name", VLLM_SERVED_NAME, "--host", "127.0.0.1", "--port", str(port),
        "--max-model-len", "1024", "--max-logprobs", "64", "--async-scheduling" if async_scheduling else "--no-async-scheduling",
        # The embedded GGUF ships no chat template; aimark's Gemma turn format serves /v1/chat/completions.
        "--chat-template", str(GEMMA_CHAT_TEMPLATE),
        *(["--logits-processors", VLLM_PLUGIN] if plugin else []),
    ]
    log_path = directory / "vllm-server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=directory)
    server = VLLMServer(f"http://127.0.0.1:{port}", VLLM_SERVED_NAME, key_paths[next(iter(keys))], key_paths, dict(keys),
                        log_path, process, Path(model_dir))
    try:
        wait_until_healthy(server.base_url, process, log_path, VLLM_START_TIMEOUT_S)
    except BaseException:
        server.stop()
        raise
    return server
