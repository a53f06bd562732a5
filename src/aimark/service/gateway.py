"""aimark in front of another OpenAI-compatible server (`aimark serve --upstream URL`).

The upstream generates (vLLM, llama.cpp server, Ollama, a cloud API, another aimark); the gateway adds
what aimark owns, with the same functions as aimark's own server (:class:`IssuingRuntime`): the notice
per profile and language, the C2PA wrapper, the `aimark` extension field and a registry record, and
verification with the upstream's watermark key where it is known (`--watermark-key`). Where it is not,
outputs are labelled and registered and every verification report says that the watermark layer is absent.

Concurrency is the upstream's: one pooled async HTTP client and no generation lock, so concurrent
requests reach the upstream's batching together. A stream is passed through chunk by chunk as it
arrives; the notice rides in the first chunk, the C2PA wrapper, the finish reason and the `aimark`
extension in the last ones, after the registry record is written. A stream that breaks midway ends
with an error event instead: nothing is recorded and nothing claims the answer was issued.

The upstream is not trusted: its answers are read with size and time bounds and checked for the
OpenAI shape; its failures are a 502 in the OpenAI error shape, with messages written here (the
upstream API key is sent in a header and never appears in a message or a log).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from aimark.keys import WatermarkKey
from aimark.provenance import new_content_id
from aimark.registry import Registry
from aimark.service.config import ServiceConfig, ServiceConfigError
from aimark.service.errors import ApiError, error_body, logger
from aimark.service.openai_api import AimarkOptions, ClosingStreamingResponse, aimark_extension, code_language_of, sse
from aimark.service.runtime import IssuingRuntime
from aimark.service.security import require_api_key

NO_UPSTREAM_KEY = ("this service is a gateway whose upstream's watermark key it was not given (--watermark-key), "
                   "or whose upstream does not watermark: its outputs are labelled and registered, without a watermark")
MAX_MODEL_NAME_CHARS = 200


@dataclass(frozen=True)
class UpstreamConfig:
    """Where the upstream is and how far it is trusted: time and size bounds on everything it sends."""

    base_url: str  # the upstream's OpenAI API root, e.g. http://127.0.0.1:8000/v1
    api_key: str | None = field(default=None, repr=False)
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 120.0  # the longest silence between two pieces of an answer
    total_timeout_s: float = 600.0  # the longest a whole answer (streamed or not) may take
    max_response_bytes: int = 16 * 1024 * 1024  # a whole answer, streamed or not
    max_event_bytes: int = 1024 * 1024  # one SSE event (line) of a stream
    max_error_bytes: int = 64 * 1024  # what is read of an error answer
    max_connections: int = 256

    def __post_init__(self) -> None:
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ServiceConfigError("--upstream must be an http(s) URL such as http://127.0.0.1:8000/v1")
        if parts.username or parts.password:
            # A password in the URL would be in every log line that names the URL: the key goes in a file.
            raise ServiceConfigError("--upstream must not carry credentials; pass the API key with --upstream-key-file")
        if parts.query or parts.fragment:
            raise ServiceConfigError("--upstream must be the API root (e.g. http://host:8000/v1), without a query")
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        for name in ("connect_timeout_s", "read_timeout_s", "total_timeout_s"):
            if not getattr(self, name) > 0:
                raise ServiceConfigError(f"{name} must be positive")
        for name in ("max_response_bytes", "max_event_bytes", "max_error_bytes", "max_connections"):
            if getattr(self, name) < 1:
                raise ServiceConfigError(f"{name} must be at least 1")


def read_upstream_key(path: Path) -> str:
    """The first non-comment line of ``path``; messages name the file, never its content."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        raise ServiceConfigError(f"cannot read the upstream key file {path}") from None
    keys = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not keys:
        raise ServiceConfigError(f"the upstream key file {path} holds no key")
    return keys[0]


