"""Robustness suite: detection power under language-aware attacks, calibration, localisation, quality.

    python -m bench.robustness --quick                 # minutes: 2 prompts/language, SynthID, 2 attacks, 100 tokens
    python -m bench.robustness                         # full run (hours): resumable, generations cached
    python -m bench.robustness --export-fixture        # cache -> bench/corpus/generations.jsonl.gz (commit it)
    python -m bench.robustness --import-fixture        # reuse the committed generations

Writes ``<out>/robustness.md``, ``<out>/robustness.json`` and plots (``<out>/robustness-*.png``).
Generations (and model rewrites) are appended to ``<cache>/generations.jsonl`` batch by batch, so an
interrupted run picks up where it stopped. Nothing here is a test: numbers are measured, not asserted.

Thresholds are the exact p-values (p <= alpha means FPR <= alpha at every length); the empirical
false-positive rate on human text is reported next to them to check that claim.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import platform
import random
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from bench.core.run import tokens_to_detect  # MarkMyWords "size" for one text
from bench.human_text import human_passages, script_share
from bench.robustness import attacks as attack_table

BENCH = Path(__file__).resolve().parents[1]
PROMPTS = BENCH / "corpus" / "prompts.jsonl"
FIXTURE = BENCH / "corpus" / "generations.jsonl.gz"
ALPHAS = (1e-2, 1e-3, 1e-4)
LANGUAGES = ("ko", "ja", "zh", "en")


@dataclass(frozen=True)
class Plan:
    """What one run measures; ``--quick`` and the full run differ only here."""

    languages: tuple[str, ...]
    prompts_per_language: int
    schemes: tuple[str, ...]
    max_new_tokens: int
    lengths: tuple[int, ...]
    attacks: tuple[tuple[str, float], ...]  # (name, strength); ("none", 0.0) is the clean baseline
    rewrites: tuple[str, ...]  # model rewrites: "paraphrase", "round-trip"
    rewrite_length: int
    rewrite_documents: int  # per (scheme, language): rewrites cost two generations each
    human_passages: int
    localisation_documents: int
    localisation_tokens: int
    # Long form: the first prompts of each language again at long_max_new_tokens, measured only at
    # long_lengths. Every prompt at 640 tokens would double the generation time (~3.5 h on 2 cores).
    long_prompts_per_language: int = 0
    long_max_new_tokens: int = 640
    long_lengths: tuple[int, ...] = (600,)
    batch_size: int = 16  # 2 CPU cores: 81 tokens/s at 16 rows vs 40 at 8 (Gemma 3 270M, fp32)
    seed: int = 2024


QUICK = Plan(
    languages=LANGUAGES,
    prompts_per_language=2,
    schemes=("synthid",),
    max_new_tokens=100,
    lengths=(50, 90),  # re-tokenising decoded text can lose a token or two: measure a little below max_new_tokens
    attacks=(("none", 0.0), ("token-substitute", 0.2), ("word-delete", 0.2)),
    rewrites=(),
    rewrite_length=100,
    rewrite_documents=0,
    human_passages=120,
    localisation_documents=2,
    localisation_tokens=1000,
)

FULL = Plan(
    languages=LANGUAGES,
    prompts_per_language=52,
    schemes=("synthid", "kgw", "gumbel"),
    max_new_tokens=320,
    lengths=(50, 100, 200, 300),
    attacks=(
        ("none", 0.0),
        *((f"token-{op}", s) for op in ("delete", "insert", "substitute") for s in (0.05, 0.1, 0.2, 0.3, 0.5)),
        *((f"word-{op}", s) for op in ("delete", "insert", "substitute") for s in (0.05, 0.2, 0.5)),
        *((f"char-{op}", s) for op in ("delete", "insert", "substitute") for s in (0.05, 0.2)),
        *((name, s) for name in ("width", "nfkc", "nfd", "zero-width", "homoglyph") for s in (0.2, 1.0)),
        ("sentence-shuffle", 0.5),
        ("sentence-shuffle", 1.0),
        ("truncate", 0.5),
        ("ko-spacing", 0.2),
        ("ko-spacing", 0.5),
        *(("copy-paste", s) for s in (0.1, 0.25, 0.5)),
    ),
    rewrites=("paraphrase", "round-trip"),
    rewrite_length=300,
    rewrite_documents=4,
    human_passages=1000,
    localisation_documents=20,
    localisation_tokens=1000,
    long_prompts_per_language=12,  # 3 per style
)


# -- keys and prompts -------------------------------------------------------------------------------
def bench_key(scheme: str):
    """A fixed key per scheme variant, so cached generations and the committed fixture always match their key.

    A variant is the scheme name with parameter overrides, e.g. ``synthid@ngram_len=3`` (a shorter
    context survives more edits: each edit breaks ngram_len scored units instead of 5) or
    ``synthid@context_prf=siphash24`` (new keys' context PRF; the default variants keep BLAKE2b, which the
    committed generations were made with).
    """
    from aimark.keys import DEFAULT_PARAMS, WatermarkKey, _key_id_for

    name, _, overrides = scheme.partition("@")
    # The cached and committed generations were made with BLAKE2b contexts (keys before context_prf existed).
    params = {**DEFAULT_PARAMS[name], "context_prf": "blake2b"}
    for assignment in filter(None, overrides.split(",")):
        field, _, value = assignment.partition("=")
        if field not in params:
            raise ValueError(f"unknown {name} parameter {field!r} in {scheme!r}")
        params[field] = type(params[field])(value)
    secret = hashlib.sha256(f"aimark-bench:{scheme}".encode()).digest()
    return WatermarkKey(_key_id_for(secret, name), name, params, secret)


def load_prompts(plan: Plan) -> list[dict]:
    rows = [json.loads(line) for line in PROMPTS.read_text(encoding="utf-8").splitlines() if line.strip()]
    chosen = []
    for language in plan.languages:
        mine = [r for r in rows if r["language"] == language]
        # Round-robin over styles so a small slice still covers news/essay/dialogue/instruction.
        mine.sort(key=lambda r: (int(r["id"].rsplit("-", 1)[1]), r["style"]))
        chosen.extend(mine[: plan.prompts_per_language])
    return chosen


# -- generation cache ---------------------------------------------------------------------------------
class GenerationCache:
    """Append-only JSONL of generations and rewrites, keyed by what produced them (resumable)."""

    def __init__(self, path: Path):
        self.path = path
        self.rows: dict[str, dict] = {}
        if path.exists():
            # Lines end at "\n" only: str.splitlines() would also split at U+2028 or U+0085 inside a
            # generated text (json.dumps with ensure_ascii=False writes them raw).
            for line in path.read_text(encoding="utf-8").split("\n"):
                if line.strip():
                    row = json.loads(line)
                    self.rows[row["id"]] = row

    @staticmethod
    def key(**fields) -> str:
        return hashlib.sha256(json.dumps(fields, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:24]

    def add(self, rows: Iterable[dict]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            for row in rows:
                self.rows[row["id"]] = row
                out.write(json.dumps(row, ensure_ascii=False) + "\n")

    def export(self, target: Path) -> int:
        with gzip.open(target, "wt", encoding="utf-8") as out:
            for row in sorted(self.rows.values(), key=lambda r: r["id"]):
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
        return len(self.rows)

    def import_from(self, source: Path) -> int:
        with gzip.open(source, "rt", encoding="utf-8") as stream:
            rows = [json.loads(line) for line in stream if line.strip()]
        self.add(r for r in rows if r["id"] not in self.rows)
        return len(rows)


def progress_bar():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())


def generate_all(loaded, plan: Plan, prompts: list[dict], cache: GenerationCache, progress, *, max_new_tokens: int, schemes: Sequence[str]) -> list[dict]:
    """One generation per (prompt, scheme), ``"none"`` being the unwatermarked control."""
    from aimark.engines import generate

    wanted = []
    for scheme in schemes:
        for prompt in prompts:
            fields = {"kind": "generation", "prompt_id": prompt["id"], "scheme": scheme, "tokens": max_new_tokens, "seed": plan.seed, "model": loaded.name}
            wanted.append((GenerationCache.key(**fields), scheme, prompt))
    missing = [w for w in wanted if w[0] not in cache.rows]
    progress.console.print(f"generations of {max_new_tokens} tokens: {len(wanted) - len(missing)} from the cache, {len(missing)} to generate")
    task = progress.add_task(f"generating ({max_new_tokens} tokens)", total=len(missing) * max_new_tokens)
    by_scheme: dict[str, list] = defaultdict(list)
    for item in missing:
        by_scheme[item[1]].append(item)
    for scheme, items in by_scheme.items():
        key = bench_key(scheme) if scheme != "none" else None
        for start in range(0, len(items), plan.batch_size):
            batch = items[start : start + plan.batch_size]
            batch_started = time.monotonic()
            outputs = generate(
                loaded,
                [p["prompt"] for _, _, p in batch],
                key=key,
                max_new_tokens=max_new_tokens,
                min_new_tokens=max_new_tokens,  # every text reaches the longest length measured
                batch_size=plan.batch_size,
                seed=plan.seed + start,
                on_tokens=lambda n: progress.advance(task, n),
            )
            cache.add(
                {
                    "id": cache_id,
                    "kind": "generation",
                    "prompt_id": prompt["id"],
                    "language": prompt["language"],
                    "style": prompt["style"],
                    "prompt": prompt["prompt"],
                    "scheme": scheme,
                    "key_id": key.key_id if key else None,
                    "text": output.text,
                    "num_tokens": output.num_tokens,
                    "max_new_tokens": max_new_tokens,
                    "seed": plan.seed,
                    "model": loaded.name,
                    "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "generation_s": round((time.monotonic() - batch_started) / len(batch), 2),  # this row's share of its batch
                }
                for (cache_id, _, prompt), output in zip(batch, outputs)
            )
    return [cache.rows[cache_id] for cache_id, _, _ in wanted]


def prefix(tokenizer, text: str, length: int) -> str | None:
    """The first ``length`` model tokens of ``text`` as text (None when the text is shorter)."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return tokenizer.decode(ids[:length], skip_special_tokens=True) if len(ids) >= length else None


