"""Corpus rows: one input row (a JSONL line or a Parquet row) becomes a text or an error, and one verdict row.

``aimark detect --jsonl`` and the Ray corpus path (:mod:`aimark.scale.corpus`) read rows with the same
functions here, so a row gets the same verdict, or the same error message, on either path.
"""

from __future__ import annotations

import json
import math
from typing import Any

from aimark.detect.result import verdict_fields

#: A row whose raw bytes (a JSONL line, a Parquet text value's UTF-8) exceed this is an error row: past it
#: one text alone would hold a worker for seconds and hundreds of MiB, and no watermark needs that much.
MAX_ROW_BYTES = 4 * 1024 * 1024


def too_long_message(row_number: int, label: str = "line") -> str:
    return f"{label} {row_number}: longer than {MAX_ROW_BYTES // (1024 * 1024)} MiB"


def parse_jsonl_line(
    raw_line: bytes, line_number: int, *, text_field: str = "text", id_field: str | None = None
) -> tuple[str | None, str | None, str | None]:
    """(text, id, error) of one JSONL line (1-based ``line_number``); exactly one of text and error is set.

    The id is the ``id_field`` value as a string (a JSON number or boolean as JSON writes it), None when absent.
    """
    if len(raw_line) > MAX_ROW_BYTES:
        return None, None, too_long_message(line_number)
    try:
        document = json.loads(raw_line.decode("utf-8"))
    except UnicodeDecodeError:
        return None, None, f"line {line_number}: not valid UTF-8"
    except json.JSONDecodeError:
        return None, None, f"line {line_number}: not a JSON object"
    except RecursionError:
        return None, None, f"line {line_number}: JSON nested too deeply"
    if not isinstance(document, dict):
        return None, None, f"line {line_number}: expected a JSON object with a string {text_field!r} field"
    row_id = id_text(document.get(id_field)) if id_field else None
    if not isinstance(document.get(text_field), str):
        return None, row_id, f"line {line_number}: expected a JSON object with a string {text_field!r} field"
    return document[text_field], row_id, None


def parse_table_value(value: Any, row_number: int, text_field: str) -> tuple[str | None, str | None]:
    """(text, error) of one Parquet cell: a string, or UTF-8 bytes."""
    if isinstance(value, bytes):
        if len(value) > MAX_ROW_BYTES:
            return None, too_long_message(row_number, "row")
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return None, f"row {row_number}: not valid UTF-8"
    if not isinstance(value, str):
        return None, f"row {row_number}: expected a string {text_field!r} column, got {'null' if value is None else type(value).__name__}"
    if len(value) > MAX_ROW_BYTES // 4 and len(value.encode("utf-8")) > MAX_ROW_BYTES:
        return None, too_long_message(row_number, "row")
    return value, None


def id_text(value: Any) -> str | None:
    """An id of any JSON/Arrow scalar as text, so one output column holds every input's ids."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


def verdict_schema(*, spans: bool = False):
    """Columns of a corpus output part (a ``pyarrow.Schema``): where the row came from, its error (or null),
    and the verdict fields ``detect --json`` prints (null on an error row); with ``spans``, the span scan's too."""
    import pyarrow as pa  # only the corpus path needs it (the `scale` extra); `detect --jsonl` does not

    span = pa.struct([(name, pa.int64()) for name in ("start", "end", "first_token", "end_token", "num_scored_tokens")]
                     + [("p_value", pa.float64()), ("log10_p_value", pa.float64())])
    where = [("source", pa.string()), ("row", pa.int64()), ("id", pa.string()), ("error", pa.string())]
    verdict = [
        ("scheme", pa.string()),
        ("key_id", pa.string()),
        ("p_value", pa.float64()),
        ("log10_p_value", pa.float64()),
        ("watermarked", pa.bool_()),
        ("alpha", pa.float64()),
        ("num_scored_tokens", pa.int64()),
        ("num_tokens", pa.int64()),
        ("keys_tried", pa.int64()),
        ("code_language", pa.string()),
    ]
    scan = [("windows_scanned", pa.int64()), ("min_width", pa.int64()), ("min_window_p_value", pa.float64()), ("spans", pa.list_(span))]
    return pa.schema(where + verdict + (scan if spans else []))


def verdict_row(source: str, row: int, row_id: str | None, outcome: Any, *, spans: bool = False) -> dict[str, Any]:
    """One output row: ``outcome`` is a detection result (whole text or span scan) or an error message."""
    document: dict[str, Any] = {"source": source, "row": row, "id": row_id}
    if isinstance(outcome, str):
        document["error"] = outcome
        return document
    document["error"] = None
    document.update(verdict_fields(outcome))
    if spans:
        document.update(
            windows_scanned=outcome.windows_scanned,
            min_width=outcome.min_width,
            min_window_p_value=outcome.min_window_p_value,
            spans=[span.to_dict() for span in outcome.spans],
        )
    return document
