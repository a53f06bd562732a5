"""aimark's watermark schemes inside vLLM: a V1 logits processor for ``vllm serve``.

    AIMARK_VLLM_KEYS=key.json VLLM_USE_V2_MODEL_RUNNER=0 vllm serve MODEL --no-async-scheduling \\
        --logits-processors aimark.engines.vllm_plugin:AimarkWatermarkProcessor

Every sampled (temperature > 0) request is watermarked with the first key of ``AIMARK_VLLM_KEYS`` (a key
file or keyring; several paths joined with ``os.pathsep``), and ``aimark detect --key key.json`` reads the
text. The server holds the secrets; a request names a key only by its public id. Per request, through
``SamplingParams.extra_args`` (the OpenAI API's ``vllm_xargs``, which takes flat string/number values):

- ``aimark_watermark``: ``false`` / ``0`` / ``"off"`` opts the request out;
- ``aimark_key_id``: another key of the keyring;
- ``aimark_top_k`` (default 50, or the request's own ``top_k``), ``aimark_top_p`` (default 1).

Where it sits: vLLM applies argmax-invariant processors after penalties and temperature and before its
top-k/top-p and the draw, which is where aimark's transformers processor (schemes/processor.py) sits in
aimark's own generation. So this processor does what that one does: top-k, then top-p, then the scheme's
reweighting of the candidates (with the same context dedup), and hands vLLM the log-weights, from which
vLLM's sampler draws. vLLM's own top-p would act again on the watermarked distribution, so a request must
leave it at 1 (``aimark_top_p`` replaces it); its top-k is kept as aimark's and a no-op after it (at most k
candidates are finite). Greedy requests skip argmax-invariant processors, so they are not watermarked, as
with vLLM's own watermark. Gumbel's choice is a deterministic function of the key (a one-hot row);
SynthID's tournament and KGW are distributions vLLM's sampler draws from with its own generator.

The processor reads every request's running output tokens, which with async scheduling hold
placeholders (vLLM issue #52461): the server must run with ``--no-async-scheduling``. It implements the V1
model runner's interface (``vllm.v1.sample.logits_processor``); Model Runner V2, vLLM's default where Triton
is available, takes processors of another interface, hence ``VLLM_USE_V2_MODEL_RUNNER=0``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from vllm.v1.sample.logits_processor import (
    BatchUpdate,
    LogitsProcessor,
    MoveDirectionality,
)

from aimark.keys import KeyFileError, Keyring, WatermarkKey
from aimark.schemes import scheme_for_key
from aimark.schemes.base import WatermarkScheme
from aimark.schemes.processor import ContextMemory, check_sampling, top_candidates

if TYPE_CHECKING:
    from vllm import SamplingParams
    from vllm.config import VllmConfig

KEYS_VARIABLE = "AIMARK_VLLM_KEYS"
DEFAULT_TOP_K = 50
# Candidates per row the numpy reweighting handles cheaply; a larger top_k is refused, not silently slow.
MAX_TOP_K = 1024
# vLLM samples greedily below this temperature (vllm/v1/sample/sampler.py, _SAMPLING_EPS).
_GREEDY_TEMPERATURE = 1e-5
_OPTIONS = ("aimark_watermark", "aimark_key_id", "aimark_top_k", "aimark_top_p")
_OFF = {"false", "0", "off", "no"}
# Left padding of a request's context window while it holds fewer tokens than the window (never a token id).
_PAD = -1
_ON = {"true", "1", "on", "yes"}


class AimarkRequestError(ValueError):
    """A request's aimark options are invalid (vLLM answers it with HTTP 400)."""


@dataclass(frozen=True)
class RequestSettings:
    """How one request is watermarked: which key, and aimark's top-k/top-p."""

    key_id: str
    top_k: int
    top_p: float