def rewrite_all(loaded, plan: Plan, generations: list[dict], cache: GenerationCache, progress) -> dict[tuple[str, str], str]:
    """Model paraphrases / translation round trips of each watermarked text's first ``rewrite_length`` tokens."""
    out: dict[tuple[str, str], str] = {}
    marked = [g for g in generations if g["scheme"] != "none"]
    task = progress.add_task("model rewrites", total=len(plan.rewrites) * min(len(marked), plan.rewrite_documents * len(plan.schemes) * len(plan.languages)))
    for kind in plan.rewrites:
        for language in plan.languages:
            todo = []
            per_scheme: dict[str, int] = defaultdict(int)
            for g in (g for g in marked if g["language"] == language):
                per_scheme[g["scheme"]] += 1
                if per_scheme[g["scheme"]] > plan.rewrite_documents:
                    continue
                cache_id = GenerationCache.key(kind=kind, source=g["id"], tokens=plan.rewrite_length, seed=plan.seed)
                if cache_id in cache.rows:
                    out[(g["id"], kind)] = cache.rows[cache_id]["text"]
                    progress.advance(task)
                else:
                    todo.append((cache_id, g))
            for start in range(0, len(todo), plan.batch_size):
                batch = todo[start : start + plan.batch_size]
                batch_started = time.monotonic()
                sources = [prefix(loaded.tokenizer, g["text"], plan.rewrite_length) or g["text"] for _, g in batch]
                texts = attack_table.model_rewrites(loaded, sources, language, kind=kind, max_new_tokens=int(plan.rewrite_length * 1.3), seed=plan.seed)
                share = round((time.monotonic() - batch_started) / len(batch), 2)
                cache.add({"id": cid, "kind": kind, "source": g["id"], "text": t, "generation_s": share} for (cid, g), t in zip(batch, texts))
                for (_, g), t in zip(batch, texts):
                    out[(g["id"], kind)] = t
                progress.advance(task, len(batch))
    return out