class GatewayRuntime(IssuingRuntime):
    """The gateway's state: the upstream and its pooled client, the registry, the upstream's watermark key."""

    def __init__(self, config: ServiceConfig, upstream: UpstreamConfig, registry: Registry,
                 keys: list[WatermarkKey] | None = None, tokenizer=None):
        from aimark.detect import Detector
        from aimark.keys import Keyring

        keys = list(keys or [])
        if keys and tokenizer is None:
            raise ServiceConfigError("detecting the upstream's watermark needs its model's tokenizer")
        self.config, self.upstream, self.registry = config, upstream, registry
        self.key = keys[0] if keys else None
        self.keyring = Keyring(keys) if keys else ()
        self.tokenizer = tokenizer if keys else None
        self.detector = Detector(self.keyring, tokenizer, alpha=config.alpha) if keys else None
        self.watermark_absent = None if keys else NO_UPSTREAM_KEY
        self.started_at = datetime.now(UTC)
        self.client = None  # httpx.AsyncClient, opened on the server's event loop (open())

    @property
    def model_name(self) -> str:
        return (self.key.model if self.key and self.key.model else None) or "upstream"

    @classmethod
    def start(cls, config: ServiceConfig, upstream: UpstreamConfig, key_paths: tuple[Path, ...] = (), *,
              model: str | None = None) -> GatewayRuntime:
        """Open the registry, read the upstream's watermark keys and its tokenizer (``model``, else the key's)."""
        from aimark.engines import load_detection_tokenizer
        from aimark.keys import load_key

        keys = [load_key(path) for path in key_paths]
        tokenizer = None
        if keys:
            models = {k.model for k in keys if k.model}
            if model is None and len(models) != 1:
                raise ServiceConfigError("the upstream's watermark key names no single model: pass --model "
                                         "(the upstream model's directory or name) for its tokenizer")
            tokenizer = load_detection_tokenizer(model or models.pop())
        registry = Registry(config.db_url, retention_days=config.retention_days, min_evidence=config.registry_min_evidence)
        try:
            registry.purge_periodically(config.purge_interval_s)
            return cls(config, upstream, registry, keys, tokenizer)
        except BaseException:
            registry.close()
            raise

    async def open(self) -> None:
        import httpx

        headers = {"Accept-Encoding": "identity"}  # a compressed answer could expand past the size bounds in one read
        if self.upstream.api_key:
            headers["Authorization"] = f"Bearer {self.upstream.api_key}"
        timeout = httpx.Timeout(self.upstream.read_timeout_s, connect=self.upstream.connect_timeout_s)
        # Idle connections expire before the upstream drops them: uvicorn (vLLM's server, aimark's own) closes an
        # idle keep-alive connection after 5 s, httpx keeps one 5 s too, and a request sent on a connection the
        # upstream is closing fails with no answer (a 502 seen once in the engines bench).
        limits = httpx.Limits(max_connections=self.upstream.max_connections,
                              max_keepalive_connections=self.upstream.max_connections, keepalive_expiry=2.0)
        # trust_env=False: no proxy or .netrc credentials from the environment reach an upstream nobody named.
        self.client = httpx.AsyncClient(base_url=self.upstream.base_url, headers=headers, timeout=timeout,
                                        limits=limits, trust_env=False, follow_redirects=False)

    async def aclose(self) -> None:
        if self.client is not None:
            await self.client.aclose()
            self.client = None

    def close(self) -> None:
        self.registry.close()


# --- reading the upstream ------------------------------------------------------------------------------

