"""OpenAI-shaped generation: /v1/chat/completions, /v1/completions (with `stream: true`), /v1/models.

Every output is watermarked with the service key, labelled per the configured profile and recorded in
the registry before the client gets its last byte. The `aimark` extension field carries the content id
(= GB 45438 ProduceID) and the key id; OpenAI client libraries keep unknown fields, so
`response.aimark` (or `response.model_extra["aimark"]`) reads it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any, Literal

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from aimark.provenance import new_content_id
from aimark.service.errors import ApiError, error_body, logger
from aimark.service.runtime import IssuingRuntime, Issued, SamplingRequest, ServiceRuntime
from aimark.service.scheduling import Gate, run_on
from aimark.service.security import require_api_key

router = APIRouter(prefix="/v1", tags=["generation"], dependencies=[Depends(require_api_key)])

MAX_STOP_STRINGS, MAX_STOP_CHARS = 4, 200


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        return self.content if isinstance(self.content, str) else "".join(part.text for part in self.content)


class StreamOptions(BaseModel):
    include_usage: bool = False


class AimarkOptions(BaseModel):
    """The request's `aimark` extension field (OpenAI clients send it with `extra_body={"aimark": {...}}`)."""

    model_config = ConfigDict(extra="forbid")
    language: str | None = Field(None, description="The answer is a program in this language (python, javascript, "
                                                   "…): sampled without a repetition penalty, and detected with the code gate.")
    comment_boost: float = Field(0.0, ge=0.0, le=10.0, description=(
        "With `language` and a synthid service key: push the watermark harder inside line comments (docs/code.md); "
        "more detectable code, no longer distortion-free. 0 = off."))


class _SamplingFields(BaseModel):
    # Other OpenAI fields (presence_penalty, logit_bias, user ...) are accepted and ignored, as most servers do.
    model_config = ConfigDict(extra="ignore")
    model: str | None = Field(None, description="Ignored: the service answers with the model it was started with.")
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0, description="0 is served as 0.05: the watermark needs sampling.")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    aimark: AimarkOptions | None = None

    def code_language(self) -> str | None:
        """The canonical language of a code request, None for prose; an unsupported name is a 400."""
        return code_language_of(self.aimark)


def code_language_of(options: AimarkOptions | None) -> str | None:
    """The canonical language of a request's `aimark.language`, None for prose; an unsupported name is a 400."""
    from aimark.schemes.code import UnsupportedLanguageError, normalise_language

    try:
        return normalise_language(options.language if options else None)
    except UnsupportedLanguageError as err:
        raise ApiError(400, "invalid_language", str(err), param="aimark.language") from None


class ChatCompletionRequest(_SamplingFields):
    messages: list[ChatMessage] = Field(..., min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)


class CompletionRequest(_SamplingFields):
    prompt: str | list[str]


def _runtime(request: Request) -> ServiceRuntime:
    return request.app.state.runtime


def _model_gate(request: Request) -> Gate:
    return request.app.state.model_gate


def _stops(stop: str | list[str] | None) -> list[str]:
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    if len(stops) > MAX_STOP_STRINGS or any(not s or len(s) > MAX_STOP_CHARS for s in stops):
        raise ApiError(400, "invalid_stop", f"stop: at most {MAX_STOP_STRINGS} non-empty strings of up to "
                                            f"{MAX_STOP_CHARS} characters", param="stop")
    return stops


def _sampling(runtime: ServiceRuntime, body: _SamplingFields, max_tokens: int | None) -> SamplingRequest:
    limit = runtime.config.max_new_tokens
    if max_tokens is not None and max_tokens > limit:
        raise ApiError(400, "max_tokens_too_large", f"max_tokens is at most {limit} on this service", param="max_tokens")
    if body.n > runtime.config.max_choices:
        raise ApiError(400, "n_too_large", f"n is at most {runtime.config.max_choices} on this service", param="n")
    from aimark.engines.generation import default_repetition_penalty

    language = body.code_language()
    boost = body.aimark.comment_boost if body.aimark else 0.0
    if boost and language is None:
        raise ApiError(400, "invalid_comment_boost", "aimark.comment_boost needs aimark.language", param="aimark.comment_boost")
    if boost:  # the generation's own check (the key's scheme needs a tilt), as a 400 before anything is generated
        from aimark.engines.sampling import comment_boost_for

        try:
            comment_boost_for(runtime.detector.schemes[0], runtime.loaded.tokenizer, language, boost)
        except ValueError as err:
            raise ApiError(400, "invalid_comment_boost", f"aimark.comment_boost: {err}", param="aimark.comment_boost") from None
    return SamplingRequest(max_new_tokens=max_tokens or runtime.config.default_max_tokens,
                           temperature=body.temperature, top_p=body.top_p, seed=body.seed,
                           repetition_penalty=default_repetition_penalty(code=language is not None),
                           code_language=language, comment_boost=boost)


