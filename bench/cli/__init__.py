"""Whole-process cold start of the command line (python -m bench.cli)."""
