"""The judge against the services' wire shapes as their documents give them, one test per shape.

Each shape is served by the local protocol server on 127.0.0.1 (``judge/testing``), whose
sources name the document each shape comes from; the judge's reading of it is checked here.
"""

from __future__ import annotations

import email.utils
import json
import random
import time
import urllib.error
import urllib.request

import pytest

from slim_leakage.errors import QuotaExhaustedError
from slim_leakage.judge import get_judge, models
from slim_leakage.judge.backends._common import retry_after_seconds
from slim_leakage.judge.backends.batches import match_inlined
from slim_leakage.judge.backends.gemini import rate_limit_error
from slim_leakage.judge.limits import server_delay
from slim_leakage.judge.testing import Reply, ScriptedServer
from slim_leakage.judge.testing.errors import gemini_limit_zero

from .conftest import build_items

pytest.importorskip("openai")
pytest.importorskip("google.genai")


@pytest.fixture(autouse=True)
def keys(monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "local-test-key")
    monkeypatch.setenv("OPENAI_API_KEY", "local-test-key")


@pytest.fixture(params=["gemini", "openai"])
def api(request):
    return request.param


def make(name, server, tmp_path, **options):
    base_url = server.url if name == "gemini" else server.openai_base_url
    options.setdefault("cache_dir", str(tmp_path / "cache"))
    options.setdefault("backoff_base", 0.01)
    options.setdefault("concurrency", 1)
    judge = get_judge(name, base_url=base_url, **options)
    judge.notify = lambda line: None
    return judge


def post(url: str, body: dict) -> tuple[int, dict, dict]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


GEMINI_BODY = {"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}


# -- Gemini "limit: 0" ---------------------------------------------------------------------------
def test_a_limit_zero_429_without_quota_values_stops_the_run_as_a_quota_stop(tmp_path):
    with ScriptedServer(shapes="real") as server:
        server.push(Reply.real("limit_zero"))
        judge = make("gemini", server, tmp_path)
        with pytest.raises(QuotaExhaustedError) as caught:
            judge.judge(build_items(tmp_path / "img", 2), progress=False)
        body = post(f"{server.url}/v1beta/models/m:generateContent", GEMINI_BODY)  # the next
    assert len(server.requests) == 2 and judge.stats.retries == 0  # one request, no retry
    assert "limit: 0" in str(caught.value) and caught.value.resets_at is None
    # the shape: no quotaValue anywhere, per-minute and per-day ids mixed, a short RetryInfo
    error = gemini_limit_zero("m")["error"]
    violations = error["details"][0]["violations"]
    assert all("quotaValue" not in v for v in violations)
    assert {"PerMinute" in v["quotaId"] for v in violations} == {True, False}
    assert error["details"][-1]["retryDelay"].endswith("s") and body[0] == 200


def test_limit_zero_is_read_from_the_details_or_the_message():
    body = gemini_limit_zero("m")
    assert isinstance(rate_limit_error(body, "quota"), QuotaExhaustedError)
    message_only = "Quota exceeded for metric: x, limit: 0, model: m"
    assert isinstance(rate_limit_error({"error": {}}, message_only), QuotaExhaustedError)
    minute = {
        "error": {
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [{"quotaId": "GenerateRequestsPerMinute", "quotaValue": "15"}],
                }
            ]
        }
    }
    assert not isinstance(rate_limit_error(minute, "slow down"), QuotaExhaustedError)


# -- server-given waits ----------------------------------------------------------------------------
def test_server_given_waits_grow_and_are_capped_across_retries(tmp_path):
    with ScriptedServer(shapes="real") as server:
        stage = "extraction-text"
        server.push(*[Reply.real("retry_info", retry_after=0.2, stage=stage)] * 3)
        judge = make("gemini", server, tmp_path, backoff_cap=0.5)
        verdicts = judge.judge(build_items(tmp_path / "img", 1), progress=False)
    assert verdicts[0].label is not None and judge.stats.retries == 3
    times = [r.time for r in server.requests if r.stage == stage]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert gaps[0] >= 0.2 - 0.01 and gaps[1] >= 0.4 - 0.01  # doubled after it was honoured
    # capped at backoff_cap (0.5 s, up to 10 % jitter): grown unchecked it would be 0.8 s
    assert 0.5 - 0.01 <= gaps[2] < 0.8


