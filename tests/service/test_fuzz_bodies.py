"""Hypothesis over the request bodies of every route: random JSON, the routes' own fields with wrong types and
odd values, deep nesting, invalid UTF-8, multipart oddities. Never a 500, never a traceback in the answer."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.service.conftest import API_KEY

ROUTES = ["/v1/verify", "/v1/detect", "/v1/chat/completions", "/v1/completions"]
FIELDS = ["messages", "prompt", "text", "max_tokens", "max_completion_tokens", "n", "temperature", "top_p", "stop",
          "seed", "stream", "stream_options", "aimark", "language", "profile", "filename", "role", "content"]
HEADERS = {"Authorization": f"Bearer {API_KEY}"}

scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=2**63 - 5, max_value=2**80)
           | st.floats() | st.text(max_size=40) | st.sampled_from(["user", "python", "eu", "", "\x00", "\ud800"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), inner, max_size=4), max_leaves=12)
bodies = st.dictionaries(st.sampled_from(FIELDS), values, max_size=8) | values
# Well-formed enough to reach the handlers: a real conversation or prompt, then odd sampling fields.
SAMPLING = ["max_tokens", "max_completion_tokens", "n", "temperature", "top_p", "stop", "seed", "stream",
            "stream_options", "aimark"]
odd_numbers = (st.integers(min_value=-2**70, max_value=2**70) | st.floats() | st.sampled_from([0, 1, 2, 3, 2**31, 2**64]))
sampling = st.dictionaries(st.sampled_from(SAMPLING), odd_numbers | values, max_size=5)
generation_bodies = st.builds(lambda extra, text: {"messages": [{"role": "user", "content": text}], "prompt": text, **extra},
                              sampling, st.text(min_size=1, max_size=20))


def _nested(depth: int) -> str:
    return '{"messages": ' + "[" * depth + "]" * depth + ', "text": ' + "{\"a\": " * depth + "1" + "}" * depth + "}"


def _clean(response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:300])
    assert "Traceback" not in response.text


@pytest.fixture
def fuzz_client(app_factory):
    from fastapi.testclient import TestClient

    # Tiny generations, and limits out of the way: the point is the parsing, not the budget.
    app = app_factory(default_max_tokens=2, max_new_tokens=3, verify_burst=10**6, verify_rate_per_minute=10**6,
                      verify_burst_chars=10**9, verify_chars_per_minute=10**9)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(ROUTES), body=bodies)
def test_json_bodies_never_cause_a_500(fuzz_client, route, body):
    try:
        content = json.dumps(body).encode("utf-8", "surrogatepass")
    except (ValueError, RecursionError):
        return
    _clean(fuzz_client.post(route, content=content, headers={**HEADERS, "Content-Type": "application/json"}))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(ROUTES[2:]), body=generation_bodies)
def test_generation_bodies_with_odd_sampling_fields_never_cause_a_500(fuzz_client, route, body):
    content = json.dumps(body).encode("utf-8", "surrogatepass")
    _clean(fuzz_client.post(route, content=content, headers={**HEADERS, "Content-Type": "application/json"}))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(ROUTES), raw=st.binary(max_size=200),
       media=st.sampled_from(["application/json", "text/plain", "application/octet-stream", "multipart/form-data",
                              "multipart/form-data; boundary=x", "application/x-www-form-urlencoded", "", "text/plain; charset=latin-1"]))
def test_raw_bytes_of_any_media_type_never_cause_a_500(fuzz_client, route, raw, media):
    _clean(fuzz_client.post(route, content=raw, headers={**HEADERS, "Content-Type": media}))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(ROUTES[:2]), name=st.text(max_size=30), data=st.binary(max_size=300),
       fields=st.dictionaries(st.sampled_from(["text", "profile", "language", "prompt", "file", "x"]), st.text(max_size=30), max_size=4))
def test_multipart_oddities_never_cause_a_500(fuzz_client, route, name, data, fields):
    files = {"file": (name or None, data, "application/octet-stream")}
    _clean(fuzz_client.post(route, files=files, data=fields))
    _clean(fuzz_client.post(route, data=fields))


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_nesting_and_huge_strings_are_refused_cleanly(fuzz_client, route, depth):
    _clean(fuzz_client.post(route, content=_nested(depth), headers={**HEADERS, "Content-Type": "application/json"}))
    huge = json.dumps({"text": "a" * 3_000_000, "prompt": "b" * 1_000_000, "messages": [{"role": "user", "content": "c" * 10}]})
    _clean(fuzz_client.post(route, content=huge, headers={**HEADERS, "Content-Type": "application/json"}))
