"""Core benchmark on the embedded model against transformers' own watermark processors (``python -m bench.core``,
run.py); ``tokens_to_detect`` is shared with the robustness suite."""
