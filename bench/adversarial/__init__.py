"""Adversarial-input bench (issue 13): every public entry's time on hostile input against ordinary input.

    python -m bench.adversarial            # full run: 10 KB, 100 KB, 1 MB; writes bench/results/adversarial.md
    python -m bench.adversarial --quick    # small sizes, tiny tokenizer: every entry answers (CI: tests/bench)
    python -m bench.adversarial --entries detect,verify --sizes 1000000

Entries: detect, the code-language guess, fingerprint, label, unlabel, sign, verify, HTTP /v1/detect and
/v1/verify. Generators: see generators.ADVERSARIAL.
"""