def _cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    cuts = [i for i in (text.find(s) for s in stops) if i >= 0]
    return (text[: min(cuts)], True) if cuts else (text, False)


def format_chat(runtime: ServiceRuntime, messages: list[ChatMessage]) -> str:
    """The conversation as the model expects it: its chat template, Gemma turns, or a plain transcript."""
    tokenizer = runtime.loaded.tokenizer
    turns = [(m.role, m.text()) for m in messages]
    system = "\n\n".join(text for role, text in turns if role in ("system", "developer"))
    dialogue = [("assistant" if role == "assistant" else "user", text) for role, text in turns
                if role not in ("system", "developer")]
    if not dialogue or dialogue[-1][0] != "user":
        raise ApiError(400, "invalid_messages", "messages must end with a user (or tool) message", param="messages")
    if system:  # models without a system role (Gemma) take the instructions at the start of the first user turn
        dialogue[0] = (dialogue[0][0], f"{system}\n\n{dialogue[0][1]}")
    if len(dialogue) == 1:
        return runtime.format_prompt(dialogue[0][1], chat=True)
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template([{"role": r, "content": t} for r, t in dialogue], tokenize=False,
                                             add_generation_prompt=True)
    if "<start_of_turn>" in tokenizer.get_vocab():
        rendered = "".join(f"<start_of_turn>{'model' if r == 'assistant' else 'user'}\n{t}<end_of_turn>\n" for r, t in dialogue)
        return rendered + "<start_of_turn>model\n"
    return "".join(f"{r}: {t}\n" for r, t in dialogue) + "assistant: "


def _extension(runtime: ServiceRuntime, content_ids: list[str], body: _SamplingFields) -> dict[str, Any]:
    return aimark_extension(runtime, content_ids, body.code_language())


def aimark_extension(runtime: IssuingRuntime, content_ids: list[str], language: str | None) -> dict[str, Any]:
    """The `aimark` field of an answer: its content ids (registered), the key it is watermarked with (None: not
    watermarked, or with a key this service does not know), the labels and the notice to display."""
    key = runtime.key
    extension = {"content_id": content_ids[0], "content_ids": content_ids, "key_id": key.key_id if key else None,
                 "scheme": key.scheme if key else None, "profile": runtime.config.profile,
                 "labels": list(runtime.config.labels)}
    if language is not None:
        extension["language"] = language  # what /v1/detect (or `aimark detect --language`) should gate with
    extension["display_notice"] = runtime.display_notice()
    return extension


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def _check_prompt_length(runtime: ServiceRuntime, formatted: list[str]) -> int:
    if sum(len(p) for p in formatted) > runtime.config.max_text_chars:
        raise ApiError(413, "prompt_too_long", f"the prompt is longer than {runtime.config.max_text_chars} characters")
    return sum(runtime.count_tokens(p) for p in formatted)


async def _complete(request: Request, formatted: list[str], sampling: SamplingRequest, stops: list[str]) -> list[Issued]:
    runtime = _runtime(request)

    def work() -> list[Issued]:
        issued = []
        for generation in runtime.generate(formatted, sampling):
            text, stopped = _cut_at_stop(generation.text, stops)
            issued.append(runtime.issue(text, generation.num_tokens, "stop" if stopped else generation.finish_reason))
        return issued

    async with _model_gate(request).slot():
        return await run_on(runtime.generation_executor, work)


