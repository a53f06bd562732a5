#!/usr/bin/env bash
# Create .venv and install aimark with its test, bench and scale (Ray) extras. torch is pinned to the CPU wheel:
# an unpinned torch pulls several GB of CUDA libraries.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[test,bench,scale]"