# -- measurements -------------------------------------------------------------------------------------
def p_value_or_one(detector, text: str) -> float:
    """p-value of ``text``; a text an attack left unscorable counts as not detected (p = 1)."""
    try:
        return detector.detect(text, with_tokens=False).p_value
    except ValueError:
        return 1.0


def detection_power(loaded, plan: Plan, generations, rewrites, human: dict[str, list[str]], progress, long_generations=()) -> list[dict]:
    """One row per (scheme, language, attack, strength, length, generation): the p-value after the attack.

    ``generations`` are measured at ``plan.lengths``, ``long_generations`` at ``plan.long_lengths``.
    """
    from aimark.detect import Detector

    rows = []
    marked = [(g, plan.lengths) for g in generations if g["scheme"] != "none"]
    marked += [(g, plan.long_lengths) for g in long_generations if g["scheme"] != "none"]
    task = progress.add_task("attacking + detecting", total=sum(len(lengths) for _, lengths in marked) * len(plan.attacks) + len(rewrites))
    detectors = {s: Detector(bench_key(s), loaded.tokenizer) for s in plan.schemes}
    token_edits = attack_table.token_attacks(loaded.tokenizer)
    for g, lengths in marked:
        language_attacks = {**attack_table.attacks_for(g["language"]), **token_edits}
        language_attacks["copy-paste"] = lambda text, s, rng, lang=g["language"]: attack_table.copy_paste(text, s, rng, human_texts=human[lang], language=lang)
        for length in lengths:
            text = prefix(loaded.tokenizer, g["text"], length)
            for name, strength in plan.attacks:
                progress.advance(task)
                if text is None or (name != "none" and name not in language_attacks):
                    continue
                rng = random.Random(f"{g['id']}:{name}:{strength}:{length}")
                attacked = text if name == "none" else language_attacks[name](text, strength, rng)
                rows.append(_power_row(g, name, strength, length, p_value_or_one(detectors[g["scheme"]], attacked)))
    for (source_id, kind), text in rewrites.items():
        g = next(x for x, _ in marked if x["id"] == source_id)
        rows.append(_power_row(g, kind, 1.0, plan.rewrite_length, p_value_or_one(detectors[g["scheme"]], text)))
        progress.advance(task)
    return rows


def char_ngram_f1(reference: str, candidate: str, n: int = 3) -> float:
    """F1 of the character n-gram multisets, spaces removed (chrF's core; segmentation-free, so CJK counts alike)."""
    from collections import Counter

    def grams(text: str) -> Counter:
        text = "".join(text.split())
        return Counter(text[i : i + n] for i in range(len(text) - n + 1))

    ref, cand = grams(reference), grams(candidate)
    overlap = sum((ref & cand).values())
    if not overlap:
        return 0.0
    precision, recall = overlap / sum(cand.values()), overlap / sum(ref.values())
    return 2 * precision * recall / (precision + recall)


def in_language(text: str, language: str) -> bool:
    """Whether ``text`` is mostly in ``language``'s script (a rewrite that switched language is another attack)."""
    if language == "en":
        letters = [c for c in text if c.isalpha()]
        return bool(letters) and sum(c.isascii() for c in letters) / len(letters) >= 0.9
    return script_share(text, language) >= 0.5


def rewrite_rows(tokenizer, plan: Plan, generations: list[dict], rewrites: dict[tuple[str, str], str]) -> list[dict]:
    """How much of each source a model rewrite kept: character 3-gram F1 and whether it stayed in the language.

    A small model's "paraphrase" can be a new text; without these numbers a low TPR would read as the
    watermark failing where the rewrite kept nothing of the source to find.
    """
    by_id = {g["id"]: g for g in generations}
    rows = []
    for (source_id, kind), text in rewrites.items():
        g = by_id[source_id]
        # The baseline: the same rewrite against another prompt's text in the same language.
        others = [o for o in generations if o["language"] == g["language"] and o["prompt_id"] != g["prompt_id"] and o["scheme"] == g["scheme"]]
        other = others[sum(map(ord, source_id)) % len(others)]["text"] if others else ""
        source = prefix(tokenizer, g["text"], plan.rewrite_length) or g["text"]
        rows.append({"generation": source_id, "attack": kind, "scheme": g["scheme"], "language": g["language"],
                     "chrf3": char_ngram_f1(source, text), "chrf3_unrelated": char_ngram_f1(prefix(tokenizer, other, plan.rewrite_length) or other, text),
                     "in_language": in_language(text, g["language"])})
    return rows