def server_keyring(value: str | None = None) -> Keyring:
    """The keys ``AIMARK_VLLM_KEYS`` names (or ``value``); the first is the default."""
    value = os.environ.get(KEYS_VARIABLE, "") if value is None else value
    paths = [p for p in value.split(os.pathsep) if p]
    if not paths:
        raise KeyFileError(f"set {KEYS_VARIABLE} to the aimark key file (or keyring) vLLM watermarks with")
    return Keyring.load(paths)


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _OFF | _ON:
        return value.strip().lower() in _ON
    raise AimarkRequestError(f"aimark_watermark must be true or false, got {value!r}")


def request_settings(params: SamplingParams, key_ids: tuple[str, ...]) -> RequestSettings | None:
    """The request's watermark settings, ``None`` when it is not watermarked; :class:`AimarkRequestError`
    (never naming a secret) when its options cannot be honoured."""
    extra: Mapping[str, Any] = params.extra_args or {}
    unknown = sorted(name for name in extra if name.startswith("aimark") and name not in _OPTIONS)
    if unknown:
        raise AimarkRequestError(f"unknown aimark option(s) {', '.join(unknown)}; expected {', '.join(_OPTIONS)}")
    if not _flag(extra.get("aimark_watermark", True)):
        return None
    key_id = extra.get("aimark_key_id", key_ids[0])
    if key_id not in key_ids:
        raise AimarkRequestError(f"aimark_key_id {key_id!r} is not one of this server's keys ({', '.join(key_ids)})")
    if params.temperature < _GREEDY_TEMPERATURE:
        return None  # greedy decoding has no random choice to watermark
    if params.top_p != 1.0:
        raise AimarkRequestError(
            f"top_p={params.top_p:g}: vLLM applies top_p after the watermark and would change its distribution; "
            "leave top_p at 1 and pass it as vllm_xargs/extra_args {\"aimark_top_p\": ...} "
            "(or aimark_watermark=false for an unwatermarked request)"
        )
    top_k = extra.get("aimark_top_k", params.top_k if params.top_k > 0 else DEFAULT_TOP_K)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
        raise AimarkRequestError(f"aimark_top_k must be an integer in 1..{MAX_TOP_K}, got {top_k!r}")
    if params.top_k > 0 and params.top_k != top_k:
        raise AimarkRequestError(f"top_k={params.top_k} and aimark_top_k={top_k} disagree; give one of them")
    top_p = extra.get("aimark_top_p", 1.0)
    if isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0 < top_p <= 1:
        raise AimarkRequestError(f"aimark_top_p must be a number in (0, 1], got {top_p!r}")
    check_sampling(top_k=top_k, temperature=params.temperature, top_p=float(top_p))
    return RequestSettings(str(key_id), int(top_k), float(top_p))


class _Request:
    """One watermarked request in the persistent batch."""

    __slots__ = ("decided_at", "decided_fresh", "memory", "output", "prompt_tail", "scheme", "settings")

    def __init__(self, settings: RequestSettings, scheme: WatermarkScheme, prompt: list[int] | None, output: list[int]):
        self.settings = settings
        self.scheme = scheme
        width = scheme.context_width
        # Prompt embeds come without ids: contexts then start inside the output.
        self.prompt_tail = list(prompt[-width:]) if prompt and width else []
        self.output = output  # vLLM's running list: appended to in place at every step
        self.memory = ContextMemory(scheme) if scheme.masks_repeated_contexts else None
        # vLLM may call apply() more than once for the same step (a chunked prefill's discarded sample):
        # the context dedup must see each step once, as aimark's processor does.
        self.decided_at = -1
        self.decided_fresh = True
        if self.memory is not None and output:
            self._replay(len(output))

    def _replay(self, steps: int) -> None:
        """Record the contexts of the steps already generated (a request re-added after preemption)."""
        recent = np.stack([self.recent(t) for t in range(steps)])
        rows, keys = self.scheme.generation_contexts(recent, _PAD)
        key_of = dict(zip(rows.tolist(), keys.tolist()))
        for step in range(steps):
            self.memory.fresh(key_of.get(step), self.output[step - 1] if step else None)
        self.decided_at = steps - 1

    def recent(self, step: int | None = None) -> np.ndarray:
        """The last ``context_width`` tokens before output position ``step`` (default: the next one), left-padded
        with ``_PAD`` where the request has fewer."""
        step = len(self.output) if step is None else step
        width = self.scheme.context_width
        tokens = (self.prompt_tail + list(self.output[:step]))[-width:] if width else []
        row = np.full(width, _PAD, dtype=np.int64)
        if tokens:
            row[width - len(tokens) :] = tokens
        return row

    def fresh(self, context_key: int | None) -> bool:
        """Whether this step's context (``None``: it has none) is watermarked: not used at an earlier step."""
        if self.memory is None:
            return context_key is not None
        step = len(self.output)
        if step != self.decided_at:
            previous = self.output[step - 1] if step else None
            self.decided_at, self.decided_fresh = step, self.memory.fresh(context_key, previous)
        return self.decided_fresh


