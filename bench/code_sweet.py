"""SWEET (Lee et al., ACL 2024), the baseline aimark's code scheme is measured against.

SWEET is KGW (lefthash over the previous token) applied only where the model's next-token entropy
exceeds a threshold, at generation and at detection. Detection therefore needs the generating model:
that is the property aimark's product avoids, so SWEET lives here in bench/, not in the library.

Green lists come from aimark's own keyed KGW scheme (a ``kgw`` key with ``seeding_scheme=lefthash``,
``context_width=1``), so the statistic and its exact binomial null are the library's.
Published HumanEval settings: gamma 0.25, delta 3.0, entropy threshold 1.2 (StarCoder).
"""

from __future__ import annotations

import numpy as np

from aimark.keys import WatermarkKey, generate_key
from aimark.schemes.kgw import KGWScheme

SWEET_GAMMA = 0.25
SWEET_DELTA = 3.0
SWEET_ENTROPY_THRESHOLD = 1.2


def sweet_key() -> WatermarkKey:
    return generate_key("kgw", greenlist_ratio=SWEET_GAMMA, bias=SWEET_DELTA, seeding_scheme="lefthash", context_width=1)


def entropies(logits):
    """Shannon entropy (nats) of each row's raw next-token distribution (before temperature)."""
    import torch

    log_probs = torch.log_softmax(logits.float(), dim=-1)
    return -(log_probs.exp() * log_probs).sum(dim=-1)


def make_processor(key: WatermarkKey, vocab_size: int, threshold: float = SWEET_ENTROPY_THRESHOLD):
    """A transformers LogitsProcessor adding delta to green tokens where the raw entropy exceeds ``threshold``."""
    import torch
    from transformers import LogitsProcessor

    scheme = KGWScheme(key)
    vocabulary = np.arange(vocab_size, dtype=np.int64)[None, :]

    class SweetProcessor(LogitsProcessor):
        def __call__(self, input_ids, scores):
            high = (entropies(scores) > threshold).tolist()
            last = input_ids[:, -1:].cpu().numpy()
            for row, is_high in enumerate(high):
                if not is_high:
                    continue
                green, _ = scheme.green(last[row : row + 1], vocabulary[:, : scores.shape[1]])
                scores[row] += torch.from_numpy(green[0].astype(np.float32) * scheme.bias).to(scores.device)
            return scores

    return SweetProcessor()


def high_entropy_positions(loaded, prompt: str, completion: str, threshold: float = SWEET_ENTROPY_THRESHOLD) -> tuple[list[int], np.ndarray]:
    """(token ids of prompt + completion, boolean mask of completion positions SWEET scores).

    One forward pass of the generating model: the entropy at position t is that of the distribution
    the token at t was drawn from.
    """
    import torch

    tokenizer, model = loaded.tokenizer, loaded.model
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    ids = prompt_ids + completion_ids
    with torch.inference_mode():
        logits = model(torch.tensor([ids])).logits[0]
    entropy = entropies(logits).numpy()
    mask = np.zeros(len(ids), dtype=bool)
    for position in range(len(prompt_ids), len(ids)):
        mask[position] = position > 0 and entropy[position - 1] > threshold
    return ids, mask
