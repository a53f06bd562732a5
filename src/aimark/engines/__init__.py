"""Model back ends: loading (embedded Gemma GGUF with its cache, any HF directory) and batched generation."""

from aimark.engines.generation import Generation, format_prompt, generate
from aimark.engines.models import (
    CODE_MODEL,
    EMBEDDED_MODEL,
    LoadedModel,
    ModelLoadError,
    aimark_home,
    canonical_model_ref,
    load_model,
    load_tokenizer,
)
from aimark.engines.tokenizer import DetectionTokenizer, load_detection_tokenizer

__all__ = [
    "CODE_MODEL",
    "DetectionTokenizer",
    "EMBEDDED_MODEL",
    "Generation",
    "LoadedModel",
    "ModelLoadError",
    "aimark_home",
    "canonical_model_ref",
    "format_prompt",
    "generate",
    "load_detection_tokenizer",
    "load_model",
    "load_tokenizer",
]
