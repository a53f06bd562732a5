"""Detection from text alone: the tokenizer and the key, no model.

Pipeline per text: tokenize (no special tokens added) -> scheme values for
every position with a full context -> keep each scored unit once (and, for
schemes that skip repeated contexts at generation, each context once) ->
exact tail of the total under the scheme's null -> Bonferroni over the keyring.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice

import numpy as np

from aimark.detect.normalise import map_offsets, normalise_for_detection
from aimark.detect.result import DetectionResult, TokenScore
from aimark.detect.stats import keyring_corrected, log_p_value, log_p_values
from aimark.detect.with_model import NextTokenDistributions, Sampling, model_weighted_log_p
from aimark.keys import Keyring, TokenizerBinding, WatermarkKey, tokenizer_fingerprint
from aimark.schemes import WatermarkScheme, scheme_for_key
from aimark.schemes.code import class_mask, code_detection_scheme, free_classes_for, normalise_language, token_classes

DEFAULT_ALPHA = 1e-3


class DetectionInputError(ValueError):
    """The text cannot be scored (empty, too short, not text)."""


class TokenizerMismatchError(ValueError):
    """The tokenizer is not the one the key was made for."""


def fingerprint_of(tokenizer) -> str:
    cached = getattr(tokenizer, "_aimark_fingerprint", None)
    if cached is None:
        cached = tokenizer_fingerprint(tokenizer.get_vocab())
        try:
            tokenizer._aimark_fingerprint = cached
        except AttributeError:  # pragma: no cover - tokenizers with __slots__
            pass
    return cached


def tokenizer_binding(tokenizer, name: str) -> TokenizerBinding:
    """What a key records about the tokenizer it is made for."""
    return TokenizerBinding(name, len(tokenizer), fingerprint_of(tokenizer))


def ensure_tokenizer_matches(key: WatermarkKey, tokenizer) -> None:
    """Raise TokenizerMismatchError when ``key`` was made for another tokenizer."""
    if key.tokenizer is not None and key.tokenizer.fingerprint != fingerprint_of(tokenizer):
        raise TokenizerMismatchError(
            f"key {key.key_id} was made for tokenizer {key.tokenizer.name!r}; the tokenizer given is a different one"
        )


def first_occurrences(values: np.ndarray) -> np.ndarray:
    """Boolean mask: True at the first occurrence of each value."""
    mask = np.zeros(len(values), dtype=bool)
    if len(values):
        _, first = np.unique(values, return_index=True)
        mask[first] = True
    return mask


def first_occurrences_per_group(groups: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Boolean mask: True at the first occurrence of each value within its group (:func:`first_occurrences`
    of each group's values at once).

    One unstable sort of the values alone (~4x faster than a stable two-key ``lexsort`` of a batch's hashes):
    a value that occurs once is its group's first occurrence whatever its group. Only the few positions whose
    value occurs again (repeated n-grams, a text twice in a batch) are sorted by (group, value) with ``lexsort``,
    stable over them in input order, so the first of equal pairs is the earliest."""
    mask = np.zeros(len(values), dtype=bool)
    if not len(values):
        return mask
    order = np.argsort(values)
    ordered = values[order]
    repeated = np.zeros(len(values), dtype=bool)
    repeated[1:] = ordered[1:] == ordered[:-1]
    repeated[:-1] |= repeated[1:]
    mask[order[~repeated]] = True
    rest = np.sort(order[repeated])
    if len(rest):
        order = rest[np.lexsort((values[rest], groups[rest]))]
        grouped, ordered = groups[order], values[order]
        starts = np.ones(len(order), dtype=bool)
        starts[1:] = (grouped[1:] != grouped[:-1]) | (ordered[1:] != ordered[:-1])
        mask[order[starts]] = True
    return mask


