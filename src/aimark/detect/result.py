"""The one result type every door (Python, CLI --json, REST, web page) renders."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


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

    @property
    def watermarked(self) -> bool:
        return self.p_value <= self.alpha

    def to_dict(self, *, include_tokens: bool = False) -> dict[str, Any]:
        """Stable JSON shape; documented in README ("detect --json")."""
        document: dict[str, Any] = {
            "scheme": self.scheme,
            "key_id": self.key_id,
            "p_value": self.p_value,
            "log10_p_value": self.log10_p_value,
            "watermarked": self.watermarked,
            "alpha": self.alpha,
            "num_scored_tokens": self.num_scored_tokens,
            "num_tokens": self.num_tokens,
            "keys_tried": self.keys_tried,
        }
        if include_tokens:
            document["tokens"] = [[t.start, t.end, t.score] for t in self.tokens]
        return document

    @staticmethod
    def from_log_p(log_p: float, **kwargs: Any) -> DetectionResult:
        return DetectionResult(p_value=math.exp(log_p), log10_p_value=log_p / math.log(10), **kwargs)