def _power_row(g: dict, attack: str, strength: float, length: int, p: float) -> dict:
    return {"scheme": g["scheme"], "language": g["language"], "attack": attack, "strength": strength, "length": length, "p_value": p, "generation": g["id"]}


def calibration(loaded, plan: Plan, human: dict[str, list[str]], progress) -> list[dict]:
    """p-values of each scheme's bench key on human passages (the deployed setting: one key, many texts)."""
    from aimark.detect import Detector

    rows = []
    task = progress.add_task("calibration on human text", total=len(plan.schemes) * sum(len(v) for v in human.values()))
    for scheme in plan.schemes:
        detector = Detector(bench_key(scheme), loaded.tokenizer)
        for language, texts in human.items():
            for text, outcome in zip(texts, detector.detect_many(texts)):
                progress.advance(task)
                if not isinstance(outcome, Exception):
                    rows.append({"scheme": scheme, "language": language, "p_value": outcome.p_value, "num_tokens": outcome.num_tokens})
    return rows


def perplexities(loaded, generations: list[dict], cache: GenerationCache, progress) -> dict[str, float]:
    """Perplexity of each generation's tokens under the model, its chat-formatted prompt as context.

    Each value is kept in the cache (and so in the exported fixture): a full forward pass over Gemma's
    262k-word vocabulary costs about 1.4 s a text on 2 cores, the slowest part of a re-measurement.
    """
    import torch

    from aimark.engines import format_prompt

    out = {}
    task = progress.add_task("perplexity", total=len(generations))
    for g in generations:
        cache_id = GenerationCache.key(kind="perplexity", source=g["id"], model=loaded.name)
        if cache_id in cache.rows:
            out[g["id"]] = cache.rows[cache_id]["perplexity"]
            progress.advance(task)
            continue
        context = loaded.tokenizer(format_prompt(loaded.tokenizer, g["prompt"]), add_special_tokens=True, return_tensors="pt")["input_ids"]
        body = loaded.tokenizer(g["text"], add_special_tokens=False, return_tensors="pt")["input_ids"]
        if body.shape[1] == 0:
            progress.advance(task)
            continue
        ids = torch.cat([context, body], dim=1)
        with torch.inference_mode():
            logits = loaded.model(input_ids=ids).logits[0, context.shape[1] - 1 : -1].float()
        out[g["id"]] = float(torch.exp(torch.nn.functional.cross_entropy(logits, body[0])))
        cache.add([{"id": cache_id, "kind": "perplexity", "source": g["id"], "model": loaded.name, "perplexity": out[g["id"]]}])
        progress.advance(task)
    return out


def diversity(tokenizer, texts: Sequence[str]) -> dict[str, float]:
    """distinct-2/3 over all texts (model tokens, so every language is counted alike) and 4-gram repetition."""
    grams = {2: [], 3: []}
    repeated, total4 = 0, 0
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        for n in grams:
            grams[n].extend(tuple(ids[i : i + n]) for i in range(len(ids) - n + 1))
        fours = [tuple(ids[i : i + 4]) for i in range(len(ids) - 3)]
        repeated += len(fours) - len(set(fours))
        total4 += len(fours)
    return {
        "distinct_2": len(set(grams[2])) / max(1, len(grams[2])),
        "distinct_3": len(set(grams[3])) / max(1, len(grams[3])),
        "repetition_4": repeated / max(1, total4),
    }


def auc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """P(score_pos > score_neg) + P(tie)/2 (higher score = more watermarked)."""
    if not positives or not negatives:
        return float("nan")
    pos, neg = np.asarray(positives)[:, None], np.asarray(negatives)[None, :]
    return float((pos > neg).mean() + 0.5 * (pos == neg).mean())


def localisation(loaded, plan: Plan, generations, human: dict[str, list[str]], progress) -> list[dict]:
    """A 10% watermarked span inside ~``localisation_tokens`` tokens of human text, and human-only documents.

    Scores: the span scan's document p-value (FWER-corrected) and, as the baseline, the whole-text p-value.
    """
    from aimark.detect import Detector, detect_spans

    rows = []
    marked = [g for g in generations if g["scheme"] != "none"]
    span_tokens = plan.localisation_tokens // 10
    task = progress.add_task("localisation", total=min(len(marked), plan.localisation_documents * len(plan.languages) * len(plan.schemes)) * 2)
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for g in marked:
        slot = (g["scheme"], g["language"])
        if counts[slot] >= plan.localisation_documents:
            continue
        counts[slot] += 1
        span = prefix(loaded.tokenizer, g["text"], span_tokens) or g["text"]
        rng = random.Random(f"localise:{g['id']}")
        pool = human[g["language"]]
        document = attack_table.copy_paste(span, 0.1, rng, human_texts=pool, language=g["language"])
        control = _human_document(loaded.tokenizer, pool, plan.localisation_tokens, rng)
        detector = Detector(bench_key(g["scheme"]), loaded.tokenizer)
        start = document.find(span)
        for kind, text, truth in (("mixed", document, (start, start + len(span))), ("human", control, None)):
            scan = detect_spans(detector, text)
            found = [(s.start, s.end) for s in scan.spans]
            rows.append(
                {
                    "scheme": g["scheme"],
                    "language": g["language"],
                    "kind": kind,
                    "scan_p": scan.p_value,
                    "whole_p": p_value_or_one(detector, text),
                    "num_tokens": scan.num_tokens,
                    "found_chars": sum(e - s for s, e in found),
                    "overlap_chars": sum(max(0, min(e, truth[1]) - max(s, truth[0])) for s, e in found) if truth else 0,
                    "true_chars": truth[1] - truth[0] if truth else 0,
                }
            )
            progress.advance(task)
    return rows


