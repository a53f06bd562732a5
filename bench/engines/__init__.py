"""aimark with serving engines and in front of them: `python -m bench.engines` (vLLM plain vs aimark's plugin, run.py) and `python bench/engines/gateway.py` (the gateway's added latency)."""