@router.get("/models", summary="The one model this service generates with")
async def list_models(request: Request) -> dict:
    runtime = _runtime(request)
    created = int(runtime.started_at.timestamp())
    return {"object": "list", "data": [{"id": runtime.model_name, "object": "model", "created": created, "owned_by": "aimark"}]}


@router.post("/chat/completions", summary="Chat completion (OpenAI shape), watermarked, labelled and registered")
async def chat_completions(body: ChatCompletionRequest, request: Request):
    runtime = _runtime(request)
    stops = _stops(body.stop)
    sampling = _sampling(runtime, body, body.max_completion_tokens or body.max_tokens)
    formatted = format_chat(runtime, body.messages)
    prompt_tokens = _check_prompt_length(runtime, [formatted])
    if body.stream:
        if body.n != 1:
            raise ApiError(400, "stream_n", "stream: true serves one choice (n = 1)", param="n")
        return await _stream_response(request, formatted, sampling, stops, prompt_tokens, chat=True, body=body)
    issued = await _complete(request, [formatted] * body.n, sampling, stops)
    choices = [{"index": i, "message": {"role": "assistant", "content": out.text}, "logprobs": None,
                "finish_reason": out.finish_reason} for i, out in enumerate(issued)]
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": runtime.model_name, "choices": choices, "system_fingerprint": None,
            "usage": _usage(prompt_tokens, sum(o.num_tokens for o in issued)),
            "aimark": _extension(runtime, [o.content_id for o in issued], body)}


@router.post("/completions", summary="Text completion (OpenAI shape), watermarked, labelled and registered")
async def completions(body: CompletionRequest, request: Request):
    runtime = _runtime(request)
    prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
    if not prompts or len(prompts) * body.n > runtime.config.max_choices:
        raise ApiError(400, "invalid_prompt", f"1 to {runtime.config.max_choices} prompts (times n) per request",
                       param="prompt")
    stops = _stops(body.stop)
    sampling = _sampling(runtime, body, body.max_tokens)
    formatted = [runtime.format_prompt(p, chat=False) for p in prompts for _ in range(body.n)]
    prompt_tokens = _check_prompt_length(runtime, formatted[:: body.n])
    if body.stream:
        if len(formatted) != 1:
            raise ApiError(400, "stream_n", "stream: true serves one prompt and one choice", param="n")
        return await _stream_response(request, formatted[0], sampling, stops, prompt_tokens, chat=False, body=body)
    issued = await _complete(request, formatted, sampling, stops)
    choices = [{"index": i, "text": out.text, "logprobs": None, "finish_reason": out.finish_reason}
               for i, out in enumerate(issued)]
    return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
            "model": runtime.model_name, "choices": choices, "system_fingerprint": None,
            "usage": _usage(prompt_tokens, sum(o.num_tokens for o in issued)),
            "aimark": _extension(runtime, [o.content_id for o in issued], body)}


# --- streaming -----------------------------------------------------------------------------------------

def _stream_deltas(runtime: ServiceRuntime, formatted: str, sampling: SamplingRequest, stops: list[str],
                   content_id: str, outcome, issued_at: datetime) -> Iterator[tuple[str, str | None]]:
    """(text, finish_reason) pieces: the notice, the generated text (held back while it could be the start
    of a stop string), the C2PA wrapper. The caller recorded the content id before the response started;
    the whole output replaces that record before the last piece."""
    prefix = runtime.notice_prefix()
    if prefix:
        yield prefix, None
    generated, sent, stopped, recorded = "", 0, False, False
    hold = max((len(s) for s in stops), default=1) - 1
    deltas = runtime.stream(formatted, sampling, outcome)
    try:
        for delta in deltas:
            generated += delta
            text, stopped = _cut_at_stop(generated, stops)
            if stopped:
                generated = text
                break
            safe = len(generated) - hold
            if safe > sent:
                yield generated[sent:safe], None
                sent = safe
        deltas.close()  # a stop string ends the generation now, not at max_tokens
        if len(generated) > sent:
            yield generated[sent:], None
        labelled = prefix + generated
        suffix = runtime.manifest_suffix(labelled, content_id)
        runtime.record(content_id, labelled + suffix, generated, replace=True, issued_at=issued_at)
        recorded = True
        yield suffix, "stop" if stopped else outcome.finish_reason
    finally:
        if not recorded and generated:
            # What was sent before the client left was issued too: it is recorded (unsigned) before the
            # model is released, so the registry is complete by the time the next request runs.
            try:
                runtime.record(content_id, prefix + generated, generated, replace=True, issued_at=issued_at)
            except Exception as err:  # noqa: BLE001 - logged; the client is gone
                logger.error("could not record a cut-off stream: %s", type(err).__name__)
        deltas.close()  # the client left: stop the model at its next step


