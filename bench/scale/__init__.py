"""Corpus detection at scale: the single-process `detect --jsonl` path against Ray with 1 and 2 workers."""
