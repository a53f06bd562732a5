"""Time every public entry on adversarial input next to ordinary input of the same kind and size.

An answer is a result or a clean aimark error (an exception class of aimark's own, or an HTTP status
below 500); anything else escaping is recorded as such, and the quick test fails on it. Each call runs
under an alarm (a pure-Python loop past it is stopped and reported as a timeout; native code is
reported when it returns). A size whose time, extrapolated with the growth measured between the two
sizes before it, would exceed the budget is skipped and said so, so that a quadratic entry does not
stall the run.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.adversarial.entries import Entry, build_entries, temporary_work
from bench.adversarial.generators import ADVERSARIAL, Case, ordinary

RESULTS = Path(__file__).resolve().parents[1] / "results"
FULL_SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (1_000, 4_000)
TARGET_RATIO = 3.0


class _Alarm(Exception):
    pass


@dataclass
class Timing:
    seconds: float | None
    outcome: str  # "ok", "error <class>: <message>", "timeout", "skipped ...", "ESCAPED <class>: <message>"

    @property
    def escaped(self) -> bool:
        return self.outcome.startswith("ESCAPED")


def _is_aimark_error(err: BaseException) -> bool:
    return any(cls.__module__.startswith("aimark.") for cls in type(err).__mro__)


def time_call(entry: Entry, case: Case, budget_s: float) -> Timing:
    def ring(signum, frame):
        raise _Alarm

    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, budget_s)
    start = time.perf_counter()
    try:
        answer = entry.call(case)
        outcome = "ok" if not (isinstance(answer, str) and answer.startswith("HTTP 4")) else answer
    except _Alarm:
        return Timing(None, f"timeout (> {budget_s:.0f} s)")
    except Exception as err:  # noqa: BLE001 - the bench records what escapes
        message = str(err).splitlines()[0][:100] if str(err) else ""
        outcome = f"error {type(err).__name__}: {message}" if _is_aimark_error(err) else f"ESCAPED {type(err).__name__}: {message}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return Timing(time.perf_counter() - start, outcome)


@dataclass
class Row:
    entry: str
    generator: str
    size: int
    adversarial_bytes: int
    ordinary_s: float | None
    adversarial_s: float | None
    ratio: float | None
    outcome: str
    ordinary_outcome: str


def _projected(history: list[tuple[int, float]], size: int) -> float | None:
    """Time at ``size`` extrapolated with the growth exponent between the last two sizes (linear if one)."""
    if not history:
        return None
    (size_b, time_b) = history[-1]
    exponent = 1.0
    if len(history) >= 2:
        size_a, time_a = history[-2]
        if time_a > 0.01 and time_b > 0:
            exponent = max(1.0, math.log(time_b / time_a) / math.log(size_b / size_a))
    return time_b * (size / size_b) ** exponent


def run(entries: list[Entry], sizes: tuple[int, ...], budget_s: float, repeats: int, log=print) -> list[Row]:
    rows: list[Row] = []
    ordinary_times: dict[tuple[str, str, int], Timing] = {}
    for entry in entries:
        for generator, (kind, make) in ADVERSARIAL.items():
            if kind not in entry.kinds or make(16).filename.rsplit(".", 1)[-1] not in entry.kinds:
                continue
            history: list[tuple[int, float]] = []
            for size in sizes:
                baseline_key = (entry.name, kind, size)
                if baseline_key not in ordinary_times:
                    ordinary_times[baseline_key] = _best(entry, ordinary(kind, size), budget_s, repeats)
                base = ordinary_times[baseline_key]
                projected = _projected(history, size)
                case = make(size)
                if projected is not None and projected > budget_s:
                    timing = Timing(None, f"skipped (projected {projected:.0f} s)")
                else:
                    timing = _best(entry, case, budget_s, repeats)
                    if timing.seconds is not None:
                        history.append((size, timing.seconds))
                ratio = timing.seconds / base.seconds if timing.seconds is not None and base.seconds else None
                row = Row(entry.name, generator, size, len(case.content), base.seconds, timing.seconds, ratio, timing.outcome, base.outcome)
                rows.append(row)
                log(f"{entry.name:20} {generator:28} {size:>9} ordinary {_s(base.seconds):>8} adversarial {_s(timing.seconds):>8}"
                    f" ratio {_r(ratio):>7}  {timing.outcome}")
    return rows


def _best(entry: Entry, case: Case, budget_s: float, repeats: int) -> Timing:
    best = time_call(entry, case, budget_s)
    for _ in range(repeats - 1):
        if best.seconds is None or best.seconds > budget_s / 4:
            break
        again = time_call(entry, case, budget_s)
        if again.seconds is not None and again.seconds < best.seconds:
            best = again
    return best


def _s(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.3f}s"


def _r(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"


def _growth(rows: list[Row], row: Row) -> float | None:
    """Exponent of the adversarial time's growth from the next smaller size of the same entry and generator."""
    smaller = [r for r in rows if r.entry == row.entry and r.generator == row.generator and r.size < row.size
               and r.adversarial_s]
    if not smaller or not row.adversarial_s:
        return None
    before = max(smaller, key=lambda r: r.size)
    if before.adversarial_s < 0.005:  # below the timer's noise
        return None
    return math.log(row.adversarial_s / before.adversarial_s) / math.log(row.size / before.size)


