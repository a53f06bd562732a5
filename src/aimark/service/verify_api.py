"""Public verification: /v1/detect (as `aimark detect --json`) and /v1/verify (as `aimark verify --json`).

A request carries the text as JSON (`{"text": ...}`), as a text/plain body, as raw bytes
(application/octet-stream, `?filename=`), or as a multipart upload (`file` or `text` field).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from aimark.service.errors import ApiError
from aimark.service.runtime import ServiceRuntime
from aimark.service.security import Caller, charge_work, debit_work, rate_limit_verification

router = APIRouter(prefix="/v1", tags=["verification"], dependencies=[Depends(rate_limit_verification)])

_PROFILES = ("kr", "cn", "eu", "all")
# Why an anonymous answer has no per-token scores: they show which tokens carry the key's signal.
TOKENS_WITHHELD = "per-token scores need a detection API key: they show which tokens to rewrite to remove the watermark"
_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "object", "required": ["text"], "properties": {
                "text": {"type": "string"}, "filename": {"type": "string"}, "profile": {"enum": list(_PROFILES)},
                "prompt": {"type": "string", "description": "detect only: the prompt, used as context"},
                "language": {"type": "string", "description": "detect only: the code gate (python, js, …; 'none' = "
                             "every token); default: from the filename's extension, else guessed from the text"}}}},
            "text/plain": {"schema": {"type": "string"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {"schema": {"type": "object", "properties": {
                "file": {"type": "string", "format": "binary"}, "text": {"type": "string"},
                "profile": {"enum": list(_PROFILES)}, "language": {"type": "string"}}}},
        },
    }
}


@dataclass
class Submission:
    content: bytes
    filename: str | None
    fields: dict[str, str]
    is_upload: bool


def _decode(content: bytes) -> str:
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ApiError(400, "invalid_utf8", f"the text is not valid UTF-8 (byte {err.start})") from None


def _encodable(value: str, name: str) -> None:
    """JSON may escape lone surrogates (\\ud800), which no UTF-8 text can hold."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(400, "invalid_text", f"{name}: contains an unpaired surrogate, not text", param=name) from None


def _clean_filename(name: str | None) -> str | None:
    if not name:
        return None
    base = name.replace("\\", "/").rsplit("/", 1)[-1][:255]
    return base or None


async def read_submission(request: Request, filename: str | None) -> Submission:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=10)
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        upload = form.get("file")
        if upload is not None and not isinstance(upload, str):
            content = await upload.read()
            return Submission(content, _clean_filename(upload.filename) or filename, fields, True)
        if "text" in fields:
            return Submission(fields.pop("text").encode("utf-8"), filename, fields, False)
        raise ApiError(400, "missing_input", "send a 'file' or a 'text' form field")
    body = await request.body()
    if media_type == "application/json":
        try:
            document = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ApiError(400, "invalid_json", "the body is not valid UTF-8 JSON") from None
        except RecursionError:
            raise ApiError(400, "invalid_json", "the JSON body is nested too deeply") from None
        if not isinstance(document, dict) or not isinstance(document.get("text"), str):
            raise ApiError(400, "missing_text", "the JSON body needs a string field 'text'", param="text")
        fields = {k: v for k, v in document.items() if isinstance(v, str) and k != "text"}
        for name, value in [("text", document["text"]), *fields.items()]:
            _encodable(value, name)
        return Submission(document["text"].encode("utf-8"), _clean_filename(fields.get("filename")) or filename, fields, False)
    if media_type == "text/plain":
        _decode(body)
        return Submission(body, filename, {}, False)
    if media_type == "application/octet-stream":
        return Submission(body, filename, {}, True)
    raise ApiError(415, "unsupported_media_type",
                   "send application/json, text/plain, application/octet-stream or multipart/form-data")


def _check_size(runtime: ServiceRuntime, submission: Submission) -> None:
    if not submission.content.strip():
        raise ApiError(400, "empty_input", "the text or file is empty")
    # Text is scored token by token: bound the work one request can cause, for uploaded text files too
    # (PDF and DOCX are bounded by their bytes, and only their first and last pages are read).
    from aimark.provenance import detect_carrier

    is_text = not submission.is_upload or detect_carrier(submission.content, submission.filename) not in ("pdf", "docx")
    if is_text and len(submission.content) > 4 * runtime.config.max_text_chars:
        raise ApiError(413, "text_too_long", f"the text is longer than {runtime.config.max_text_chars} characters")


