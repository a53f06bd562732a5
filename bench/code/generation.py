"""The code benchmark's decode loop: one prompt prefilled once, a batch that sheds its finished rows.

Every scheme and sample of a HumanEval problem continues the same prompt (~150 tokens, three times the
median completion), so the prompt is run through the model once and its KV cache copied to every row;
transformers' ``generate`` would prefill it again per row, and keep every row of a batch in each
forward pass until the last one stops (median completion ~50 tokens, a few run to 300). Here a row that
stops (end of sequence, a stop string, the length limit) leaves the batch and its KV cache at once, so
each step costs what the rows still running need.

Each row has its own logits processors (aimark's WatermarkLogitsProcessor, SWEET's) and its own
torch generator seeded from (scheme, problem, sample), so a row's text depends on its seed alone, not
on which rows shared its batch. Sampling is what aimark's ``generate`` does: temperature, top-k and
top-p among the candidates (by the watermark processor when there is one), then one draw.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Job:
    """One completion to generate: the prompt, and what seeds and watermarks it."""

    scheme: str
    task_id: str
    sample: int
    prompt: str


@dataclass(frozen=True)
class Completion:
    job: Job
    text: str
    num_tokens: int
    finish_reason: str  # "stop" (end of sequence or stop string) or "length"


def row_seed(job: Job, base_seed: int) -> int:
    digest = hashlib.blake2b(f"{base_seed}|{job.scheme}|{job.task_id}|{job.sample}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF


def generate_jobs(
    loaded,
    prompt: str,
    jobs: Sequence[Job],
    processors_for: Callable[[Job], list],
    *,
    max_new_tokens: int,
    stop_strings: Sequence[str],
    sampling: dict,
    base_seed: int = 0,
) -> list[Completion]:
    """Generate every job (all continuing ``prompt``) in one shrinking batch.

    ``processors_for(job)`` returns the row's logits processors. When the last one is aimark's
    WatermarkLogitsProcessor it has already applied temperature/top-k/top-p and the loop draws among the
    candidates it left; otherwise the loop applies ``sampling`` (temperature, top_k, top_p) itself.
    """
    import torch
    from transformers import DynamicCache

    from aimark.engines.generation import _stop_ids
    from aimark.schemes.processor import WatermarkLogitsProcessor, top_candidates

    model, tokenizer = loaded.model, loaded.tokenizer
    stops = set(_stop_ids(tokenizer, model.generation_config))
    prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    processors = [processors_for(job) for job in jobs]
    generators = [torch.Generator().manual_seed(row_seed(job, base_seed)) for job in jobs]
    generated: list[list[int]] = [[] for _ in jobs]
    finish = ["length"] * len(jobs)
    texts = [""] * len(jobs)
    active = list(range(len(jobs)))
    cache = DynamicCache()
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([prompt_ids]), past_key_values=cache, use_cache=True, logits_to_keep=1).logits[:, -1, :]
        cache.batch_repeat_interleave(len(jobs))
        logits = logits.expand(len(jobs), -1)
        position = len(prompt_ids)
        for _ in range(max_new_tokens):
            chosen = []
            for slot, row in enumerate(active):
                scores = logits[slot : slot + 1].float().clone()
                history = torch.tensor([prompt_ids + generated[row]], dtype=torch.long)
                chain = processors[row]
                for processor in chain:
                    scores = processor(history, scores)
                if chain and isinstance(chain[-1], WatermarkLogitsProcessor):
                    ids = torch.nonzero(torch.isfinite(scores[0]))[:, 0]
                    weights = torch.softmax(scores[0, ids].double(), dim=-1)
                else:
                    log_probs, top = top_candidates(scores, **sampling)
                    ids, weights = top[0], log_probs[0].double().exp()
                chosen.append(int(ids[torch.multinomial(weights, 1, generator=generators[row])]))
            keep = []
            for slot, (row, token) in enumerate(zip(active, chosen)):
                if token in stops:
                    finish[row] = "stop"
                    continue
                generated[row].append(token)
                text = tokenizer.decode(generated[row], skip_special_tokens=True)
                cut = min((i for i in (text.find(s) for s in stop_strings) if i >= 0), default=-1)
                if cut >= 0:
                    texts[row], finish[row] = text[:cut], "stop"
                    continue
                texts[row] = text
                keep.append(slot)
            if not keep or len(generated[active[keep[0]]]) >= max_new_tokens:
                break
            if len(keep) < len(active):
                cache.batch_select_indices(torch.tensor(keep, dtype=torch.long))
                active = [active[slot] for slot in keep]
                chosen = [chosen[slot] for slot in keep]
            step_ids = torch.tensor(chosen, dtype=torch.long)[:, None]
            positions = torch.full((len(active), 1), position, dtype=torch.long)
            logits = model(input_ids=step_ids, position_ids=positions, past_key_values=cache, use_cache=True).logits[:, -1, :]
            position += 1
    return [Completion(job, texts[i], len(generated[i]), finish[i]) for i, job in enumerate(jobs)]
