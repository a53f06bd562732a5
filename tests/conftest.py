"""Shared fixtures: a tiny tokenizer + causal LM built from a config (seconds), and human text."""

from __future__ import annotations

import inspect
import re
import textwrap
from pathlib import Path

import pytest

from tests.helpers import SEED_VARIABLE, SeededKeys, session_seed


def pytest_report_header(config):
    return f"aimark test seed: {SEED_VARIABLE}={session_seed()}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # Keys and random inputs derive from the session seed: a failure is reproducible only with it.
    report = (yield).get_result()
    if report.failed:
        report.sections.append(("aimark test seed", f"reproduce with: {SEED_VARIABLE}={session_seed()} pytest '{item.nodeid}'"))


@pytest.fixture
def keys(request) -> SeededKeys:
    """Seeded fresh keys for this test: ``keys("kgw")``; the stream depends on the seed and the test's id."""
    return SeededKeys(request.node.nodeid)


CJK_SAMPLES = [
    "대한민국은 민주공화국이다. 대한민국의 주권은 국민에게 있고, 모든 권력은 국민으로부터 나온다.",
    "日本国民は、正当に選挙された国会における代表者を通じて行動し、われらとわれらの子孫のために。",
    "中华人民共和国是工人阶级领导的、以工农联盟为基础的人民民主专政的社会主义国家。",
]


def human_english_passages(min_words: int = 60, limit: int = 400) -> list[str]:
    """Human-written English: docstrings of the standard library (no download)."""
    import argparse, collections, csv, email, http.client, json, logging, pathlib, subprocess, textwrap, threading, typing, unittest, urllib.request, zipfile  # noqa: E401

    modules = [argparse, collections, csv, email, http.client, json, logging, pathlib, subprocess, textwrap, threading, typing, unittest, urllib.request, zipfile]
    seen: set[str] = set()
    passages: list[str] = []
    for module in modules:
        for _, obj in inspect.getmembers(module):
            doc = inspect.getdoc(obj)
            if not doc or doc in seen:
                continue
            seen.add(doc)
            text = re.sub(r"\s+", " ", doc).strip()
            if len(text.split()) >= min_words:
                passages.append(text)
            if len(passages) >= limit:
                return passages
    return passages


@pytest.fixture(scope="session")
def human_passages() -> list[str]:
    passages = human_english_passages()
    assert len(passages) >= 100
    return passages


def human_python_functions(limit: int = 200, min_lines: int = 8, max_lines: int = 80) -> list[str]:
    """Human-written Python: functions and methods of the standard library, read with inspect (no download)."""
    import argparse, calendar, csv, difflib, fractions, gettext, json, pathlib, pprint, shlex, statistics, string, tokenize, zipfile  # noqa: E401

    modules = [argparse, calendar, csv, difflib, fractions, gettext, json, pathlib, pprint, shlex, statistics, string, textwrap, tokenize, zipfile]
    seen: set[str] = set()
    sources: list[str] = []
    for module in modules:
        members = [obj for _, obj in inspect.getmembers(module)]
        members += [m for cls in members if inspect.isclass(cls) and cls.__module__ == module.__name__ for _, m in inspect.getmembers(cls)]
        for obj in members:
            if not inspect.isfunction(obj) or obj.__module__ != module.__name__:
                continue
            try:
                source = textwrap.dedent(inspect.getsource(obj))
            except (OSError, TypeError):
                continue
            if source in seen or not min_lines <= source.count("\n") <= max_lines:
                continue
            seen.add(source)
            sources.append(source)
            if len(sources) >= limit:
                return sources
    return sources


@pytest.fixture(scope="session")
def human_code() -> list[str]:
    sources = human_python_functions()
    assert len(sources) >= 150
    return sources


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, human_passages) -> Path:
    """A SentencePiece-style BPE (Metaspace, no byte fallback) over stdlib docs + CJK, and a 2-layer Llama.

    No byte-level pieces: a random model sampling byte pieces would decode to U+FFFD, which no real
    text has, and the re-tokenised text would not be what was generated.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    directory = tmp_path_factory.mktemp("tiny-model")
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=1500, special_tokens=["<pad>", "<eos>", "<bos>", "<unk>"])
    tokenizer.train_from_iterator(human_passages + CJK_SAMPLES * 5, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>", unk_token="<unk>")
    fast.save_pretrained(directory)
    torch.manual_seed(1234)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        pad_token_id=fast.pad_token_id,
        eos_token_id=fast.eos_token_id,
        bos_token_id=fast.bos_token_id,
    )
    model = LlamaForCausalLM(config)
    # Sharper than a random init so samples are not uniform noise (entropy closer to a real LM).
    with torch.no_grad():
        model.lm_head.weight.mul_(8.0)
    model.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny(tiny_model_dir):
    from aimark.engines import load_model

    return load_model(str(tiny_model_dir))


@pytest.fixture
def generate_calls(monkeypatch):
    """The keyword arguments callers (CLI, service) pass to aimark.engines.generate; the real one still runs."""
    import aimark.engines

    calls, real = [], aimark.engines.generate

    def recording(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(aimark.engines, "generate", recording)
    return calls


@pytest.fixture
def browser():
    """Headless Chromium (the system's, from scripts/ci_services.sh), for the page and report tests."""
    from playwright.sync_api import sync_playwright

    from tests.services import chromium_path

    executable = chromium_path()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-gpu"])
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory):
    """A real vLLM OpenAI server (vLLM's own virtualenv, V1 runner on CPU) of the embedded Gemma 3 270M with
    aimark's logits processor, one per test session (starting it takes minutes; tests share it).

    ``.base_url`` ("http://127.0.0.1:PORT", no /v1), ``.model`` (the served name), ``.key_path`` (the key file
    requests are watermarked with by default; ``.keys``/``.key_paths``/``.key_ids`` by scheme: synthid (the
    default), kgw, gumbel, synthid-code (code-skeleton units)). Skips without the virtualenv (AIMARK_VLLM_VENV, default /work/vllm-venv), fails
    under CI=true.
    """
    from aimark.engines.models import embedded_model_dir
    from tests.helpers import seeded_keys
    from tests.services import start_vllm_server, vllm_python

    vllm_python()
    stream = seeded_keys("vllm-server")
    keys = {scheme: stream(scheme) for scheme in ("synthid", "kgw", "gumbel")}
    keys["synthid-code"] = stream("synthid", units="code-skeleton")
    server = start_vllm_server(tmp_path_factory.mktemp("vllm-server"), keys, embedded_model_dir())
    try:
        yield server
    finally:
        server.stop()
