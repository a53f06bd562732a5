"""serve, registry purge / count: the service from the shell. FastAPI, uvicorn and torch load inside the commands."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Optional

import typer
from aimark.cli.app import app
from aimark.cli.io import console, fail, read_trust_anchors
from aimark.registry.policy import DEFAULT_MIN_EVIDENCE_TOKENS, MIN_RETENTION_DAYS


registry_app = typer.Typer(help="The registry of issued outputs: retention and counts.", no_args_is_help=True)
app.add_typer(registry_app, name="registry")


def _credentials(cert: Optional[Path], private_key: Optional[Path]):
    if cert is None and private_key is None:
        return None
    if cert is None or private_key is None:
        fail("--cert and --private-key go together")
    from aimark.provenance import ProvenanceError, SigningCredentials

    try:
        return SigningCredentials.from_files(cert, private_key)
    except ProvenanceError as err:
        fail(str(err))


def _api_key_digests(api_key_file: Optional[Path], no_auth: bool) -> frozenset[bytes]:
    from aimark.engines.models import data_file
    from aimark.service.config import create_api_key_file, read_api_keys

    digests = read_api_keys(api_key_file)
    if digests or no_auth:
        return digests
    # No key configured: one is made once and kept in a file only its owner can read; its path is printed, never the key.
    # It lives in the data directory (one left in the old cache location is moved there), so clients keep working.
    default_file = data_file(Path("service") / "api-key", console.print)
    created = create_api_key_file(default_file)
    console.print(f"{'created' if created else 'using'} the API key in {default_file} (pass it as 'Authorization: Bearer <key>')")
    return read_api_keys(default_file)


def _detect_api_key_digests(path: Optional[Path]) -> frozenset[bytes]:
    from aimark.service.config import DETECT_API_KEYS_ENV, read_api_keys

    return read_api_keys(path, DETECT_API_KEYS_ENV)


def _install_log_redaction() -> None:
    from aimark.service.security import RedactSecrets

    redact = RedactSecrets()
    for name in ("", "uvicorn", "uvicorn.error", "uvicorn.access", "aimark.service"):
        logging.getLogger(name).addFilter(redact)


@app.command()
def serve(
    model: Annotated[Optional[str], typer.Option(help="Model directory (Hugging Face layout); default: the embedded Gemma 3 270M. With --upstream: the upstream model's tokenizer, for detection (default: the --watermark-key's model).")] = None,
    key: Annotated[list[Path], typer.Option(help="Watermark key file; the first marks outputs, all are tried when verifying. Default: the service's own key in aimark's data directory (AIMARK_HOME, else $XDG_DATA_HOME/aimark, else ~/.local/share/aimark).")] = [],  # noqa: B006
    new_key: Annotated[bool, typer.Option("--new-key", help="Allow a new service key although the registry holds outputs issued under another (they stay detectable only with the old key).")] = False,
    host: Annotated[str, typer.Option(help="Address to listen on (default: localhost only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    profile: Annotated[Optional[str], typer.Option(help="kr, cn, eu or all: the notice wording and the default verification rules (default: the settings', else all).")] = None,
    lang: Annotated[Optional[str], typer.Option(help="Notice language: ko, ja, zh or en (default: the settings', else en).")] = None,
    label: Annotated[list[str], typer.Option(help="Label layers: notice and/or c2pa (repeat). Default: notice, plus c2pa with --cert.")] = [],  # noqa: B006
    cert: Annotated[Optional[Path], typer.Option(help="PEM certificate chain for C2PA manifests.")] = None,
    private_key: Annotated[Optional[Path], typer.Option(help="PEM private key for C2PA manifests (never printed).")] = None,
    trust: Annotated[Optional[Path], typer.Option(help="PEM trust anchors a C2PA signer must chain to when verifying.")] = None,
    db_url: Annotated[Optional[str], typer.Option(help="Registry database URL (default: AIMARK_DB_URL, else SQLite in aimark's data directory).")] = None,
    retention_days: Annotated[int, typer.Option(min=MIN_RETENTION_DAYS, help="Keep registry records this many days; the service deletes older ones hourly (CN Measures Art. 9: at least six months).")] = MIN_RETENTION_DAYS,
    registry_min_evidence: Annotated[int, typer.Option(min=1, help="Tokens a looked-up text must share with an output before the public verifier reports it as a near copy.")] = DEFAULT_MIN_EVIDENCE_TOKENS,
    api_key_file: Annotated[Optional[Path], typer.Option(help="File of accepted API keys, one a line (also: AIMARK_API_KEYS, comma-separated).")] = None,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="Serve generation without API keys (local experiments only).")] = False,
    verify_rate: Annotated[float, typer.Option(min=0.001, help="Public verification requests a minute per client.")] = 30.0,
    verify_burst: Annotated[int, typer.Option(min=1, help="Public verification requests a client may make at once.")] = 10,
    max_request_bytes: Annotated[int, typer.Option(min=1024)] = 5 * 1024 * 1024,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="The most tokens one request may ask for.")] = 1024,
    alpha: Annotated[float, typer.Option(min=1e-300, max=0.5, help="Detection significance level.")] = 1e-3,
    detect_api_key_file: Annotated[Optional[Path], typer.Option(help="File of detection API keys, one a line (also: AIMARK_DETECT_API_KEYS): per-token scores, a prompt context and larger limits on /v1/detect and /v1/verify. Generation keys do not grant these.")] = None,
    detect_workers: Annotated[int, typer.Option(min=0, help="Worker processes for detection and verification, each stopped at --detect-deadline (0: in the server's threads, no deadline).")] = 2,
    detect_deadline: Annotated[float, typer.Option(min=0.1, help="Seconds a detection or verification may run before it is stopped (503).")] = 30.0,
    proxy_headers: Annotated[bool, typer.Option(help="Trust X-Forwarded-For from --forwarded-allow-ips (behind a reverse proxy).")] = False,
    forwarded_allow_ips: Annotated[str, typer.Option(help="Proxy addresses whose X-Forwarded-For is trusted.")] = "127.0.0.1",
    settings_file: Annotated[Optional[Path], typer.Option("--settings", help="Settings file (default: aimark.toml found from here upwards).")] = None,
    upstream: Annotated[Optional[str], typer.Option(help="Serve as a gateway in front of this OpenAI-compatible server (its API root, e.g. http://127.0.0.1:8001/v1): its answers are labelled, signed and registered here; no model is loaded.")] = None,
    upstream_key_file: Annotated[Optional[Path], typer.Option(help="File holding the upstream's API key (first line; never printed or logged).")] = None,
    watermark_key: Annotated[list[Path], typer.Option(help="With --upstream: the upstream's watermark key (an aimark key, a transformers watermarking config or a vLLM --watermark-config JSON), for detection and verification. Without one, verification reports the watermark layer as absent.")] = [],  # noqa: B006
    upstream_timeout: Annotated[float, typer.Option(min=0.1, help="With --upstream: seconds the upstream may stay silent within an answer (a whole answer may take 10 minutes).")] = 120.0,
) -> None:
    """Serve generation (OpenAI API shape, watermarked, labelled, registered) and the public verification page.

    With --upstream, serve as a gateway: another OpenAI-compatible server generates, this one labels, signs,
    registers and verifies. Unset options fall back to the provider's settings (aimark.toml, AIMARK_*): profile,
    notice language, signing credentials and trust anchors, watermark key, registry, detection endpoint."""
    from aimark.engines import ModelLoadError
    from aimark.keys import KeyFileError
    from aimark.registry import RegistryError
    from aimark.service.config import ServiceConfig, ServiceConfigError

    from aimark.cli.compliance_commands import settings_for

    settings = settings_for(settings_file)
    profile = profile or settings.label.default_profile or "all"
    lang = lang or settings.label.notice_language or "en"
    if cert is None and private_key is None:
        cert, private_key = settings.signing.certificate_chain, settings.signing.private_key
    trust = trust or settings.signing.trust_anchors
    if upstream is None and (watermark_key or upstream_key_file):
        fail("--watermark-key and --upstream-key-file go with --upstream")
    if upstream is not None and (key or new_key):
        fail("--key and --new-key are the own model's; with --upstream pass the upstream's key with --watermark-key")
    # The settings' key is the provider's own model's: a gateway claims the upstream's key only when told it.
    key = list(key) or ([settings.watermark.key] if settings.watermark.key and upstream is None else [])
    if db_url is None and settings.registry.url not in (None, "default"):
        db_url = settings.registry.url
    credentials = _credentials(cert, private_key)
    anchors = read_trust_anchors(trust)
    labels = tuple(label) or (("notice", "c2pa") if credentials else ("notice",))
    try:
        config = ServiceConfig(
            model=model, key_paths=tuple(key), profile=profile, language=lang, labels=labels, credentials=credentials,
            trust_anchors=anchors, db_url=db_url, retention_days=retention_days, registry_min_evidence=registry_min_evidence,
            api_key_digests=_api_key_digests(api_key_file, no_auth), require_api_key=not no_auth,
            verify_rate_per_minute=verify_rate, verify_burst=verify_burst, max_request_bytes=max_request_bytes,
            max_new_tokens=max_new_tokens, alpha=alpha, detect_workers=detect_workers, detect_deadline_s=detect_deadline,
            detect_api_key_digests=_detect_api_key_digests(detect_api_key_file),
            detection_endpoint=settings.provider.detection_endpoint,
        )
    except ServiceConfigError as err:
        fail(str(err))

    import uvicorn

    from aimark.service.app import create_app
    from aimark.service.runtime import ServiceKeyError, ServiceRuntime

    _install_log_redaction()
    if upstream is not None:
        runtime = _start_gateway(config, upstream, upstream_key_file, tuple(watermark_key), model, upstream_timeout)
        watermark = runtime.key.key_id if runtime.key else "none (verification reports the watermark layer absent)"
        console.print(f"gateway to the upstream; watermark key {watermark}; labels {', '.join(labels)}; "
                      f"registry {runtime.registry!r}")
    else:
        console.print("loading the model (the embedded model is converted once, then cached) …")
        try:
            runtime = ServiceRuntime.start(config, new_key=new_key, notify=console.print)
        except (ModelLoadError, KeyFileError, RegistryError, ServiceKeyError) as err:
            fail(" ".join(str(err).split()))
        console.print(f"model {runtime.loaded.name}; key {runtime.key.key_id}; labels {', '.join(labels)}; "
                      f"registry {runtime.registry!r}")
    console.print(f"verification page: http://{host}:{port}/   API docs: http://{host}:{port}/docs")
    try:
        uvicorn.run(create_app(runtime), host=host, port=port, log_level="info", proxy_headers=proxy_headers,
                    forwarded_allow_ips=forwarded_allow_ips, server_header=False)
    finally:
        runtime.close()


def _start_gateway(config, upstream: str, upstream_key_file: Optional[Path], watermark_keys: tuple[Path, ...],
                   model: Optional[str], read_timeout: float):
    from aimark.engines import ModelLoadError
    from aimark.keys import KeyFileError
    from aimark.registry import RegistryError
    from aimark.service.config import ServiceConfigError
    from aimark.service.gateway import GatewayRuntime, UpstreamConfig, read_upstream_key

    try:
        upstream_config = UpstreamConfig(upstream, api_key=read_upstream_key(upstream_key_file) if upstream_key_file else None,
                                         read_timeout_s=read_timeout)
        return GatewayRuntime.start(config, upstream_config, watermark_keys, model=model)
    except (ServiceConfigError, ModelLoadError, KeyFileError, RegistryError) as err:
        fail(" ".join(str(err).split()))


def _open_registry(db_url: Optional[str], retention_days: int):
    from aimark.registry import Registry, RegistryError

    try:
        return Registry(db_url, retention_days=retention_days)
    except RegistryError as err:
        fail(str(err))


_DB_URL = typer.Option(help="Registry database URL (default: AIMARK_DB_URL, else SQLite in aimark's data directory).")


@registry_app.command()
def purge(
    db_url: Annotated[Optional[str], _DB_URL] = None,
    retention_days: Annotated[int, typer.Option(min=MIN_RETENTION_DAYS, help="Delete records older than this many days (at least six months: CN Measures Art. 9).")] = MIN_RETENTION_DAYS,
) -> None:
    """Delete registry records older than the retention period (`serve` also does this on start and hourly)."""
    registry = _open_registry(db_url, retention_days)
    try:
        deleted = registry.purge()
    finally:
        registry.close()
    typer.echo(f"deleted {deleted} record(s) older than {retention_days} days")


@registry_app.command()
def count(db_url: Annotated[Optional[str], _DB_URL] = None) -> None:
    """How many outputs the registry holds."""
    registry = _open_registry(db_url, MIN_RETENTION_DAYS)
    try:
        typer.echo(registry.count())
    finally:
        registry.close()
