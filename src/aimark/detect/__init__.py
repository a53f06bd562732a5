"""Detection from text alone: tokenizer + key, exact p-values.

>>> detector = Detector(load_key("key.json"), tokenizer)      # doctest: +SKIP
>>> detector.detect(text).p_value                            # doctest: +SKIP
"""

from aimark.detect.detector import (
    DEFAULT_ALPHA,
    DetectionInputError,
    Detector,
    TokenizerMismatchError,
)
from aimark.detect.result import DetectionResult, TokenScore
from aimark.detect.spans import SpanDetectionResult, WatermarkedSpan, detect_spans
from aimark.detect.stats import log_p_value, p_value

__all__ = [
    "DEFAULT_ALPHA",
    "DetectionInputError",
    "DetectionResult",
    "Detector",
    "SpanDetectionResult",
    "TokenScore",
    "WatermarkedSpan",
    "detect_spans",
    "TokenizerMismatchError",
    "log_p_value",
    "p_value",
]
