"""Time of one AimarkWatermarkProcessor.apply() per decoding step, in vLLM's virtualenv (bench/engines/run.py runs it).

    /work/vllm-venv/bin/python bench/engines/processor_cost.py KEY.json ...   # prints {scheme: {batch: ms}}

Gemma's 262,144-entry vocabulary, float32 logits, every row watermarked with the key, 30 tokens of output
already (contexts are full), torch on one thread as in vLLM's CPU worker; only apply() is timed.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import types

import numpy as np
import torch
from vllm import SamplingParams
from vllm.v1.sample.logits_processor import BatchUpdate

VOCAB = 262_144
BATCHES = (1, 4, 16)
STEPS = 50


def main() -> None:
    paths = sys.argv[1:]
    os.environ["AIMARK_VLLM_KEYS"] = os.pathsep.join(paths)
    from aimark.engines.vllm_plugin import AimarkWatermarkProcessor
    from aimark.keys import load_key

    torch.set_num_threads(1)
    config = types.SimpleNamespace(scheduler_config=types.SimpleNamespace(async_scheduling=False),
                                   model_config=types.SimpleNamespace(get_vocab_size=lambda: VOCAB))
    rng = np.random.default_rng(0)
    report = {}
    for path in paths:
        key = load_key(path)
        report[key.scheme] = {}
        for batch in BATCHES:
            processor = AimarkWatermarkProcessor(config, torch.device("cpu"), False)
            outputs = [rng.integers(0, VOCAB, 30).tolist() for _ in range(batch)]
            params = SamplingParams(temperature=1.0, extra_args={"aimark_key_id": key.key_id})
            processor.update_state(BatchUpdate(batch, [], [(i, params, rng.integers(0, VOCAB, 20).tolist(), outputs[i]) for i in range(batch)], []))
            logits = torch.from_numpy(rng.normal(0, 3, size=(batch, VOCAB)).astype(np.float32))
            times = []
            for _ in range(STEPS):
                for output in outputs:
                    output.append(int(rng.integers(0, VOCAB)))
                step_logits = logits.clone()
                started = time.perf_counter()
                processor.apply(step_logits)
                times.append((time.perf_counter() - started) * 1000)
            report[key.scheme][str(batch)] = statistics.median(times)
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
