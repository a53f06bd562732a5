"""Detection over a corpus on Ray Data: a plan of parts, one detection actor per worker, one Parquet file per part.

Layout of an output (``OUT.parquet`` is a directory, which pyarrow, pandas, DuckDB and Ray read as one table)::

    OUT.parquet/_aimark_run.json                       what was asked: inputs (size, mtime), key ids, options
    OUT.parquet/part-00000-000000000000.parquet        input 0, rows 0 .. rows_per_part - 1
    OUT.parquet/part-00000-000000008192.parquet        ...

The driver cuts every input into parts of ``rows_per_part`` rows (JSONL: by newline offsets, found without
parsing; Parquet: whole row groups) and hands Ray Data one item per part still missing. A pool of actors
(:class:`PartDetector`: the tokenizer and the keys loaded once per worker) reads its part straight from the
input, detects it in batches with :meth:`aimark.detect.Detector.detect_many` (one tokenizer call per batch,
the path ``aimark detect --jsonl`` takes) and writes the part to a temporary name that is renamed into place
only once complete and synced. A crash leaves no part half written; a rerun plans the same parts and skips
the ones on disk. Inputs and output must be at the same paths on every node (a shared file system) and the
key files too: workers load keys from their files, so no secret travels through Ray's object store.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aimark.detect.detector import DEFAULT_ALPHA, DetectionInputError, Detector
from aimark.scale.rows import MAX_ROW_BYTES, id_text, parse_jsonl_line, parse_table_value, verdict_row, verdict_schema

MANIFEST = "_aimark_run.json"
DEFAULT_ROWS_PER_PART = 8192
#: Rows per detect_many call (and per Parquet write): what the --jsonl path batches too.
DEFAULT_BATCH_SIZE = 256
_READ_BLOCK = 4 * 1024 * 1024
_PARQUET_SUFFIXES = (".parquet", ".pq")
_JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")


class CorpusOutputError(ValueError):
    """The output cannot hold this run (a file, another run's results, an unreadable directory)."""


class CorpusInputError(ValueError):
    """An input cannot be planned (missing, of an unknown kind, a Parquet file without the text column)."""


@dataclass(frozen=True)
class Part:
    """Rows ``first_row`` .. ``end_row - 1`` of input ``source_index``; JSONL by byte range, Parquet by row groups."""

    source_index: int
    source: str
    kind: str  # "jsonl" or "parquet"
    first_row: int
    end_row: int
    start_byte: int = 0
    end_byte: int = 0
    row_groups: tuple[int, ...] = ()

    @property
    def file_name(self) -> str:
        return f"part-{self.source_index:05d}-{self.first_row:012d}.parquet"

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @staticmethod
    def from_json(text: str) -> Part:
        document = json.loads(text)
        return Part(**{**document, "row_groups": tuple(document["row_groups"])})


@dataclass(frozen=True)
class CorpusSettings:
    """Everything a worker needs, and nothing secret: keys travel as file paths."""

    output: str
    key_paths: tuple[str, ...]
    model: str | None = None
    alpha: float = DEFAULT_ALPHA
    spans: bool = False
    language: str | None = None
    text_column: str = "text"
    id_column: str | None = "id"
    batch_size: int = DEFAULT_BATCH_SIZE
    #: Rust tokenizer threads per worker (RAYON_NUM_THREADS): one per CPU the worker holds.
    tokenizer_threads: int = 1


@dataclass
class CorpusRun:
    """What a run did: parts written now and found from before, and totals over the parts written now."""

    output: str
    parts: int
    parts_done_before: int
    rows: int = 0
    errors: int = 0
    watermarked: int = 0
    tokens: int = 0
    seconds: float = 0.0
    workers: int = 0
    summaries: list[dict[str, Any]] = field(default_factory=list, repr=False)


# -- planning ---------------------------------------------------------------------------------------------
def input_files(inputs: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The files behind ``inputs``: files as given, directories expanded to their JSONL and Parquet files."""
    files: list[Path] = []
    for entry in inputs:
        path = Path(entry).expanduser().resolve()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in _PARQUET_SUFFIXES + _JSONL_SUFFIXES)
            if not found:
                raise CorpusInputError(f"{entry} holds no .jsonl or .parquet files")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise CorpusInputError(f"input not found: {entry}")
    if not files:
        raise CorpusInputError("give at least one input file")
    return files


def input_kind(path: Path) -> str:
    return "parquet" if path.suffix.lower() in _PARQUET_SUFFIXES else "jsonl"


def plan_parts(files: Sequence[Path], rows_per_part: int, text_column: str = "text") -> list[Part]:
    if rows_per_part < 1:
        raise ValueError("rows_per_part must be >= 1")
    parts: list[Part] = []
    for index, path in enumerate(files):
        if input_kind(path) == "parquet":
            parts.extend(_parquet_parts(index, path, rows_per_part, text_column))
        else:
            parts.extend(_jsonl_parts(index, path, rows_per_part))
    return parts


def _jsonl_parts(index: int, path: Path, rows_per_part: int) -> list[Part]:
    """Parts cut at every ``rows_per_part``-th newline; lines are counted as ``for line in file`` yields them."""
    starts = [(0, 0)]  # (byte offset, first row) of each part
    rows = offset = 0
    next_cut = rows_per_part
    last_byte = b"\n"
    with open(path, "rb") as handle:
        while block := handle.read(_READ_BLOCK):
            position = 0
            while True:
                needed = next_cut - rows
                if block.count(b"\n", position) < needed:
                    rows += block.count(b"\n", position)
                    break
                for _ in range(needed):
                    position = block.index(b"\n", position) + 1
                rows += needed
                starts.append((offset + position, rows))
                next_cut += rows_per_part
            offset += len(block)
            last_byte = block[-1:]
    total_rows = rows + (last_byte != b"\n")
    if starts[-1][1] == total_rows and len(starts) > 1:
        starts.pop()  # the file ends exactly at a cut
    bounds = starts + [(offset, total_rows)]
    return [
        Part(index, str(path), "jsonl", first_row, end_row, start_byte, end_byte)
        for (start_byte, first_row), (end_byte, end_row) in zip(bounds, bounds[1:])
        if end_row > first_row
    ]


def _parquet_parts(index: int, path: Path, rows_per_part: int, text_column: str) -> list[Part]:
    import pyarrow.parquet as pq

    try:
        metadata = pq.ParquetFile(path).metadata
    except Exception as exc:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, ...: all mean "not readable"
        raise CorpusInputError(f"{path} is not a readable Parquet file ({type(exc).__name__})") from None
    columns = metadata.schema.to_arrow_schema().names
    if text_column not in columns:
        raise CorpusInputError(f"{path} has no column {text_column!r} (columns: {', '.join(columns)}); pass --text-column")
    parts: list[Part] = []
    groups: list[int] = []
    first_row = rows = 0
    for group in range(metadata.num_row_groups):
        group_rows = metadata.row_group(group).num_rows
        if groups and rows + group_rows - first_row > rows_per_part:
            parts.append(Part(index, str(path), "parquet", first_row, rows, row_groups=tuple(groups)))
            groups, first_row = [], rows
        groups.append(group)
        rows += group_rows
    if groups and rows > first_row:
        parts.append(Part(index, str(path), "parquet", first_row, rows, row_groups=tuple(groups)))
    return parts


# -- reading a part ---------------------------------------------------------------------------------------
# One row as read: (row index in its input, id, text or None, error or None).
Row = tuple[int, str | None, str | None, str | None]


def read_part(part: Part, settings: CorpusSettings) -> Iterator[list[Row]]:
    """The part's rows in batches of ``settings.batch_size``; a bad row is an error, never an exception."""
    reader = _jsonl_rows if part.kind == "jsonl" else _parquet_rows
    batch: list[Row] = []
    for row in reader(part, settings):
        batch.append(row)
        if len(batch) >= settings.batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def _jsonl_rows(part: Part, settings: CorpusSettings) -> Iterator[Row]:
    with open(part.source, "rb") as handle:
        handle.seek(part.start_byte)
        row = part.first_row
        while row < part.end_row:
            line = handle.readline(MAX_ROW_BYTES + 1)
            if len(line) > MAX_ROW_BYTES and not line.endswith(b"\n"):
                while (rest := handle.readline(_READ_BLOCK)) and not rest.endswith(b"\n"):
                    pass  # skip the rest of an oversized line without holding it
            text, row_id, error = parse_jsonl_line(line, row + 1, text_field=settings.text_column, id_field=settings.id_column)
            yield row, row_id, text, error
            row += 1


def _parquet_rows(part: Part, settings: CorpusSettings) -> Iterator[Row]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(part.source)
    names = parquet.schema_arrow.names
    columns = [settings.text_column] + ([settings.id_column] if settings.id_column in names else [])
    row = part.first_row
    for batch in parquet.iter_batches(batch_size=settings.batch_size, row_groups=list(part.row_groups), columns=columns):
        texts = batch.column(settings.text_column).to_pylist()
        ids = batch.column(settings.id_column).to_pylist() if len(columns) > 1 else [None] * len(texts)
        for text, row_id in zip(texts, ids):
            text, error = parse_table_value(text, row + 1, settings.text_column)
            yield row, id_text(row_id), text, error
            row += 1


# -- detecting and writing a part -------------------------------------------------------------------------
def build_detector(settings: CorpusSettings) -> Detector:
    """The keyring and its model's tokenizer, as ``aimark detect`` chooses them."""
    from aimark.engines.tokenizer import load_detection_tokenizer
    from aimark.keys import Keyring

    keyring = Keyring.load(settings.key_paths)
    # tokenizer.json through `tokenizers` alone, as `aimark detect` loads it: every worker (and the driver's check)
    # skips importing transformers and building its tokenizer object, seconds per start.
    return Detector(keyring, load_detection_tokenizer(keyring.tokenizer_model(settings.model)), alpha=settings.alpha)


def detect_rows(detector: Detector, rows: list[Row], *, spans: bool = False, language: str | None = None) -> list[Any]:
    """One outcome per row, in order: a detection result, or the row's error message."""
    texts = [text for _, _, text, _ in rows if text is not None]
    if spans:
        found = iter([_one(detector, text, spans=True, language=language) for text in texts])
    else:
        try:
            found = iter([r if not isinstance(r, Exception) else str(r) for r in detector.detect_many(texts, batch_size=max(1, len(texts)), language=language)])
        except Exception:  # noqa: BLE001 - a row the batch cannot take is found again one by one; the rest keep their verdicts
            found = iter([_one(detector, text, spans=False, language=language) for text in texts])
    return [next(found) if text is not None else error for _, _, text, error in rows]


def _one(detector: Detector, text: str, *, spans: bool, language: str | None) -> Any:
    from aimark.detect.spans import detect_spans

    try:
        if spans:
            return detect_spans(detector, text, language=language)
        return detector.detect(text, with_tokens=False, language=language)
    except DetectionInputError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - one row's failure is that row's error, never the job's
        return f"internal error ({type(exc).__name__})"


def run_part(detector: Detector, part: Part, settings: CorpusSettings) -> dict[str, Any]:
    """Detect one part and write it atomically; returns its summary."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    started = time.perf_counter()
    schema = verdict_schema(spans=settings.spans)
    final = Path(settings.output) / part.file_name
    temporary = final.with_name(f".{part.file_name}.{uuid.uuid4().hex}.tmp")
    summary = {"part": part.file_name, "rows": 0, "errors": 0, "watermarked": 0, "tokens": 0}
    try:
        with open(temporary, "wb") as handle:
            with pq.ParquetWriter(handle, schema) as writer:
                for batch in read_part(part, settings):
                    outcomes = detect_rows(detector, batch, spans=settings.spans, language=settings.language)
                    records = [verdict_row(part.source, row, row_id, outcome, spans=settings.spans) for (row, row_id, _, _), outcome in zip(batch, outcomes)]
                    writer.write_table(pa.Table.from_pylist(records, schema=schema))
                    summary["rows"] += len(records)
                    for outcome in outcomes:
                        if isinstance(outcome, str):
                            summary["errors"] += 1
                        else:
                            summary["watermarked"] += outcome.watermarked
                            summary["tokens"] += outcome.num_tokens
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, final)
    finally:
        temporary.unlink(missing_ok=True)
    summary["seconds"] = time.perf_counter() - started
    return summary


class PartDetector:
    """Ray Data's callable class: built once per worker (tokenizer, keys), then called with batches of parts."""

    def __init__(self, settings: CorpusSettings):
        # Before the tokenizer's first use: Rust's thread pool reads it once. One worker per CPU, one thread each.
        os.environ["RAYON_NUM_THREADS"] = str(settings.tokenizer_threads)
        self.settings = settings
        self.detector = build_detector(settings)

    def __call__(self, batch):
        import pyarrow as pa

        summaries = [run_part(self.detector, Part.from_json(text), self.settings) for text in batch.column("part").to_pylist()]
        return pa.Table.from_pylist(summaries)


# -- the output directory ---------------------------------------------------------------------------------
def _manifest(files: Sequence[Path], settings: CorpusSettings, rows_per_part: int) -> dict[str, Any]:
    from aimark.keys import Keyring

    sources = []
    for path in files:
        stat = path.stat()
        sources.append({"path": str(path), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns})
    return {
        "format": 1,
        "sources": sources,
        "key_ids": [key.key_id for key in Keyring.load(settings.key_paths)],
        "model": settings.model,
        "alpha": settings.alpha,
        "spans": settings.spans,
        "language": settings.language,
        "text_column": settings.text_column,
        "id_column": settings.id_column,
        "rows_per_part": rows_per_part,
    }


def prepare_output(output: Path, manifest: dict[str, Any]) -> set[str]:
    """Create ``output`` or check it holds this same run; returns the part files already written."""
    if output.exists() and not output.is_dir():
        raise CorpusOutputError(f"{output} exists and is not a directory (the output is a directory of Parquet parts)")
    output.mkdir(parents=True, exist_ok=True)
    recorded = output / MANIFEST
    if recorded.exists():
        try:
            previous = json.loads(recorded.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            raise CorpusOutputError(f"{recorded} is unreadable; remove {output} to start over") from None
        if previous != manifest:
            changed = sorted(name for name in manifest if previous.get(name) != manifest[name])
            raise CorpusOutputError(
                f"{output} holds results of a different run ({', '.join(changed)} changed); choose another output or remove it"
            )
    elif any(output.iterdir()):
        raise CorpusOutputError(f"{output} is not empty and holds no {MANIFEST}; choose another output")
    else:
        temporary = recorded.with_name(f".{MANIFEST}.{uuid.uuid4().hex}.tmp")
        temporary.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        os.replace(temporary, recorded)
    for stale in output.glob(".part-*.tmp"):  # a worker that crashed mid-part left it; its part is redone
        stale.unlink(missing_ok=True)
    return {path.name for path in output.glob("part-*.parquet")}


# -- the run ----------------------------------------------------------------------------------------------
def detect_corpus(
    inputs: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    key_paths: Sequence[str | os.PathLike[str]],
    model: str | None = None,
    alpha: float = DEFAULT_ALPHA,
    spans: bool = False,
    language: str | None = None,
    text_column: str = "text",
    id_column: str | None = "id",
    workers: int | None = None,
    ray_address: str | None = None,
    rows_per_part: int = DEFAULT_ROWS_PER_PART,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> CorpusRun:
    """Detect every row of ``inputs`` with the keys in ``key_paths``; write verdict rows under ``output``.

    Runs on the Ray cluster at ``ray_address`` (``"auto"``: the one this machine belongs to), on the one
    already initialised in this process, or on a local one started here with ``workers`` CPUs and stopped
    at the end. ``workers`` detection actors run (default: every CPU of the cluster), each with one CPU.
    ``progress`` is called with each part's summary as it completes.
    """
    if not 0 < alpha < 1:
        raise ValueError("alpha must be between 0 and 1")
    files = input_files(inputs)
    if not key_paths:
        raise ValueError("give at least one key file")
    output_dir = Path(output).expanduser().resolve()
    settings = CorpusSettings(
        output=str(output_dir),
        key_paths=tuple(str(Path(p).expanduser().resolve()) for p in key_paths),
        model=model,
        alpha=alpha,
        spans=spans,
        language=language,
        text_column=text_column,
        id_column=id_column,
        batch_size=batch_size,
    )
    build_detector(settings)  # a bad key file or model fails here, with its message, before any cluster starts
    parts = plan_parts(files, rows_per_part, text_column)
    done = prepare_output(output_dir, _manifest(files, settings, rows_per_part))
    pending = [part for part in parts if part.file_name not in done]
    run = CorpusRun(str(output_dir), parts=len(parts), parts_done_before=len(parts) - len(pending))
    if not pending:
        return run
    from aimark.scale.cluster import ray_session

    started = time.perf_counter()
    with ray_session(ray_address, workers) as cpus:
        import ray.data

        run.workers = max(1, min(workers or cpus, len(pending)))
        dataset = ray.data.from_items([{"part": part.to_json()} for part in pending], override_num_blocks=len(pending))
        summaries = dataset.map_batches(
            PartDetector,
            fn_constructor_args=(settings,),
            batch_size=1,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=run.workers),
            num_cpus=1,
        )
        for summary in summaries.iter_rows():
            run.summaries.append(dict(summary))
            for name in ("rows", "errors", "watermarked", "tokens"):
                setattr(run, name, getattr(run, name) + int(summary[name]))
            if progress is not None:
                progress(dict(summary))
    run.seconds = time.perf_counter() - started
    return run
