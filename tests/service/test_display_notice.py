"""Each response's metadata carries the notice a chat interface shows (MSIT guideline: inside the service a
UI notice suffices), with the advance notice and whether the text itself is labelled for export."""

from __future__ import annotations

from aimark.labels import ADVANCE_NOTICE_TEXT, notice_text


def _chat(client, auth, **body):
    response = client.post("/v1/chat/completions", headers=auth,
                           json={"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8, "seed": 3, **body})
    assert response.status_code == 200, response.text
    return response.json()


def test_every_response_names_the_notice_to_display(app_factory, auth) -> None:
    from fastapi.testclient import TestClient

    with TestClient(app_factory(profile="kr", language="ko", labels=("notice",))) as client:
        body = _chat(client, auth)
    shown = body["aimark"]["display_notice"]
    assert shown == {"text": notice_text("kr", "ko"), "advance": ADVANCE_NOTICE_TEXT["ko"], "profile": "kr", "lang": "ko",
                     "in_output": True}
    assert body["choices"][0]["message"]["content"].startswith(shown["text"])


def test_without_an_output_notice_the_metadata_says_so(app_factory, auth) -> None:
    from fastapi.testclient import TestClient

    with TestClient(app_factory(profile="cn", language="zh", labels=())) as client:
        body = _chat(client, auth)
    shown = body["aimark"]["display_notice"]
    assert shown["in_output"] is False and shown["text"] == "本内容由人工智能生成。"
    assert not body["choices"][0]["message"]["content"].startswith(shown["text"])
