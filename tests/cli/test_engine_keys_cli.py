"""`aimark detect` / `verify` with an engine's own watermark config as the key file (vLLM's --watermark-config)."""

from __future__ import annotations

import json

import pytest

from tests.cli.conftest import run
from tests.schemes.test_vllm import fixture

# Long enough that no p-value's digits hold it by chance (with 42, one run's p-value did).
SECRET = 8_914_273_650_417_093
HUMAN = "The committee met on Tuesday to review the budget, and after a long discussion it agreed to postpone the vote until spring."


@pytest.fixture
def vllm_config(tmp_path):
    path = tmp_path / "vllm-watermark.json"
    path.write_text(json.dumps({"algorithm": "dual_key_gumbel", "key": SECRET, "alpha": 0.3}))
    return path


def test_detect_reads_a_vllm_watermark_config(vllm_config, tiny_model_dir):
    result = run("detect", "-", "--key", vllm_config, "--model", tiny_model_dir, "--json", input=HUMAN)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["scheme"] == "gumbel" and document["key_id"].startswith("gumbel-")
    assert document["watermarked"] is False and document["num_scored_tokens"] > 0
    assert str(SECRET) not in result.stdout


def test_malformed_vllm_config_is_a_one_line_error(tmp_path, tiny_model_dir):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"algorithm": "sbw", "key": 7}))
    result = run("detect", "-", "--key", path, "--model", tiny_model_dir, input=HUMAN)
    assert result.exit_code != 0 and "'algorithm' must be one of gumbel, dual_key_gumbel" in result.output


def _run_config_and_samples(algorithm: str):
    runs = fixture()["runs"]
    index = next(i for i, r in enumerate(runs) if r["config"] and r["config"]["algorithm"] == algorithm)
    return runs[index]["config"], [s for s in runs[index]["samples"] if s["detections"][index]["vllm_p_value"] < 1e-4]


@pytest.mark.embedded
def test_text_watermarked_by_vllm_is_found_by_detect_and_verify(tmp_path):
    """From text, with the embedded Gemma's tokenizer: vLLM's samples (decoded) are found, the controls are not."""
    config, strong = _run_config_and_samples("gumbel")
    assert strong, "the fixture has no strongly watermarked gumbel sample"
    key = tmp_path / "vllm.json"
    key.write_text(json.dumps(config))
    found = [json.loads(run("detect", "-", "--key", key, "--json", input=s["text"]).stdout)["watermarked"] for s in strong]
    assert sum(found) >= len(found) - 1  # re-tokenising decoded text may change a token id or two
    text_file = tmp_path / "answer.txt"
    text_file.write_text(strong[0]["text"], encoding="utf-8")
    report = json.loads(run("verify", text_file, "--profile", "eu", "--key", key, "--json").stdout)
    assert report["layers"]["watermark"]["result"]["watermarked"] is True
    for control in fixture()["runs"][-1]["samples"][:4]:
        assert json.loads(run("detect", "-", "--key", key, "--json", input=control["text"]).stdout)["watermarked"] is False