def test_server_delay_never_waits_less_than_asked_nor_more_than_its_limit():
    rng = random.Random(0)
    assert server_delay(2.0, 0, cap=60, rng=rng) >= 2.0
    assert 8.0 <= server_delay(2.0, 2, cap=60, rng=rng) <= 8.8
    assert 60 <= server_delay(2.0, 10, cap=60, rng=rng) <= 66
    assert 90.0 <= server_delay(90.0, 3, cap=60, rng=rng) <= 99.0  # past the cap: as asked
    assert server_delay(9 * 3600.0, 0, cap=60, rng=rng) == 600.0


def test_retry_after_as_an_http_date_is_honoured(api, tmp_path):
    with ScriptedServer() as server:
        judge = make(api, server, tmp_path)
        when = int(time.time()) + 3  # an HTTP date has whole seconds
        server.push(
            Reply.error(503, headers={"Retry-After": email.utils.formatdate(when, usegmt=True)})
        )
        # the server records monotonic times: the date on that clock
        due = time.monotonic() + (when - time.time())
        verdicts = judge.judge(build_items(tmp_path / "img", 1), progress=False)
    assert verdicts[0].label is not None and judge.stats.retries == 1
    assert server.requests[0].reply == "status:503"
    assert server.requests[1].time >= due - 0.05  # nothing was sent again before the date


def test_retry_after_headers_in_every_documented_form():
    now = 1_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert retry_after_seconds({"retry-after": "7"}) == 7.0
    assert retry_after_seconds({"retry-after": "7", "retry-after-ms": "1500"}) == 1.5
    assert retry_after_seconds({"retry-after": date}, now=now) == pytest.approx(30.0)
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None


# -- which statuses are retried --------------------------------------------------------------------
def test_openai_obeys_x_should_retry(tmp_path):
    with ScriptedServer() as server:
        server.push(Reply.error(500, headers={"x-should-retry": "false"}, stage="extraction-text"))
        judge = make("openai", server, tmp_path)
        verdicts = judge.judge(build_items(tmp_path / "img", 1), progress=False)
        assert verdicts[0].label is None and "500" in verdicts[0].error
        assert judge.stats.retries == 0
        server.push(Reply.error(400, headers={"x-should-retry": "true"}))
        again = make("openai", server, tmp_path, cache_dir=str(tmp_path / "c2"))
        verdicts = again.judge(build_items(tmp_path / "img", 1), progress=False)
    assert verdicts[0].label is not None and again.stats.retries == 1


@pytest.mark.parametrize("status", [409, 501])
def test_gemini_does_not_retry_what_its_sdk_does_not(status, tmp_path):
    with ScriptedServer() as server:
        server.push(Reply.error(status, stage="extraction-text"))
        judge = make("gemini", server, tmp_path)
        verdicts = judge.judge(build_items(tmp_path / "img", 1), progress=False)
        body = post(f"{server.url}/v1beta/models/m:generateContent", GEMINI_BODY)
    assert verdicts[0].label is None and str(status) in verdicts[0].error
    assert judge.stats.retries == 0 and body[0] == 200


@pytest.mark.parametrize("status", [408, 502, 504])
def test_gemini_retries_its_sdks_retry_set(status, tmp_path):
    with ScriptedServer() as server:
        server.push(Reply.error(status))
        judge = make("gemini", server, tmp_path)
        verdicts = judge.judge(build_items(tmp_path / "img", 1), progress=False)
    assert verdicts[0].label is not None and judge.stats.retries == 1


