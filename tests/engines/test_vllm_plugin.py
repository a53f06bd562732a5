"""aimark's schemes inside vLLM (aimark.engines.vllm_plugin), checked in vLLM's own virtualenv.

- The plugin class, driven as vLLM's V1 runner drives it (tests/engines/vllm_plugin_driver.py: requests joining,
  leaving, moved, swapped, preempted and re-added, a step processed twice), gives the logits aimark's
  transformers processor gives for each request, bit for bit, for SynthID, KGW and Gumbel keys.
- A real vLLM server (the ``vllm_server`` fixture; marked ``vllm``, one server for the session): each scheme's
  completions are detected by aimark at p < 1e-3, opted-out ones are not, every Gumbel choice is the one
  aimark's processor makes from the logits vLLM reports, and bad aimark options are an HTTP 400.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from aimark.keys import save_key
from tests.helpers import seeded_keys, session_seed
from tests.services import vllm_python

DRIVER = Path(__file__).with_name("vllm_plugin_driver.py")
REPO = Path(__file__).resolve().parents[2]


# -- the plugin class itself, in vLLM's virtualenv -----------------------------------------------------------

def drive(python, directory: Path, keys, label: str, tokenizer: Path | None = None) -> dict:
    paths = [str(save_key(key, directory / f"{label}-key-{index}.json")) for index, key in enumerate(keys)]
    job = {"key_paths": paths, "seed": session_seed(), "requests": 24, "tokenizer": str(tokenizer) if tokenizer else None}
    completed = subprocess.run(
        [str(python), str(DRIVER)], check=False, input=json.dumps(job), capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout)


@pytest.fixture(scope="module")
def driven(tmp_path_factory, tiny_model_dir):
    """The driver's reports: six keys (default and small-context ones, so contexts repeat; batches mix keys),
    one small-context Gumbel key alone (whole batches of one group: the processor's in-place path), and
    code-skeleton keys over a real tokenizer (the tiny model's), with layout tokens among the likely ones."""
    python = vllm_python()
    directory = tmp_path_factory.mktemp("vllm-plugin-keys")
    stream = seeded_keys("vllm-plugin-driver")
    keys = [stream("synthid"), stream("kgw"), stream("gumbel"), stream("synthid", ngram_len=2), stream("gumbel", context_width=1),
            stream("kgw", context_width=1, seeding_scheme="lefthash")]
    skeleton_keys = [stream("synthid", units="code-skeleton"), stream("gumbel", units="code-skeleton")]
    return {"mixed": drive(python, directory, keys, "mixed"), "one key": drive(python, directory, keys[4:5], "one"),
            "code-skeleton": drive(python, directory, skeleton_keys, "skeleton", tokenizer=tiny_model_dir)}, keys


@pytest.mark.parametrize("run", ["mixed", "one key"])
def test_plugin_gives_the_transformers_processors_logits_under_continuous_batching(driven, run):
    report = driven[0][run]
    counts = report["counts"]
    assert counts["mismatches"] == 0, report["mismatch_examples"]
    assert counts["passthrough_mismatches"] == 0  # opted-out and greedy rows are left as vLLM made them
    # The run exercised what it claims to: the schemes changed rows, contexts repeated (dedup), also across a
    # preemption (the re-added request's history is replayed), and the batch was reshaped every way.
    # (One context-width-1 key over six likely tokens: most contexts repeat, so fewer rows are watermarked.)
    assert counts["compared"] > 300 and counts["changed_by_scheme"] > counts["compared"] // 4
    assert counts["repeated_contexts"] > 20 and counts["repeats_across_preemption"] > 0
    assert counts["passthrough"] > 50 and counts["moves"] > 0 and counts["swaps"] > 0
    assert counts["readded"] > 0 and counts["repeat_apply"] > 0


def test_plugin_runs_code_skeleton_keys_as_the_transformers_processor_does(driven):
    report = driven[0]["code-skeleton"]
    counts = report["counts"]
    assert counts["mismatches"] == 0, report["mismatch_examples"]
    assert counts["passthrough_mismatches"] == 0
    assert counts["compared"] > 300 and counts["changed_by_scheme"] > counts["compared"] // 4
    # Layout tokens were drawn (contexts left unused by them) and skeleton contexts repeated (dedup exercised).
    assert counts["layout_steps"] > 20 and counts["repeated_contexts"] > 20
    assert counts["readded"] > 0 and counts["repeat_apply"] > 0


def test_bad_aimark_options_are_refused_with_clear_errors(driven):
    reports, keys = driven
    report = reports["mixed"]
    errors = report["validation_errors"]
    assert "aimark_top_p" in errors["top_p"] and "top_p=0.9" in errors["top_p"]
    assert "aimark_topk" in errors["unknown_option"] and "aimark_top_k" in errors["unknown_option"]
    assert "synthid-0000000000000000" in errors["unknown_key"] and keys[0].key_id in errors["unknown_key"]
    assert "aimark_watermark" in errors["watermark_flag"]
    assert "aimark_top_k" in errors["top_k_range"]
    assert "disagree" in errors["top_k_conflict"]
    assert "aimark_top_p" in errors["top_p_range"]
    assert "--no-async-scheduling" in report["async_error"]
    blob = json.dumps(report)
    assert not any(key.secret.hex() in blob for key in keys)


# -- a real vLLM server ------------------------------------------------------------------------------------

PROMPTS = [
    "Write a short paragraph about the history of paper.",
    "Explain how a bicycle stays upright.",
    "Describe a walk through a city market in the morning.",
    "Tell a short story about a lighthouse keeper.",
]


@pytest.fixture(scope="module")
def tokenizer():
    from aimark.engines import load_tokenizer

    return load_tokenizer()


def complete(server, prompt: str, tokenizer, **fields) -> dict:
    import httpx

    from aimark.engines import format_prompt

    # aimark's own sampling defaults for prose (engines/generation.py): top-k 50, repetition penalty 1.15.
    body = {"model": server.model, "prompt": format_prompt(tokenizer, prompt), "max_tokens": 120, "min_tokens": 120,
            "temperature": 1.0, "top_k": 50, "repetition_penalty": 1.15, **fields}
    response = httpx.post(f"{server.base_url}/v1/completions", json=body, timeout=600)
    assert response.status_code == 200, response.text
    return response.json()


def complete_all(server, tokenizer, prompts, **fields) -> list[dict]:
    """Concurrent requests, so the server batches them (continuous batching)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(prompts)) as pool:
        return list(pool.map(lambda p: complete(server, p, tokenizer, **fields), prompts))


@pytest.mark.vllm
@pytest.mark.parametrize("scheme", ["synthid", "kgw", "gumbel"])
def test_live_completions_are_detected_for_each_scheme(vllm_server, tokenizer, scheme):
    from aimark.detect import Detector

    # synthid is the server's default key: its requests name no key at all.
    xargs = {} if scheme == "synthid" else {"vllm_xargs": {"aimark_key_id": vllm_server.key_ids[scheme]}}
    answers = complete_all(vllm_server, tokenizer, PROMPTS[:2], **xargs)
    detector = Detector(vllm_server.keys[scheme], tokenizer)
    for answer in answers:
        text = answer["choices"][0]["text"]
        result = detector.detect(text)
        assert result.p_value < 1e-3, f"{scheme}: p={result.p_value:.3g}, {result.num_scored_tokens} scored: {text[:80]!r}"


CODE_PROMPTS = ["def merge_sorted(left, right):\n", "def word_counts(text):\n", "class Stack:\n", "def parse_date(value):\n"]


def reformatted(code: str) -> str:
    """What a formatter does to a file: black where the code parses, and in any case other indentation and
    spacing, other quotes and trailing commas (what black, ruff format and prettier change)."""
    import re

    try:
        import black

        code = black.format_str(code, mode=black.Mode())
    except Exception:  # noqa: BLE001 - a 270M model's code need not parse; the edits below still apply
        pass
    code = re.sub(r"[ \t]+", "  ", code).replace("'", '"')
    return code.replace(")", ",)").replace("\n", "\n\n")


@pytest.mark.vllm
def test_live_code_skeleton_completions_survive_reformatting(vllm_server, tokenizer):
    """A code key (units=code-skeleton) served by vLLM: its completions are detected as generated and after
    reformatting, from the text alone."""
    import httpx

    from aimark.detect import Detector

    key = vllm_server.keys["synthid-code"]
    body = {"model": vllm_server.model, "max_tokens": 160, "min_tokens": 160, "temperature": 1.0, "top_k": 50,
            "vllm_xargs": {"aimark_key_id": key.key_id}}
    from concurrent.futures import ThreadPoolExecutor

    def complete_code(prompt):
        response = httpx.post(f"{vllm_server.base_url}/v1/completions", json={**body, "prompt": prompt}, timeout=600)
        assert response.status_code == 200, response.text
        return prompt + response.json()["choices"][0]["text"]

    with ThreadPoolExecutor(len(CODE_PROMPTS)) as pool:
        files = list(pool.map(complete_code, CODE_PROMPTS))
    detector = Detector(key, tokenizer)
    # One 270M completion can be nearly forced (a few per cent of them score p ~ 0.1 here): the evidence is judged
    # over the four files as one, and at least three of the four must be detected alone.
    whole = "\n\n".join(files)
    assert detector.detect(whole).p_value < 1e-6 and detector.detect(reformatted(whole)).p_value < 1e-6
    singles = [(detector.detect(code).p_value, detector.detect(reformatted(code)).p_value) for code in files]
    assert sum(a < 1e-3 and b < 1e-3 for a, b in singles) >= 3, singles


@pytest.mark.vllm
def test_live_opted_out_completions_are_not_watermarked(vllm_server, tokenizer):
    from aimark.detect import Detector

    answers = complete_all(vllm_server, tokenizer, PROMPTS, vllm_xargs={"aimark_watermark": False})
    # 12 exact p-values of unwatermarked text: each below 1e-5 with chance 1e-5 (a watermark would be far below).
    for scheme, key in vllm_server.keys.items():
        detector = Detector(key, tokenizer)
        for answer in answers:
            result = detector.detect(answer["choices"][0]["text"])
            assert result.num_scored_tokens > 20 and result.p_value > 1e-5, (scheme, result.p_value)


@pytest.mark.vllm
def test_live_gumbel_choices_are_aimarks_on_the_logits_vllm_reports(vllm_server, tokenizer):
    """Each Gumbel token vLLM sampled is the one aimark's transformers processor picks from vLLM's own top-50
    log-probabilities of that step (raw, before temperature): the plugin's context, dedup and candidate set are
    aimark's. Only a near-tie of the Gumbel race (float32 rounding between logits and log-probabilities), or a
    tie of log-probabilities across the top-k boundary (which tied token torch.topk keeps is arbitrary), may
    differ."""
    import httpx

    from aimark.engines import format_prompt
    from aimark.schemes import scheme_for_key
    from aimark.schemes.processor import WatermarkLogitsProcessor

    key = vllm_server.keys["gumbel"]
    scheme = scheme_for_key(key)
    temperature, top_k, min_tokens = 0.8, 50, 120
    # No repetition penalty: vLLM reports log-probabilities from before penalties, the plugin sees them after.
    # More log-probabilities than candidates: a tie across the top-k boundary (bfloat16 logits tie often) makes
    # the candidate set torch.topk's arbitrary pick among the tied tokens, in vLLM and in the reference alike.
    answers = complete_all(vllm_server, tokenizer, PROMPTS, temperature=temperature, top_k=top_k, logprobs=top_k + 2,
                           repetition_penalty=1.0, min_tokens=min_tokens, return_tokens_as_token_ids=True,
                           vllm_xargs={"aimark_key_id": key.key_id})
    checked = agreed = boundary_ties = 0
    for prompt, answer in zip(PROMPTS, answers):
        prompt_ids = httpx.post(f"{vllm_server.base_url}/tokenize", json={"model": vllm_server.model, "prompt": format_prompt(tokenizer, prompt)},
                                timeout=60).json()["tokens"]
        logprobs = answer["choices"][0]["logprobs"]
        output = [int(token.split(":")[1]) for token in logprobs["tokens"]]
        reference = WatermarkLogitsProcessor(scheme, top_k=top_k, temperature=temperature)
        for step, (token, top) in enumerate(zip(output, logprobs["top_logprobs"])):
            ranked = sorted(((value, int(name.split(":")[1])) for name, value in top.items()), reverse=True)
            if step < min_tokens:
                # vLLM's min_tokens processor (before the plugin, as transformers' min_new_tokens is before aimark's)
                # masks the end-of-sequence token; the log-probabilities it reports are from before that.
                ranked = [(value, t) for value, t in ranked if t != tokenizer.eos_token_id]
            best = ranked[:top_k]
            scores = torch.full((1, len(tokenizer)), float("-inf"))
            scores[0, [t for _, t in best]] = torch.tensor([v for v, _ in best])
            row = reference(torch.tensor([prompt_ids + output[:step]]), scores)[0]
            if int(torch.isfinite(row).sum()) != 1:
                continue  # a repeated context: ordinary sampling, nothing to compare
            checked += 1
            chosen = int(torch.argmax(row))
            if chosen == token:
                agreed += 1
                continue
            boundary = best[-1][0]
            tied = {t for value, t in ranked if value == boundary}
            if len(ranked) > top_k and ranked[top_k][0] == boundary and (chosen in tied or token in tied):
                boundary_ties += 1  # vLLM's top-k kept another of the tied tokens: another candidate set
                continue
            # Otherwise a disagreement is allowed only where aimark's own race between the two is a near-tie.
            window = np.asarray((prompt_ids + output[:step])[-scheme.context_width :])[None]
            log_probs = torch.log_softmax(torch.tensor([v for v, _ in best]) / temperature, dim=-1).double().numpy()
            ids = [t for _, t in best]
            race = np.log(scheme.uniforms(scheme.context_keys(window), np.asarray([ids]))[0]) / np.exp(log_probs)
            values = dict(zip(ids, race))
            assert token in values and abs(values[chosen] - values[token]) <= 1e-4 * abs(values[chosen]), (step, chosen, token)
    assert checked > 80, checked
    # A boundary tie changes the choice only where a tied last candidate wins the race: rare (2 of 300 here).
    assert agreed + boundary_ties >= checked - 2 and boundary_ties <= max(3, checked // 50), (agreed, boundary_ties, checked)


@pytest.mark.vllm
def test_live_bad_aimark_options_are_http_400(vllm_server, tokenizer):
    import httpx

    from aimark.engines import format_prompt

    base = {"model": vllm_server.model, "prompt": format_prompt(tokenizer, PROMPTS[0]), "max_tokens": 4}
    response = httpx.post(f"{vllm_server.base_url}/v1/completions", json={**base, "top_p": 0.9}, timeout=120)
    assert response.status_code == 400 and "aimark_top_p" in response.text
    response = httpx.post(f"{vllm_server.base_url}/v1/completions", json={**base, "vllm_xargs": {"aimark_key_id": "kgw-0"}}, timeout=120)
    assert response.status_code == 400 and "kgw-0" in response.text
    assert not any(key.secret.hex() in response.text for key in vllm_server.keys.values())
    # An opted-out request may use vLLM's own top_p: nothing of aimark's runs on it.
    response = httpx.post(f"{vllm_server.base_url}/v1/completions", json={**base, "top_p": 0.9, "vllm_xargs": {"aimark_watermark": "off"}}, timeout=120)
    assert response.status_code == 200, response.text
