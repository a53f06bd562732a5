"""Far-tail calibration: false positives on human text under thousands of fresh keys.

    python -m bench.calibration                                   # Gumbel and SynthID, ja and en, ~10 min
    python -m bench.calibration --schemes gumbel --languages ja --keys 8000

One key over ~900 passages cannot show an FPR of 1e-4 or 1e-5; keys are what the null is random over
(p-values are exact over the key for any fixed text), so K fresh keys x N passages give K*N draws
at every alpha. The units each passage scores do not depend on the key (which positions repeat a
unit or context is a property of the text), so they are found once with the Detector and only the
keyed values are recomputed per key, with the scheme's own ``score``. The script checks its fast path
against ``Detector.detect`` before counting. Writes bench/results/calibration-tail.md and .json.
Nothing here is a test: the counts are measured and compared with N*K*alpha (Poisson tails).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from bench.human_text import human_passages

RESULTS = Path(__file__).resolve().parents[1] / "results"
ALPHAS = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)


class PassageSet:
    """Human passages as one token stream, with the positions each passage scores (key-independent)."""

    def __init__(self, detector, texts: list[str]):
        from aimark.keys import generate_key
        from aimark.schemes import scheme_for_key

        scheme = detector.schemes[0]
        # KGW's self-hash takes the minimum over its window's hashes, so which windows count as one
        # context depends on the key: such a scheme needs the detector per key, not this fast path.
        other = scheme_for_key(generate_key(scheme.name))
        ids, kept, owner, units = [], [], [], []
        start = 0
        for index, text in enumerate(texts):
            passage_ids, scored_from, _ = detector.encode(text)
            positions, _ = detector.scored_units(scheme, passage_ids, scored_from)
            if not np.array_equal(positions, detector.scored_units(other, passage_ids, scored_from)[0]):
                raise ValueError(f"{scheme.name}: the scored units depend on the key; the fast path does not apply")
            ids.append(passage_ids)
            kept.append(positions + start)
            owner.append(np.full(len(positions), index))
            units.append(len(positions))
            start += len(passage_ids)
        self.ids = np.concatenate(ids)
        self.kept = np.concatenate(kept)
        self.owner = np.concatenate(owner)
        self.units = np.asarray(units)
        self.texts = texts

    def log_p_values(self, scheme) -> np.ndarray:
        """log p of every passage under ``scheme``'s key: one pass of its ``score`` over the whole stream.

        Windows that straddle two passages are scored too but never read: a kept position's context
        lies inside its own passage.
        """
        from aimark.detect.stats import log_p_values

        scored = scheme.score(self.ids)
        values = scored.values[self.kept - scored.positions[0]]
        totals = np.bincount(self.owner, weights=values, minlength=len(self.texts))
        return log_p_values(scheme.null, totals, self.units)


def check_fast_path(passages: PassageSet, scheme_name: str, tokenizer, checks: int = 3) -> None:
    from aimark.detect import Detector
    from aimark.keys import generate_key

    for _ in range(checks):
        detector = Detector(generate_key(scheme_name), tokenizer)
        fast = passages.log_p_values(detector.schemes[0])
        for index in range(0, len(passages.texts), max(1, len(passages.texts) // 10)):
            result = detector.detect(passages.texts[index], with_tokens=False)
            expected = math.log(result.p_value) if result.p_value > 0 else -math.inf
            if result.num_scored_tokens != passages.units[index] or abs(expected - fast[index]) > 1e-9 * max(1.0, abs(expected)):
                raise SystemExit(f"fast path disagrees with Detector.detect on passage {index}: {fast[index]} vs {expected}")


def tail_counts(log_p: np.ndarray) -> list[dict]:
    from scipy import stats

    rows = []
    for alpha in ALPHAS:
        observed, expected = int((log_p <= math.log(alpha)).sum()), log_p.size * alpha
        rows.append({"alpha": alpha, "observed": observed, "expected": expected,
                     "p_at_least": float(stats.poisson.sf(observed - 1, expected)), "p_at_most": float(stats.poisson.cdf(observed, expected))})
    return rows


def main(argv=None) -> int:
    from scipy import stats

    from aimark.detect import Detector
    from aimark.engines import load_tokenizer
    from aimark.keys import generate_key
    from aimark.schemes import scheme_for_key

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--schemes", default="gumbel,synthid")
    parser.add_argument("--languages", default="ja,en")
    parser.add_argument("--keys", type=int, default=2000, help="fresh keys per (scheme, language)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    began = time.perf_counter()
    tokenizer = load_tokenizer(None)  # the embedded model's, as the robustness suite uses
    cells = []
    for language in args.languages.split(","):
        texts = [p["text"] for p in human_passages(language)]
        for scheme_name in args.schemes.split(","):
            cell_began = time.perf_counter()
            passages = PassageSet(Detector(generate_key(scheme_name), tokenizer), texts)
            check_fast_path(passages, scheme_name, tokenizer)
            log_p = np.stack([passages.log_p_values(scheme_for_key(generate_key(scheme_name))) for _ in range(args.keys)])
            hits = (log_p <= math.log(1e-3)).sum(axis=0)
            cells.append({
                "scheme": scheme_name, "language": language, "keys": args.keys, "passages": len(texts), "pairs": int(log_p.size),
                "tails": tail_counts(log_p),
                "ks_p": float(stats.kstest(np.exp(log_p.ravel()), "uniform").pvalue),
                # A passage extreme under many keys would mean dependence the dedup misses.
                "most_hits_at_1e-3": int(hits.max()), "expected_hits_at_1e-3": args.keys * 1e-3,
                "p_max_hits": float(1 - stats.binom.cdf(hits.max() - 1, args.keys, 1e-3) ** len(texts)),
                "seconds": round(time.perf_counter() - cell_began, 1),
            })
            print(cells[-1]["scheme"], language, [(r["observed"], round(r["expected"], 1)) for r in cells[-1]["tails"]], flush=True)
    report = {"command": " ".join(["python -m bench.calibration", *(argv if argv is not None else sys.argv[1:])]),
              "date": time.strftime("%Y-%m-%d"), "seconds": round(time.perf_counter() - began, 1), "cells": cells}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "calibration-tail.json").write_text(json.dumps(report, indent=1))
    (args.out / "calibration-tail.md").write_text(render(report))
    print((args.out / "calibration-tail.md").read_text())
    return 0


def render(report: dict) -> str:
    lines = [
        "# Far-tail calibration on human text (fresh keys)",
        "",
        f"`{report['command']}` ({report['date']}, {report['seconds']:.0f} s). Each cell: K fresh keys x N human passages "
        "(bench/human_text.py); counts of p ≤ α observed / expected (K·N·α) and the Poisson chance of a count at least that "
        "high. Passages sharing units (neighbouring paragraphs of one document) are correlated under one key, which "
        "widens the spread of counts a little but leaves their mean at K·N·α.",
        "",
        "| scheme | language | keys × passages | " + " | ".join(f"p ≤ {a:g}" for a in ALPHAS) + " | KS p | most hits of one passage at 1e-3 (expected; P(max ≥)) |",
        "|---|---|---|" + "---|" * len(ALPHAS) + "---|---|",
    ]
    for cell in report["cells"]:
        tails = " | ".join(f"{t['observed']} / {t['expected']:.1f} ({t['p_at_least']:.2g})" for t in cell["tails"])
        lines.append(f"| {cell['scheme']} | {cell['language']} | {cell['keys']} × {cell['passages']} | {tails} | {cell['ks_p']:.2g} | "
                     f"{cell['most_hits_at_1e-3']} ({cell['expected_hits_at_1e-3']:.1f}; {cell['p_max_hits']:.2g}) |")
    lines += ["", "SynthID's p-values are discrete (a binomial count), hence conservative: its KS test against the uniform rejects by design."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
