"""The answer cache keys and storage; rate limits and backoff."""

from __future__ import annotations

import asyncio
import time

import pytest

from slim_leakage.errors import ConfigError
from slim_leakage.judge.cache import AnswerCache, default_cache_dir, request_key
from slim_leakage.judge.limits import RateLimiter, TokenBucket, backoff_delay

BASE = dict(
    backend="openai",
    model="gpt-4o-2024-08-06",
    stage="typicality",
    version="v1",
    text="How typical?",
    schema={"title": "typicality"},
    image_sha256s=["a" * 64],
    decoding={"temperature": 0.0, "max_output_tokens": 1024, "seed": 0},
)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("backend", "gemini"),
        ("model", "gpt-4o-mini"),
        ("stage", "ranking"),
        ("version", "v2"),
        ("text", "How typical? "),
        ("schema", {"title": "ranking"}),
        ("image_sha256s", ["b" * 64]),
        ("image_labels", ["Image 2"]),
        ("decoding", {"temperature": 0.5, "max_output_tokens": 1024, "seed": 0}),
    ],
)
def test_every_key_part_changes_the_key(field, value):
    assert request_key(**BASE) != request_key(**{**BASE, field: value})


def test_key_is_stable_and_ignores_dict_order():
    reordered = {**BASE, "decoding": {"seed": 0, "max_output_tokens": 1024, "temperature": 0.0}}
    assert request_key(**BASE) == request_key(**reordered)


def test_keys_of_requests_sent_as_before_do_not_change():
    # The key BASE had before wire settings and served models existed: a request that a
    # backend sends as it is keeps its key (and its cached answer).
    old = "cf91d12f2f7ec23910c4c187fd5f8ed63d81026ffbcdf88f7e59ffe1e76e2b6b"
    assert request_key(**BASE) == old
    assert request_key(**BASE, settings={}) == old
    assert request_key(**BASE, settings={"thinking_level": "low"}) != old


def test_cache_persists_across_instances(tmp_path):
    path = tmp_path / "c" / "judge.sqlite3"
    cache = AnswerCache(path)
    key = request_key(**BASE)
    assert cache.get(key) is None
    cache.put(
        key,
        backend="openai",
        model="m",
        stage="typicality",
        version="v1",
        text="{}",
        input_tokens=12,
        output_tokens=3,
        served_model="m-002",
        thinking_tokens=40,
    )
    cache.close()
    again = AnswerCache(path)
    assert again.get(key) == {
        "text": "{}",
        "input_tokens": 12,
        "output_tokens": 3,
        "served_model": "m-002",
        "thinking_tokens": 40,
    }
    assert len(again) == 1


def test_a_cache_written_before_served_models_loads(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE answers (key TEXT PRIMARY KEY, backend TEXT NOT NULL, model TEXT NOT NULL,"
        " stage TEXT NOT NULL, version TEXT NOT NULL, text TEXT NOT NULL, input_tokens INTEGER,"
        " output_tokens INTEGER, created REAL NOT NULL)"
    )
    db.execute("INSERT INTO answers VALUES ('k', 'gemini', 'g', 'ranking', 'v1', '{}', 1, 2, 0)")
    db.commit()
    db.close()
    cache = AnswerCache(path)
    assert cache.get("k") == {
        "text": "{}",
        "input_tokens": 1,
        "output_tokens": 2,
        "served_model": None,
        "thinking_tokens": None,
    }
    cache.put("k2", backend="b", model="m", stage="s", version="v1", text="{}", served_model="x")
    assert cache.get("k2")["served_model"] == "x" and len(cache) == 2
    cache.close()
    assert len(AnswerCache(path)) == 2  # opening it again adds nothing twice


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SLIM_CACHE_DIR", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x"
    monkeypatch.delenv("SLIM_CACHE_DIR")
    assert default_cache_dir().name == "slim-leakage"


def test_unwritable_cache_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="cache_dir"):
        AnswerCache(blocker / "sub" / "judge.sqlite3")


def test_token_bucket_refills_at_its_rate():
    bucket = TokenBucket(rate=10.0, capacity=1.0)
    assert bucket.wait_time(1) == 0
    bucket.take(1)
    assert 0.05 < bucket.wait_time(1) <= 0.1


def test_rpm_budget_spaces_requests():
    limiter = RateLimiter(concurrency=8, rpm=600)  # 10 per second, burst of 8

    async def go():
        start = time.monotonic()
        for _ in range(12):
            await limiter.acquire(1)
            limiter.release(1, None)
        return time.monotonic() - start

    elapsed = asyncio.run(go())
    assert 0.3 <= elapsed < 1.0  # 8 at once, then 4 more at 0.1 s each


def test_tpm_budget_is_corrected_by_actual_usage():
    limiter = RateLimiter(concurrency=4, tpm=6000)  # 100 tokens per second, 1000 saved

    async def go():
        await limiter.acquire(100)
        limiter.release(100, 1000)  # it used ten times the estimate: the budget is spent
        start = time.monotonic()
        await limiter.acquire(20)
        limiter.release(20, None)
        return time.monotonic() - start

    assert asyncio.run(go()) >= 0.15


def test_pause_holds_new_requests():
    limiter = RateLimiter(concurrency=2)

    async def go():
        limiter.pause(0.2)
        start = time.monotonic()
        await limiter.acquire(1)
        limiter.release(1, None)
        return time.monotonic() - start

    assert asyncio.run(go()) >= 0.19


def test_backoff_grows_and_is_capped():
    import random

    rng = random.Random(0)
    for attempt in range(8):
        d = backoff_delay(attempt, base=0.5, cap=4.0, rng=rng)
        ceiling = min(4.0, 0.5 * 2**attempt)
        assert ceiling / 2 <= d <= ceiling


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": 1, "rpm": 0}, "rpm"),
        ({"concurrency": 1, "tpm": -5}, "tpm"),
    ],
)
def test_limiter_rejects_bad_settings(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        RateLimiter(**kwargs)


def test_several_processes_open_one_cache_at_once(tmp_path):
    """Ranks of a distributed run share the cache: opening it together must not fail."""
    import subprocess
    import sys
    import textwrap
    import time

    script = textwrap.dedent(
        """
        import os, sys, time
        from slim_leakage.judge.cache import AnswerCache
        start = float(sys.argv[2])
        while time.time() < start:
            pass
        cache = AnswerCache(sys.argv[1])
        for i in range(50):
            key = f"{os.getpid()}-{i}"
            cache.put(key, backend="b", model="m", stage="s", version="v1", text="t")
            assert cache.get(key)["text"] == "t"
        print("ok")
        """
    )
    path = tmp_path / "cache.sqlite"
    start = time.time() + 2.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(path), str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0 and out.strip() == "ok", err[-1500:]