def sse(document: dict) -> bytes:
    return f"data: {json.dumps(document, ensure_ascii=False)}\n\n".encode()


async def _stream_response(request: Request, formatted: str, sampling: SamplingRequest, stops: list[str],
                           prompt_tokens: int, *, chat: bool, body: _SamplingFields) -> StreamingResponse:
    """The stream holds the model for its whole life (its slot in the gate), but no thread between chunks:
    each chunk is computed on the generation thread, which is idle while the client reads."""
    from aimark.engines.streaming import StreamOutcome

    runtime = _runtime(request)
    gate = _model_gate(request)
    content_id = new_content_id()
    outcome = StreamOutcome()
    response_id = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
    created = int(time.time())
    extension = _extension(runtime, [content_id], body)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    def chunk(text: str | None, finish_reason: str | None, *, first: bool = False) -> dict:
        if chat:
            delta = ({"role": "assistant", "content": text or ""} if first else {"content": text} if text else {})
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        else:
            choice = {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish_reason}
        return {"id": response_id, "object": "chat.completion.chunk" if chat else "text_completion",
                "created": created, "model": runtime.model_name, "system_fingerprint": None,
                "choices": [choice], "aimark": extension}

    async def events() -> AsyncIterator[bytes]:
        pieces = _stream_deltas(runtime, formatted, sampling, stops, content_id, outcome, issued_at)
        done = object()
        try:
            if chat:
                yield sse(chunk(None, None, first=True))
            while (piece := await run_on(runtime.generation_executor, next, pieces, done)) is not done:
                text, finish_reason = piece
                if text:
                    yield sse(chunk(text, None))
                if finish_reason is not None:
                    yield sse(chunk(None, finish_reason))
            if include_usage:
                yield sse({"id": response_id, "object": "chat.completion.chunk" if chat else "text_completion",
                            "created": created, "model": runtime.model_name, "choices": [],
                            "usage": _usage(prompt_tokens, outcome.num_tokens), "aimark": extension})
            yield b"data: [DONE]\n\n"
        except Exception as err:  # noqa: BLE001 - the stream has started: report in band, then end it
            logger.error("stream failed: %s", type(err).__name__)
            yield sse(error_body(500, "internal_error", "generation failed"))
        finally:
            with anyio.CancelScope(shield=True):
                await run_on(runtime.generation_executor, pieces.close)

    await gate.acquire()  # before the response starts, so a full queue is a plain 503; released by the response
    # Record before issuing: the content id, key and time are in the registry before any byte leaves, so a
    # registry that cannot be written is a plain 503 and never an unrecorded output.
    issued_at = datetime.now(UTC)
    try:
        await run_on(runtime.generation_executor, lambda: runtime.record(content_id, runtime.notice_prefix(), "",
                                                                          issued_at=issued_at))
    except Exception as err:  # noqa: BLE001 - the client gets a fixed message, the log the type only
        gate.release()
        logger.error("could not record a stream before issuing it: %s", type(err).__name__)
        raise ApiError(503, "registry_unavailable", "the issuance registry cannot be written; try again later",
                       headers={"Retry-After": "5"}) from None
    return ClosingStreamingResponse(events(), release=gate.release, media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


class ClosingStreamingResponse(StreamingResponse):
    """Closes the event generator when the response ends, a client disconnect included, then frees the model.

    Starlette stops iterating on a disconnect but leaves the generator suspended until garbage collection;
    closing it at once stops the model at its next step and frees it for the next request.
    """

    def __init__(self, content, *, release, **kwargs):
        super().__init__(content, **kwargs)
        self._release = release

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            try:
                with anyio.CancelScope(shield=True):
                    await self.body_iterator.aclose()
            finally:
                self._release()

