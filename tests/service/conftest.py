"""A service on the tiny model: fixed key, SQLite registry, TEST ONLY signing credentials, one API key."""

from __future__ import annotations

import threading
import time

import pytest

from aimark.service.config import ServiceConfig, api_key_digest
from tests.helpers import fixed_key

API_KEY = "amk-test-0123456789abcdef"
DETECT_KEY = "amk-detect-test-0123456789"  # the detection scope: per-token scores, prompt context, larger limits


@pytest.fixture(scope="session")
def pki():
    from aimark.provenance.test_pki import generate_test_pki

    return generate_test_pki()


@pytest.fixture(scope="session")
def service_key():
    return fixed_key("synthid", "service")


def make_config(pki, **overrides) -> ServiceConfig:
    from aimark.provenance import SigningCredentials

    settings = dict(
        profile="all", language="en", labels=("notice", "c2pa"),
        credentials=SigningCredentials.from_pem(pki.certificate_chain_pem, pki.private_key_pem),
        trust_anchors=pki.trust_anchor_pem, api_key_digests=frozenset({api_key_digest(API_KEY)}),
        detect_api_key_digests=frozenset({api_key_digest(DETECT_KEY)}),
        default_max_tokens=24, max_new_tokens=400,
    )
    settings.update(overrides)
    return ServiceConfig(**settings)


def make_app(tiny, service_key, config, db_url):
    from aimark.registry import Registry
    from aimark.service.app import create_app
    from aimark.service.runtime import ServiceRuntime

    runtime = ServiceRuntime(config, tiny, [service_key], Registry(db_url, retention_days=config.retention_days))
    return create_app(runtime)


@pytest.fixture
def app_factory(tiny, service_key, pki, tmp_path):
    """Build an app with config overrides; each gets its own SQLite registry unless db_url is given."""
    made = []

    def factory(db_url: str | None = None, **overrides):
        app = make_app(tiny, service_key, make_config(pki, **overrides),
                       db_url or f"sqlite:///{tmp_path / f'registry-{len(made)}.sqlite3'}")
        made.append(app)
        return app

    yield factory
    for app in made:
        app.state.runtime.close()


@pytest.fixture
def client(app_factory):
    from fastapi.testclient import TestClient

    with TestClient(app_factory()) as test_client:
        yield test_client


@pytest.fixture
def auth():
    return {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
def detect_auth():
    return {"Authorization": f"Bearer {DETECT_KEY}"}


class LiveServer:
    """uvicorn on 127.0.0.1 in a thread, for clients that need a real socket (openai, Chromium)."""

    def __init__(self, app):
        import uvicorn

        # Port 0: the kernel picks a free port as uvicorn binds (a probe socket's port could be taken before that).
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.port, self.url = 0, ""

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture
def live_server(app_factory):
    with LiveServer(app_factory()) as server:
        yield server