class UpstreamError(Exception):
    """The upstream failed; ``code`` and ``message`` are written here, safe to show."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message

    def api_error(self) -> ApiError:
        return ApiError(502, self.code, self.message)


def _transport_error(err: Exception, upstream: UpstreamConfig) -> UpstreamError:
    import httpx

    logger.warning("upstream request failed: %s", type(err).__name__)  # the type only: never a header or URL
    if isinstance(err, (httpx.TimeoutException, TimeoutError)):
        return UpstreamError("upstream_timeout", f"the upstream did not answer in time (read timeout "
                                                 f"{upstream.read_timeout_s:g} s, total {upstream.total_timeout_s:g} s)")
    if isinstance(err, httpx.RemoteProtocolError):
        return UpstreamError("upstream_broken", "the upstream closed the connection before its answer was complete")
    return UpstreamError("upstream_unavailable", "the upstream cannot be reached")


def _safe_upstream_message(runtime: GatewayRuntime, content: bytes) -> str:
    """The upstream's own error message, where it has one that is short, printable and free of the upstream key."""
    try:
        document = json.loads(content)
        message = document["error"]["message"] if isinstance(document.get("error"), dict) else document.get("message")
    except (ValueError, TypeError, KeyError, AttributeError):
        return ""
    if not isinstance(message, str):
        return ""
    message = " ".join(message.split())[:300]
    key = runtime.upstream.api_key
    if not message.isprintable() or (key and (key in message or key[-8:] in message)) or "bearer" in message.lower():
        return ""
    return message


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _loads(data: str | bytes) -> Any:
    """Strict JSON: Python's reader takes NaN and Infinity, which no JSON client (nor the answer sent on) may hold."""
    return json.loads(data, parse_constant=_refuse_constant)


async def _read_bounded(response, limit: int, deadline: float, *, what: str) -> bytes:
    body = bytearray()
    async for piece in response.aiter_bytes():
        body += piece
        if len(body) > limit:
            raise UpstreamError("upstream_too_large", f"the upstream's {what} is larger than {limit} bytes")
        if time.monotonic() > deadline:
            raise TimeoutError
    return bytes(body)


async def _refuse_status(runtime: GatewayRuntime, response, deadline: float) -> None:
    if 200 <= response.status_code < 300:
        return
    try:
        content = await _read_bounded(response, runtime.upstream.max_error_bytes, deadline, what="error answer")
    except UpstreamError:
        content = b""
    detail = _safe_upstream_message(runtime, content)
    raise UpstreamError("upstream_error", f"the upstream answered HTTP {response.status_code}" + (f": {detail}" if detail else ""))


async def _send(runtime: GatewayRuntime, method: str, path: str, body: dict | None, deadline: float):
    """The upstream's response, its status checked, its body not yet read (the caller closes it)."""
    import httpx

    if runtime.client is None:
        raise UpstreamError("upstream_unavailable", "the gateway's upstream client is not open")
    request = runtime.client.build_request(method, path, json=body)
    try:
        response = await runtime.client.send(request, stream=True)
    except httpx.HTTPError as err:
        raise _transport_error(err, runtime.upstream) from None
    try:
        await _refuse_status(runtime, response, deadline)
    except BaseException as err:
        await response.aclose()
        if isinstance(err, (httpx.HTTPError, TimeoutError)):
            raise _transport_error(err, runtime.upstream) from None
        raise
    return response


async def _json_answer(runtime: GatewayRuntime, method: str, path: str, body: dict | None) -> dict:
    import httpx

    deadline = time.monotonic() + runtime.upstream.total_timeout_s
    response = await _send(runtime, method, path, body, deadline)
    try:
        content = await _read_bounded(response, runtime.upstream.max_response_bytes, deadline, what="answer")
    except (httpx.HTTPError, TimeoutError) as err:
        raise _transport_error(err, runtime.upstream) from None
    finally:
        await response.aclose()
    try:
        document = _loads(content)
    except (ValueError, RecursionError):
        raise UpstreamError("upstream_invalid_response", "the upstream's answer is not JSON") from None
    if not isinstance(document, dict):
        raise UpstreamError("upstream_invalid_response", "the upstream's answer is not a JSON object")
    return document


