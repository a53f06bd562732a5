"""Imported first by each bench script that can run as a file (``python bench/engines/gateway.py``).

Puts the repository root on ``sys.path`` so ``bench.*`` imports resolve, and takes the bench folder
itself off it: the bench/code package would otherwise shadow the standard library's ``code`` module, which pdb
and torch import.
"""

import sys
from pathlib import Path

_BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if p not in ("", str(_BENCH))]
if str(_BENCH.parent) not in sys.path:
    sys.path.insert(0, str(_BENCH.parent))
