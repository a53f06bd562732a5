"""Bounded load test of `aimark serve` (``python -m bench.service``, run.py); its request runner and percentiles
are shared with the gateway bench (bench/engines/gateway.py)."""
