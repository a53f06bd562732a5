"""Make reference samples of vLLM's own watermarks, for tests/fixtures/engines/vllm_watermark_samples.json.gz.

Runs in vLLM's virtualenv (not aimark's): ``bash scripts/vllm_venv.sh`` makes it, then
``/work/vllm-venv/bin/python scripts/vllm_watermark_samples.py``. Nothing here imports aimark:
the samples and every value recorded come from vLLM 0.32's ``vllm/v1/watermarking`` code.

- Logits: the embedded Gemma 3 270M (aimark's cached directory; transformers loads it).
- Sampling: vLLM's watermarkers (``GumbelWatermarker`` / ``DualKeyGumbelWatermarker``) through their
  ``sample`` method, whose non-CUDA path is ``argmax(logits + Gumbel noise of PhiloxPRF.uniform)``;
  repeated contexts found by vLLM's ``repeated_context_mask`` (its CPU reference) go to the ordinary
  sampler, as in ``GPUWatermarkSampler._sample_random``. The contexts are built by the rule of
  ``GPUWatermarkSampler._get_contexts`` (the last ``context_width`` generated tokens, -1 before the
  first); that method needs the GPU runner's request state, so it is restated here. vLLM's ordinary
  sampler is a Triton kernel, so ordinary draws (repeated contexts, the dual-key routing) use a seeded
  torch multinomial in its place: those draws carry no watermark either way.
- Records: per sample the generated ids, vLLM's detector contexts' uniforms of every key (float32 bit
  patterns) and its per-token scores, and vLLM's detector verdict (score, p-value, scored count).
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from vllm.config.watermarking import derive_watermark_key
from vllm.v1.sample.ops.topk_topp_sampler import apply_top_k_top_p
from vllm.v1.watermarking import (
    DualKeyGumbelWatermarkDetector,
    DualKeyGumbelWatermarker,
    GumbelWatermarkDetector,
    GumbelWatermarker,
    PhiloxPRF,
    WatermarkPRF,
)
from vllm.v1.worker.gpu.sample.watermark import repeated_context_mask

CONFIGS = [
    {"algorithm": "gumbel", "key": 7315942816234917551, "context_width": 4, "deduplicate_contexts": "single_turn"},
    {"algorithm": "dual_key_gumbel", "key": 42, "alpha": 0.3, "context_width": 4, "deduplicate_contexts": "single_turn"},
    {"algorithm": "dual_key_gumbel", "key": 18446744073709551615, "alpha": 0.1, "context_width": 3, "deduplicate_contexts": "all"},
    {"algorithm": "gumbel", "key": 1234567, "context_width": 2, "deduplicate_contexts": "none"},
]
PROMPTS = [
    "Write a short paragraph about the history of paper.",
    "Explain how a bicycle stays upright.",
    "Describe a walk through a city market in the morning.",
    "What should someone know before adopting a cat?",
    "Tell a short story about a lighthouse keeper.",
]
DETECTOR_THRESHOLD = 0.01
GEMMA_TURN = "<start_of_turn>user\n{prompt}<end_of_turn>\n<start_of_turn>model\n"


class SeededSampler:
    """Ordinary sampling from softmax(logits) with a seeded generator: stands in for vLLM's Triton gumbel_sample."""

    def __init__(self, seed: int):
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(logits.to(torch.float64), dim=-1)
        return torch.multinomial(probs, 1, generator=self.generator).squeeze(-1)


