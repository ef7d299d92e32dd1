"""The Gemini backend's fast answer path (the raw body, read by ``answer_json``) against the
simple one (the SDK's typed ``GenerateContentResponse``, read by ``GeminiBackend.answer``)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json

import pytest

from slim_leakage.errors import JudgeError
from slim_leakage.judge import get_judge
from slim_leakage.judge.backends.base import BackendRequest, Decoding, ImageInput
from slim_leakage.judge.backends.gemini import GeminiBackend, answer_json
from slim_leakage.judge.stages import RANKING_QUESTION
from slim_leakage.judge.testing import Reply, ScriptedServer

pytest.importorskip("google.genai")


def _request() -> BackendRequest:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(buffer, format="PNG")
    data = buffer.getvalue()
    image = ImageInput(data, "image/png", hashlib.sha256(data).hexdigest(), label="Image 1")
    return BackendRequest(
        stage="ranking",
        version="v1",
        text="Which image leaks less?",
        images=(image,),
        schema=RANKING_QUESTION.schema(("cat", "dog")),
        decoding=Decoding(),
    )


def _described(value):
    """A response as it is; an error as its class, text and output limit."""
    if isinstance(value, BaseException):
        return (type(value).__name__, str(value), getattr(value, "limit", None))
    return value


def _outcome(call):
    """What a call gives: its response, or the error it raises (:func:`_described`)."""
    try:
        return call()
    except JudgeError as exc:
        return _described(exc)


REPLIES = {
    "answer": Reply.ok(),
    "text": Reply.ok('{"ranking": "same"}'),
    "rerouted": Reply.ok(model="gemini-other-001"),
    "max_tokens": Reply.real("max_tokens"),
    "safety": Reply.real("safety"),
    "blocked_prompt": Reply.real("blocked_prompt"),
    "no_content": Reply("answer", finish="OTHER"),
}


@pytest.mark.parametrize("name", sorted(REPLIES))
def test_the_raw_body_reads_as_the_sdks_typed_answer(name, tmp_path, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "test-key")
    request = _request()
    with ScriptedServer(shapes="real") as server:
        server.push(REPLIES[name], REPLIES[name])
        backend = get_judge("gemini", base_url=server.url, cache=False).backend

        async def both():
            fast = await asyncio.gather(backend._one(request), return_exceptions=True)
            client = backend._get_client()
            config = backend._config(request)  # typed, as the SDK's own answer is read
            typed = await client.aio.models.generate_content(
                model=backend.model, contents=backend._contents(request), config=config
            )
            await backend.aclose()
            return fast[0], typed, config.max_output_tokens

        fast, typed, limit = asyncio.run(both())
    reference = _outcome(lambda: GeminiBackend.answer(typed, limit))
    assert _described(fast) == reference
    assert len(server.requests) == 2 and server.requests[0].body == server.requests[1].body


BODIES = {
    "thought parts are not the answer": {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [{"text": "thinking...", "thought": True}, {"text": '{"a": 1}'}],
                },
                "finishReason": "STOP",
            }
        ],
        "usageMetadata": {"promptTokenCount": 12, "thoughtsTokenCount": 30},
        "modelVersion": "gemini-x",
    },
    "several text parts join": {
        "candidates": [{"content": {"parts": [{"text": '{"a"'}, {"text": ": 2}"}]}}],
    },
    "no candidates": {"usageMetadata": {"promptTokenCount": 3}},
    "an empty candidate list": {"candidates": []},
    "an empty answer that stopped": {
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": " "}]}, "finishReason": "STOP"}
        ]
    },
    "a recitation": {"candidates": [{"finishReason": "IMAGE_RECITATION"}]},
    "a bare candidate": {"candidates": [{}]},
    "a prompt blocked as other": {"promptFeedback": {"blockReason": "OTHER"}},
}


@pytest.mark.parametrize("name", sorted(BODIES))
def test_answer_bodies_read_the_same_both_ways(name):
    from google.genai import types

    body = BODIES[name]
    typed = types.GenerateContentResponse.model_validate(body)
    assert _outcome(lambda: answer_json(json.dumps(body), 64)) == _outcome(
        lambda: GeminiBackend.answer(typed, 64)
    )


@pytest.mark.parametrize("body", ["", "not json", "[1, 2]"])
def test_a_body_that_is_not_an_answer_is_a_transient_error(body):
    from slim_leakage.errors import TransientBackendError

    if body == "":
        with pytest.raises(TransientBackendError, match="no candidates"):
            answer_json(body, 64)
    else:
        with pytest.raises(TransientBackendError, match="not"):
            answer_json(body, 64)
