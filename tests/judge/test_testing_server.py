"""The local protocol server itself: routes, default answers, faults, recording."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from slim_leakage.errors import JudgeParseError
from slim_leakage.judge.stages import (
    EXTRACTION_IMAGES,
    EXTRACTION_TEXT,
    RANKING_QUESTION,
    TYPICALITY_QUESTION,
    report_text,
)
from slim_leakage.judge.testing import (
    RecordedRequest,
    Reply,
    ScriptedServer,
    default_answer,
    typicality_of,
)


def post(url: str, body: dict, headers: dict | None = None):
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


def chat(schema: dict, text: str = "hello") -> dict:
    return {
        "model": "m",
        "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    }


def test_default_answers_parse_for_every_stage():
    entities = ("cat", "cheetah")
    for question in (EXTRACTION_TEXT, EXTRACTION_IMAGES):
        schema = question.schema(entities)
        req = RecordedRequest("openai", "", "m", question.name, "", (), schema, {}, False)
        assert question.parse(default_answer(req), entities)
    req = RecordedRequest(
        "openai",
        "",
        "m",
        "typicality",
        "",
        ("ab" * 32,),
        TYPICALITY_QUESTION.schema(entities),
        {},
        False,
    )
    report = TYPICALITY_QUESTION.parse(default_answer(req), entities)
    assert report["entities"]["cat"]["typicality"] == typicality_of("ab" * 32, "cat")
    text = RANKING_QUESTION.render(
        {
            "prompt": "p",
            "entity_list": "e",
            "report_1": report_text(report),
            "report_2": report_text(report),
        }
    )
    req = RecordedRequest(
        "openai", "", "m", "ranking", text, (), RANKING_QUESTION.schema(entities), {}, False
    )
    assert RANKING_QUESTION.parse(default_answer(req), entities)["less_leaky"] == "neither"


def test_openai_and_gemini_routes_and_recording():
    with ScriptedServer() as server:
        status, _, body = post(
            f"{server.openai_base_url}/chat/completions",
            chat(RANKING_QUESTION.schema(("a", "b"))),
            {"Authorization": "Bearer k"},
        )
        assert status == 200 and body["object"] == "chat.completion"
        assert body["usage"]["total_tokens"] > 0
        gemini = {
            "contents": [{"parts": [{"text": "hi"}]}],
            "generationConfig": {"responseJsonSchema": RANKING_QUESTION.schema(("a", "b"))},
        }
        status, _, body = post(f"{server.url}/v1beta/models/g-1:generateContent", gemini)
        assert status == 200 and body["candidates"][0]["content"]["parts"][0]["text"]
        status, _, _ = post(f"{server.url}/nowhere", {})
        assert status == 404
        assert [(r.protocol, r.model, r.stage, r.has_auth) for r in server.requests] == [
            ("openai", "m", "ranking", True),
            ("gemini", "g-1", "ranking", False),
        ]
        with urllib.request.urlopen(f"{server.url}/_stats", timeout=5) as response:
            assert json.loads(response.read())["requests"] == 2


def test_scripted_replies_are_consumed_in_order_and_by_stage():
    with ScriptedServer() as server:
        server.push(Reply.error(429, retry_after=2.5, stage="typicality"), Reply.error(500))
        url = f"{server.openai_base_url}/chat/completions"
        status, _, _ = post(url, chat(RANKING_QUESTION.schema(("a", "b"))))
        assert status == 500  # the typicality-only reply waits for a typicality request
        status, headers, body = post(url, chat(TYPICALITY_QUESTION.schema(("a", "b"))))
        # an integer Retry-After (RFC 9110 delay-seconds), the exact wait in retry-after-ms
        assert status == 429 and headers["retry-after"] == "3"
        assert headers["retry-after-ms"] == "2500"
        # the Error schema of OpenAI's OpenAPI description: all four fields, param null
        assert body["error"]["code"] == "rate_limit_exceeded"
        assert set(body["error"]) == {"message", "type", "param", "code"}
        assert server.pending() == 0
        server.push(Reply.truncated())
        _, _, body = post(url, chat(RANKING_QUESTION.schema(("a", "b"))))
        with pytest.raises(JudgeParseError):
            RANKING_QUESTION.parse(body["choices"][0]["message"]["content"], ("a", "b"))


def test_fault_rates_are_seeded_and_validated():
    def run(seed):
        with ScriptedServer(fault_rates={"500": 0.5}, seed=seed) as server:
            url = f"{server.openai_base_url}/chat/completions"
            return [post(url, chat(RANKING_QUESTION.schema(("a", "b"))))[0] for _ in range(12)]

    first = run(1)
    assert first == run(1) and {200, 500} == set(first)
    with pytest.raises(ValueError, match="unknown fault kind"):
        ScriptedServer(fault_rates={"teapot": 1.0})