async def _sse_data(runtime: GatewayRuntime, response, deadline: float) -> AsyncIterator[str]:
    """The `data` of each server-sent event, read with the size and time bounds (a line never grows unbounded)."""
    limits = runtime.upstream
    pending, data, total = b"", [], 0
    async for piece in response.aiter_bytes():
        total += len(piece)
        if total > limits.max_response_bytes:
            raise UpstreamError("upstream_too_large", f"the upstream's stream is larger than {limits.max_response_bytes} bytes")
        if time.monotonic() > deadline:
            raise TimeoutError
        pending += piece
        *lines, pending = pending.split(b"\n")
        if len(pending) > limits.max_event_bytes:
            raise UpstreamError("upstream_too_large", f"an event of the upstream's stream is larger than {limits.max_event_bytes} bytes")
        for line in lines:
            line = line.removesuffix(b"\r")
            if not line:
                if data:
                    yield "\n".join(data)
                    data = []
            elif line.startswith(b"data:"):
                value = line[5:]
                data.append((value[1:] if value.startswith(b" ") else value).decode("utf-8", errors="strict"))
            # comments (":") and the fields aimark does not use (event, id, retry) are skipped
    if pending.strip().startswith(b"data:"):  # a last event without its blank line
        value = pending.strip()[5:]
        data.append(value.strip().decode("utf-8", errors="strict"))
    if data:
        yield "\n".join(data)


# --- the routes ----------------------------------------------------------------------------------------

router = APIRouter(prefix="/v1", tags=["generation"], dependencies=[Depends(require_api_key)])


class GatewayFields(BaseModel):
    """What the gateway reads of a request; everything else goes to the upstream as sent."""

    model_config = ConfigDict(extra="allow")
    stream: bool = False
    n: int = Field(1, ge=1)
    aimark: AimarkOptions | None = None


def _runtime(request: Request) -> GatewayRuntime:
    return request.app.state.runtime


def _model_of(document: dict, fallback: Any, runtime: GatewayRuntime) -> str:
    """The model the upstream says answered (it generated the text), else the one asked for."""
    for name in (document.get("model"), fallback):
        if isinstance(name, str) and name.strip() and name.isprintable():
            return name.strip()[:MAX_MODEL_NAME_CHARS]
    return runtime.model_name


async def _forward_body(request: Request, *, chat: bool) -> tuple[dict, GatewayFields]:
    try:
        document = json.loads(await request.body())
    except (ValueError, RecursionError):
        raise ApiError(400, "invalid_json", "the body is not valid UTF-8 JSON") from None
    if not isinstance(document, dict):
        raise ApiError(400, "invalid_request", "the body must be a JSON object")
    fields = GatewayFields.model_validate(document)
    if fields.aimark is not None and fields.aimark.comment_boost:
        raise ApiError(400, "invalid_comment_boost", "aimark.comment_boost needs aimark's own model: the upstream samples",
                       param="aimark.comment_boost")
    if chat and not isinstance(document.get("messages"), list):
        raise ApiError(400, "invalid_request", "invalid request: messages: field required", param="messages")
    if not chat and not isinstance(document.get("prompt"), (str, list)):
        raise ApiError(400, "invalid_request", "invalid request: prompt: field required", param="prompt")
    if fields.stream and (fields.n != 1 or (not chat and isinstance(document["prompt"], list) and len(document["prompt"]) != 1)):
        raise ApiError(400, "stream_n", "stream: true serves one prompt and one choice (n = 1)", param="n")
    # `aimark` is this gateway's extension: an upstream that is not aimark may refuse unknown fields.
    return {k: v for k, v in document.items() if k != "aimark"}, fields


@router.get("/models", summary="The upstream's models")
async def list_models(request: Request) -> JSONResponse:
    try:
        document = await _json_answer(_runtime(request), "GET", "/models", None)
    except UpstreamError as err:
        raise err.api_error() from None
    if not isinstance(document.get("data"), list):
        raise UpstreamError("upstream_invalid_response", "the upstream's model list has no 'data' list").api_error()
    return JSONResponse(document)


@router.post("/chat/completions", summary="Chat completion from the upstream, labelled and registered")
async def chat_completions(request: Request):
    return await _complete(request, chat=True)


@router.post("/completions", summary="Text completion from the upstream, labelled and registered")
async def completions(request: Request):
    return await _complete(request, chat=False)