def _human_document(tokenizer, pool: Sequence[str], tokens: int, rng: random.Random) -> str:
    text = ""
    while len(tokenizer(text, add_special_tokens=False)["input_ids"]) < tokens:
        text += rng.choice(pool) + "\n"
    return prefix(tokenizer, text, tokens) or text


# -- report -------------------------------------------------------------------------------------------
def tpr(p_values: Sequence[float], alpha: float) -> float:
    return float(np.mean(np.asarray(p_values) <= alpha)) if len(p_values) else float("nan")


def perplexity_change(generations: list[dict], ppl: dict[str, float], scheme: str, language: str | None, *, resamples: int = 4000, seed: int = 0) -> dict[str, float]:
    """Median perplexity of ``scheme`` over that of the unwatermarked control, minus 1, with a 95% interval.

    The interval is a paired bootstrap over prompts (each prompt has one text per scheme, so the prompt's
    own difficulty cancels), stratified by language when ``language`` is None (all languages pooled).
    """
    pairs: dict[str, dict[str, float]] = defaultdict(dict)  # prompt id -> scheme -> perplexity
    strata: dict[str, str] = {}
    for g in generations:
        if g["id"] in ppl and g["scheme"] in (scheme, "none") and language in (None, g["language"]):
            pairs[g["prompt_id"]][g["scheme"]] = ppl[g["id"]]
            strata[g["prompt_id"]] = g["language"]
    complete = [prompt for prompt, values in pairs.items() if len(values) == 2]
    if not complete:
        return {"ppl_vs_control": float("nan"), "ppl_ci_low": float("nan"), "ppl_ci_high": float("nan")}
    marked = np.array([pairs[p][scheme] for p in complete])
    control = np.array([pairs[p]["none"] for p in complete])
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero([strata[p] == lang for p in complete]) for lang in sorted({strata[p] for p in complete})]
    draws = np.concatenate([rng.choice(group, size=(resamples, len(group))) for group in groups], axis=1)
    ratios = np.median(marked[draws], axis=1) / np.median(control[draws], axis=1) - 1
    low, high = np.percentile(ratios, [2.5, 97.5])
    return {"ppl_vs_control": float(np.median(marked) / np.median(control) - 1), "ppl_ci_low": float(low), "ppl_ci_high": float(high)}


def summarise(plan: Plan, power, calib, ppl, generations, local, sizes, tokenizer, elapsed: float, long_generations=(), rewritten=()) -> dict:
    grouped = defaultdict(list)
    for row in power:
        grouped[(row["scheme"], row["language"], row["attack"], row["strength"], row["length"])].append(row["p_value"])
    power_table = [
        {"scheme": k[0], "language": k[1], "attack": k[2], "strength": k[3], "length": k[4], "n": len(v), **{f"tpr@{a:g}": tpr(v, a) for a in ALPHAS}}
        for k, v in sorted(grouped.items())
    ]
    calib_table = []
    for (scheme, language), values in _group(calib, ("scheme", "language")).items():
        ps = [r["p_value"] for r in values]
        calib_table.append({"scheme": scheme, "language": language, "n": len(ps), **{f"fpr@{a:g}": tpr(ps, a) for a in (*ALPHAS, 0.05)}})
    quality = []
    for (scheme, language), values in _group(generations, ("scheme", "language")).items():
        scores = [ppl[g["id"]] for g in values if g["id"] in ppl]
        quality.append(
            {
                "scheme": scheme,
                "language": language,
                "n": len(values),
                "perplexity": float(np.median(scores)) if scores else float("nan"),
                **perplexity_change(generations, ppl, scheme, language),
                **diversity(tokenizer, [g["text"] for g in values]),
            }
        )
    for scheme in dict.fromkeys(g["scheme"] for g in generations if g["scheme"] != "none"):
        quality.append({"scheme": scheme, "language": "all", "n": sum(g["scheme"] == scheme for g in generations), **perplexity_change(generations, ppl, scheme, None)})
    local_table = []
    for (scheme, language), values in _group(local, ("scheme", "language")).items():
        mixed = [r for r in values if r["kind"] == "mixed"]
        human = [r for r in values if r["kind"] == "human"]
        detected = [r for r in mixed if r["scan_p"] <= 1e-3]
        local_table.append(
            {
                "scheme": scheme,
                "language": language,
                "documents": len(mixed),
                "auc_scan": auc([-math.log10(max(r["scan_p"], 1e-300)) for r in mixed], [-math.log10(max(r["scan_p"], 1e-300)) for r in human]),
                "auc_whole": auc([-math.log10(max(r["whole_p"], 1e-300)) for r in mixed], [-math.log10(max(r["whole_p"], 1e-300)) for r in human]),
                "span_precision": sum(r["overlap_chars"] for r in detected) / max(1, sum(r["found_chars"] for r in detected)),
                "span_recall": sum(r["overlap_chars"] for r in mixed) / max(1, sum(r["true_chars"] for r in mixed)),
                "false_spans_in_human": sum(r["found_chars"] > 0 for r in human),
            }
        )
    detected = {(r["generation"], r["attack"]): r["p_value"] for r in power if r["attack"] in plan.rewrites}
    rewrite_table = []
    for (scheme, language, kind), values in _group(rewritten, ("scheme", "language", "attack")).items():
        kept = [r for r in values if r["in_language"]]
        rewrite_table.append(
            {
                "scheme": scheme, "language": language, "attack": kind, "n": len(values),
                "in_language": len(kept) / len(values),
                "median_chrf3": float(np.median([r["chrf3"] for r in values])),
                "median_chrf3_unrelated": float(np.median([r["chrf3_unrelated"] for r in values])),
                "tpr@0.001": tpr([detected[(r["generation"], kind)] for r in values], 1e-3),
                "tpr@0.001_in_language": tpr([detected[(r["generation"], kind)] for r in kept], 1e-3),
            }
        )
    made = [*generations, *long_generations]
    size_table = [
        {"scheme": s, "language": lang, "median_tokens_to_p<1e-3": (float(np.median([x if x is not None else math.inf for x in v])) if v else None), "never": sum(x is None for x in v)}
        for (s, lang), v in sorted(sizes.items())
    ]
    return {
        "plan": plan.__dict__,
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "processor": platform.processor()},
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "elapsed_s": round(elapsed, 1),
        "command": " ".join(["python -m bench.robustness", *sys.argv[1:]]),
        "generation": {
            "rows": len(made),
            "cpu_s": round(sum(g.get("generation_s", 0.0) for g in made), 1),  # 0 for rows from an older cache
            "first": min((g["generated_at"] for g in made if "generated_at" in g), default=None),
            "last": max((g["generated_at"] for g in made if "generated_at" in g), default=None),
        },
        "power": power_table,
        "calibration": calib_table,
        "quality": quality,
        "localisation": local_table,
        "size": size_table,
        "rewrites": rewrite_table,
    }


