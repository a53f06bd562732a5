"""What the running service holds: the model, the keys, the detector, the registry, and how it labels.

One model answers every request, so generation is serialised: the service admits one request at a time
(aimark.service.scheduling.Gate, waiting on the event loop) and runs it on the generation thread; the
lock below keeps direct (embedded) callers of `generate` and `stream` in order too. The model's own
batching is used for a request's `n` choices. Detection and registry lookups run in parallel.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aimark.engines.generation import DEFAULT_REPETITION_PENALTY
from aimark.keys import Keyring, WatermarkKey, generate_key, load_key, save_key
from aimark.labels import ADVANCE_NOTICE_TEXT, add_label_text, file_kind_for, notice_text
from aimark.provenance import GenerationInfo, new_content_id, sign_content
from aimark.registry import IssuedRecord, Registry
from aimark.service.config import ServiceConfig
from aimark.service.scheduling import generation_executor

# Generated text is plain text: the notice is a line of its own, the C2PA manifest an A.8 wrapper.
_TEXT_KIND = file_kind_for("output.txt")
_OUTPUT_FILENAME = "output.txt"
# Watermarking needs sampling: a request for greedy decoding (temperature 0) samples this sharply instead.
MIN_TEMPERATURE = 0.05


@dataclass(frozen=True)
class Issued:
    """One output as the client receives it, and the facts the registry keeps."""

    content_id: str
    text: str  # notice + generated text + C2PA wrapper, as sent
    generated: str
    num_tokens: int
    finish_reason: str


@dataclass(frozen=True)
class SamplingRequest:
    max_new_tokens: int
    temperature: float
    top_p: float
    seed: int | None = None
    top_k: int = 50
    # 1.0 for code requests (see aimark.engines.generation.default_repetition_penalty). Streams sample without one.
    repetition_penalty: float = DEFAULT_REPETITION_PENALTY
    code_language: str | None = None  # a code request's language (the comment boost finds comments with it)
    comment_boost: float = 0.0


def service_key_path(model_name: str, home: Path) -> Path:
    slug = "".join(c if c.isalnum() else "-" for c in model_name).strip("-")[-80:] or "model"
    return home / "service" / "keys" / f"{slug}.json"


class ServiceKeyError(RuntimeError):
    """The service would have to make a new key although the registry holds outputs issued under another."""


def default_service_key(loaded, home: Path | None = None, *, registry: Registry | None = None, allow_new: bool = True,
                        notify: Callable[[str], None] | None = None) -> WatermarkKey:
    """The service's own key for this model: created once (mode 0600), then reused, so outputs stay detectable.

    ``home``: the data directory (default: aimark's, where a key left in the old cache location is moved to).
    A new key is refused (``ServiceKeyError``) when ``registry`` holds outputs of this model issued under
    other keys, unless ``allow_new``: a lost key file must be restored, not silently replaced.
    """
    from aimark.detect.detector import tokenizer_binding
    from aimark.engines.models import data_file, private_dir

    if home is None:
        path = data_file(service_key_path(loaded.name, Path()), notify)
    else:
        path = private_dir(service_key_path(loaded.name, home).parent) / service_key_path(loaded.name, home).name
    if path.exists():
        return load_key(path)
    if registry is not None and not allow_new and (issued := sorted(registry.key_ids(loaded.name))):
        raise ServiceKeyError(
            f"no service key at {path}, but the registry holds outputs of {loaded.name} issued under "
            f"{', '.join(issued[:3])}{' …' if len(issued) > 3 else ''}: restore that key file there (or pass it with --key), "
            "or start with --new-key to watermark new outputs with a new key")
    key = generate_key("synthid", tokenizer=tokenizer_binding(loaded.tokenizer, loaded.name), model=loaded.name)
    save_key(key, path)
    return key


class IssuingRuntime:
    """What every aimark front labels and records with: the notice, the C2PA wrapper, the registry record.

    Shared by the service that generates (:class:`ServiceRuntime`) and the gateway in front of another
    server (:class:`aimark.service.gateway.GatewayRuntime`), so both issue outputs the same way. ``key``
    is the watermark key outputs carry, None where the generator does not watermark (or it is unknown).
    """

    config: ServiceConfig
    registry: Registry
    key: WatermarkKey | None
    keyring: Keyring
    detector: Any  # aimark.detect.Detector, or None without a key
    tokenizer: Any  # the detector's tokenizer, or None
    started_at: datetime
    watermark_absent: str | None = None  # why outputs carry no watermark this service can check, where they do not

    @property
    def model_name(self) -> str:
        raise NotImplementedError

    # --- labelling --------------------------------------------------------------------------------

    def display_notice(self) -> dict[str, Any]:
        """What a chat interface shows next to each response (MSIT transparency guideline: inside the service a
        notice in the interface suffices), with the advance notice (AI Basic Act Art. 31(1)) for the first turn.
        `in_output` says whether the text itself also starts with the notice, as output that leaves the
        service (download, share, export) must."""
        profile, language = self.config.profile, self.config.language
        return {"text": notice_text(profile, language), "advance": ADVANCE_NOTICE_TEXT[language], "profile": profile,
                "lang": language, "in_output": "notice" in self.config.labels}

    def notice_prefix(self) -> str:
        """The notice line that starts every output (empty when notices are off)."""
        if "notice" not in self.config.labels:
            return ""
        return add_label_text("", _TEXT_KIND, self.config.profile, self.config.language, at="start")

    def manifest_suffix(self, labelled: str, content_id: str, model: str | None = None) -> str:
        """The C2PA A.8 wrapper for `labelled` (appended after it), or empty when C2PA is off.
        ``model``: the model that generated it (default: this runtime's)."""
        if "c2pa" not in self.config.labels:
            return ""
        info = GenerationInfo(model_name=model or self.model_name, watermark_scheme=self.key.scheme if self.key else None,
                              watermark_key_id=self.key.key_id if self.key else None, content_id=content_id,
                              detection_endpoint=self.config.detection_endpoint)
        body = labelled.encode("utf-8")
        signed = sign_content(body, _OUTPUT_FILENAME, self.config.credentials, info)
        if not signed.startswith(body):  # the A.8 carrier only ever appends; anything else would garble a stream
            raise RuntimeError("C2PA signing changed the text instead of appending a wrapper")
        return signed[len(body) :].decode("utf-8")

    def labelled(self, generated: str, content_id: str, model: str | None = None) -> str:
        """What the client gets for `generated`: notice + text + C2PA wrapper."""
        labelled = self.notice_prefix() + generated
        return labelled + self.manifest_suffix(labelled, content_id, model)

    def issue(self, generated: str, num_tokens: int, finish_reason: str, model: str | None = None) -> Issued:
        """Label one generated text, record it, and return what the client gets."""
        content_id = new_content_id()
        text = self.labelled(generated, content_id, model)
        self.record(content_id, text, generated, model=model)
        return Issued(content_id, text, generated, num_tokens, finish_reason)

    def record(self, content_id: str, text: str, generated: str, *, replace: bool = False,
               issued_at: datetime | None = None, model: str | None = None) -> None:
        """Store what was issued; ``replace``: overwrite the stream's earlier record of the same content id."""
        record = IssuedRecord(content_id=content_id, text=text, key_id=self.key.key_id if self.key else None,
                              model=model or self.model_name,
                              profile=self.config.profile, issued_at=issued_at or datetime.now(UTC),
                              generated_text=generated)
        (self.registry.replace if replace else self.registry.record)(record)


class ServiceRuntime(IssuingRuntime):
    """The service that generates: one model, its watermark key, the registry."""

    def __init__(self, config: ServiceConfig, loaded, keys: list[WatermarkKey], registry: Registry):
        from aimark.detect import Detector

        self.config = config
        self.loaded = loaded
        self.key = keys[0]
        self.keyring = Keyring(keys)
        self.detector = Detector(self.keyring, loaded.tokenizer, alpha=config.alpha)
        self.registry = registry
        self.generation_lock = threading.Lock()
        self.generation_executor = generation_executor()
        self.started_at = datetime.now(UTC)

    @property
    def model_name(self) -> str:
        return self.loaded.name

    @property
    def tokenizer(self):
        return self.loaded.tokenizer

    @classmethod
    def start(cls, config: ServiceConfig, *, home: Path | None = None, new_key: bool = False,
              notify: Callable[[str], None] | None = None) -> ServiceRuntime:
        """Load the model, open the registry, find the keys (see :func:`default_service_key`), start retention.

        ``home``: the data directory for the service's own key (default: aimark's). ``new_key``: allow a new
        key although the registry holds outputs of another. ``notify`` hears about keys moved out of a cache.
        """
        from aimark.engines import load_model

        loaded = load_model(config.model)
        registry = Registry(config.db_url, retention_days=config.retention_days, min_evidence=config.registry_min_evidence)
        try:
            keys = [load_key(path) for path in config.key_paths] or [
                default_service_key(loaded, home, registry=registry, allow_new=new_key, notify=notify)]
            # Retention is enforced, not only displayed: purged now, then hourly until close() closes the registry.
            registry.purge_periodically(config.purge_interval_s)
        except BaseException:
            registry.close()
            raise
        return cls(config, loaded, keys, registry)

    def close(self) -> None:
        # A generation still running finishes its step and ends (its stream was closed with its response).
        self.generation_executor.shutdown(wait=False, cancel_futures=True)
        self.registry.close()

    # --- generation -------------------------------------------------------------------------------

    def format_prompt(self, prompt: str, *, chat: bool) -> str:
        from aimark.engines import format_prompt

        return format_prompt(self.loaded.tokenizer, prompt, chat=chat)

    def count_tokens(self, formatted_prompt: str) -> int:
        return len(self.loaded.tokenizer(formatted_prompt, add_special_tokens=True)["input_ids"])

    def generate(self, formatted_prompts: list[str], sampling: SamplingRequest):
        from aimark.engines import generate

        with self.generation_lock:
            return generate(self.loaded, formatted_prompts, key=self.key, chat=False, batch_size=len(formatted_prompts),
                            max_new_tokens=sampling.max_new_tokens, temperature=max(sampling.temperature, MIN_TEMPERATURE),
                            top_k=sampling.top_k, top_p=sampling.top_p, seed=sampling.seed,
                            repetition_penalty=sampling.repetition_penalty, code_language=sampling.code_language,
                            comment_boost=sampling.comment_boost)

    def stream(self, formatted_prompt: str, sampling: SamplingRequest, outcome) -> Iterator[str]:
        """Text deltas; holds the generation lock until the iterator is closed or exhausted."""
        from aimark.engines.streaming import stream_generate

        with self.generation_lock:
            yield from stream_generate(self.loaded, formatted_prompt, key=self.key, outcome=outcome,
                                       max_new_tokens=sampling.max_new_tokens,
                                       temperature=max(sampling.temperature, MIN_TEMPERATURE), top_k=sampling.top_k,
                                       top_p=sampling.top_p, seed=sampling.seed,
                                       repetition_penalty=sampling.repetition_penalty,
                                       timeout_s=self.config.generation_timeout_s, code_language=sampling.code_language,
                                       comment_boost=sampling.comment_boost)
