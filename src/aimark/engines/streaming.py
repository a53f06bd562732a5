"""Streaming generation with a watermark: text deltas as the model produces them.

``model.generate`` runs in a worker thread with the same watermark processor and stop tokens as
:func:`aimark.engines.generate`; a ``TextIteratorStreamer`` hands decoded text back to the caller.
Closing the iterator early (a client hung up) stops the generation at the next step.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

from aimark.engines.generation import DEFAULT_REPETITION_PENALTY, _stop_ids
from aimark.engines.models import LoadedModel
from aimark.keys import WatermarkKey
from aimark.schemes import scheme_for_key


@dataclass
class StreamOutcome:
    """Filled in while streaming; final once the iterator is exhausted."""

    num_tokens: int = 0
    num_prompt_tokens: int = 0
    finish_reason: str = "length"  # "stop" (end of sequence) or "length"
    scheme: str = "none"
    key_id: str | None = None


def stream_generate(
    loaded: LoadedModel,
    formatted_prompt: str,
    *,
    key: WatermarkKey | None,
    outcome: StreamOutcome,
    max_new_tokens: int = 200,
    temperature: float = 1.0,
    top_k: int = 50,
    top_p: float = 1.0,
    repetition_penalty: float = DEFAULT_REPETITION_PENALTY,
    seed: int | None = None,
    timeout_s: float = 300.0,
    code_language: str | None = None,
    comment_boost: float = 0.0,
) -> Iterator[str]:
    """Yield text deltas for one already formatted prompt (see :func:`aimark.engines.format_prompt`).

    ``code_language`` / ``comment_boost``: as in :func:`aimark.engines.generate`.
    """
    import torch
    from transformers import (
        LogitsProcessorList,
        StoppingCriteria,
        StoppingCriteriaList,
        TextIteratorStreamer,
    )

    from aimark.engines.sampling import (
        GREEDY_KWARGS,
        comment_boost_for,
        sampling_processors,
    )

    if max_new_tokens < 1:
        raise ValueError("max_new_tokens must be >= 1")
    model, tokenizer = loaded.model, loaded.tokenizer
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    stop_ids = _stop_ids(tokenizer, model.generation_config)
    inputs = tokenizer([formatted_prompt], return_tensors="pt", add_special_tokens=True)
    outcome.num_prompt_tokens = int(inputs["input_ids"].shape[1])
    scheme = scheme_for_key(key, vocab_size=loaded.vocab_size, tokenizer=loaded.tokenizer) if key is not None else None
    if scheme is not None:
        outcome.scheme, outcome.key_id = scheme.name, scheme.key_id
    boost = comment_boost_for(scheme, tokenizer, code_language, comment_boost)
    processors = LogitsProcessorList(
        sampling_processors(scheme, top_k=top_k, temperature=temperature, top_p=top_p, pad_token_id=tokenizer.pad_token_id,
                            comment_boost=boost)
    )

    cancelled = threading.Event()
    stop_set = set(stop_ids)

    class CountingStreamer(TextIteratorStreamer):
        _prompt_seen = False

        def put(self, value):
            if not self._prompt_seen:  # the first call carries the prompt
                self._prompt_seen = True
            else:
                token_ids = value.reshape(-1).tolist()
                if any(t in stop_set for t in token_ids):
                    outcome.finish_reason = "stop"
                else:
                    outcome.num_tokens += len(token_ids)
            super().put(value)

    class Cancelled(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return torch.full((input_ids.shape[0],), cancelled.is_set(), dtype=torch.bool)

    streamer = CountingStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=timeout_s)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            if seed is not None:
                torch.manual_seed(seed)
            with torch.inference_mode():
                model.generate(**inputs, logits_processor=processors, stopping_criteria=StoppingCriteriaList([Cancelled()]),
                               max_new_tokens=max_new_tokens, eos_token_id=stop_ids, pad_token_id=tokenizer.pad_token_id,
                               repetition_penalty=repetition_penalty, streamer=streamer, **GREEDY_KWARGS)
        except BaseException as err:  # noqa: BLE001 - re-raised in the consumer's thread
            failure.append(err)
            streamer.end()

    worker = threading.Thread(target=run, name="aimark-stream", daemon=True)
    worker.start()
    try:
        for delta in streamer:
            if delta:
                yield delta
    finally:
        cancelled.set()
        worker.join()
    if failure:
        raise failure[0]