class AimarkWatermarkProcessor(LogitsProcessor):
    """vLLM V1 logits processor running aimark's SynthID, KGW and Gumbel schemes (see the module docs)."""

    def __init__(self, vllm_config: VllmConfig, device: torch.device, is_pin_memory: bool):
        if vllm_config.scheduler_config.async_scheduling:
            raise RuntimeError(
                "aimark's watermark reads each request's output tokens, which async scheduling leaves as "
                "placeholders: start vllm with --no-async-scheduling"
            )
        keyring = server_keyring()
        vocab_size = vllm_config.model_config.get_vocab_size()
        tokenizer_path = vllm_config.model_config.tokenizer
        self._schemes: dict[str, WatermarkScheme] = {key.key_id: self._scheme(key, vocab_size, tokenizer_path) for key in keyring}
        self._key_ids = tuple(self._schemes)
        self._requests: dict[int, _Request] = {}

    @staticmethod
    def _scheme(key: WatermarkKey, vocab_size: int, tokenizer_path: str) -> WatermarkScheme:
        if key.mode == "vllm":
            raise KeyFileError(
                f"key {key.key_id} is vLLM's own watermark config: vLLM applies it (--watermark-config); "
                "this processor runs aimark keys (aimark keygen)"
            )
        if key.tokenizer is not None and key.tokenizer.vocab_size != vocab_size:
            raise KeyFileError(
                f"key {key.key_id} was made for a {key.tokenizer.vocab_size}-token vocabulary, "
                f"the served model has {vocab_size}: its text would not be detected"
            )
        tokenizer = _served_tokenizer(key, tokenizer_path) if key.params.get("units", "tokens") != "tokens" else None
        return scheme_for_key(key, vocab_size=vocab_size, tokenizer=tokenizer)

    @classmethod
    def validate_params(cls, sampling_params: SamplingParams) -> None:
        # Runs in the API server process, before the request reaches the engine: an error here is an HTTP 400.
        request_settings(sampling_params, _key_ids_for_validation())

    def is_argmax_invariant(self) -> bool:
        # Not literally (Gumbel chooses the token), but this is what places the processor after penalties
        # and temperature and skips it for greedy requests: where aimark's own sampling puts the watermark.
        return True

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        if batch_update is None:
            return
        for index in batch_update.removed:
            self._requests.pop(index, None)
        for index, params, prompt_ids, output_ids in batch_update.added:
            self._requests.pop(index, None)
            # validate_params has accepted these params; a keyring changed since (another process's view)
            # must not take the engine down, so such a request goes unwatermarked rather than failing.
            try:
                settings = request_settings(params, self._key_ids)
            except AimarkRequestError:
                settings = None
            if settings is not None:
                self._requests[index] = _Request(settings, self._schemes[settings.key_id], prompt_ids, output_ids)
        for a, b, direction in batch_update.moved:
            first, second = self._requests.pop(a, None), self._requests.pop(b, None)
            if first is not None:
                self._requests[b] = first
            if second is not None and direction == MoveDirectionality.SWAP:
                self._requests[a] = second

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        if not self._requests:
            return logits
        groups: dict[tuple[str, int, float], list[int]] = {}
        for index in sorted(self._requests):
            if index < logits.shape[0]:
                settings = self._requests[index].settings
                groups.setdefault((settings.key_id, settings.top_k, settings.top_p), []).append(index)
        for (key_id, top_k, top_p), rows in groups.items():
            self._apply_group(logits, self._schemes[key_id], rows, top_k, top_p)
        return logits

    def _apply_group(self, logits: torch.Tensor, scheme: WatermarkScheme, rows: list[int], top_k: int, top_p: float) -> None:
        """What WatermarkLogitsProcessor.__call__ does, on rows whose temperature vLLM has already applied."""
        # Every row of the batch, in order (the usual case): work on the logits in place, no row copies.
        whole = rows == list(range(logits.shape[0]))
        index = torch.tensor(rows, dtype=torch.long, device=logits.device)
        scores = logits if whole else logits.index_select(0, index)
        log_probs, top_ids = top_candidates(scores, top_k=top_k, temperature=1.0, top_p=top_p)
        log_np = log_probs.detach().cpu().numpy().astype(np.float64)
        candidates = top_ids.cpu().numpy()
        new_log_weights = log_np.copy()
        requests = [self._requests[r] for r in rows]
        recent = np.stack([request.recent() for request in requests])
        with_context, context_keys = scheme.generation_contexts(recent, _PAD)
        key_of = dict(zip(with_context.tolist(), context_keys.tolist()))
        # Every request decides its step (also those without a context: their memory learns the last token).
        fresh = np.asarray([request.fresh(key_of.get(i)) for i, request in enumerate(requests)], dtype=bool)
        keep = fresh[with_context]
        marked, context_keys = with_context[keep], context_keys[keep]
        if len(marked):
            new_log_weights[marked] = scheme.reweight(log_np[marked], candidates[marked], recent[marked], context_keys)
        values = torch.from_numpy(new_log_weights).to(device=logits.device, dtype=logits.dtype)
        if whole:
            logits.fill_(float("-inf")).scatter_(1, top_ids, values)
        else:
            logits.index_fill_(0, index, float("-inf"))
            logits[index.unsqueeze(1), top_ids] = values


