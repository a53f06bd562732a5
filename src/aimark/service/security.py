"""API keys for generation and detection, per-client work limits for verification, size limits, safe logs and headers.

An unlimited public detector is an oracle: an attacker could edit a text token by token and ask after
each edit whether the watermark survives (stripping), or probe which tokens score high (forging). So
anonymous callers get the verdict and p-value only (no per-token scores, no prompt context), a smaller
text cap, and budgets per client that count both requests and characters scored; a client is an IPv4
address or an IPv6 /64 (one subscriber's prefix). Detection API keys, a scope of their own, get per-token
scores and a larger budget per key; generation keys get nothing extra here.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from fastapi import Request

from aimark.service.config import ServiceConfig, api_key_digest
from aimark.service.errors import ApiError, error_body

logger = logging.getLogger("aimark.service")

# Pages and docs may only load what the service itself serves (the page works offline, with no CDN).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def presented_api_key(request: Request) -> str | None:
    """`Authorization: Bearer KEY` (what OpenAI clients send) or `X-API-Key: KEY`."""
    authorization = request.headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("x-api-key") or None


def require_api_key(request: Request) -> None:
    """FastAPI dependency of the generation routes."""
    config: ServiceConfig = request.app.state.config
    if not config.require_api_key:
        return
    api_key = presented_api_key(request)
    if api_key is None:
        raise ApiError(401, "missing_api_key", "an API key is required: send 'Authorization: Bearer <key>'",
                       headers={"WWW-Authenticate": "Bearer"})
    if not config.accepts(api_key):
        raise ApiError(401, "invalid_api_key", "the API key is not valid", headers={"WWW-Authenticate": "Bearer"})


class RateLimiter:
    """A token bucket per client: `burst` units at once, refilled at `per_minute`; bounded memory.

    A unit is a request or a character scored, as the caller charges. A bucket may go into debt (work
    charged after it was measured), and the client then waits until it is paid off.
    """

    def __init__(self, per_minute: float, burst: int, *, max_clients: int = 100_000, clock=time.monotonic):
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def acquire(self, client: str, cost: float = 1.0) -> float:
        """0 when `cost` units may be spent now (they are), else the seconds to wait before they may."""
        return self._spend(client, cost, check=True)

    def debit(self, client: str, cost: float) -> None:
        """Charge work already done, into debt if need be."""
        self._spend(client, cost, check=False)

    def _spend(self, client: str, cost: float, *, check: bool) -> float:
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.pop(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            needed = min(cost, self.burst)  # a cost above the burst is admitted from a full bucket, then owed
            wait = (needed - tokens) / self.rate if check and tokens < needed else 0.0
            self._buckets[client] = (tokens - cost if wait == 0.0 else tokens, now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)  # the least recently seen client
            return wait


def client_group(host: str) -> str:
    """The unit a limit applies to: an IPv4 address, or an IPv6 /64 (one subscriber gets a whole /64)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host  # "unknown", or a test client's name
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def client_id(request: Request) -> str:
    """The client's group; behind a reverse proxy run uvicorn with --proxy-headers so the address is the real one."""
    return client_group(request.client.host if request.client else "unknown")


@dataclass(frozen=True)
class Caller:
    """Who is asking the detector: a detection key holder or an anonymous client, and which budget they spend."""

    detection_key: bool
    bucket: str

    def limiter(self, request: Request) -> RateLimiter:
        state = request.app.state
        return state.key_work_limiter if self.detection_key else state.work_limiter


def verification_caller(request: Request) -> Caller:
    config: ServiceConfig = request.app.state.config
    api_key = presented_api_key(request)
    if config.accepts_detection(api_key):
        # Per key, not per address: the digest prefix names the key in memory without keeping it.
        return Caller(True, "key:" + api_key_digest(api_key).hex()[:16])
    return Caller(False, client_id(request))


def _too_many(message: str, wait: float) -> ApiError:
    return ApiError(429, "rate_limited", message, headers={"Retry-After": str(max(1, math.ceil(wait)))})


def rate_limit_verification(request: Request) -> None:
    """FastAPI dependency of the public detect/verify routes: the request count, for anonymous callers."""
    config: ServiceConfig = request.app.state.config
    caller = verification_caller(request)
    request.state.caller = caller
    if caller.detection_key:
        return
    wait = request.app.state.rate_limiter.acquire(caller.bucket)
    if wait > 0:
        raise _too_many(f"too many verification requests; at most {config.verify_rate_per_minute:g} a minute per client", wait)


def charge_work(request: Request, characters: int) -> None:
    """Spend a request's characters (text + prompt) from its caller's budget before the work starts."""
    config: ServiceConfig = request.app.state.config
    caller: Caller = request.state.caller
    wait = caller.limiter(request).acquire(caller.bucket, max(characters, config.min_request_chars))
    if wait > 0:
        per_minute = config.detect_key_chars_per_minute if caller.detection_key else config.verify_chars_per_minute
        raise _too_many(f"verification budget spent: {per_minute:g} characters a minute per "
                        f"{'key' if caller.detection_key else 'client'}", wait)


def debit_work(request: Request, characters: int) -> None:
    """Charge work measured after it ran (text extracted from an uploaded file)."""
    caller: Caller = request.state.caller
    if characters > 0:
        caller.limiter(request).debit(caller.bucket, characters)


class _BodyTooLarge(Exception):
    pass


class GuardMiddleware:
    """Outermost ASGI layer: body size limit, security headers, and no tracebacks or messages in errors.

    The declared Content-Length is refused before reading; a chunked body is counted as it arrives.
    """

    def __init__(self, app, *, max_request_bytes: int):
        self.app = app
        self.max_request_bytes = max_request_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_with_headers(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in SECURITY_HEADERS.items():
                    if name.lower().encode() not in present:
                        headers.append((name.lower().encode(), value.encode()))
                message = {**message, "headers": headers}
            await send(message)

        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_request_bytes):
            await self._error(send_with_headers, 413, "request_too_large",
                              f"request body larger than {self.max_request_bytes} bytes")
            return
        received = 0

        async def counting_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_request_bytes:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, counting_receive, send_with_headers)
        except _BodyTooLarge:
            if not started:
                await self._error(send_with_headers, 413, "request_too_large",
                                  f"request body larger than {self.max_request_bytes} bytes")
        except Exception as err:  # noqa: BLE001 - the client gets a fixed message, the log the type only
            logger.error("internal error %s on %s %s", type(err).__name__, scope.get("method"), scope.get("path"))
            if not started:
                await self._error(send_with_headers, 500, "internal_error", "internal server error")

    @staticmethod
    async def _error(send, status: int, code: str, message: str) -> None:
        body = json.dumps(error_body(status, code, message)).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


_SECRET_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)\S+"),
    re.compile(r"(?i)(x-api-key[\"']?\s*[:=]\s*[\"']?)[^\s\"',]+"),
    re.compile(r"()amk-[A-Za-z0-9_\-]{8,}"),
    # Passwords in database URLs. Possessive runs that cannot cross '/' keep this linear: the plain
    # `[^@\s]+(?=@)` retried from every '://' and took seconds on 40 KB of "://a:" repeated.
    re.compile(r"(?i)(://[^:/@\s]++:)[^@\s/]++(?=@)"),
)


class RedactSecrets(logging.Filter):
    """Masks API keys and URL passwords in any log record that reaches a handler it is attached to."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = message
        for pattern in _SECRET_PATTERNS:
            redacted = pattern.sub(lambda m: m.group(1) + "***", redacted)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True
