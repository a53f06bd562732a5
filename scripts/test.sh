#!/usr/bin/env bash
# Set up (idempotent), start the services some tests need, and run the whole test suite,
# the embedded-model integration tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# PostgreSQL, Chromium and the Debian human-text packages (apt-get; needs root or sudo).
# Without them those tests skip locally; under CI=true they fail instead of skipping.
if bash scripts/ci_services.sh; then
  . .cache/ci-services.env
else
  echo "warning: could not start PostgreSQL/Chromium; tests that need them will be skipped (or fail under CI=true)" >&2
fi
# vLLM's own virtualenv with aimark in it, for the tests that run aimark's plugin inside a real vLLM server
# (tests/engines/test_vllm_plugin.py). Without it those tests skip locally; under CI=true they fail.
if ! bash scripts/vllm_venv.sh; then
  echo "warning: could not make vLLM's virtualenv (scripts/vllm_venv.sh); the vLLM tests will be skipped (or fail under CI=true)" >&2
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/python -m pytest -q "$@"
