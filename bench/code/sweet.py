"""SWEET (Lee et al., ACL 2024), the baseline aimark's code scheme is measured against.

SWEET is KGW (lefthash over the previous token) applied only where the model's next-token entropy
exceeds a threshold, at generation and at detection. Detection therefore needs the generating model:
that is the property aimark's product avoids, so SWEET lives here in bench/, not in the library.

Green lists come from aimark's own keyed KGW scheme (a ``kgw`` key with ``seeding_scheme=lefthash``,
``context_width=1``), so the statistic and its exact binomial null are the library's.
Published HumanEval settings: gamma 0.25, delta 3.0, entropy threshold 1.2 (StarCoder).
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable
from pathlib import Path

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


def high_entropy_masks(loaded, pairs, threshold: float = SWEET_ENTROPY_THRESHOLD, batch_size: int = 4):
    """For each (prompt, completion): (token ids of prompt + completion, mask of completion positions SWEET scores).

    The entropy at position t is that of the distribution the token at t was drawn from, so one forward
    pass of the generating model per text is needed; texts are batched by length (right-padded).
    """
    import torch

    tokenizer, model = loaded.tokenizer, loaded.model
    encoded = []
    for prompt, completion in pairs:
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"] if prompt else []
        completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
        encoded.append((prompt_ids + completion_ids, len(prompt_ids)))
    results: list = [None] * len(encoded)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        width = max(len(encoded[i][0]) for i in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        attention = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, index in enumerate(chunk):
            sequence = encoded[index][0]
            ids[row, : len(sequence)] = torch.tensor(sequence)
            attention[row, : len(sequence)] = 1
        with torch.inference_mode():
            entropy = entropies(model(input_ids=ids, attention_mask=attention).logits).numpy()
        for row, index in enumerate(chunk):
            sequence, scored_from = encoded[index]
            mask = np.zeros(len(sequence), dtype=bool)
            positions = np.arange(max(scored_from, 1), len(sequence))
            mask[positions] = entropy[row, positions - 1] > threshold
            results[index] = (sequence, scored_from, mask)
    return results


class MaskCache:
    """SWEET's (ids, scored_from, mask) per (prompt, completion), kept on disk at ``path``.

    Each new text costs one forward pass of the generating model (~1.5 s on 2 CPU cores), so the code
    benchmark and the length study share what either has computed; the model is loaded only when a
    text is missing.
    """

    SAVE_EVERY = 32  # texts between saves: a long run is resumable

    def __init__(self, path: Path, model_loader: Callable[[], object]):
        self.path = path
        self._model_loader = model_loader
        self._loaded = None
        self.masks: dict[tuple[str, str], tuple] = pickle.loads(path.read_bytes()) if path.exists() else {}

    def ensure(self, pairs, progress: Callable[[str], None] | None = None) -> int:
        """Compute (and save) the masks of the ``pairs`` not cached yet; returns how many that was."""
        todo = [pair for pair in dict.fromkeys(pairs) if pair not in self.masks]
        if not todo:
            return 0
        if self._loaded is None:
            self._loaded = self._model_loader()
        began = time.perf_counter()
        for start in range(0, len(todo), self.SAVE_EVERY):
            chunk = todo[start : start + self.SAVE_EVERY]
            self.masks.update(zip(chunk, high_entropy_masks(self._loaded, chunk)))
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_bytes(pickle.dumps(self.masks))
            if progress is not None:
                progress(f"  SWEET masks {start + len(chunk)}/{len(todo)} in {time.perf_counter() - began:.0f} s")
        return len(todo)

    def __getitem__(self, pair: tuple[str, str]) -> tuple:
        self.ensure([pair])
        return self.masks[pair]