def _group(rows, fields) -> dict[tuple, list]:
    out = defaultdict(list)
    for row in rows:
        out[tuple(row[f] for f in fields)].append(row)
    return dict(sorted(out.items()))


def _markdown_table(rows: list[dict], columns: Sequence[str]) -> str:
    def cell(value):
        if value is None:
            return "–"
        if isinstance(value, float):
            return "n/a" if math.isnan(value) else f"{value:.3g}"
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def write_report(summary: dict, calib_rows: list[dict], out: Path, quick: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "robustness.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False, default=str), encoding="utf-8")
    plots = make_plots(summary, calib_rows, out)
    plan = summary["plan"]
    target_length = 300 if 300 in plan["lengths"] else max(plan["lengths"])
    targets = [r for r in summary["power"] if r["attack"] == "token-substitute" and r["strength"] == 0.2 and r["length"] == target_length]
    sections = [
        "# aimark robustness suite" + (" (quick slice: numbers are a smoke check, not results)" if quick else ""),
        f"Command: `{summary['command']}`. Run {summary['date']}, {summary['elapsed_s']} s"
        + (f" (generations: {summary['generation']['rows']} texts, {summary['generation']['cpu_s']} s, made {summary['generation']['first']} to {summary['generation']['last']})" if summary.get("generation", {}).get("first") else "")
        + f", Python {summary['machine']['python']} on {summary['machine']['platform']}. "
        f"Plan: {plan['prompts_per_language']} prompts/language × {', '.join(plan['schemes'])}, {plan['max_new_tokens']} new tokens, "
        f"lengths {plan['lengths']}"
        + (f", and the first {plan['long_prompts_per_language']} prompts/language again at {plan['long_max_new_tokens']} tokens, measured at {plan['long_lengths']}" if plan.get("long_prompts_per_language") else "")
        + f", {len(plan['attacks'])} attack settings, rewrites {plan['rewrites'] or 'none'}"
        + (f" ({plan['rewrite_documents']} texts per scheme and language)" if plan["rewrites"] else "")
        + ". "
        "TPR uses the exact p-value threshold p ≤ α; empirical FPR on human text is in the calibration table.",
        f"## Targets\nTPR at FPR 1e-3 after 20% random token substitutions at {target_length} tokens (target ≥ 0.9"
        + ("" if target_length == 300 else "; the target is stated at 300 tokens, longer than this run's texts")
        + "):\n\n"
        + _markdown_table(targets, ["scheme", "language", "n", "tpr@0.001"])
        + "\n\nPerplexity vs unwatermarked control (target within 5%) and document AUC for a 10% span (target ≥ 0.98) are below.",
        "## Detection power (TPR at exact-p thresholds)\n" + _markdown_table(summary["power"], ["scheme", "language", "attack", "strength", "length", "n", "tpr@0.01", "tpr@0.001", "tpr@0.0001"]),
        "## Model rewrites (the embedded model paraphrasing or translating ko/ja/zh→English→back, en→Korean→back)\n"
        + (
            _markdown_table(summary.get("rewrites", []), ["scheme", "language", "attack", "n", "in_language", "median_chrf3", "median_chrf3_unrelated", "tpr@0.001", "tpr@0.001_in_language"])
            + f"\n\nSource: each text's first {plan['rewrite_length']} tokens. `median_chrf3`: character 3-gram F1 between source and "
            "rewrite (1 = unchanged); `median_chrf3_unrelated`: the same rewrite against another prompt's text in its language, "
            "the level of a rewrite that kept nothing; `in_language`: share of rewrites still in the source's language."
            if summary.get("rewrites")
            else "Not in this run."
        ),
        "## Size (MarkMyWords): median tokens until p < 1e-3, clean text\n" + _markdown_table(summary["size"], ["scheme", "language", "median_tokens_to_p<1e-3", "never"]),
        "## Calibration: empirical FPR on human text (one fixed key per scheme)\n"
        + _markdown_table(summary["calibration"], ["scheme", "language", "n", "fpr@0.05", "fpr@0.01", "fpr@0.001", "fpr@0.0001"])
        + "\n\nWith n passages an FPR below 1/n cannot be observed; 1e-4 needs ≥ 10⁴ passages per language.",
        "## Quality: median perplexity under the model, distinct n-grams, 4-gram repetition\n"
        + _markdown_table(summary["quality"], ["scheme", "language", "n", "perplexity", "ppl_vs_control", "ppl_ci_low", "ppl_ci_high", "distinct_2", "distinct_3", "repetition_4"])
        + "\n\n`ppl_vs_control`: median perplexity over the unwatermarked control's, minus 1; `ppl_ci_*`: its 95% paired "
        "bootstrap interval over prompts (language `all`: every language pooled, resampled within each language).",
        "## Localisation: 10% watermarked span in a human document\n"
        + _markdown_table(summary["localisation"], ["scheme", "language", "documents", "auc_scan", "auc_whole", "span_precision", "span_recall", "false_spans_in_human"])
        + "\n\n`auc_scan` scores documents by the span scan's FWER-corrected p-value (`aimark detect --spans`), `auc_whole` by the plain whole-text test.",
        "## Plots\n" + "\n".join(f"![{p.stem}]({p.name})" for p in plots),
    ]
    (out / "robustness.md").write_text("\n\n".join(sections) + "\n", encoding="utf-8")


def make_plots(summary: dict, calib_rows: list[dict], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    power = summary["power"]
    languages = sorted({r["language"] for r in power})
    if languages:
        # Curves for the headline settings only; the heat map below has every attack.
        headline = {("none", 0.0), ("token-substitute", 0.2), ("word-delete", 0.2), ("char-substitute", 0.2), ("copy-paste", 0.25), ("paraphrase", 1.0)}
        fig, axes = plt.subplots(1, len(languages), figsize=(3.6 * len(languages), 3.6), sharey=True, squeeze=False)
        for ax, language in zip(axes[0], languages):
            curves = _group([r for r in power if r["language"] == language and (r["attack"], r["strength"]) in headline], ("scheme", "attack", "strength"))
            for (scheme, attack, strength), rows in curves.items():
                rows = sorted(rows, key=lambda r: r["length"])
                ax.plot([r["length"] for r in rows], [r["tpr@0.001"] for r in rows], marker="o", label=f"{scheme} {attack} {strength:g}")
            ax.set_title(language)
            ax.set_xlabel("tokens")
            ax.set_ylim(-0.05, 1.05)
        axes[0][0].set_ylabel("TPR at FPR 1e-3")
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=3)
        fig.subplots_adjust(bottom=0.34, top=0.9, wspace=0.08)
        paths.append(out / "robustness-tpr-vs-length.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)

        longest = max(r["length"] for r in power)
        settings = sorted({(r["attack"], r["strength"]) for r in power})
        columns = sorted({(r["scheme"], r["language"]) for r in power})
        cells = {(r["attack"], r["strength"], r["scheme"], r["language"]): r["tpr@0.001"] for r in power if r["length"] == longest}
        grid = np.array([[cells.get((a, s, sc, lang), np.nan) for sc, lang in columns] for a, s in settings])
        fig, ax = plt.subplots(figsize=(1.2 + 0.7 * len(columns), 0.9 + 0.22 * len(settings)))
        image = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(columns)), [f"{sc}\n{lang}" for sc, lang in columns], fontsize=7)
        ax.set_yticks(range(len(settings)), [f"{a} {s:g}" for a, s in settings], fontsize=7)
        ax.set_title(f"TPR at FPR 1e-3, {longest} tokens", fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.05)
        fig.tight_layout()
        paths.append(out / "robustness-attacks-heatmap.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    if calib_rows:
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        for (scheme, language), rows in _group(calib_rows, ("scheme", "language")).items():
            observed = np.sort([r["p_value"] for r in rows])
            expected = (np.arange(1, len(observed) + 1)) / (len(observed) + 1)
            ax.plot(-np.log10(expected), -np.log10(np.maximum(observed, 1e-300)), ".", markersize=3, label=f"{scheme} {language}")
        limit = ax.get_xlim()[1]
        ax.plot([0, limit], [0, limit], "k--", linewidth=0.8)
        ax.set_xlabel("expected −log10 p (uniform)")
        ax.set_ylabel("observed −log10 p (human text)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        paths.append(out / "robustness-calibration-qq.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths


# -- main -----------------------------------------------------------------------------------------------
def resized(plan: Plan, args: argparse.Namespace) -> Plan:
    """``plan`` with the sizing options applied (a shorter ``--max-new-tokens`` drops longer lengths)."""
    if args.max_new_tokens is not None:
        lengths = tuple(length for length in plan.lengths if length <= args.max_new_tokens - 20)
        if not lengths:
            raise SystemExit(f"--max-new-tokens {args.max_new_tokens} leaves no length of {plan.lengths} to measure")
        plan = replace(plan, max_new_tokens=args.max_new_tokens, lengths=lengths, rewrite_length=min(plan.rewrite_length, max(lengths)))
    for field in ("prompts_per_language", "long_prompts_per_language", "rewrite_documents", "batch_size"):
        value = getattr(args, field)
        if value is not None:
            least = 0 if field in ("rewrite_documents", "long_prompts_per_language") else 1
            if value < least:
                raise SystemExit(f"--{field.replace('_', '-')} must be at least {least}")
            plan = replace(plan, **{field: value})
    if plan.rewrite_documents == 0:
        plan = replace(plan, rewrites=())  # the report then says "rewrites none"
    return plan


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small slice for CI (minutes)")
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    parser.add_argument("--cache", type=Path, default=BENCH / "cache")
    parser.add_argument("--model", default=None, help="model directory (default: the embedded Gemma 3 270M)")
    parser.add_argument("--export-fixture", action="store_true", help=f"write the cache to {FIXTURE.relative_to(BENCH.parent)} and stop")
    parser.add_argument("--import-fixture", action="store_true", help="merge the committed fixture into the cache first")
    parser.add_argument("--fixture", type=Path, default=FIXTURE)
    parser.add_argument("--schemes", help="comma-separated scheme variants, e.g. synthid,synthid@ngram_len=3,kgw,gumbel (default: the plan's)")
    parser.add_argument("--all-attacks", action="store_true", help="with --quick: every text attack of the full run on the quick slice (detection only, no extra generation)")
    sizing = parser.add_argument_group("sizing (default: the plan's; the report states what ran)")
    sizing.add_argument("--prompts-per-language", type=int)
    sizing.add_argument("--max-new-tokens", type=int, help="also drops the measured lengths above it")
    sizing.add_argument("--rewrite-documents", type=int, help="model rewrites per (scheme, language)")
    sizing.add_argument("--long-prompts-per-language", type=int, help="prompts also generated at the long-form length (0: none)")
    sizing.add_argument("--batch-size", type=int)
    parser.add_argument("--generate-only", action="store_true", help="fill the generation cache (generations and rewrites) and stop")
    args = parser.parse_args(argv)

    cache = GenerationCache(args.cache / "generations.jsonl")
    if args.export_fixture:
        print(f"exported {cache.export(args.fixture)} generations to {args.fixture}")
        return 0
    if args.import_fixture:
        print(f"imported {cache.import_from(args.fixture)} rows from {args.fixture}")
    plan = QUICK if args.quick else FULL
    if args.quick and args.all_attacks:
        plan = replace(QUICK, attacks=FULL.attacks)
    if args.schemes:
        plan = replace(plan, schemes=tuple(args.schemes.split(",")))
        for scheme in plan.schemes:
            bench_key(scheme)  # fail on a typo before hours of generation
    plan = resized(plan, args)
    started = time.monotonic()

    from aimark.engines import load_model

    loaded = load_model(args.model)
    prompts = load_prompts(plan)
    human = {language: [p["text"] for p in human_passages(language, limit=plan.human_passages)] for language in plan.languages}
    missing = [language for language, texts in human.items() if not texts]
    if missing:
        print(f"no human reference text installed for {', '.join(missing)}: see bench/corpus/README.md", file=sys.stderr)
        return 2
    with progress_bar() as progress:
        generations = generate_all(loaded, plan, prompts, cache, progress, max_new_tokens=plan.max_new_tokens, schemes=(*plan.schemes, "none"))
        rewrites = rewrite_all(loaded, plan, generations, cache, progress) if plan.rewrites else {}
        long_generations = []
        if plan.long_prompts_per_language:
            long_prompts = load_prompts(replace(plan, prompts_per_language=plan.long_prompts_per_language))
            long_generations = generate_all(loaded, plan, long_prompts, cache, progress, max_new_tokens=plan.long_max_new_tokens, schemes=plan.schemes)
        if args.generate_only:
            progress.console.print(f"cached {len(generations) + len(long_generations)} generations and {len(rewrites)} rewrites in {cache.path}")
            return 0
        power = detection_power(loaded, plan, generations, rewrites, human, progress, long_generations)
        from aimark.detect import Detector

        sizes: dict[tuple[str, str], list] = defaultdict(list)
        for g in generations:
            if g["scheme"] != "none":
                detector = Detector(bench_key(g["scheme"]), loaded.tokenizer)
                sizes[(g["scheme"], g["language"])].append(tokens_to_detect(detector, g["text"], step=10, alpha=1e-3))
        calib = calibration(loaded, plan, human, progress)
        ppl = perplexities(loaded, generations, cache, progress)
        local = localisation(loaded, plan, generations, human, progress)
    rewritten = rewrite_rows(loaded.tokenizer, plan, generations, rewrites)
    summary = summarise(plan, power, calib, ppl, generations, local, sizes, loaded.tokenizer, time.monotonic() - started, long_generations, rewritten)
    write_report(summary, calib, args.out, args.quick)
    print(f"wrote {args.out / 'robustness.md'} in {summary['elapsed_s']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