def test_openai_retries_a_409_as_its_sdk_does(tmp_path):
    with ScriptedServer() as server:
        server.push(Reply.error(409))
        judge = make("openai", server, tmp_path)
        verdicts = judge.judge(build_items(tmp_path / "img", 1), progress=False)
    assert verdicts[0].label is not None and judge.stats.retries == 1


# -- finish reasons --------------------------------------------------------------------------------
@pytest.mark.parametrize("reason", ["PUP_LIMITED_DISABLED", "ESCALATION", "IMAGE_RECITATION"])
def test_final_finish_reasons_fail_their_sample_without_a_retry(reason, tmp_path):
    with ScriptedServer(shapes="real") as server:
        server.push(Reply.finished(reason, stage="extraction-text"))
        judge = make("gemini", server, tmp_path)
        verdicts = judge.judge(build_items(tmp_path / "img", 1), progress=False)
    assert verdicts[0].label is None and reason in verdicts[0].error
    assert judge.stats.retries == 0
    blocked = [r for r in server.requests if r.reply == "answer" and r.stage == "extraction-text"]
    assert len(blocked) == 1  # asked once


# -- Gemini Batch Mode: answers without their metadata ---------------------------------------------
def test_gemini_batch_answers_without_metadata_are_matched_by_position(tmp_path):
    items = build_items(tmp_path / "img", 2)
    with ScriptedServer(shapes="real") as server:
        server.batches.echo_metadata = False
        batch = make("gemini", server, tmp_path, batch=True, batch_poll=0.02)
        got = batch.judge(items, progress=False)
        sync = make("gemini", server, tmp_path, cache_dir=str(tmp_path / "sync"))
        want = sync.judge(items, progress=False)
    assert all(v.label is not None for v in got) and got == want


def test_inlined_answers_match_by_metadata_then_key_then_position():
    class Item:
        def __init__(self, metadata=None, key=None):
            self.metadata, self.key = metadata, key

    a, b, c = Item({"request": "r1"}), Item({"key": "r2"}), Item()
    assert match_inlined([a, b, c], ["r1", "r2", "r3"]) == [("r1", a), ("r2", b), ("r3", c)]
    # fewer answers than requests: an answer without an id cannot be placed safely
    assert match_inlined([a, c], ["r1", "r2", "r3"]) == [("r1", a)]


# -- the local server's shapes ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "status,name", [(401, "UNAUTHENTICATED"), (403, "PERMISSION_DENIED"), (404, "NOT_FOUND")]
)
def test_gemini_errors_carry_their_google_rpc_status_names(status, name):
    with ScriptedServer() as server:
        server.push(Reply.error(status))
        code, _, body = post(f"{server.url}/v1beta/models/m:generateContent", GEMINI_BODY)
    assert code == status and body["error"] == {
        "code": status,
        "message": body["error"]["message"],
        "status": name,
    }


def test_openai_errors_carry_all_four_fields_and_an_integer_retry_after(tmp_path):
    chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    with ScriptedServer(shapes="real") as server:
        server.push(Reply.real("retry_info", retry_after=1.25), Reply.error(500))
        code, headers, body = post(f"{server.openai_base_url}/chat/completions", chat)
        code2, _, body2 = post(f"{server.openai_base_url}/chat/completions", chat)
    assert code == 429 and body["error"]["code"] == "rate_limit_exceeded"
    assert headers["retry-after"] == "2" and headers["retry-after-ms"] == "1250"
    for error in (body["error"], body2["error"]):
        assert set(error) == {"message", "type", "param", "code"} and error["param"] is None
    assert code2 == 500 and body2["error"]["type"] == "server_error"