def report(rows: list[Row], sizes: tuple[int, ...], *, quick: bool, command: str) -> str:
    largest = max(sizes)
    lines = [
        "# Adversarial input: time of each public entry against ordinary input of the same kind and size",
        "",
        f"Command: `{command}`. Sizes: {', '.join(f'{s:,}' for s in sizes)} bytes. Ratio = adversarial / ordinary time "
        f"(one call each). Target: worst ratio at {largest:,} bytes ≤ {TARGET_RATIO:g}× per entry.",
        ("An outcome other than `ok` is an answer too: a clean aimark error (`error ...`) or an HTTP status below 500; "
         "`ESCAPED` would be an exception that is not aimark's. Timings on a shared 2-core machine: ratios near 1 "
         "are noise.") if not quick else "Quick mode (tiny tokenizer, small sizes): checks answers, not times.",
        "",
        f"## Worst ratio at {largest:,} bytes per entry",
        "",
        "Growth: the exponent k in time ∝ size^k of that generator's adversarial time between the two largest "
        "sizes (1: linear; a high ratio with k near 1 is a larger constant per character, not a blow-up).",
        "",
        "| entry | worst ratio | generator | growth | meets target | not measured |",
        "|---|---|---|---|---|---|",
    ]
    for entry in dict.fromkeys(row.entry for row in rows):
        at_largest = [row for row in rows if row.entry == entry and row.size == largest]
        measured = [row for row in at_largest if row.ratio is not None]
        missing = [f"{row.generator} ({row.outcome})" for row in at_largest if row.ratio is None]
        worst = max(measured, key=lambda row: row.ratio) if measured else None
        meets = "—" if worst is None else ("yes" if worst.ratio <= TARGET_RATIO and not missing else "**no**")
        growth = _growth(rows, worst) if worst else None
        lines.append(f"| {entry} | {_r(worst.ratio) if worst else '-'} | {worst.generator if worst else '-'} | "
                     f"{'-' if growth is None else f'{growth:.2f}'} | {meets} | {'; '.join(missing) or '-'} |")
    lines += ["", "## Every measurement", "", "| entry | generator | size | adversarial bytes | ordinary | adversarial | ratio | outcome |",
              "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row.entry} | {row.generator} | {row.size:,} | {row.adversarial_bytes:,} | {_s(row.ordinary_s)} | "
                     f"{_s(row.adversarial_s)} | {_r(row.ratio)} | {row.outcome} |")
    return "\n".join(lines) + "\n"


def _command(quick: bool, sizes: tuple[int, ...], *, custom: bool) -> str:
    return "python -m bench.adversarial" + (" --quick" if quick else "") + (f" --sizes {','.join(map(str, sizes))}" if custom else "")


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and the tiny tokenizer (CI); writes nothing unless --out")
    parser.add_argument("--sizes", type=lambda s: tuple(int(x) for x in s.split(",")), help="comma-separated sizes in bytes")
    parser.add_argument("--entries", help="comma-separated entry names to run (default: all)")
    parser.add_argument("--budget", type=float, help="seconds one call may take (default: 20 quick, 60 full)")
    parser.add_argument("--out", type=Path, help="report path (default: bench/results/adversarial.md for a full run)")
    parser.add_argument("--render", type=Path, help="only re-render the report from this JSON of an earlier run")
    args = parser.parse_args(argv)
    if args.render:
        rows = [Row(**row) for row in json.loads(args.render.read_text())]
        sizes = tuple(sorted({row.size for row in rows}))
        out = args.out or args.render.with_suffix(".md")
        out.write_text(report(rows, sizes, quick=args.quick, command=_command(args.quick, sizes, custom=sizes != FULL_SIZES)))
        return rows
    sizes = args.sizes or (QUICK_SIZES if args.quick else FULL_SIZES)
    budget = args.budget or (20.0 if args.quick else 60.0)
    with temporary_work() as work:
        entries, close = build_entries(Path(work), quick=args.quick)
        try:
            if args.entries:
                chosen = set(args.entries.split(","))
                entries = [entry for entry in entries if entry.name in chosen]
            rows = run(entries, sizes, budget, repeats=1)
        finally:
            close()
    out = args.out or (None if args.quick else RESULTS / "adversarial.md")
    if out is not None:
        out.write_text(report(rows, sizes, quick=args.quick, command=_command(args.quick, sizes, custom=bool(args.sizes))))
        out.with_suffix(".json").write_text(json.dumps([asdict(row) for row in rows], indent=1) + "\n")
        print(f"wrote {out}")
    return rows
