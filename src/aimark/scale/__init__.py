"""Detection over corpora: JSONL or Parquet in, Parquet verdict rows out, on a local or remote Ray cluster.

>>> run = detect_corpus(["corpus.jsonl"], "verdicts.parquet", key_paths=["key.json"])  # doctest: +SKIP
>>> run.rows, run.errors, run.watermarked                                              # doctest: +SKIP

The output is a directory of Parquet parts (read it with pyarrow, pandas, DuckDB or Ray as one table);
a rerun over the same output resumes. See :mod:`aimark.scale.corpus` for the layout and
:mod:`aimark.scale.rows` for the row format.
"""

from aimark.scale.corpus import CorpusRun, CorpusOutputError, detect_corpus

__all__ = ["CorpusOutputError", "CorpusRun", "detect_corpus"]
