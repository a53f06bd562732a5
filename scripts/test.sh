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
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/python -m pytest -q "$@"