def test_gemini_answers_omit_zero_token_counts(tmp_path):
    with ScriptedServer(shapes="real", thinking=0) as server:
        server.push(Reply.real("max_tokens"), Reply.real("blocked_prompt"), Reply.ok())
        url = f"{server.url}/v1beta/models/m:generateContent"
        cut, blocked, fine = (post(url, GEMINI_BODY)[2]["usageMetadata"] for _ in range(3))
    assert "candidatesTokenCount" not in cut and cut["thoughtsTokenCount"] > 0
    assert set(blocked) == {"promptTokenCount", "totalTokenCount"}
    assert "thoughtsTokenCount" not in fine and fine["candidatesTokenCount"] > 0


def test_openai_batches_pass_through_validating_and_finalizing(tmp_path):
    import openai

    seen = []
    with ScriptedServer() as server:
        client = openai.OpenAI(api_key="local-test-key", base_url=server.openai_base_url)
        line = {"custom_id": "r1", "method": "POST", "url": "/v1/chat/completions"}
        line["body"] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        upload = client.files.create(
            file=("b.jsonl", json.dumps(line).encode(), "application/jsonl"), purpose="batch"
        )
        batch = client.batches.create(
            input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        seen.append(batch.status)
        while seen[-1] not in ("completed", "failed", "expired", "cancelled"):
            seen.append(client.batches.retrieve(batch.id).status)
        client.close()
    assert seen == ["validating", "in_progress", "finalizing", "completed"]


# -- Gemini 3: the default temperature ---------------------------------------------------------------
def test_gemini_3_models_keep_their_default_temperature(tmp_path):
    rows = [row for row in models.MODELS["gemini"].values() if row.thinking == "level"]
    assert len(rows) >= 8 and not any(row.sampling for row in rows)
    with ScriptedServer() as server:
        for row in rows:
            judge = make("gemini", server, tmp_path, model=row.id, cache=False)
            judge.judge(build_items(tmp_path / "img", 1), progress=False)
    for request in server.requests:
        config = request.body["generationConfig"]
        assert "temperature" not in config and "seed" not in config, request.model
        thinking = config["thinkingConfig"]
        assert thinking.get("thinkingLevel", thinking.get("thinking_level")) == "LOW"
    assert {r.model for r in server.requests} == {row.id for row in rows}


# -- the fast request path against the simple one --------------------------------------------------
def test_gemini_requests_go_out_as_the_plain_sdk_call_sends_them(tmp_path):
    import asyncio
    import hashlib
    import io

    from PIL import Image

    from slim_leakage.judge.backends.base import BackendRequest, Decoding, ImageInput
    from slim_leakage.judge.stages import RANKING_QUESTION

    def png(color):
        buffer = io.BytesIO()
        Image.new("RGB", (16, 16), color).save(buffer, format="PNG")
        data = buffer.getvalue()
        return data, hashlib.sha256(data).hexdigest()

    images = []
    for n, color in enumerate(((255, 0, 0), (0, 0, 255)), 1):
        data, sha = png(color)
        images.append(ImageInput(data, "image/png", sha, label=f"Image {n}", width=16, height=16))
    request = BackendRequest(
        stage="ranking",
        version="v1",
        text="Which image leaks less?",
        images=tuple(images),
        schema=RANKING_QUESTION.schema(("cat", "dog")),
        decoding=Decoding(),
    )
    with ScriptedServer() as server:
        for model in ("gemini-3.6-flash", "gemini-2.5-flash", "gemini-99-ultra"):
            backend = make("gemini", server, tmp_path, model=model).backend

            async def both(backend=backend):
                await backend.complete([request])  # the judge's path
                client = backend._get_client()  # the plain SDK call: a list, a plain config
                await client.aio.models.generate_content(
                    model=backend.model,
                    contents=backend._contents(request),
                    config=backend._config(request),
                )
                await backend.aclose()

            asyncio.run(both())
    bodies = [r.body for r in server.requests]
    assert len(bodies) == 6
    for fast, plain in zip(bodies[::2], bodies[1::2]):
        assert fast == plain
    assert len(bodies[0]["contents"]) == 1 and len(bodies[0]["contents"][0]["parts"]) == 5
