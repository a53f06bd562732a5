"""vLLM plain vs vLLM with aimark's logits processor: python -m bench.engines (see run.py)."""
