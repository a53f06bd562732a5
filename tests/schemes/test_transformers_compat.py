"""Bit-compatibility with transformers' own watermark processors, and cross-detection."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import (
    SynthIDTextWatermarkingConfig,
    SynthIDTextWatermarkLogitsProcessor,
    WatermarkDetector,
    WatermarkingConfig,
    WatermarkLogitsProcessor as HFKGWProcessor,
)

from aimark.detect import Detector
from aimark.engines import generate
from aimark.keys import key_from_dict
from aimark.schemes import KGWScheme, SynthIDScheme

SYNTHID_CONFIG = {"ngram_len": 5, "keys": [654, 400, 836, 123, 340, 443, 597, 160, 57, 29, 590, 639, 13, 715, 468, 990, 966, 226, 324, 585, 118, 504, 421, 521, 129, 669, 732, 225, 90, 960], "context_history_size": 1024, "sampling_table_seed": 0, "sampling_table_size": 65536}


def _hf_synthid(config: dict) -> SynthIDTextWatermarkLogitsProcessor:
    return SynthIDTextWatermarkLogitsProcessor(
        ngram_len=config["ngram_len"],
        keys=config["keys"],
        sampling_table_size=config["sampling_table_size"],
        sampling_table_seed=config["sampling_table_seed"],
        context_history_size=config["context_history_size"],
        device="cpu",
    )


def test_synthid_g_values_identical_to_transformers():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 262144, size=(3, 80))
    reference = _hf_synthid(SYNTHID_CONFIG).compute_g_values(torch.tensor(ids)).numpy()
    scheme = SynthIDScheme(key_from_dict(SYNTHID_CONFIG))
    for row in range(3):
        windows = np.lib.stride_tricks.sliding_window_view(ids[row][:-1], 4)
        ours = scheme.g_values(scheme.context_keys(windows), ids[row][4:])
        np.testing.assert_array_equal(ours, reference[row])


def test_synthid_candidate_g_values_identical_to_transformers_generation_path():
    processor = _hf_synthid(SYNTHID_CONFIG)
    context = torch.tensor([[5, 17, 99, 100000], [1, 2, 3, 4]])
    candidates = torch.arange(0, 5000).unsqueeze(0).expand(2, -1)
    keys, context_hash = processor._compute_keys(context, candidates)
    reference = processor.sample_g_values(keys).numpy()
    scheme = SynthIDScheme(key_from_dict(SYNTHID_CONFIG))
    ours_context = scheme.context_keys(context.numpy())
    np.testing.assert_array_equal(ours_context.view(np.int64), context_hash.numpy())
    np.testing.assert_array_equal(scheme.g_values(ours_context, candidates.numpy()), reference)


@pytest.mark.parametrize("seeding", ["lefthash", "selfhash"])
@pytest.mark.parametrize("width", [1, 3])
def test_kgw_greenlists_identical_to_transformers(seeding, width):
    vocab = 5000
    config = {"greenlist_ratio": 0.25, "bias": 2.0, "hashing_key": 15485863, "seeding_scheme": seeding, "context_width": width}
    reference = HFKGWProcessor(vocab_size=vocab, device="cpu", **config)
    scheme = KGWScheme(key_from_dict(config), vocab_size=vocab)
    rng = np.random.default_rng(1)
    for _ in range(5):
        context = rng.integers(0, vocab, size=width)
        candidates = rng.integers(0, vocab, size=64)
        if seeding == "lefthash":
            expected = set(reference._get_greenlist_ids(torch.tensor(context)).tolist())
            flags = [c in expected for c in candidates]
        else:
            flags = []
            for c in candidates:
                green = reference._get_greenlist_ids(torch.tensor(np.append(context, c)))
                flags.append(int(c) in set(green.tolist()))
        ours, _ = scheme.green(context[None, :], candidates[None, :])
        assert ours[0].tolist() == flags


def _watermarked_by_transformers(tiny, watermarking_config, prompts, tokens=120):
    tokenizer = tiny.tokenizer
    tokenizer.padding_side = "left"
    inputs = tokenizer(prompts, return_tensors="pt", padding=True)
    torch.manual_seed(0)
    output = tiny.model.generate(
        **inputs, watermarking_config=watermarking_config, do_sample=True, top_k=50, max_new_tokens=tokens,
        min_new_tokens=tokens, pad_token_id=tokenizer.pad_token_id,
    )
    new = output[:, inputs["input_ids"].shape[1]:]
    return [tokenizer.decode(row, skip_special_tokens=True) for row in new]


PROMPTS = ["The history of the", "대한민국의 주권은", "日本国民は", "人民民主专政的"]


def test_text_watermarked_by_transformers_synthid_is_detected(tiny):
    texts = _watermarked_by_transformers(tiny, SynthIDTextWatermarkingConfig(**SYNTHID_CONFIG), PROMPTS)
    detector = Detector(key_from_dict(SYNTHID_CONFIG), tiny.tokenizer)
    for text in texts:
        assert detector.detect(text).p_value < 1e-3


@pytest.mark.parametrize("seeding", ["lefthash", "selfhash"])
def test_text_watermarked_by_transformers_kgw_is_detected(tiny, seeding):
    # selfhash over a 1-token window seeds each candidate by itself alone; width 2 is the realistic case.
    width = 1 if seeding == "lefthash" else 2
    config = {"greenlist_ratio": 0.25, "bias": 2.5, "hashing_key": 15485863, "seeding_scheme": seeding, "context_width": width}
    texts = _watermarked_by_transformers(tiny, WatermarkingConfig(**config), PROMPTS)
    detector = Detector(key_from_dict(config), tiny.tokenizer)
    for text in texts:
        assert detector.detect(text).p_value < 1e-3


def test_aimark_kgw_transformers_mode_is_detected_by_transformers(tiny):
    config = {"greenlist_ratio": 0.25, "bias": 2.5, "hashing_key": 15485863, "seeding_scheme": "lefthash", "context_width": 1}
    outputs = generate(tiny, PROMPTS, key=key_from_dict(config), max_new_tokens=120, min_new_tokens=120, seed=0, chat=False)
    hf_detector = WatermarkDetector(model_config=tiny.model.config, device="cpu", watermarking_config=WatermarkingConfig(**config), ignore_repeated_ngrams=True)
    ids = [tiny.tokenizer(o.text, add_special_tokens=False)["input_ids"] for o in outputs]
    for row in ids:
        result = hf_detector(torch.tensor([row]), return_dict=True)
        assert result.z_score[0] > 4.0


def test_aimark_synthid_transformers_mode_has_high_mean_g_value_under_transformers(tiny):
    outputs = generate(tiny, PROMPTS, key=key_from_dict(SYNTHID_CONFIG), max_new_tokens=120, min_new_tokens=120, seed=0, chat=False)
    processor = _hf_synthid(SYNTHID_CONFIG)
    for output in outputs:
        ids = torch.tensor([tiny.tokenizer(output.text, add_special_tokens=False)["input_ids"]])
        g = processor.compute_g_values(ids).float()
        mask = processor.compute_context_repetition_mask(ids)
        mean = (g.mean(-1) * mask).sum() / mask.sum()
        # 0.5 on unwatermarked text; sd of the mean over ~100 ngrams x 30 layers is ~0.01.
        assert mean > 0.55
