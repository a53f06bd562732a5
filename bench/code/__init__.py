"""The code watermark studies: HumanEval pass@1 and detection (``python -m bench.code``), the length study
(``bench.code.length``), the entropy-proxy gate (``bench.code.proxy``) and the comment boost
(``bench.code.comment_boost``); SWEET and the formatter attacks they share live here too."""
