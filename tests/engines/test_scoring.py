"""The model's next-token distributions (aimark.engines.scoring): one forward pass per text, a shared prompt run
once, the same numbers as a plain forward pass of prompt + text."""

from __future__ import annotations

import numpy as np
import torch

from aimark.detect import Detector
from aimark.detect.with_model import Sampling
from aimark.engines import generate
from aimark.engines.scoring import detect_with_model, next_token_distributions
from tests.helpers import fixed_key


def _plain(tiny, ids: list[int]) -> np.ndarray:
    with torch.inference_mode():
        return torch.log_softmax(tiny.model(input_ids=torch.tensor([ids])).logits[0].float(), dim=-1).numpy()


def test_distributions_are_a_plain_forward_pass_with_and_without_a_prompt(tiny):
    tokenizer = tiny.tokenizer
    prompt = tokenizer("def mean(values):\n", add_special_tokens=False)["input_ids"]
    texts = ["    return sum(values) / len(values)\n", "    total = 0\n    for v in values:\n        total += v\n", "    pass\n"]
    sequences = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    with_prompt = next_token_distributions(tiny, sequences, prefix=prompt, batch_size=2)
    alone = next_token_distributions(tiny, sequences[:1])
    for sequence, dist in zip(sequences, with_prompt):
        reference = _plain(tiny, prompt + sequence)[len(prompt) - 1 : len(prompt) - 1 + len(sequence)]
        top = np.take_along_axis(reference, dist.ids, axis=1)
        assert np.allclose(dist.log_probs, top, atol=1e-4)
        assert np.array_equal(dist.ids[:, 0], reference.argmax(axis=1))
        entropy = -(np.exp(reference) * reference).sum(axis=1)
        assert np.allclose(dist.entropy, entropy, atol=1e-3)
    first = alone[0]
    assert np.all(np.isneginf(first.log_probs[0])) and np.isnan(first.entropy[0])  # nothing predicts a text's first token
    reference = _plain(tiny, sequences[0])
    assert np.allclose(first.log_probs[1:], np.take_along_axis(reference[:-1], first.ids[1:], axis=1), atol=1e-4)


def test_watermarked_text_is_detected_with_the_model_and_other_keys_are_not(tiny):
    key = fixed_key("synthid", "scoring")
    outputs = generate(tiny, ["The history of the city"] * 3, key=key, max_new_tokens=48, batch_size=3, chat=False, seed=5,
                       repetition_penalty=1.0)
    detector = Detector([key], tiny.tokenizer, check_tokenizer=False)
    stranger = Detector([fixed_key("synthid", "scoring-other")], tiny.tokenizer, check_tokenizer=False)
    for output in outputs:
        result = detect_with_model(detector, tiny, output.text, prompt=None, sampling=Sampling(1.0, 50, 1.0))
        assert result.p_value < 1e-6 and result.num_scored_tokens > 20
        assert detect_with_model(stranger, tiny, output.text, sampling=Sampling()).p_value > 1e-4
