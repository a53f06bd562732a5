"""The FastAPI application: generation, verification, the verification page and offline API docs."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

import aimark
from aimark.service import openai_api, verify_api
from aimark.service.checks import CheckRunner
from aimark.service.errors import install_error_handlers
from aimark.service.runtime import IssuingRuntime
from aimark.service.scheduling import Gate
from aimark.service.security import GuardMiddleware, RateLimiter

STATIC_DIR = Path(__file__).parent / "static"

DESCRIPTION = """Watermarked, labelled and registered text generation in the OpenAI shape, and a free public
verification interface (EU Code of Practice 2.1). Generation needs an API key (`Authorization: Bearer`);
verification is public and limited per client (requests and characters scored; an IPv6 /64 is one client);
per-token scores, a prompt context and larger limits need a detection API key (a scope of its own)."""


def _swagger_assets() -> Path | None:
    try:
        import swagger_ui_bundle
    except ImportError:
        return None
    return Path(swagger_ui_bundle.swagger_ui_path)


def public_limits(config) -> dict:
    """Every limit a caller meets, as /v1/info shows it."""
    return {
        "anonymous": {"requests_per_minute": config.verify_rate_per_minute, "request_burst": config.verify_burst,
                      "characters_per_minute": config.verify_chars_per_minute, "character_burst": config.verify_burst_chars,
                      "max_text_chars": min(config.anonymous_max_text_chars, config.max_text_chars),
                      "token_scores": config.public_token_scores, "prompt": False},
        "detection_key": {"characters_per_minute": config.detect_key_chars_per_minute,
                          "character_burst": config.detect_key_burst_chars, "max_text_chars": config.max_text_chars,
                          "token_scores": True, "max_prompt_chars": config.max_prompt_chars},
        "min_request_chars": config.min_request_chars, "max_request_bytes": config.max_request_bytes,
        "check_deadline_s": config.detect_deadline_s if config.detect_workers else None,
        "max_new_tokens": config.max_new_tokens, "max_queued_generations": config.max_queued_generations,
    }


def create_app(runtime: IssuingRuntime) -> FastAPI:
    """The service over a :class:`ServiceRuntime` (aimark generates) or a :class:`GatewayRuntime` (an upstream does)."""
    from aimark.service.gateway import GatewayRuntime

    config = runtime.config
    gateway = isinstance(runtime, GatewayRuntime)
    checks = CheckRunner(runtime)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if gateway:
            await runtime.open()  # the pooled upstream client belongs to the server's event loop
        try:
            yield
        finally:
            try:
                if gateway:
                    await runtime.aclose()
            finally:
                checks.close()  # the worker processes end with the server

    app = FastAPI(title="aimark", version=aimark.__version__, description=DESCRIPTION, docs_url=None, redoc_url=None,
                  lifespan=lifespan)
    # Swagger UI 4 (served from the package, no CDN) renders OpenAPI 3.0 documents.
    app.openapi_version = "3.0.3"
    app.state.runtime = runtime
    app.state.config = config
    app.state.checks = checks
    app.state.rate_limiter = RateLimiter(config.verify_rate_per_minute, config.verify_burst)
    app.state.work_limiter = RateLimiter(config.verify_chars_per_minute, config.verify_burst_chars)
    app.state.key_work_limiter = RateLimiter(config.detect_key_chars_per_minute, config.detect_key_burst_chars)
    install_error_handlers(app)
    if gateway:  # no model here, so no gate: concurrency is the upstream's
        from aimark.service import gateway as gateway_api

        app.include_router(gateway_api.router)
    else:
        app.state.model_gate = Gate(1, config.max_queued_generations, config.generation_queue_timeout_s, what="the model")
        app.include_router(openai_api.router)
    app.include_router(verify_api.router)
    app.add_middleware(GuardMiddleware, max_request_bytes=config.max_request_bytes)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    swagger = _swagger_assets()
    if swagger is not None:
        app.mount("/docs-assets", StaticFiles(directory=swagger), name="docs-assets")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        if swagger is None:
            return HTMLResponse("<p>API docs need the swagger-ui-bundle package; the schema is at "
                                "<a href='/openapi.json'>/openapi.json</a>.</p>")
        html = get_swagger_ui_html(openapi_url="/openapi.json", title="aimark API",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css",
                                   swagger_favicon_url="/docs-assets/favicon-32x32.png")
        # FastAPI's page starts Swagger UI from an inline script, which the page's CSP forbids; run it from a file.
        body = html.body.decode()
        start, end = body.rindex("<script>"), body.rindex("</script>") + len("</script>")
        return HTMLResponse(body[:start] + '<script src="/static/swagger-init.js"></script>' + body[end:])

    @app.get("/v1/info", tags=["verification"], summary="What this service marks outputs with (public)")
    async def info(request: Request) -> dict:
        document = {"model": runtime.model_name, "profile": config.profile, "labels": list(config.labels),
                "notice_language": config.language,
                "keys": [{"key_id": k.key_id, "scheme": k.scheme} for k in runtime.keyring],
                "retention_days": config.retention_days,
                "verify_rate_per_minute": config.verify_rate_per_minute, "max_request_bytes": config.max_request_bytes,
                "limits": public_limits(config)}
        if gateway:  # the upstream's address stays private; what its outputs carry does not
            document["gateway"] = {"watermark": runtime.key is not None, "watermark_absent": runtime.watermark_absent}
        return document

    @app.get("/healthz", include_in_schema=False)
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def ready() -> JSONResponse:
        # Liveness is /healthz; this is readiness (a load balancer's or a test's "send requests now").
        started, wanted = checks.workers_ready, checks.workers
        body = {"status": "ready" if started >= wanted else "starting", "check_workers": wanted,
                "check_workers_ready": started}
        return JSONResponse(body, status_code=200 if started >= wanted else 503)

    return app