def _text_cap(runtime: ServiceRuntime, caller: Caller) -> int:
    config = runtime.config
    return config.max_text_chars if caller.detection_key else min(config.anonymous_max_text_chars, config.max_text_chars)


def _text_of(runtime: ServiceRuntime, submission: Submission, caller: Caller) -> str:
    text = _decode(submission.content)
    cap = _text_cap(runtime, caller)
    if len(text) > cap:
        more = "" if caller.detection_key or cap == runtime.config.max_text_chars else \
            f" for anonymous callers ({runtime.config.max_text_chars} with a detection API key)"
        raise ApiError(413, "text_too_long", f"the text is longer than {cap} characters{more}")
    return text


def _prompt_of(runtime: ServiceRuntime, submission: Submission, caller: Caller) -> str | None:
    """The prompt context: for detection keys only, and capped (it is tokenised and hashed like the text)."""
    prompt = submission.fields.get("prompt")
    if not prompt:
        return None
    if not caller.detection_key:
        # A free context lets a caller re-score the same text under chosen contexts: one more probe per query.
        raise ApiError(403, "prompt_needs_detection_key", "a prompt context needs a detection API key", param="prompt")
    if len(prompt) > runtime.config.max_prompt_chars:
        raise ApiError(413, "prompt_too_long", f"the prompt is longer than {runtime.config.max_prompt_chars} characters",
                       param="prompt")
    return prompt


def _may_see_tokens(runtime: ServiceRuntime, caller: Caller) -> bool:
    return caller.detection_key or runtime.config.public_token_scores


@router.post("/detect", summary="Watermark detection (the `aimark detect --json` document)", openapi_extra=_BODY_DOC)
async def detect(
    request: Request,
    tokens: bool = Query(False, description="Add per-token [start, end, score]"),
    language: str | None = Query(None, description="Code gate (python, js, …; 'none' = every token); default: from "
                                                   "the filename's extension, else guessed from the text"),
    filename: str | None = Query(None, description="File name, whose extension picks the code gate (e.g. app.py)"),
):
    runtime: ServiceRuntime = request.app.state.runtime
    caller: Caller = request.state.caller
    submission = await read_submission(request, _clean_filename(filename))
    _check_size(runtime, submission)
    text = _text_of(runtime, submission, caller)
    prompt = _prompt_of(runtime, submission, caller)
    shown = tokens and _may_see_tokens(runtime, caller)
    charge_work(request, len(text) + len(prompt or ""))
    document: dict[str, Any] = await request.app.state.checks.run(
        "detect", text, prompt, shown, submission.fields.get("language") or language, submission.filename)
    if tokens and not shown:
        document["tokens_withheld"] = TOKENS_WITHHELD
    return document


@router.post("/verify", summary="Every layer, every jurisdiction (the `aimark verify --json` report)",
             openapi_extra=_BODY_DOC)
async def verify_content(
    request: Request,
    profile: str | None = Query(None, description="kr, cn, eu or all (default: the service's profile)"),
    filename: str | None = Query(None, description="File name, for the file kind (e.g. notes.md, app.py)"),
    tokens: bool = Query(False, description="Add `heatmap`: the scored text and per-token [start, end, score]"),
):
    from aimark.verify import VERDICT_ERROR

    runtime: ServiceRuntime = request.app.state.runtime
    caller: Caller = request.state.caller
    submission = await read_submission(request, _clean_filename(filename))
    _check_size(runtime, submission)
    # Text is charged before the work; an uploaded file's extracted text once it is known.
    charged = 0 if submission.is_upload else len(_text_of(runtime, submission, caller))
    chosen = submission.fields.get("profile") or profile or runtime.config.profile
    if chosen not in _PROFILES:
        raise ApiError(400, "invalid_profile", "profile must be kr, cn, eu or all", param="profile")
    charge_work(request, charged)
    shown = tokens and _may_see_tokens(runtime, caller)
    report, heatmap, scored_chars = await request.app.state.checks.run(
        "verify", submission.content, submission.filename, chosen, shown)
    debit_work(request, scored_chars - max(charged, runtime.config.min_request_chars))
    if shown:
        report["heatmap"] = heatmap
    elif tokens:
        report["heatmap_withheld"] = TOKENS_WITHHELD
    # A file that cannot be read as its kind is the CLI's exit 2: the same report, as a 422.
    return JSONResponse(report, status_code=422 if report["verdict"] == VERDICT_ERROR else 200)