class Detector:
    """Scores texts against one key or a keyring. Picklable apart from the tokenizer."""

    def __init__(
        self,
        keys: Keyring | WatermarkKey | Sequence[WatermarkKey],
        tokenizer,
        *,
        alpha: float = DEFAULT_ALPHA,
        check_tokenizer: bool = True,
        normalise: bool = True,
    ):
        if not 0 < alpha < 1:
            raise ValueError("alpha must be between 0 and 1")
        if isinstance(keys, WatermarkKey):
            keys = [keys]
        self.keys = tuple(keys)
        if not self.keys:
            raise ValueError("no keys to detect with")
        self.tokenizer = tokenizer
        self.alpha = alpha
        # Remove invisible characters and fold look-alikes before tokenising (see detect/normalise.py).
        self.normalise = normalise
        if check_tokenizer:
            for key in self.keys:
                ensure_tokenizer_matches(key, tokenizer)
        vocab_size = len(tokenizer)
        self.schemes: tuple[WatermarkScheme, ...] = tuple(scheme_for_key(k, vocab_size=vocab_size, tokenizer=tokenizer) for k in self.keys)
        self._code_schemes = tuple(code_detection_scheme(s) for s in self.schemes)
        self._special_ids = np.asarray(sorted(set(getattr(tokenizer, "all_special_ids", []) or [])), dtype=np.int64)

    # -- public API -------------------------------------------------------------
    def schemes_for(self, language: str | None) -> tuple[WatermarkScheme, ...]:
        """The schemes as detection scores them: for code (``language`` given) with the code profile
        (:func:`aimark.schemes.code.code_detection_scheme`), else as the keys describe them."""
        return self.schemes if language is None else self._code_schemes

    def detect(
        self, text: str, *, prompt: str | None = None, with_tokens: bool = True, language: str | None = None
    ) -> DetectionResult:
        """Detect the watermark in ``text``; a given ``prompt`` is context only, never scored.

        ``language`` (``"python"``, ``"javascript"``, ``"markdown"``, …; see ``aimark.schemes.code``)
        switches on the code gate: only tokens of the lexical classes that carry the key's scheme's signal
        (``aimark.schemes.code.CODE_FREE_CLASSES``; prose around code fences always) are counted.
        """
        ids, scored_from, offsets = self.encode(text, prompt=prompt)
        allowed = self.code_gate(text, offsets, scored_from, len(ids), language)
        return self._detect_ids(ids, scored_from=scored_from, offsets=offsets if with_tokens else None, allowed=allowed, language=language)

    def code_gate(self, text: str, offsets, scored_from: int, num_ids: int, language: str | None) -> list[np.ndarray] | None:
        """Per key, the positions (over prompt + text ids) the code gate lets it count; ``None`` = all.

        Which lexical classes count depends on the key's scheme (:data:`aimark.schemes.code.CODE_FREE_CLASSES`).
        """
        if language is None:
            return None
        classes = token_classes(text, offsets, normalise_language(language))  # lexed once, masked per class set
        masks: dict[frozenset[str], np.ndarray] = {}
        gates = []
        for scheme in self.schemes:
            free = free_classes_for(scheme.name)
            if free not in masks:
                masks[free] = np.zeros(num_ids, dtype=bool)
                masks[free][scored_from:] = class_mask(classes, free)
            gates.append(masks[free])
        return gates

    def nothing_to_score(self, num_tokens: int, *, gated: bool, language: str | None) -> DetectionInputError:
        """The error for a text in which no unit counts: too short, or (with the code gate) nothing free."""
        context = max(s.context_width for s in self.schemes)
        if gated and num_tokens > context:
            counted = sorted(set().union(*(free_classes_for(s.name) for s in self.schemes)))
            return DetectionInputError(
                f"nothing to score: none of the {num_tokens} token(s) of {normalise_language(language) or 'the code'} "
                f"is of a class the code gate counts ({', '.join(counted)})"
            )
        return DetectionInputError(
            f"nothing to score: the text has {num_tokens} token(s); the watermark needs more than {context} tokens of context"
        )

    def encode(self, text: str, *, prompt: str | None = None) -> tuple[np.ndarray, int, list[tuple[int, int]]]:
        """(token ids with the prompt's ids first, index of the first scored id, character offsets in ``text`` of the scored ids)."""
        _check_text(text)
        context_ids: list[int] = []
        if prompt:
            if text.startswith(prompt):
                text_offset = len(prompt)
                context_ids = self._encode(prompt)
                body_ids, offsets = self._encode_with_offsets(text[text_offset:])
                offsets = [(s + text_offset, e + text_offset) for s, e in offsets]
            else:
                context_ids = self._encode(prompt)
                body_ids, offsets = self._encode_with_offsets(text)
        else:
            body_ids, offsets = self._encode_with_offsets(text)
        return np.asarray(context_ids + body_ids, dtype=np.int64), len(context_ids), offsets

    def detect_ids(
        self, token_ids: Sequence[int], *, scored_from: int = 0, allowed: Sequence[bool] | None = None, language: str | None = None
    ) -> DetectionResult:
        """Detect on token ids; ``allowed`` (one flag per id) restricts which positions count.

        ``language`` marks the ids as code (scored with the code profile, see :meth:`schemes_for`);
        the caller's ``allowed`` is then usually :meth:`code_gate`'s mask.
        """
        mask = None if allowed is None else np.asarray(allowed, dtype=bool)
        if mask is not None and len(mask) != len(token_ids):
            raise ValueError("allowed must have one flag per token id")
        return self._detect_ids(np.asarray(token_ids, dtype=np.int64), scored_from=scored_from, offsets=None, allowed=mask, language=language)

    def detect_many(
        self, texts: Iterable[str], *, batch_size: int = 64, language: str | None = None
    ) -> Iterator[DetectionResult | DetectionInputError]:
        """Stream results in input order; memory stays bounded by ``batch_size`` texts.

        A text that cannot be scored yields its exception instead of a result,
        so one bad line does not stop a batch.
        """
        if language is not None:  # the gate needs each text's offsets
            for text in texts:
                try:
                    yield self.detect(text, with_tokens=False, language=language)
                except DetectionInputError as exc:
                    yield exc
            return
        iterator = iter(texts)
        while batch := list(islice(iterator, batch_size)):
            valid = [t for t in batch if isinstance(t, str) and t.strip()]
            # One tokenizer call per batch: the Rust tokenizer parallelises across texts.
            cleaned = [self._clean(t)[0] for t in valid]
            encoded = self.tokenizer(cleaned, add_special_tokens=False)["input_ids"] if valid else []
            results = iter(self._detect_batch([np.asarray(ids, dtype=np.int64) for ids in encoded]))
            for text in batch:
                try:
                    _check_text(text)
                except DetectionInputError as exc:
                    yield exc
                else:
                    yield next(results)

    # -- internals --------------------------------------------------------------
    def _clean(self, text: str) -> tuple[str, list[tuple[int, int]] | None]:
        return normalise_for_detection(text) if self.normalise else (text, None)

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(self._clean(text)[0], add_special_tokens=False)["input_ids"])

    def _encode_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        cleaned, spans = self._clean(text)
        try:
            encoding = self.tokenizer(cleaned, add_special_tokens=False, return_offsets_mapping=True)
            offsets = [tuple(o) for o in encoding["offset_mapping"]]
            return list(encoding["input_ids"]), map_offsets(offsets, spans) if spans is not None else offsets
        except NotImplementedError:  # slow tokenizers have no offsets
            ids = self._encode(text)
            return ids, [(0, 0)] * len(ids)

    def _detect_batch(self, encoded: list[np.ndarray]) -> list[DetectionResult | DetectionInputError]:
        """:meth:`_detect_ids` of each text (whole texts, no prompt, no gate, no tokens), with one p-value call
        per key for the whole batch: the same numbers, without scipy's per-call overhead for every text."""
        totals = np.zeros((len(self.schemes), len(encoded)), dtype=np.float64)
        counts = np.zeros((len(self.schemes), len(encoded)), dtype=np.int64)
        for k, scheme in enumerate(self.schemes):
            for i, values in enumerate(self._batch_scored_values(scheme, encoded)):
                totals[k, i], counts[k, i] = float(values.sum()), len(values)
        log_ps = [log_p_values(scheme.null, totals[k], counts[k]) for k, scheme in enumerate(self.schemes)]
        results: list[DetectionResult | DetectionInputError] = []
        for i, ids in enumerate(encoded):
            try:
                results.append(self._result([float(p[i]) for p in log_ps], [int(c) for c in counts[:, i]], len(ids), 0, None, None, None))
            except DetectionInputError as exc:
                results.append(exc)
        return results

    def _batch_scored_values(self, scheme: WatermarkScheme, encoded: list[np.ndarray]) -> list[np.ndarray]:
        """Per text, the values :meth:`scored_units` keeps (no prompt, no gate), with the rows of every text
        scored in one call and deduplicated per text in one sort: numpy's per-call cost paid once per batch."""
        windows, positions, tokens, rows_per_text = scheme.scored_positions_many(encoded)
        scored = scheme.score_windows(windows, positions, tokens)
        text_of = np.repeat(np.arange(len(encoded)), rows_per_text)
        keep = np.ones(len(tokens), dtype=bool)
        if len(self._special_ids) and len(tokens):  # by the ids at the scored positions: a scheme's units need not be token ids
            lengths = np.asarray([len(ids) for ids in encoded], dtype=np.int64)
            scored_ids = np.concatenate(encoded)[(np.cumsum(lengths) - lengths)[text_of] + positions]
            keep &= ~np.isin(scored_ids, self._special_ids)
        kept = np.flatnonzero(keep)
        if scheme.masks_repeated_contexts:
            kept = kept[first_occurrences_per_group(text_of[kept], scored.contexts[kept])]
        kept = kept[first_occurrences_per_group(text_of[kept], scored.units[kept])]
        values = scored.values[kept]
        bounds = np.searchsorted(text_of[kept], np.arange(len(encoded) + 1))
        return [values[start:end] for start, end in zip(bounds[:-1], bounds[1:])]

    def _detect_ids(
        self, ids: np.ndarray, *, scored_from: int, offsets, allowed: np.ndarray | list[np.ndarray] | None = None, language: str | None = None
    ) -> DetectionResult:
        log_ps, counts, per_key_tokens = [], [], []
        schemes = self.schemes_for(language)
        for scheme, gate in zip(schemes, per_key(allowed, len(schemes))):
            log_p, count, token_scores = self._score(scheme, ids, scored_from, gate)
            log_ps.append(log_p)
            counts.append(count)
            per_key_tokens.append(token_scores)
        return self._result(log_ps, counts, len(ids), scored_from, offsets, per_key_tokens, allowed, language)

    def _result(
        self, log_ps: list[float], counts: list[int], num_ids: int, scored_from: int, offsets, per_key_tokens, allowed, language: str | None = None
    ) -> DetectionResult:
        """The keyring-corrected result from each key's log p-value and scored count."""
        schemes = self.schemes_for(language)
        if max(counts) == 0:
            raise self.nothing_to_score(num_ids - scored_from, gated=allowed is not None, language=language)
        best, corrected = keyring_corrected(log_ps) if len(log_ps) > 1 else (0, log_ps[0])
        tokens: tuple[TokenScore, ...] = ()
        if offsets is not None:
            scores = per_key_tokens[best][scored_from:]
            tokens = tuple(TokenScore(int(s), int(e), None if math.isnan(v) else float(v)) for (s, e), v in zip(offsets, scores))
        return DetectionResult.from_log_p(
            corrected,
            scheme=schemes[best].name,
            key_id=schemes[best].key_id,
            num_scored_tokens=counts[best],
            num_tokens=int(num_ids - scored_from),
            alpha=self.alpha,
            keys_tried=len(self.schemes),
            tokens=tokens,
            code_language=normalise_language(language),
        )

    def scored_units(
        self, scheme: WatermarkScheme, ids: np.ndarray, scored_from: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(token positions, values) of the units that count, in text order.

        Each scored unit is kept once (and, for schemes that skip repeated
        contexts at generation, each context once), and special tokens and the
        prompt are left out (and, with a code gate, positions ``allowed`` rejects), so the kept values are independent draws from
        ``scheme.null`` on unwatermarked text: any subset of them (a window)
        has an exact null too.
        """
        positions, _, values = self.scored_unit_contexts(scheme, ids, scored_from, allowed)
        return positions, values

    def scored_unit_contexts(
        self, scheme: WatermarkScheme, ids: np.ndarray, scored_from: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`scored_units` with each kept unit's context key: (positions, context keys, values)."""
        if scheme.pads_context:  # an engine's scheme: contexts start with the generated text, the prompt is not one
            generated = scheme.score(ids[scored_from:], prompt_ids=ids[:scored_from])
            scored = dataclasses.replace(generated, positions=generated.positions + scored_from)
        else:
            scored = scheme.score(ids)
        keep = scored.positions >= scored_from
        if len(self._special_ids):
            keep &= ~np.isin(ids[scored.positions], self._special_ids)
        if allowed is not None:
            keep &= allowed[scored.positions]
        kept = np.flatnonzero(keep)
        if scheme.masks_repeated_contexts:
            kept = kept[first_occurrences(scored.contexts[kept])]
        kept = kept[first_occurrences(scored.units[kept])]
        return scored.positions[kept], scored.contexts[kept], scored.values[kept]

    def detect_with_model(
        self, ids: Sequence[int], distributions: NextTokenDistributions, *, scored_from: int = 0, sampling: Sampling | None = None,
        allowed: Sequence[bool] | None = None,
    ) -> DetectionResult:
        """Detection by the provider who holds the generating model: each scored bit weighted by how much a
        watermarked draw from the model's own sampling distribution at that position is expected to lift it
        (aimark.detect.with_model). ``distributions`` has one row per id (the model's next-token distribution
        before that id); the weights depend on the text and the model, never on the key, so the p-value is exact.
        """
        ids = np.asarray(ids, dtype=np.int64)
        if len(distributions) != len(ids):
            raise ValueError(f"one distribution per token id is needed ({len(distributions)} for {len(ids)} ids)")
        mask = None if allowed is None else np.asarray(allowed, dtype=bool)
        log_ps, counts = [], []
        for scheme in self.schemes:
            positions, contexts, values = self.scored_unit_contexts(scheme, ids, scored_from, mask)
            log_p, count = model_weighted_log_p(scheme, ids, positions, contexts, values, distributions, sampling or Sampling())
            log_ps.append(log_p)
            counts.append(count)
        return self._result(log_ps, counts, len(ids), scored_from, None, None, mask)

    def _score(
        self, scheme: WatermarkScheme, ids: np.ndarray, scored_from: int, allowed: np.ndarray | None = None
    ) -> tuple[float, int, np.ndarray]:
        positions, values = self.scored_units(scheme, ids, scored_from, allowed)
        token_scores = np.full(len(ids), np.nan)
        token_scores[positions] = scheme.token_scores(values)
        return log_p_value(scheme.null, float(values.sum()), len(values)), len(values), token_scores

def per_key(allowed: np.ndarray | list[np.ndarray] | None, num_keys: int) -> list[np.ndarray | None]:
    """One gate per key: a single mask (or none) applies to every key."""
    return list(allowed) if isinstance(allowed, list) else [allowed] * num_keys


def _check_text(text) -> None:
    if not isinstance(text, str):
        raise DetectionInputError("text must be a string")
    if not text.strip():
        raise DetectionInputError("the text is empty")
