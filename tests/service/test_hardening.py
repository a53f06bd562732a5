"""The service keeps answering: no deadlock on the model, no starvation by one request, no detector oracle.

Real uvicorn servers on loopback where the failure needs real sockets and threads; a pytest timeout guards
each against the hang it tests for.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.service.conftest import API_KEY, DETECT_KEY, LiveServer

HUMAN = ("The committee met on Tuesday to review the budget for next year. Members agreed to postpone the vote "
         "until the auditors deliver their report, which is expected before the end of the month.")
GENERATION = {"Authorization": f"Bearer {API_KEY}"}
DETECTION = {"Authorization": f"Bearer {DETECT_KEY}"}


@pytest.mark.timeout(240)
def test_a_stream_and_many_completions_leave_verification_answering_and_the_server_exits(app_factory):
    # The old shape: the stream held the model lock between chunks, each chunk needed one of anyio's 40
    # threads, and 40 completions waiting on the lock took them all: every threaded route hung for good.
    app = app_factory(max_queued_generations=4, generation_queue_timeout_s=120)
    server = LiveServer(app).__enter__()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client, client.stream(
                "POST", "/v1/chat/completions", headers=GENERATION,
                json={"messages": [{"role": "user", "content": "Tell a long story."}], "max_tokens": 400,
                      "stream": True, "seed": 1}) as stream:
            lines = stream.iter_lines()
            assert next(line for line in lines if line.startswith("data: "))  # the stream holds the model now

            def complete(i: int) -> httpx.Response:
                return httpx.post(f"{server.url}/v1/completions", headers=GENERATION, timeout=120,
                                  json={"prompt": f"Number {i}", "max_tokens": 2})

            with ThreadPoolExecutor(max_workers=45) as pool:
                waiting = [pool.submit(complete, i) for i in range(45)]
                verified = client.post("/v1/verify", json={"text": HUMAN}, timeout=60)
                assert verified.status_code == 200, verified.text
                rest = [line for line in lines if line.startswith("data: ")]
                assert rest[-1] == "data: [DONE]"
                statuses = [future.result().status_code for future in waiting]
        # Beyond the bounded queue a request is refused at once, with a time to come back; none hangs.
        assert set(statuses) <= {200, 503} and 200 in statuses and 503 in statuses
        refused = next(f.result() for f in waiting if f.result().status_code == 503)
        assert refused.json()["error"]["code"] == "server_busy" and int(refused.headers["Retry-After"]) >= 1
    finally:
        server.__exit__(None, None, None)
    assert not server.thread.is_alive()


def test_anonymous_detection_gets_the_verdict_not_the_token_scores(client, auth, detect_auth):
    text = client.post("/v1/chat/completions", headers=auth, json={
        "messages": [{"role": "user", "content": "Write about the sea."}], "max_tokens": 60, "seed": 8,
    }).json()["choices"][0]["message"]["content"]
    anonymous = client.post("/v1/detect?tokens=true", json={"text": text}).json()
    assert "tokens" not in anonymous and "per-token scores need a detection API key" in anonymous["tokens_withheld"]
    assert anonymous["watermarked"] is True and anonymous["p_value"] < 1e-3
    assert "tokens" in client.post("/v1/detect?tokens=true", json={"text": text}, headers=detect_auth).json()
    # A generation key is not a detection key.
    assert "tokens" not in client.post("/v1/detect?tokens=true", json={"text": text}, headers=auth).json()

    report = client.post("/v1/verify?tokens=true", json={"text": text}).json()
    assert "heatmap" not in report and report["heatmap_withheld"]
    assert report["layers"]["watermark"]["result"]["watermarked"] is True


def test_the_prompt_context_needs_a_detection_key_and_is_capped(app_factory, detect_auth):
    from fastapi.testclient import TestClient

    with TestClient(app_factory(max_prompt_chars=100)) as client:
        refused = client.post("/v1/detect", json={"text": HUMAN, "prompt": "Write about the budget."})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "prompt_needs_detection_key"
        assert client.post("/v1/detect", json={"text": HUMAN, "prompt": "Write."}, headers=detect_auth).status_code == 200
        long_prompt = client.post("/v1/detect", json={"text": HUMAN, "prompt": "x" * 101}, headers=detect_auth)
        assert long_prompt.status_code == 413 and long_prompt.json()["error"]["code"] == "prompt_too_long"


def test_limits_count_characters_and_anonymous_text_is_capped(app_factory, detect_auth):
    from fastapi.testclient import TestClient

    big = (HUMAN + " ") * 12  # two of these fill the budget, to the character
    app = app_factory(verify_burst=100, verify_rate_per_minute=100, verify_burst_chars=2 * len(big),
                      verify_chars_per_minute=60, min_request_chars=100, anonymous_max_text_chars=3_000)
    with TestClient(app) as client:
        statuses = [client.post("/v1/detect", json={"text": big}).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        refused = client.post("/v1/detect", json={"text": HUMAN})
        assert refused.status_code == 429 and "characters a minute" in refused.json()["error"]["message"]
        too_long = client.post("/v1/detect", json={"text": (HUMAN + " ") * 20})
        assert too_long.status_code == 413 and "detection API key" in too_long.json()["error"]["message"]
        assert client.post("/v1/detect", json={"text": (HUMAN + " ") * 20}, headers=detect_auth).status_code == 200
        limits = client.get("/v1/info").json()["limits"]
        assert limits["anonymous"]["max_text_chars"] == 3_000 and limits["anonymous"]["token_scores"] is False
        assert limits["anonymous"]["characters_per_minute"] == 60 and limits["detection_key"]["token_scores"] is True


def test_an_uploaded_file_is_charged_for_the_text_it_scored(app_factory):
    from fastapi.testclient import TestClient

    app = app_factory(verify_burst=100, verify_rate_per_minute=100, verify_burst_chars=4_000,
                      verify_chars_per_minute=60, min_request_chars=100)
    with TestClient(app) as client:
        # ~3,100 characters each: charged the minimum before, the rest once scored, so the budget is in debt
        upload = {"file": ("notes.txt", ((HUMAN + " ") * 15).encode(), "text/plain")}
        assert [client.post("/v1/verify", files=upload).status_code for _ in range(3)] == [200, 200, 429]


@pytest.mark.parametrize(("host", "group"), [
    ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"), ("2001:db8:1:2:ffff:1:2:3", "2001:db8:1:2::/64"),
    ("2001:db8:1:3::1", "2001:db8:1:3::/64"), ("::ffff:192.0.2.7", "192.0.2.7"), ("192.0.2.7", "192.0.2.7"),
    ("testclient", "testclient"),
])
def test_clients_are_grouped_by_ipv4_address_and_ipv6_slash_64(host, group):
    from aimark.service.security import client_group

    assert client_group(host) == group


def test_an_ipv6_client_cannot_escape_its_limit_by_changing_address_within_its_64(app_factory):
    from fastapi.testclient import TestClient

    app = app_factory(verify_burst=2, verify_rate_per_minute=1)
    statuses = []
    for suffix in ("1", "2", "3"):
        with TestClient(app, client=(f"2001:db8:0:1::{suffix}", 5000)) as client:
            statuses.append(client.post("/v1/detect", json={"text": HUMAN}).status_code)
    assert statuses == [200, 200, 429]
    with TestClient(app, client=("2001:db8:0:2::1", 5000)) as other:
        assert other.post("/v1/detect", json={"text": HUMAN}).status_code == 200


def test_a_detection_key_that_is_also_a_generation_key_is_refused(pki):
    from aimark.service.config import ServiceConfigError, api_key_digest
    from tests.service.conftest import make_config

    with pytest.raises(ServiceConfigError, match="both a generation and a detection key"):
        make_config(pki, detect_api_key_digests=frozenset({api_key_digest(API_KEY)}))


NESTED = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("route", ["/v1/verify", "/v1/detect", "/v1/chat/completions", "/v1/completions"])
def test_deeply_nested_json_is_a_400(client, route):
    body = '{"text": ' + NESTED + ', "messages": ' + NESTED + "}"
    response = client.post(route, content=body, headers={**GENERATION, "Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_a_lone_surrogate_in_a_json_text_is_a_400(client):
    response = client.post("/v1/verify", content=b'{"text": "abc \\ud800 def"}', headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_text"


SLOW = ("The committee met on Tuesday to review the budget. " * 40_000)  # ~2M characters, far past the usual cap


@pytest.mark.timeout(300)
def test_a_check_past_its_deadline_is_stopped_and_its_worker_replaced(app_factory):
    app = app_factory(detect_workers=1, detect_deadline_s=2, max_text_chars=len(SLOW), max_request_bytes=16 << 20)
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=120) as client:
        assert client.post("/v1/verify", json={"text": HUMAN}).status_code == 200  # the worker is up
        stopped = client.post("/v1/detect", json={"text": SLOW}, headers=DETECTION)
        assert stopped.status_code == 503 and stopped.json()["error"]["code"] == "deadline_exceeded"
        again = client.post("/v1/verify", json={"text": HUMAN})  # answered by the replacement worker
        assert again.status_code == 200 and again.json()["layers"]["watermark"]["result"]["watermarked"] is False


@pytest.mark.timeout(300)
def test_an_ordinary_check_is_answered_while_a_heavy_one_runs(app_factory):
    app = app_factory(detect_workers=2, detect_deadline_s=240, max_text_chars=len(SLOW), max_request_bytes=16 << 20)
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=240) as client:
        assert client.post("/v1/verify", json={"text": HUMAN}).status_code == 200
        finished: list[str] = []
        heavy_started = threading.Event()

        def heavy():
            heavy_started.set()
            response = httpx.post(f"{server.url}/v1/detect", json={"text": SLOW}, headers=DETECTION, timeout=240)
            finished.append(f"heavy {response.status_code}")

        runner = threading.Thread(target=heavy)
        runner.start()
        heavy_started.wait()
        while app.state.checks.gate._holders == 0:  # the heavy check holds a worker
            threading.Event().wait(0.01)
        ordinary = client.post("/v1/verify", json={"text": HUMAN})
        finished.append(f"ordinary {ordinary.status_code}")
        runner.join()
    assert finished == ["ordinary 200", "heavy 200"]


@pytest.mark.timeout(300)
def test_readiness_waits_for_every_check_worker(app_factory):
    app = app_factory(detect_workers=2, detect_deadline_s=60)
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        seen = []
        while not seen or seen[-1]["status"] != "ready":
            response = client.get("/readyz")
            body = response.json()
            assert response.status_code == (200 if body["status"] == "ready" else 503)
            assert body["check_workers"] == 2 and 0 <= body["check_workers_ready"] <= 2
            seen.append(body)
            threading.Event().wait(0.1)
        assert seen[-1]["check_workers_ready"] == 2
        assert [b["check_workers_ready"] for b in seen] == sorted(b["check_workers_ready"] for b in seen)
        assert client.get("/healthz").json() == {"status": "ok"}  # liveness answers whatever the workers do


def test_an_in_process_service_is_ready_at_once(client):
    assert client.get("/readyz").json() == {"status": "ready", "check_workers": 0, "check_workers_ready": 0}