class TopKPhilox(WatermarkPRF):
    """vLLM's PhiloxPRF evaluated only at each row's top-k candidates (the other logits are -inf).

    The watermarker asks for the uniforms of the whole vocabulary; torch's int64 Philox takes ~13 s per
    step for 2 x 262,144 values on this machine, and tokens whose logit is -inf cannot win the argmax,
    so their uniforms (filled with 0.5 here) do not change the sample.
    """

    def __init__(self, inner: PhiloxPRF):
        self.inner = inner
        self.candidates: torch.Tensor | None = None

    def uniform(self, contexts: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
        if self.candidates is None or token_ids.ndim != 1:
            return self.inner.uniform(contexts, token_ids)
        out = torch.full((contexts.shape[0], token_ids.shape[0]), 0.5, dtype=torch.float32)
        return out.scatter_(1, self.candidates, self.inner.uniform(contexts, self.candidates))


def watermarker_for(config: dict):
    """vLLM's watermarker for ``config``, and the PRFs it samples with (to be told each step's candidates)."""
    if config is None:
        return None, []
    if config["algorithm"] == "gumbel":
        watermarker = GumbelWatermarker(config["key"], config["context_width"], "philox")
        watermarker.prf = TopKPhilox(watermarker.prf)
        return watermarker, [watermarker.prf]
    watermarker = DualKeyGumbelWatermarker(config["key"], config["context_width"], "philox", config["alpha"])
    for inner in (watermarker.draft_watermarker, watermarker.target_watermarker):
        inner.prf = TopKPhilox(inner.prf)
    return watermarker, [watermarker.draft_watermarker.prf, watermarker.target_watermarker.prf]


def detector_for(config: dict):
    dedup = config["deduplicate_contexts"] != "none"
    if config["algorithm"] == "gumbel":
        return GumbelWatermarkDetector(config["key"], config["context_width"], DETECTOR_THRESHOLD, "philox", dedup)
    return DualKeyGumbelWatermarkDetector(config["key"], config["context_width"], DETECTOR_THRESHOLD, "philox", dedup, config["alpha"])


def key_prfs(config: dict) -> list[PhiloxPRF]:
    if config["algorithm"] == "gumbel":
        return [PhiloxPRF(config["key"])]
    return [PhiloxPRF(derive_watermark_key(config["key"], domain)) for domain in (b"key_a", b"key_b")]


def generated_contexts(generated: torch.Tensor, width: int) -> torch.Tensor:
    """GPUWatermarkSampler._get_contexts for one step: the last ``width`` generated tokens, -1 before the first."""
    rows, length = generated.shape
    padded = torch.cat([torch.full((rows, width), -1, dtype=torch.int64), generated], dim=1)
    return padded[:, length : length + width]


def generate(model, prompt_ids: list[int], config: dict | None, *, rows: int, tokens: int, seed: int, banned: list[int], top_k: int) -> list[list[int]]:
    watermarker, prfs = watermarker_for(config)
    sampler = SeededSampler(seed)
    prompt = torch.tensor([prompt_ids] * rows)
    generated = torch.empty((rows, 0), dtype=torch.int64)
    with torch.inference_mode():
        out = model(input_ids=prompt, use_cache=True)
        cache = out.past_key_values
        logits = out.logits[:, -1, :].float()
        for _ in range(tokens):
            logits[:, banned] = float("-inf")  # fixed-length samples, as vLLM's min_tokens does
            logits = apply_top_k_top_p(logits, torch.full((rows,), top_k), None)
            # Every token left finite (ties at the k-th logit included) gets its true uniform.
            candidates = torch.topk(logits, int(torch.isfinite(logits).sum(-1).max()), dim=-1).indices
            for prf in prfs:
                prf.candidates = candidates
            if watermarker is None:
                sampled = sampler(logits)
            else:
                contexts = generated_contexts(generated, config["context_width"])
                skip = None
                if config["deduplicate_contexts"] != "none":
                    history = torch.cat([prompt, generated], dim=1)
                    skip = repeated_context_mask(
                        history,
                        torch.arange(rows),
                        torch.full((rows,), prompt.shape[1]),
                        torch.full((rows,), history.shape[1]),
                        contexts,
                        config.get("deduplicate_contexts_max_history", 8192),
                        include_prompt=config["deduplicate_contexts"] == "all",
                        skip_partial_context=config["deduplicate_contexts"] == "all",
                    )
                sampled = watermarker.sample(logits, contexts, random_sampler=sampler, skip_mask=skip).token_ids
            generated = torch.cat([generated, sampled.unsqueeze(-1)], dim=1)
            out = model(input_ids=sampled.unsqueeze(-1), past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            logits = out.logits[:, -1, :].float()
    return generated.tolist()


def record(config: dict, output_ids: list[int]) -> dict:
    """vLLM's detector on ``output_ids``: its contexts' uniforms per key, its per-token scores, its verdict."""
    detector = detector_for(config)
    contexts, targets = detector._prepare_inputs(output_ids)
    uniforms = [prf.uniform(contexts, targets.unsqueeze(-1)).squeeze(-1) for prf in key_prfs(config)]
    scores = detector._score_tokens(contexts, targets)
    verdict = detector.detect(output_ids)
    return {
        "scored_targets": targets.tolist(),
        "uniform_bits": [u.contiguous().view(torch.int32).tolist() for u in uniforms],
        "scores": scores.tolist(),
        "vllm_score": verdict.score,
        "vllm_p_value": verdict.p_value,
        "vllm_num_scored_tokens": verdict.num_scored_tokens,
        "vllm_is_watermarked": verdict.is_watermarked,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(Path.home() / ".cache/aimark/models/gemma-3-270m"))
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "tests/fixtures/engines/vllm_watermark_samples.json.gz"))
    parser.add_argument("--rows", type=int, default=6, help="samples per prompt (one batch: same length)")
    parser.add_argument("--prompts", type=int, default=2, help="how many of PROMPTS to use")
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--top-k", type=int, default=64, help="vLLM's top_k sampling parameter")
    parser.add_argument("--runs", default="", help="comma-separated run indices to make (default: all; see --merge)")
    parser.add_argument("--merge", nargs="*", default=None, help="combine partial outputs (--runs) into --out")
    args = parser.parse_args()
    if args.merge is not None:
        merge(args.merge, Path(args.out))
        return
    torch.set_num_threads(max(1, torch.get_num_threads()))
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    banned = sorted({tokenizer.eos_token_id, *tokenizer.convert_tokens_to_ids(["<end_of_turn>", "<eos>", "<pad>"])} - {None})
    import vllm

    document = {
        "made_by": "scripts/vllm_watermark_samples.py",
        "vllm_version": vllm.__version__,
        "torch_version": torch.__version__,
        "model": "embedded:gemma-3-270m",
        "temperature": 1.0,
        "top_k": args.top_k,
        "tokens_per_sample": args.tokens,
        "detector_threshold": DETECTOR_THRESHOLD,
        "banned_token_ids": banned,
        "runs": [],
    }
    started = time.time()
    runs = [(config, index) for index, config in enumerate(CONFIGS)] + [(None, len(CONFIGS))]
    if args.runs:
        chosen = {int(index) for index in args.runs.split(",")}
        runs = [(config, index) for config, index in runs if index in chosen]
    for config, run_index in runs:
        samples = []
        for prompt_index, prompt in enumerate(PROMPTS[: args.prompts]):
            # Gemma's chat turn, as aimark's engine formats it (the cached tokenizer has no chat template).
            prompt_ids = tokenizer(GEMMA_TURN.format(prompt=prompt), add_special_tokens=True)["input_ids"]
            outputs = generate(model, list(prompt_ids), config, rows=args.rows, tokens=args.tokens, seed=1000 * run_index + prompt_index, banned=banned, top_k=args.top_k)
            for output_ids in outputs:
                sample = {"prompt_ids": list(prompt_ids), "output_ids": output_ids, "text": tokenizer.decode(output_ids)}
                # Every key scores every run: controls (no watermark) and the other configs' samples are H0 for a key.
                sample["detections"] = [record(other, output_ids) for other in CONFIGS]
                samples.append(sample)
        document["runs"].append({"index": run_index, "config": config, "samples": samples})
        print(f"run {run_index} ({'control' if config is None else config['algorithm']}) done at {time.time() - started:.0f} s", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(out, "wt", encoding="utf-8") as handle:
        json.dump(document, handle, separators=(",", ":"))
    print(f"wrote {out} ({out.stat().st_size} bytes) in {time.time() - started:.0f} s")


def merge(parts: list[str], out: Path) -> None:
    """One fixture from partial outputs made in parallel (the runs in index order, the rest from the first part)."""
    documents = []
    for part in parts:
        with gzip.open(part, "rt", encoding="utf-8") as handle:
            documents.append(json.load(handle))
    merged = {**documents[0], "runs": sorted((run for d in documents for run in d["runs"]), key=lambda run: run["index"])}
    assert [run["index"] for run in merged["runs"]] == list(range(len(CONFIGS) + 1)), "every run exactly once"
    with gzip.open(out, "wt", encoding="utf-8") as handle:
        json.dump(merged, handle, separators=(",", ":"))
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
