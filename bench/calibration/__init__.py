"""Far-tail calibration: false positives on human text under thousands of fresh keys (``python -m bench.calibration``,
run.py)."""
