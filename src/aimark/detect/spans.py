"""Find watermarked spans inside long mixed documents (WinMax-style window scan).

A watermarked paragraph pasted into a long human document is diluted in the
document's total score; scanning windows finds it. Every window of
``width`` kept units (the same deduplicated units :class:`Detector` scores)
gets the exact tail of its total under the scheme's null. Because the kept
units are independent under H0, that tail is exact for every window, and a
Bonferroni correction over all windows scanned (and all keys) bounds the
family-wise error: on text written without the key, the chance that any span
is reported is at most ``alpha``, whatever the overlap between windows.

Widths are powers of two from ``min_width`` up to the document (plus the whole
document), each slid with a stride of a quarter width, so the number of
windows is about ``8 n / min_width`` and costs ``log10`` of that in p-value.

Reported spans are chosen greedily: the most significant window first, its
boundaries refined within one stride to the tightest tail, then the next
significant window that does not overlap a reported span. A span's p-value is
that of its grid window (corrected), never of the refined boundaries, which
are chosen after looking and so carry no p-value of their own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aimark.detect.detector import Detector, per_key
from aimark.detect.result import verdict_fields
from aimark.detect.stats import log_p_values
from aimark.schemes import WatermarkScheme
from aimark.schemes.code import normalise_language

DEFAULT_MIN_WIDTH = 32
_STRIDE_DIVISOR = 4


@dataclass(frozen=True)
class WatermarkedSpan:
    """A stretch of the text whose watermark score is significant after correction."""

    start: int  # character offset in the text (inclusive)
    end: int  # character offset (exclusive)
    first_token: int  # token index in the text (inclusive; prompt tokens not counted)
    end_token: int  # token index (exclusive)
    num_scored_tokens: int
    p_value: float  # family-wise corrected over every window scanned
    log10_p_value: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "first_token": self.first_token,
            "end_token": self.end_token,
            "num_scored_tokens": self.num_scored_tokens,
            "p_value": self.p_value,
            "log10_p_value": self.log10_p_value,
        }


@dataclass(frozen=True)
class SpanDetectionResult:
    scheme: str
    key_id: str
    p_value: float  # document level: the smallest corrected window p-value
    log10_p_value: float
    alpha: float
    num_scored_tokens: int
    num_tokens: int
    windows_scanned: int  # over all keys: the Bonferroni factor
    min_width: int
    min_window_p_value: float  # the best window before correction (what an uncorrected scan would test)
    keys_tried: int = 1
    spans: tuple[WatermarkedSpan, ...] = field(default=())
    #: The language whose code gate chose the scored tokens; None when every token counted.
    code_language: str | None = None

    @property
    def watermarked(self) -> bool:
        return self.p_value <= self.alpha

    def to_dict(self) -> dict[str, Any]:
        """Stable JSON shape ("detect --spans --json" in docs/robustness.md)."""
        return {
            **verdict_fields(self),
            "windows_scanned": self.windows_scanned,
            "min_width": self.min_width,
            "min_window_p_value": self.min_window_p_value,
            "spans": [span.to_dict() for span in self.spans],
        }


def window_grid(num_units: int, min_width: int = DEFAULT_MIN_WIDTH) -> tuple[np.ndarray, np.ndarray]:
    """(starts, widths) of every window scanned over ``num_units`` kept units.

    Fixed before looking at the values, so the Bonferroni factor is the
    number of rows.
    """
    if num_units <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    widths: list[int] = []
    width = min_width
    while width < num_units:
        widths.append(width)
        width *= 2
    widths.append(num_units)
    starts_out, widths_out = [], []
    for width in widths:
        stride = max(1, width // _STRIDE_DIVISOR)
        starts = np.arange(0, num_units - width + 1, stride)
        if starts[-1] != num_units - width:  # cover the tail too
            starts = np.append(starts, num_units - width)
        starts_out.append(starts)
        widths_out.append(np.full(len(starts), width))
    return np.concatenate(starts_out).astype(np.int64), np.concatenate(widths_out).astype(np.int64)


@dataclass(frozen=True)
class _KeyScan:
    scheme: WatermarkScheme
    positions: np.ndarray  # token positions (in ids) of the kept units
    cumulative: np.ndarray  # prefix sums of the kept values, length n + 1
    starts: np.ndarray
    widths: np.ndarray
    log_p: np.ndarray  # uncorrected, per window

    def window_log_p(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        return log_p_values(self.scheme.null, self.cumulative[ends] - self.cumulative[starts], ends - starts)


def _scan(
    detector: Detector, scheme: WatermarkScheme, ids: np.ndarray, scored_from: int, min_width: int, allowed: np.ndarray | None
) -> _KeyScan:
    positions, values = detector.scored_units(scheme, ids, scored_from, allowed)
    cumulative = np.concatenate([[0.0], np.cumsum(values, dtype=np.float64)])
    starts, widths = window_grid(len(values), min_width)
    log_p = log_p_values(scheme.null, cumulative[starts + widths] - cumulative[starts], widths)
    return _KeyScan(scheme, positions, cumulative, starts, widths, log_p)


def _refine(scan: _KeyScan, start: int, end: int, taken: list[tuple[int, int]]) -> tuple[int, int]:
    """Boundaries within one stride of (start, end) with the smallest uncorrected tail, not overlapping ``taken``."""
    reach = max(1, (end - start) // _STRIDE_DIVISOR)
    n = len(scan.cumulative) - 1
    lower, upper = 0, n
    for taken_start, taken_end in taken:
        if taken_end <= start:
            lower = max(lower, taken_end)
        elif taken_start >= end:
            upper = min(upper, taken_start)
    candidate_starts = np.arange(max(lower, start - reach), min(start + reach, end - 1) + 1)
    candidate_ends = np.arange(max(end - reach, start + 1), min(end + reach, upper) + 1)
    grid_starts, grid_ends = np.meshgrid(candidate_starts, candidate_ends, indexing="ij")
    valid = grid_ends > grid_starts
    grid_starts, grid_ends = grid_starts[valid], grid_ends[valid]
    best = int(np.argmin(scan.window_log_p(grid_starts, grid_ends)))
    return int(grid_starts[best]), int(grid_ends[best])


def detect_spans(
    detector: Detector,
    text: str,
    *,
    prompt: str | None = None,
    min_width: int = DEFAULT_MIN_WIDTH,
    alpha: float | None = None,
    language: str | None = None,
) -> SpanDetectionResult:
    """Scan ``text`` for watermarked spans with the detector's keys; FWER over all windows <= alpha.

    ``alpha`` defaults to the detector's. ``min_width`` is the narrowest window
    in scored tokens: narrower finds shorter spans but pays a larger correction. ``language`` applies
    the code gate (see :meth:`Detector.detect`).
    """
    if min_width < 1:
        raise ValueError("min_width must be >= 1")
    alpha = detector.alpha if alpha is None else alpha
    if not 0 < alpha < 1:
        raise ValueError("alpha must be between 0 and 1")
    ids, scored_from, offsets = detector.encode(text, prompt=prompt)
    allowed = detector.code_gate(text, offsets, scored_from, len(ids), language)
    schemes = detector.schemes_for(language)
    scans = [_scan(detector, scheme, ids, scored_from, min_width, gate) for scheme, gate in zip(schemes, per_key(allowed, len(schemes)))]
    windows_scanned = sum(len(scan.log_p) for scan in scans)
    if windows_scanned == 0:
        raise detector.nothing_to_score(len(ids) - scored_from, gated=allowed is not None, language=language)
    correction = math.log(windows_scanned)
    best_key = int(np.argmin([scan.log_p.min() if len(scan.log_p) else 0.0 for scan in scans]))
    scan = scans[best_key]
    corrected = np.minimum(scan.log_p + correction, 0.0)
    spans: list[WatermarkedSpan] = []
    taken: list[tuple[int, int]] = []
    for window in np.argsort(corrected, kind="stable"):
        if corrected[window] > math.log(alpha):
            break
        start, end = int(scan.starts[window]), int(scan.starts[window] + scan.widths[window])
        if any(start < taken_end and taken_start < end for taken_start, taken_end in taken):
            continue
        start, end = _refine(scan, start, end, taken)
        taken.append((start, end))
        first_token = int(scan.positions[start]) - scored_from
        last_token = int(scan.positions[end - 1]) - scored_from
        spans.append(
            WatermarkedSpan(
                start=int(offsets[first_token][0]),
                end=int(offsets[last_token][1]),
                first_token=first_token,
                end_token=last_token + 1,
                num_scored_tokens=end - start,
                p_value=math.exp(corrected[window]),
                log10_p_value=float(corrected[window]) / math.log(10),
            )
        )
    document_log_p = float(corrected.min()) if len(corrected) else 0.0
    return SpanDetectionResult(
        scheme=scan.scheme.name,
        key_id=scan.scheme.key_id,
        p_value=math.exp(document_log_p),
        log10_p_value=document_log_p / math.log(10),
        alpha=alpha,
        num_scored_tokens=len(scan.positions),
        num_tokens=int(len(ids) - scored_from),
        windows_scanned=windows_scanned,
        min_width=min_width,
        min_window_p_value=math.exp(float(scan.log_p.min())) if len(scan.log_p) else 1.0,
        keys_tried=len(scans),
        spans=tuple(sorted(spans, key=lambda span: span.start)),
        code_language=normalise_language(language),
    )
