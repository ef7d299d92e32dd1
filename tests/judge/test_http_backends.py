"""The real OpenAI and Gemini SDKs against the local protocol server on 127.0.0.1."""

from __future__ import annotations

import time

import pytest

from slim_leakage.errors import ConfigError
from slim_leakage.judge import get_judge
from slim_leakage.judge.testing import Reply, ScriptedServer

from .conftest import build_items

pytest.importorskip("openai")
pytest.importorskip("google.genai")

SECRET = "sk-do-not-store-0123456789"


@pytest.fixture
def server():
    with ScriptedServer() as srv:
        yield srv


@pytest.fixture(params=["openai", "openai-compatible", "gemini"])
def backend_name(request, monkeypatch):
    if request.param == "gemini":
        monkeypatch.setenv("GEMINI_API_KEY", SECRET)
    else:
        monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    return request.param


def judge_for(name, server, tmp_path, **options):
    base_url = server.url if name == "gemini" else server.openai_base_url
    options.setdefault("cache_dir", str(tmp_path / "cache"))
    options.setdefault("backoff_base", 0.01)
    return get_judge(name, base_url=base_url, **options)


def test_full_protocol_over_http(backend_name, server, tmp_path):
    items = build_items(tmp_path / "img", 3)
    judge = judge_for(backend_name, server, tmp_path)
    verdicts = judge.judge(items, progress=False)
    assert all(v.label is not None for v in verdicts), [v.error for v in verdicts]
    assert server.count() == 18
    protocol = "gemini" if backend_name == "gemini" else "openai"
    assert {r.protocol for r in server.requests} == {protocol}
    assert all(r.has_auth for r in server.requests)
    typicality = [r for r in server.requests if r.stage == "typicality"]
    assert all(len(r.images) == 1 for r in typicality)
    refs = [r for r in server.requests if r.stage == "extraction-images"]
    assert all(len(r.images) == 2 for r in refs)
    # Decoding: what the model table says and a JSON schema reach the wire.
    body = server.requests[0].body
    if backend_name == "openai":
        # gpt-5.4-mini-2026-03-17: reasoning effort low, no sampling parameters, room for
        # reasoning tokens on top of the answer budget.
        assert body["reasoning_effort"] == "low" and "temperature" not in body
        assert body["max_completion_tokens"] == 1024 + 2048
    elif backend_name == "openai-compatible":
        assert body["temperature"] == 0.0 and "reasoning_effort" not in body
        assert body["max_tokens"] == 1024
    if protocol == "openai":
        assert body["response_format"]["type"] == "json_schema"
        assert body["response_format"]["json_schema"]["strict"] is True
        assert "minimum" not in str(body["response_format"])  # the portable subset
        assert body["model"] == judge.backend.model
    else:
        # gemini-3.6-flash: thinking level low, temperature deprecated so not sent, the pinned
        # API version in the path.
        config = body["generationConfig"]
        thinking = config["thinkingConfig"]  # the SDK passes its field names through as-is
        assert thinking.get("thinkingLevel", thinking.get("thinking_level")) == "LOW"
        assert "temperature" not in config and config["maxOutputTokens"] == 1024 + 2048
        assert config["responseMimeType"] == "application/json"
        assert server.requests[0].path.startswith("/v1beta/models/gemini-3.6-flash:")
    # The same labels come back from a second judge on the same cache, with no request.
    again = judge_for(backend_name, server, tmp_path).judge(items, progress=False)
    assert again == verdicts and server.count() == 18


def test_api_key_never_reaches_the_cache(backend_name, server, tmp_path):
    judge = judge_for(backend_name, server, tmp_path, api_key=SECRET)
    judge.judge(build_items(tmp_path / "img", 1), progress=False)
    judge.close()
    files = list((tmp_path / "cache").rglob("*"))
    assert files
    for f in files:
        if f.is_file():
            assert SECRET.encode() not in f.read_bytes()
    assert SECRET not in str(judge.describe())


