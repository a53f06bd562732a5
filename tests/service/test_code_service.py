"""Code requests in the service: `aimark.language` on generation (no repetition penalty), the code gate in /v1/detect."""

from __future__ import annotations

import json

import pytest

from tests.helpers import ANSWER, PROGRAM

CHAT = {"messages": [{"role": "user", "content": "Write a Python function that adds two numbers."}], "max_tokens": 16, "seed": 3}


def test_code_chat_samples_without_repetition_penalty_and_says_its_language(client, auth, generate_calls):
    response = client.post("/v1/chat/completions", json={**CHAT, "aimark": {"language": "py"}}, headers=auth)
    assert response.status_code == 200, response.text
    assert generate_calls[-1]["repetition_penalty"] == 1.0
    assert response.json()["aimark"]["language"] == "python"


def test_prose_chat_is_unchanged(client, auth, generate_calls):
    response = client.post("/v1/chat/completions", json=CHAT, headers=auth)
    assert response.status_code == 200, response.text
    assert generate_calls[-1]["repetition_penalty"] == 1.15
    assert "language" not in response.json()["aimark"]
    response = client.post("/v1/chat/completions", json={**CHAT, "aimark": {}}, headers=auth)
    assert response.status_code == 200 and generate_calls[-1]["repetition_penalty"] == 1.15


def test_code_completion_and_stream_carry_the_language(client, auth, generate_calls):
    body = {"prompt": "def add(a, b):", "max_tokens": 8, "aimark": {"language": "python"}}
    response = client.post("/v1/completions", json=body, headers=auth)
    assert response.status_code == 200, response.text
    assert generate_calls[-1]["repetition_penalty"] == 1.0 and response.json()["aimark"]["language"] == "python"
    with client.stream("POST", "/v1/completions", json={**body, "stream": True}, headers=auth) as streamed:
        events = [json.loads(line[6:]) for line in streamed.iter_lines() if line.startswith("data: {")]
    assert events and all(event["aimark"]["language"] == "python" for event in events)


def test_comment_boost_reaches_generation_and_stream(client, auth, generate_calls):
    response = client.post("/v1/chat/completions", json={**CHAT, "aimark": {"language": "python", "comment_boost": 2}}, headers=auth)
    assert response.status_code == 200, response.text
    assert generate_calls[-1]["comment_boost"] == 2.0 and generate_calls[-1]["code_language"] == "python"
    response = client.post("/v1/chat/completions", json={**CHAT, "aimark": {"language": "python"}}, headers=auth)
    assert generate_calls[-1]["comment_boost"] == 0.0  # off unless asked
    body = {"prompt": "def add(a, b):\n    #", "max_tokens": 6, "stream": True, "aimark": {"language": "python", "comment_boost": 2}}
    with client.stream("POST", "/v1/completions", json=body, headers=auth) as streamed:  # the real streaming path, boost on
        assert streamed.status_code == 200
        assert any(line.startswith("data: {") for line in streamed.iter_lines())


@pytest.mark.parametrize("extension, code", [
    ({"comment_boost": 2}, "invalid_comment_boost"),                       # no language to find comments with
    ({"language": "python", "comment_boost": 11}, "invalid_request"),       # out of range
])
def test_bad_comment_boost_requests_are_400s(client, auth, extension, code):
    response = client.post("/v1/chat/completions", json={**CHAT, "aimark": extension}, headers=auth)
    assert response.status_code == 400 and response.json()["error"]["code"] == code


@pytest.mark.parametrize("extension, code", [({"language": "cobol"}, "invalid_language"), ({"lang": "python"}, "invalid_request")])
def test_bad_code_requests_are_400s(client, auth, extension, code):
    response = client.post("/v1/chat/completions", json={**CHAT, "aimark": extension}, headers=auth)
    assert response.status_code == 400 and response.json()["error"]["code"] == code


def _detect(client, **kwargs) -> dict:
    response = client.post("/v1/detect", **kwargs)
    assert response.status_code == 200, response.text
    return response.json()


def test_detect_guesses_the_gate_and_matches_the_library(client):
    detector = client.app.state.runtime.detector
    document = _detect(client, json={"text": PROGRAM})
    assert document == json.loads(json.dumps(detector.detect(PROGRAM, language="python").to_dict()))
    assert _detect(client, json={"text": ANSWER})["code_language"] == "markdown"
    assert _detect(client, json={"text": "Plain words about the sea and the sky, nothing more."})["code_language"] is None


def test_detect_language_and_filename_fields(client):
    gated = _detect(client, json={"text": PROGRAM})
    whole = _detect(client, json={"text": PROGRAM, "language": "none"})
    assert whole["code_language"] is None and whole["num_scored_tokens"] > gated["num_scored_tokens"]
    assert _detect(client, json={"text": PROGRAM, "filename": "x.js"})["code_language"] == "javascript"
    assert _detect(client, json={"text": PROGRAM, "filename": "x.js", "language": "rust"})["code_language"] == "rust"
    upload = _detect(client, files={"file": ("solution.rb", PROGRAM.encode(), "text/plain")})
    assert upload["code_language"] == "ruby"
    form = _detect(client, files={"file": ("solution.py", PROGRAM.encode(), "text/plain")}, data={"language": "prose"})
    assert form["code_language"] is None
    plain = _detect(client, content=PROGRAM.encode(), headers={"Content-Type": "text/plain"}, params={"filename": "a.go"})
    assert plain["code_language"] == "go"
    assert _detect(client, content=PROGRAM.encode(), headers={"Content-Type": "text/plain"},
                   params={"language": "kt"})["code_language"] == "kotlin"


def test_detect_bad_language_is_a_400_and_syntax_still_scores(client):
    response = client.post("/v1/detect", json={"text": PROGRAM, "language": "cobol"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_language"
    # Under the service's SynthID key the gate counts keywords and layout too (they carry its signal).
    response = client.post("/v1/detect", json={"text": "if True:\n    pass\n" * 10, "language": "python"})
    assert response.status_code == 200 and response.json()["num_scored_tokens"] > 0


def test_verify_gates_the_watermark_by_the_file_name(client, detect_auth):
    report = client.post("/v1/verify?tokens=true", files={"file": ("solution.py", PROGRAM.encode(), "text/plain")},
                         headers=detect_auth).json()
    assert report["layers"]["watermark"]["result"]["code_language"] == "python"
    detail = next(r["detail"] for p in report["profiles"] for r in p["requirements"] if r["id"] == "cn.watermark")
    assert "code gate: python" in detail
    heat = report["heatmap"]["tokens"]
    assert sum(score is not None for _, _, score in heat) == report["layers"]["watermark"]["result"]["num_scored_tokens"]
    prose = client.post("/v1/verify", json={"text": "Plain words about the sea. " * 10, "filename": "notes.txt"}).json()
    assert prose["layers"]["watermark"]["result"]["code_language"] is None


def test_comment_boost_on_a_service_without_a_tilt_is_a_400(client, auth, monkeypatch):
    from aimark.schemes import KGWScheme
    from tests.helpers import fixed_key

    detector = client.app.state.runtime.detector
    monkeypatch.setattr(detector, "schemes", (KGWScheme(fixed_key("kgw")),))
    response = client.post("/v1/chat/completions", json={**CHAT, "aimark": {"language": "python", "comment_boost": 2}}, headers=auth)
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_comment_boost"
    assert "no tilt" in response.json()["error"]["message"]
