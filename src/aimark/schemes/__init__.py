"""Watermark schemes: the keyed math of each scheme, and its transformers adapter.

``scheme_for_key`` turns a key into its scheme object; ``WatermarkLogitsProcessor``
(in :mod:`aimark.schemes.processor`) plugs any scheme into ``model.generate``.
"""

from __future__ import annotations

from aimark.keys import WatermarkKey
from aimark.schemes.code_skeleton import UNITS, SkeletonScheme, skeleton_vocabulary
from aimark.schemes.base import BinomialNull, GammaNull, PositionScores, WatermarkScheme, WeightedExpNull
from aimark.schemes.gumbel import GumbelScheme
from aimark.schemes.kgw import KGWScheme
from aimark.schemes.synthid import SynthIDScheme
from aimark.schemes.vllm import VLLMGumbelScheme


def scheme_for_key(key: WatermarkKey, *, vocab_size: int | None = None, tokenizer=None) -> WatermarkScheme:
    """The scheme object a key describes (``vocab_size`` is needed by transformers-mode KGW keys, ``tokenizer``
    by keys whose units are read through the tokenizer's vocabulary: ``"units": "code-skeleton"``)."""
    if key.params.get("units", "tokens") == UNITS:
        if tokenizer is None:
            raise ValueError(f"key {key.key_id} has code-skeleton units: its scheme needs the tokenizer")
        return SkeletonScheme(_token_scheme(key, vocab_size), skeleton_vocabulary(tokenizer))
    return _token_scheme(key, vocab_size)


def _token_scheme(key: WatermarkKey, vocab_size: int | None) -> WatermarkScheme:
    if key.scheme == "synthid":
        return SynthIDScheme(key)
    if key.scheme == "kgw":
        return KGWScheme(key, vocab_size=vocab_size)
    if key.scheme == "gumbel":
        return VLLMGumbelScheme(key) if key.mode == "vllm" else GumbelScheme(key)
    raise ValueError(f"unknown scheme {key.scheme!r}")


__all__ = [
    "BinomialNull",
    "GammaNull",
    "GumbelScheme",
    "KGWScheme",
    "PositionScores",
    "SkeletonScheme",
    "SynthIDScheme",
    "VLLMGumbelScheme",
    "WatermarkScheme",
    "WeightedExpNull",
    "scheme_for_key",
]
