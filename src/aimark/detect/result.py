"""The one result type every door (Python, CLI --json, REST, web page) renders."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


def verdict_fields(result: Any) -> dict[str, Any]:
    """The JSON fields every detection result shares (whole-text and span scans)."""
    return {
        "scheme": result.scheme,
        "key_id": result.key_id,
        "p_value": result.p_value,
        "log10_p_value": result.log10_p_value,
        "watermarked": result.watermarked,
        "alpha": result.alpha,
        "num_scored_tokens": result.num_scored_tokens,
        "num_tokens": result.num_tokens,
        "keys_tried": result.keys_tried,
        "code_language": result.code_language,
    }


@dataclass(frozen=True)
class TokenScore:
    """One token of the input: its character span, and its score when it was scored."""

    start: int
    end: int
    score: float | None  # in [0, 1]; ~0.5 (or uniform) on unwatermarked text; None when not scored


@dataclass(frozen=True)
class DetectionResult:
    scheme: str
    key_id: str
    p_value: float
    log10_p_value: float
    num_scored_tokens: int
    num_tokens: int
    alpha: float
    keys_tried: int = 1
    tokens: tuple[TokenScore, ...] = field(default=(), repr=False)
    #: The language whose code gate chose the scored tokens; None when every token counted.
    code_language: str | None = None

    @property
    def watermarked(self) -> bool:
        return self.p_value <= self.alpha

    def to_dict(self, *, include_tokens: bool = False) -> dict[str, Any]:
        """Stable JSON shape; documented in README ("detect --json")."""
        document = verdict_fields(self)
        if include_tokens:
            document["tokens"] = [[t.start, t.end, t.score] for t in self.tokens]
        return document

    @staticmethod
    def from_log_p(log_p: float, **kwargs: Any) -> DetectionResult:
        return DetectionResult(p_value=math.exp(log_p), log10_p_value=log_p / math.log(10), **kwargs)