async def _complete(request: Request, *, chat: bool):
    runtime = _runtime(request)
    body, fields = await _forward_body(request, chat=chat)
    language = code_language_of(fields.aimark)
    try:
        if fields.stream:
            return await _stream(request, body, language, chat=chat)
        document = await _json_answer(runtime, "POST", "/chat/completions" if chat else "/completions", body)
        generated = _answer_texts(document, chat=chat)
    except UpstreamError as err:
        raise err.api_error() from None
    model = _model_of(document, body.get("model"), runtime)

    def issue_all() -> list[str]:
        return [_issue(runtime, text, model, choice, chat) for text, choice in zip(generated, document["choices"], strict=True)]

    try:
        content_ids = await anyio.to_thread.run_sync(issue_all)
    except Exception as err:  # noqa: BLE001 - the client gets a fixed message, the log the type (or code) only
        raise _not_issued(err, "") from None
    document["aimark"] = aimark_extension(runtime, content_ids, language)
    # Plain JSON already (it was parsed from JSON): FastAPI's generic encoder would walk it again, per request.
    return JSONResponse(document)


def _not_issued(err: Exception, what: str) -> ApiError:
    """Why an answer that came back was not issued: it could not be signed (C2PA), or not be recorded."""
    from aimark.provenance import ProvenanceError

    if isinstance(err, ProvenanceError):  # e.g. signing.certificateNotValidNow: the operator's to mend, said by code
        logger.error("could not sign a %supstream answer: %s", what, err.code)
        return ApiError(503, "signing_unavailable", f"the answer could not be signed ({err.code}): it was not issued; "
                                                    "try again later", headers={"Retry-After": "5"})
    logger.error("could not record a %supstream answer: %s", what, type(err).__name__)
    return ApiError(503, "registry_unavailable", "the issuance registry cannot be written: the answer was not issued; "
                                                 "try again later", headers={"Retry-After": "5"})


def _issue(runtime: GatewayRuntime, generated: str, model: str, choice: dict, chat: bool) -> str:
    issued = runtime.issue(generated, 0, str(choice.get("finish_reason")), model=model)
    if chat:
        choice["message"]["content"] = issued.text
    else:
        choice["text"] = issued.text
    return issued.content_id


def _answer_texts(document: dict, *, chat: bool) -> list[str]:
    """Each choice's text, after checking the answer has the OpenAI shape the labels go into."""
    choices = document.get("choices")
    if not isinstance(choices, list) or not choices or not all(isinstance(c, dict) for c in choices):
        raise UpstreamError("upstream_invalid_response", "the upstream's answer has no list of choices")
    texts = []
    for choice in choices:
        if chat:
            message = choice.get("message")
            content = message.get("content") if isinstance(message, dict) else 0
            if content is not None and not isinstance(content, str):
                raise UpstreamError("upstream_invalid_response", "a choice of the upstream's answer has no message text")
            message["content"] = content or ""
            texts.append(content or "")
        else:
            if not isinstance(choice.get("text"), str):
                raise UpstreamError("upstream_invalid_response", "a choice of the upstream's answer has no text")
            texts.append(choice["text"])
    return texts


# --- streaming -----------------------------------------------------------------------------------------

_CHUNK_FIELDS = ("id", "object", "created", "model", "system_fingerprint")


def _piece_text(choice: dict, chat: bool) -> str:
    if chat:
        delta = choice.get("delta")
        if delta is None:
            return ""
        if not isinstance(delta, dict) or not isinstance(delta.get("content") or "", str):
            raise UpstreamError("upstream_invalid_response", "a chunk of the upstream's stream has no text delta")
        return delta.get("content") or ""
    text = choice.get("text", "")
    if not isinstance(text, str):
        raise UpstreamError("upstream_invalid_response", "a chunk of the upstream's stream has no text")
    return text


def _with_text(choice: dict, text: str, chat: bool) -> None:
    if chat:
        delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
        choice["delta"] = {**delta, "content": text}
    else:
        choice["text"] = text


