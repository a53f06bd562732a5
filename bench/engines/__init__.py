"""Benchmarks of aimark with serving engines and in front of them (the gateway)."""
