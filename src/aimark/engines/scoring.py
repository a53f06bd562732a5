"""The generating model's next-token distributions over a text: what detection with the model needs.

One forward pass per text (texts batched, right-padded; a shared prompt run once and its KV cache reused),
keeping per position the top candidates' log-probabilities over the whole vocabulary and the entropy:
``aimark.detect.with_model`` turns them into the weights of the model-weighted detector.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np

from aimark.detect.with_model import NextTokenDistributions, Sampling
from aimark.engines.models import LoadedModel

#: Candidates kept per position: more than any top-k aimark samples with by default (50).
KEPT_CANDIDATES = 64


def next_token_distributions(
    loaded: LoadedModel, sequences: Sequence[Sequence[int]], *, prefix: Sequence[int] = (), kept: int = KEPT_CANDIDATES,
    batch_size: int = 4,
) -> list[NextTokenDistributions]:
    """For each sequence, the model's distribution before each of its tokens, given ``prefix`` + the tokens before.

    Row 0 of a sequence is the distribution after ``prefix`` (none without one: -inf / NaN).
    """
    import torch
    from transformers import DynamicCache

    model = loaded.model
    results: list[NextTokenDistributions | None] = [None] * len(sequences)
    prefix = list(prefix)
    with torch.inference_mode():
        prefix_cache, first = None, None
        if prefix:
            prefix_cache = DynamicCache()
            first = model(input_ids=torch.tensor([prefix]), past_key_values=prefix_cache, use_cache=True, logits_to_keep=1).logits[0, -1]
        order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
        for start in range(0, len(order), batch_size):
            chunk = [i for i in order[start : start + batch_size] if len(sequences[i])]
            if not chunk:
                continue
            width = max(len(sequences[i]) for i in chunk)
            ids = torch.zeros((len(chunk), width), dtype=torch.long)
            mask = torch.zeros((len(chunk), len(prefix) + width), dtype=torch.long)
            mask[:, : len(prefix)] = 1
            for row, index in enumerate(chunk):
                ids[row, : len(sequences[index])] = torch.tensor(list(sequences[index]), dtype=torch.long)
                mask[row, len(prefix) : len(prefix) + len(sequences[index])] = 1
            cache = None
            if prefix_cache is not None:
                cache = copy.deepcopy(prefix_cache)
                cache.batch_repeat_interleave(len(chunk))
            positions = torch.arange(len(prefix), len(prefix) + width).expand(len(chunk), -1)
            logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=cache is not None).logits
            # Position i of a sequence is predicted by the logits after its token i - 1 (after the prefix for i = 0).
            before = logits[:, :-1] if first is None else torch.cat([first.expand(len(chunk), 1, -1), logits[:, :-1]], dim=1)
            log_probs = torch.log_softmax(before.float(), dim=-1)
            entropy = -(log_probs.exp() * log_probs).sum(dim=-1)
            top_values, top_ids = torch.topk(log_probs, min(kept, log_probs.shape[-1]), dim=-1)
            for row, index in enumerate(chunk):
                length = len(sequences[index])
                values, candidates, spread = top_values[row, :length].double().numpy(), top_ids[row, :length].numpy(), entropy[row, :length].double().numpy()
                if first is None:  # nothing predicts the first token
                    values = np.concatenate([np.full((1, values.shape[1]), -np.inf), values])[:length]
                    candidates = np.concatenate([np.zeros((1, candidates.shape[1]), dtype=candidates.dtype), candidates])[:length]
                    spread = np.concatenate([[np.nan], spread])[:length]
                results[index] = NextTokenDistributions(candidates.astype(np.int64), values, spread)
    empty = NextTokenDistributions(np.zeros((0, kept), dtype=np.int64), np.zeros((0, kept)), np.zeros(0))
    return [r if r is not None else empty for r in results]


def detect_with_model(detector, loaded: LoadedModel, text: str, *, prompt: str | None = None, sampling: Sampling | None = None):
    """:meth:`aimark.detect.Detector.detect_with_model` on ``text`` (``prompt``, if given, is context only, as in
    ``Detector.detect``): the detector's token ids run through ``loaded``'s model once."""
    ids, scored_from, _ = detector.encode(text, prompt=prompt)
    ids = np.asarray(ids, dtype=np.int64)
    # The model reads the text as it was generated: after its start-of-text token, where the tokenizer adds one.
    start = list(loaded.tokenizer("", add_special_tokens=True)["input_ids"])
    (distributions,) = next_token_distributions(loaded, [ids[scored_from:].tolist()], prefix=start + ids[:scored_from].tolist())
    if scored_from:  # prompt positions are never scored: rows without a distribution keep the arrays aligned with ids
        kept = distributions.ids.shape[1]
        distributions = NextTokenDistributions(
            np.concatenate([np.zeros((scored_from, kept), dtype=np.int64), distributions.ids]),
            np.concatenate([np.full((scored_from, kept), -np.inf), distributions.log_probs]),
            np.concatenate([np.full(scored_from, np.nan), distributions.entropy]),
        )
    return detector.detect_with_model(ids, distributions, scored_from=scored_from, sampling=sampling)
