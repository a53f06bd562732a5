"""`aimark detect --ray`: the corpus path's door (the work is aimark.scale's)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from aimark.cli.io import console, fail


def detect_on_ray(
    sources: list[str],
    output: Optional[Path],
    *,
    key: list[Path],
    model: Optional[str],
    alpha: float,
    spans: bool,
    language: Optional[str],
    ray_address: Optional[str],
    workers: Optional[int],
    text_column: str,
    id_column: str,
) -> None:
    """Detect every row of ``sources`` into ``output``; one summary line on stderr, exit 2 if any row failed."""
    import typer

    if output is None:
        fail("--ray needs --output OUT.parquet (a directory of Parquet parts)")
    if "-" in sources:
        fail("--ray reads files or folders, not standard input")
    if not key:
        fail("give at least one --key KEYFILE")
    try:
        import ray  # noqa: F401
        import pyarrow  # noqa: F401
    except ImportError:
        fail("--ray needs Ray and pyarrow: pip install 'aimark[scale]'")
    from aimark.scale import detect_corpus

    with console.status("detecting on Ray") as status:
        def show(summary: dict) -> None:
            status.update(f"detecting on Ray: part {summary['part']} done ({summary['rows']} rows)")

        run = detect_corpus(sources, output, key_paths=key, model=model, alpha=alpha, spans=spans, language=language,
                            text_column=text_column, id_column=id_column or None, workers=workers,
                            ray_address=ray_address, progress=show)
    console.print(
        f"{run.rows} rows in {run.parts - run.parts_done_before} part(s) written to {run.output} "
        f"({run.watermarked} watermarked, {run.errors} errors; {run.parts_done_before} part(s) already there); "
        f"{run.seconds:.1f} s on {run.workers} worker(s)",
        highlight=False,
    )
    if run.errors:
        raise typer.Exit(2)