async def _stream(request: Request, body: dict, language: str | None, *, chat: bool) -> ClosingStreamingResponse:
    """Opens the upstream stream first, so an upstream that is down or refuses is a plain 502, not an event."""
    import httpx

    runtime = _runtime(request)
    deadline = time.monotonic() + runtime.upstream.total_timeout_s
    response = await _send(runtime, "POST", "/chat/completions" if chat else "/completions", body, deadline)

    async def events() -> AsyncIterator[bytes]:
        prefix = runtime.notice_prefix()
        generated: list[str] = []
        template: dict[str, Any] | None = None
        finish_reason, usage = None, None
        try:
            async for data in _sse_data(runtime, response, deadline):
                if data.strip() == "[DONE]":
                    break
                try:
                    chunk = _loads(data)
                except (ValueError, RecursionError):
                    raise UpstreamError("upstream_invalid_response", "a chunk of the upstream's stream is not JSON") from None
                if not isinstance(chunk, dict) or "error" in chunk:
                    raise UpstreamError("upstream_error", "the upstream reported an error in the middle of its stream")
                # `aimark` is this gateway's field: an upstream's (another aimark's) names records kept elsewhere.
                chunk.pop("aimark", None)
                choices = chunk.get("choices")
                if not isinstance(choices, list):
                    raise UpstreamError("upstream_invalid_response", "a chunk of the upstream's stream has no choices")
                if not choices:
                    if isinstance(chunk.get("usage"), dict):
                        usage = chunk  # sent after the labels, with the extension, as aimark's own server does
                    continue
                choice = choices[0]
                if len(choices) != 1 or not isinstance(choice, dict) or choice.get("index", 0) != 0:
                    raise UpstreamError("upstream_invalid_response", "the upstream streamed more than the one choice asked for")
                if finish_reason is not None:
                    raise UpstreamError("upstream_invalid_response", "the upstream streamed text after its finish reason")
                text = _piece_text(choice, chat)
                generated.append(text)
                if template is None:  # the notice starts the answer, in its first chunk
                    _with_text(choice, prefix + text, chat)
                template = chunk
                if choice.get("finish_reason") is not None:
                    # Held back: the answer is finished only after its C2PA wrapper and its record.
                    finish_reason = str(choice["finish_reason"])[:40]
                    choice["finish_reason"] = None
                yield sse(chunk)
            if template is None or finish_reason is None:
                raise UpstreamError("upstream_broken", "the upstream's stream ended before its answer was finished")
            text = "".join(generated)
            content_id = new_content_id()
            model = _model_of(template, body.get("model"), runtime)

            def issue() -> str:
                labelled = prefix + text
                suffix = runtime.manifest_suffix(labelled, content_id, model)
                runtime.record(content_id, labelled + suffix, text, model=model)
                return suffix

            try:
                suffix = await anyio.to_thread.run_sync(issue)
            except Exception as err:  # noqa: BLE001 - logged by type (or code); the client is told it was not issued
                failure = _not_issued(err, "streamed ")
                yield sse(error_body(failure.status, failure.code, failure.message))
                return
            extension = aimark_extension(runtime, [content_id], language)
            head = {name: template[name] for name in _CHUNK_FIELDS if name in template}

            def own_chunk(text: str | None, finish: str | None) -> dict:
                if chat:
                    choice = {"index": 0, "delta": {"content": text} if text else {}, "logprobs": None, "finish_reason": finish}
                else:
                    choice = {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}
                return {**head, "choices": [choice], "aimark": extension}

            if suffix:
                yield sse(own_chunk(suffix, None))
            yield sse(own_chunk(None, finish_reason))
            if usage is not None:
                yield sse({**usage, "aimark": extension})
            yield b"data: [DONE]\n\n"
        except (UpstreamError, UnicodeDecodeError, httpx.HTTPError, TimeoutError) as err:
            failure = err if isinstance(err, UpstreamError) else (
                UpstreamError("upstream_invalid_response", "the upstream's stream is not UTF-8")
                if isinstance(err, UnicodeDecodeError) else _transport_error(err, runtime.upstream))
            logger.warning("upstream stream failed: %s", failure.code)
            # Said in band (the response has started): the text so far is incomplete, unrecorded, not issued.
            yield sse(error_body(502, failure.code, f"{failure.message}: this answer is incomplete and was not issued"))
        finally:
            with anyio.CancelScope(shield=True):
                await response.aclose()

    return ClosingStreamingResponse(events(), release=lambda: None, media_type="text/event-stream",
                                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
