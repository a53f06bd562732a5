"""Drives aimark's vLLM logits processor the way vLLM's V1 runner does, next to aimark's transformers processor.

Runs in vLLM's virtualenv (tests/engines/test_vllm_plugin.py starts it): reads a JSON job on stdin (key file
paths, a seed) and writes a JSON report on stdout. Requests join and leave a persistent batch at different
steps (vLLM's ``BatchUpdate``: added into the lowest free slots, removed, condensed by one-way moves, swapped),
one is preempted and re-added with its output so far, one step is processed twice (a chunked prefill's
discarded sample), and some requests opt out or decode greedily. Every row of every step is compared with
``WatermarkLogitsProcessor`` (schemes/processor.py) run on that request alone: the logits it returns must be
equal, bit for bit, to what the plugin hands vLLM's sampler.
"""

from __future__ import annotations

import json
import os
import sys
import types

import numpy as np
import torch
from vllm import SamplingParams
from vllm.v1.sample.logits_processor import BatchUpdate, MoveDirectionality

VOCAB = 32_000
# Only a handful of tokens are likely, so contexts repeat and the context dedup is exercised.
LIKELY = 6


def fake_config(async_scheduling: bool = False, tokenizer: str | None = None):
    """The fields of VllmConfig the processor reads."""
    return types.SimpleNamespace(
        scheduler_config=types.SimpleNamespace(async_scheduling=async_scheduling),
        model_config=types.SimpleNamespace(get_vocab_size=lambda: VOCAB, tokenizer=tokenizer),
    )


def validation_errors(processor_cls) -> dict[str, str]:
    """validate_params on bad requests: each must be refused with its message."""
    bad = {
        "top_p": SamplingParams(temperature=1.0, top_p=0.9),
        "unknown_option": SamplingParams(temperature=1.0, extra_args={"aimark_topk": 5}),
        "unknown_key": SamplingParams(temperature=1.0, extra_args={"aimark_key_id": "synthid-0000000000000000"}),
        "watermark_flag": SamplingParams(temperature=1.0, extra_args={"aimark_watermark": "maybe"}),
        "top_k_range": SamplingParams(temperature=1.0, extra_args={"aimark_top_k": 0}),
        "top_k_conflict": SamplingParams(temperature=1.0, top_k=20, extra_args={"aimark_top_k": 30}),
        "top_p_range": SamplingParams(temperature=1.0, extra_args={"aimark_top_p": 1.5}),
    }
    errors = {}
    for name, params in bad.items():
        try:
            processor_cls.validate_params(params)
        except ValueError as exc:
            errors[name] = str(exc)
        else:
            errors[name] = ""
    accepted = [
        SamplingParams(temperature=0.0, top_p=0.9),  # greedy: not watermarked, nothing to refuse
        SamplingParams(temperature=1.0, top_p=0.9, extra_args={"aimark_watermark": "off"}),
        SamplingParams(temperature=0.8, top_k=40, extra_args={"aimark_top_p": 0.95}),
    ]
    for params in accepted:
        processor_cls.validate_params(params)
    return errors


