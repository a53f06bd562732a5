"""The robustness suite (``python -m bench.robustness``, run.py): detection power under language-aware attacks,
calibration, localisation and quality; the attacks it runs (attacks.py) are shared with tests/bench."""