def test_429_with_retry_after_is_honoured(backend_name, server, tmp_path):
    server.push(Reply.error(429, retry_after=0.4))
    judge = judge_for(backend_name, server, tmp_path, concurrency=1)
    start = time.monotonic()
    verdicts = judge.judge(build_items(tmp_path / "img", 1), progress=False)
    assert verdicts[0].label is not None
    assert time.monotonic() - start >= 0.4
    first, second = server.requests[0], server.requests[1]
    assert first.reply == "status:429" and second.time - first.time >= 0.39
    assert judge.stats.retries == 1


def test_500_dropped_connection_and_bad_json_are_survived(backend_name, server, tmp_path):
    # One bad answer per stage, so that no repair request meets a second scripted fault.
    server.push(
        Reply.error(500),
        Reply.drop(),
        Reply.malformed(stage="extraction-text"),
        Reply.truncated(stage="typicality"),
        Reply.wrong_schema(stage="ranking"),
    )
    judge = judge_for(backend_name, server, tmp_path, concurrency=1)
    verdicts = judge.judge(build_items(tmp_path / "img", 2), progress=False)
    assert all(v.label is not None for v in verdicts), [v.error for v in verdicts]
    assert judge.stats.retries == 2 and judge.stats.repairs == 3
    assert server.pending() == 0


def test_timeout_is_retried(backend_name, server, tmp_path):
    server.push(Reply.slow(2.0))
    judge = judge_for(backend_name, server, tmp_path, timeout=0.5, concurrency=1)
    verdicts = judge.judge(build_items(tmp_path / "img", 1), progress=False)
    assert verdicts[0].label is not None and judge.stats.retries == 1


def test_unauthorised_is_final_and_recorded(backend_name, server, tmp_path):
    server.push(Reply.error(401, stage="extraction-text"))
    judge = judge_for(backend_name, server, tmp_path)
    verdicts = judge.judge(build_items(tmp_path / "img", 2), progress=False)
    failed = [v for v in verdicts if v.label is None]
    assert len(failed) == 1 and "401" in failed[0].error
    assert judge.stats.retries == 0


def test_random_faults_slow_the_run_but_do_not_crash_it(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    rates = {"429": 0.1, "500": 0.1, "drop": 0.05, "malformed": 0.05, "wrong_schema": 0.05}
    with ScriptedServer(fault_rates=rates, retry_after=0.01, seed=3) as server:
        judge = judge_for("openai", server, tmp_path, max_retries=6)
        verdicts = judge.judge(build_items(tmp_path / "img", 8), progress=False)
    assert len(verdicts) == 8
    labelled = [v for v in verdicts if v.label is not None]
    assert len(labelled) + judge.stats.errors == 8
    assert judge.stats.retries > 0 and len(labelled) >= 6


def test_missing_key_fails_before_any_request(server, tmp_path):
    items = build_items(tmp_path / "img", 1)
    for name in ("openai", "gemini"):
        judge = judge_for(name, server, tmp_path)
        with pytest.raises(ConfigError, match="API key"):
            judge.judge(items, progress=False)
    assert server.count() == 0


def test_openai_compatible_needs_no_key_but_a_base_url(server, tmp_path):
    judge = judge_for("openai-compatible", server, tmp_path, model="qwen2.5-vl")
    assert judge.judge(build_items(tmp_path / "img", 1), progress=False)[0].label
    assert server.requests[0].model == "qwen2.5-vl"
    assert judge.describe()["base_url"] == server.openai_base_url
    with pytest.raises(ConfigError, match="base_url"):
        get_judge("openai-compatible")


def test_position_bias_shows_up_as_order_flips(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with ScriptedServer(fault_rates={"position_bias": 1.0}) as server:
        judge = judge_for("openai", server, tmp_path)
        verdicts = judge.judge(build_items(tmp_path / "img", 4), progress=False)
        assert server.count(stage="typicality", reply="answer") == 8  # bias spares typicality
    flipped = [v for v in verdicts if v.order_flip]
    # A biased ranking says "the first image", so the two orders disagree, unless both
    # reports were identical (then both orders are one shared request).
    assert flipped and all(v.label == "no-change" for v in flipped)
    assert judge.stats.order_flips == len(flipped)
    assert judge.stats.order_flip_rate == len(flipped) / 4