def main() -> None:
    global VOCAB
    job = json.load(sys.stdin)
    tokenizer_dir = job.get("tokenizer")  # code-skeleton keys: the served model's tokenizer
    tokenizer = None
    layout_ids = np.empty(0, dtype=np.int64)
    if tokenizer_dir:
        from aimark.engines.tokenizer import load_detection_tokenizer
        from aimark.schemes.code_skeleton import skeleton_vocabulary

        tokenizer = load_detection_tokenizer(tokenizer_dir)
        VOCAB = len(tokenizer)
        vocabulary = skeleton_vocabulary(tokenizer)
        special = set(tokenizer.all_special_ids)
        # Layout tokens (empty skeleton: newlines, indents) among the likely ones: their contexts stay unused.
        layout_ids = np.asarray([i for i in np.flatnonzero(vocabulary.lengths == 0) if i not in special], dtype=np.int64)
        # Tokens whose skeleton is one letter "a" ("a", "▁a", "A", ...): requests drawing only these (and layout)
        # repeat their skeleton context at every step, which exercises the dedup across layout tokens.
        same_letter = np.asarray([i for i, piece in enumerate(vocabulary.skeletons) if piece == b"a" and i not in special], dtype=np.int64)
    os.environ["AIMARK_VLLM_KEYS"] = os.pathsep.join(job["key_paths"])
    from aimark.engines.vllm_plugin import AimarkWatermarkProcessor, server_keyring
    from aimark.schemes import scheme_for_key
    from aimark.schemes.processor import WatermarkLogitsProcessor, top_candidates

    report: dict = {"validation_errors": validation_errors(AimarkWatermarkProcessor)}
    try:
        AimarkWatermarkProcessor(fake_config(async_scheduling=True, tokenizer=tokenizer_dir), torch.device("cpu"), False)
        report["async_error"] = ""
    except RuntimeError as exc:
        report["async_error"] = str(exc)

    keys = list(server_keyring())
    rng = np.random.default_rng(job["seed"])
    plugin = AimarkWatermarkProcessor(fake_config(tokenizer=tokenizer_dir), torch.device("cpu"), False)

    # (key index, temperature, top_k, top_p, extra) per request; prompts of 1..12 tokens, some shorter than a context.
    specs = []
    for index in range(job["requests"]):
        key_index = index % len(keys)
        extra = {"aimark_key_id": keys[key_index].key_id}
        temperature = float(rng.choice([0.7, 1.0, 1.3]))
        top_k, top_p = int(rng.choice([0, 8, 50])), 1.0
        if index % 4 == 1:
            extra["aimark_top_p"] = top_p = 0.8
        if index % 7 == 5:
            extra["aimark_watermark"] = False
        if index % 9 == 4:
            temperature = 0.0
        specs.append((key_index, temperature, top_k, top_p, extra))
    requests = []
    for index, (key_index, temperature, top_k, top_p, extra) in enumerate(specs):
        params = SamplingParams(temperature=temperature, top_k=top_k, top_p=1.0, extra_args=extra)
        watermarked = extra.get("aimark_watermark", True) and temperature > 0
        reference = None
        if watermarked:
            scheme = scheme_for_key(keys[key_index], vocab_size=VOCAB, tokenizer=tokenizer)
            reference = WatermarkLogitsProcessor(scheme, top_k=top_k or 50, temperature=temperature, top_p=top_p)
        likely = rng.choice(VOCAB, size=LIKELY, replace=False)
        if len(layout_ids):
            likely[:2] = rng.choice(layout_ids, size=2, replace=False)
            if index % 3 == 0 and len(same_letter) >= 2:
                likely[2:] = rng.choice(same_letter, size=LIKELY - 2, replace=len(same_letter) < LIKELY - 2)
        requests.append({
            "params": params, "prompt": rng.integers(0, VOCAB, size=int(rng.integers(1, 13))).tolist(), "output": [],
            "steps": int(rng.integers(24, 40)) if index % 2 == 0 else int(rng.integers(8, 40)), "start": int(rng.integers(0, 30)), "reference": reference,
            "likely": likely, "temperature": temperature, "preempt_at": int(rng.integers(12, 20)) if index % 2 == 0 else None,
        })

    slots: list[int | None] = []
    waiting = sorted(range(len(requests)), key=lambda r: requests[r]["start"])
    preempted: dict[int, int] = {}  # request -> step at which it comes back
    counts = {"compared": 0, "mismatches": 0, "changed_by_scheme": 0, "passthrough": 0,
              "passthrough_mismatches": 0, "moves": 0, "swaps": 0, "repeat_apply": 0, "readded": 0, "steps": 0}
    mismatch_examples = []
    step = 0
    while waiting or preempted or any(s is not None for s in slots):
        removed, added, moved = [], [], []
        for slot, r in enumerate(slots):
            if r is None:
                continue
            request = requests[r]
            if len(request["output"]) >= request["steps"]:
                slots[slot] = None
                removed.append(slot)
            elif request["preempt_at"] is not None and len(request["output"]) == request["preempt_at"]:
                request["preempted_after"], request["preempt_at"] = request["preempt_at"], None
                slots[slot] = None
                removed.append(slot)
                preempted[r] = step + 3
        arrivals = [r for r in waiting if requests[r]["start"] <= step] + [r for r, back in preempted.items() if back <= step]
        for r in arrivals:
            if r in preempted:
                del preempted[r]
                counts["readded"] += 1
            else:
                waiting.remove(r)
            free = [slot for slot, occupant in enumerate(slots) if occupant is None]
            slot = free[0] if free else len(slots)
            if slot == len(slots):
                slots.append(None)
            slots[slot] = r
            if slot in removed:
                removed.remove(slot)
            request = requests[r]
            added.append((slot, request["params"], request["prompt"], request["output"]))
        # Condense: move the last occupants into holes, as vLLM's InputBatch.condense does.
        while None in slots:
            hole = slots.index(None)
            last = max((i for i, s in enumerate(slots) if s is not None), default=-1)
            if last < hole:
                del slots[hole:]
                break
            slots[hole], slots[last] = slots[last], None
            moved.append((last, hole, MoveDirectionality.UNIDIRECTIONAL))
            counts["moves"] += 1
        if len(slots) >= 2 and step % 6 == 5:
            a, b = 0, len(slots) - 1
            slots[a], slots[b] = slots[b], slots[a]
            moved.append((a, b, MoveDirectionality.SWAP))
            counts["swaps"] += 1
        update = BatchUpdate(batch_size=len(slots), removed=removed, added=added, moved=moved) if (removed or added or moved) else None
        plugin.update_state(update)
        if not slots:
            step += 1
            continue
        counts["steps"] += 1
        raw = torch.from_numpy(rng.normal(0.0, 1.5, size=(len(slots), VOCAB)).astype(np.float32))
        for row, r in enumerate(slots):
            raw[row, torch.from_numpy(requests[r]["likely"])] += torch.from_numpy(rng.normal(9.0, 1.0, size=LIKELY).astype(np.float32))
        # vLLM's Sampler.apply_temperature with greedy rows in the batch (their temperature replaced by 1).
        temperatures = torch.tensor([requests[r]["temperature"] for r in slots], dtype=torch.float32)
        tempered = raw.clone().div_(torch.where(temperatures < 1e-5, 1.0, temperatures).unsqueeze(1))
        before = tempered.clone()
        out = plugin.apply(tempered)
        if step % 5 == 3:
            # The same step processed again (vLLM discards a partial prefill's sample): same answer, dedup untouched.
            again = plugin.apply(before.clone())
            counts["repeat_apply"] += 1
            if not torch.equal(again, out):
                counts["mismatches"] += 1
                mismatch_examples.append({"step": step, "what": "second apply of the same step differs"})
        for row, r in enumerate(slots):
            request = requests[r]
            if request["reference"] is None:
                counts["passthrough"] += 1
                if not torch.equal(out[row], before[row]):
                    counts["passthrough_mismatches"] += 1
                continue
            input_ids = torch.tensor([request["prompt"] + request["output"]], dtype=torch.long)
            expected = request["reference"](input_ids, raw[row : row + 1].clone())[0]
            counts["compared"] += 1
            log_probs, ids = top_candidates(before[row : row + 1], top_k=request["reference"].top_k, temperature=1.0,
                                            top_p=request["reference"].top_p)
            unmarked = torch.full_like(expected, float("-inf")).scatter_(0, ids[0], log_probs[0])
            counts["changed_by_scheme"] += int(not torch.equal(out[row], unmarked))
            if not torch.equal(out[row], expected):
                counts["mismatches"] += 1
                if len(mismatch_examples) < 5:
                    diff = (out[row] - expected).abs()
                    diff = diff[torch.isfinite(diff)]
                    mismatch_examples.append({"step": step, "request": r, "finite_plugin": int(torch.isfinite(out[row]).sum()),
                                              "finite_reference": int(torch.isfinite(expected).sum()),
                                              "max_abs_diff": float(diff.max()) if len(diff) else None})
        for row, r in enumerate(slots):
            request = requests[r]
            row_logits = out[row]
            if request["temperature"] == 0:
                token = int(torch.argmax(raw[row]))
            else:
                probs = torch.softmax(row_logits.double(), dim=-1).numpy()
                token = int(rng.choice(VOCAB, p=probs / probs.sum()))
            request["output"].append(token)
        step += 1
    # Steps whose context had come earlier in the same request: the context dedup leaves those unwatermarked.
    repeated = replayed = 0
    for request in requests:
        if request["reference"] is None:
            continue
        width, sequence = request["reference"].scheme.context_width, request["prompt"] + request["output"]
        contexts = [tuple(sequence[end - width : end]) for end in range(len(request["prompt"]), len(sequence)) if end >= width]
        repeated += len(contexts) - len(set(contexts))
        if "preempted_after" in request:
            # Contexts seen before the preemption and met again after it: the replayed history must know them.
            before_preemption = set(contexts[: request["preempted_after"]])
            replayed += sum(1 for c in contexts[request["preempted_after"] :] if c in before_preemption)
    if tokenizer is not None:  # skeleton contexts: steps whose content unit came after an earlier one's context
        repeated = replayed = 0
        for request in requests:
            if request["reference"] is None:
                continue
            scheme = request["reference"].scheme
            sequence = np.asarray(request["prompt"] + request["output"], dtype=np.int64)
            positions, words = scheme.vocabulary.contexts(sequence)
            content = positions[(positions >= len(request["prompt"])) & scheme.scored_tokens(sequence[positions])]
            seen = set()
            for position in content:
                word = tuple(words[list(positions).index(position)])
                repeated += word in seen
                seen.add(word)
            counts["layout_steps"] = counts.get("layout_steps", 0) + int((~scheme.scored_tokens(np.asarray(request["output"]))).sum())
    counts["repeated_contexts"] = repeated
    counts["repeats_across_preemption"] = replayed
    report["counts"] = counts
    report["mismatch_examples"] = mismatch_examples
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
