"""Public verification: /v1/detect (as `aimark detect --json`) and /v1/verify (as `aimark verify --json`).

A request carries the text as JSON (`{"text": ...}`), as a text/plain body, as raw bytes
(application/octet-stream, `?filename=`), or as a multipart upload (`file` or `text` field).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import anyio
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from aimark.service.errors import ApiError
from aimark.service.runtime import ServiceRuntime
from aimark.service.security import rate_limit_verification

router = APIRouter(prefix="/v1", tags=["verification"], dependencies=[Depends(rate_limit_verification)])

_PROFILES = ("kr", "cn", "eu", "all")
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
        if not isinstance(document, dict) or not isinstance(document.get("text"), str):
            raise ApiError(400, "missing_text", "the JSON body needs a string field 'text'", param="text")
        fields = {k: v for k, v in document.items() if isinstance(v, str) and k != "text"}
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


def _text_of(runtime: ServiceRuntime, submission: Submission) -> str:
    text = _decode(submission.content)
    if len(text) > runtime.config.max_text_chars:
        raise ApiError(413, "text_too_long", f"the text is longer than {runtime.config.max_text_chars} characters")
    return text


def _code_language(text: str, language: str | None, filename: str | None) -> str | None:
    from aimark.schemes.code import UnsupportedLanguageError, detection_language

    try:
        return detection_language(text, language=language, filename=filename)
    except UnsupportedLanguageError as err:
        raise ApiError(400, "invalid_language", str(err), param="language") from None


@router.post("/detect", summary="Watermark detection (the `aimark detect --json` document)", openapi_extra=_BODY_DOC)
async def detect(
    request: Request,
    tokens: bool = Query(False, description="Add per-token [start, end, score]"),
    language: str | None = Query(None, description="Code gate (python, js, …; 'none' = every token); default: from "
                                                   "the filename's extension, else guessed from the text"),
    filename: str | None = Query(None, description="File name, whose extension picks the code gate (e.g. app.py)"),
):
    from aimark.detect import DetectionInputError, TokenizerMismatchError

    runtime: ServiceRuntime = request.app.state.runtime
    submission = await read_submission(request, _clean_filename(filename))
    _check_size(runtime, submission)
    text = _text_of(runtime, submission)
    prompt = submission.fields.get("prompt")
    gate = _code_language(text, submission.fields.get("language") or language, submission.filename)
    try:
        result = await anyio.to_thread.run_sync(
            lambda: runtime.detector.detect(text, prompt=prompt, with_tokens=tokens, language=gate))
    except (DetectionInputError, TokenizerMismatchError) as err:  # aimark's messages are safe to show
        raise ApiError(400, "detection_input", " ".join(str(err).split())) from None
    return result.to_dict(include_tokens=tokens)


class _CapturingCheck:
    """The watermark check verify() calls, keeping the per-token scores for the page's heat map."""

    def __init__(self, runtime: ServiceRuntime, with_tokens: bool):
        self.runtime, self.with_tokens = runtime, with_tokens
        self.heatmap: dict[str, Any] | None = None

    def __call__(self, text: str, filename: str | None = None) -> dict:
        from aimark.verify.watermark import detect_file_text

        result = detect_file_text(self.runtime.detector, text, filename, with_tokens=self.with_tokens)
        if self.with_tokens:
            self.heatmap = {"text": text, "tokens": result.to_dict(include_tokens=True)["tokens"]}
        return result.to_dict()


@router.post("/verify", summary="Every layer, every jurisdiction (the `aimark verify --json` report)",
             openapi_extra=_BODY_DOC)
async def verify_content(
    request: Request,
    profile: str | None = Query(None, description="kr, cn, eu or all (default: the service's profile)"),
    filename: str | None = Query(None, description="File name, for the file kind (e.g. notes.md, app.py)"),
    tokens: bool = Query(False, description="Add `heatmap`: the scored text and per-token [start, end, score]"),
):
    from aimark.verify import VERDICT_ERROR, verify

    runtime: ServiceRuntime = request.app.state.runtime
    submission = await read_submission(request, _clean_filename(filename))
    _check_size(runtime, submission)
    if not submission.is_upload:
        _text_of(runtime, submission)
    chosen = submission.fields.get("profile") or profile or runtime.config.profile
    if chosen not in _PROFILES:
        raise ApiError(400, "invalid_profile", "profile must be kr, cn, eu or all", param="profile")
    check = _CapturingCheck(runtime, tokens)

    def run():
        return verify(submission.content, submission.filename, chosen, trust_anchors=runtime.config.trust_anchors,
                      watermark_check=check,
                      registry_lookup=runtime.registry.lookup_dict)

    report = (await anyio.to_thread.run_sync(run)).to_dict()
    if tokens:
        report["heatmap"] = check.heatmap
    # A file that cannot be read as its kind is the CLI's exit 2: the same report, as a 422.
    return JSONResponse(report, status_code=422 if report["verdict"] == VERDICT_ERROR else 200)