def _served_tokenizer(key: WatermarkKey, path: str):
    """The served model's tokenizer, for keys whose units are read through its vocabulary (code-skeleton keys),
    loaded with the ``tokenizers`` library from the directory vLLM serves; refused unless the key was made for it."""
    from aimark.engines.tokenizer import load_detection_tokenizer
    from aimark.keys import tokenizer_fingerprint

    tokenizer = load_detection_tokenizer(path)
    fingerprint = getattr(tokenizer, "_aimark_fingerprint", None) or tokenizer_fingerprint(tokenizer.get_vocab())
    if key.tokenizer is not None and key.tokenizer.fingerprint != fingerprint:
        raise KeyFileError(f"key {key.key_id} was made for tokenizer {key.tokenizer.name!r}, not the served model's ({path})")
    return tokenizer


_VALIDATION_KEYS: tuple[str, tuple[str, ...]] | None = None


def _key_ids_for_validation() -> tuple[str, ...]:
    """The server's key ids, read once per value of ``AIMARK_VLLM_KEYS`` (validation runs per request)."""
    global _VALIDATION_KEYS
    value = os.environ.get(KEYS_VARIABLE, "")
    if _VALIDATION_KEYS is None or _VALIDATION_KEYS[0] != value:
        _VALIDATION_KEYS = (value, tuple(key.key_id for key in server_keyring(value)))
    return _VALIDATION_KEYS[1]
