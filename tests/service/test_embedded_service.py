"""The service on its default model, the embedded Gemma 3 270M: real text, detected and found in the registry."""

from __future__ import annotations

import pytest

from aimark.service.config import ServiceConfig

pytestmark = pytest.mark.embedded


def test_default_model_output_is_watermarked_labelled_and_registered(tmp_path, pki):
    from fastapi.testclient import TestClient

    from aimark.provenance import SigningCredentials
    from aimark.service.app import create_app
    from aimark.service.runtime import ServiceRuntime

    from dataclasses import replace

    from aimark.detect.detector import tokenizer_binding
    from aimark.engines import load_tokenizer
    from aimark.keys import save_key
    from aimark.service.runtime import service_key_path
    from tests.helpers import fixed_key

    # The service's key for the model, placed where it looks (it would otherwise make a fresh one per run, and
    # with it a different answer each run, some ending after a dozen tokens): the answer is then the same every run.
    model_name = "embedded:gemma-3-270m"
    key = replace(fixed_key("synthid", "embedded-service"), tokenizer=tokenizer_binding(load_tokenizer(None), model_name), model=model_name)
    service_key_path(model_name, tmp_path).parent.mkdir(parents=True)
    save_key(key, service_key_path(model_name, tmp_path))
    config = ServiceConfig(profile="all", language="ko", labels=("notice", "c2pa"), require_api_key=False,
                           credentials=SigningCredentials.from_pem(pki.certificate_chain_pem, pki.private_key_pem),
                           trust_anchors=pki.trust_anchor_pem, db_url=f"sqlite:///{tmp_path / 'registry.sqlite3'}")
    runtime = ServiceRuntime.start(config, home=tmp_path)
    assert runtime.loaded.name == model_name and runtime.key.key_id == key.key_id  # its own key for this model, reused
    try:
        with TestClient(create_app(runtime)) as client:
            body = client.post("/v1/chat/completions", json={
                "messages": [{"role": "user", "content": "Write a short essay about how bicycles changed city life."}],
                "max_tokens": 96, "seed": 3}).json()
            text = body["choices"][0]["message"]["content"]
            assert text.startswith("이 콘텐츠는 생성형 인공지능(AI)으로 생성되었습니다")
            report = client.post("/v1/verify", json={"text": text}).json()
    finally:
        runtime.close()
    mark = report["layers"]["watermark"]["result"]
    assert mark["num_scored_tokens"] >= 20 and mark["p_value"] < 1e-3, (mark, text)
    assert report["layers"]["c2pa"]["valid"] is True
    assert report["layers"]["registry"]["matches"][0]["content_id"] == body["aimark"]["content_id"]
    assert len(list((tmp_path / "service" / "keys").glob("*.json"))) == 1  # reused, not made again
