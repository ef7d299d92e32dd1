"""Batch mode (``batch=true``) against the local server's Gemini Batch Mode and OpenAI Batch API.

The server answers each batched request exactly as it would answer it synchronously
(``ScriptedServer.outcome``), wrapped in each interface's shape (``judge/testing/batch.py``), so
the verdicts of a batch run and of a synchronous run on the same answers must be identical.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time

import pytest

from slim_leakage.errors import ConfigError
from slim_leakage.judge import get_judge, models, pricing
from slim_leakage.judge.batching import request_id
from slim_leakage.judge.testing import Reply, ScriptedServer
from slim_leakage.rundir import BATCHES, BatchBook

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


def make(name, server, cache, **options):
    base_url = server.url if name == "gemini" else server.openai_base_url
    options.setdefault("backoff_base", 0.01)
    judge = get_judge(name, base_url=base_url, cache_dir=str(cache), **options)
    judge.notify = lambda line: None
    return judge


def _batched(server):
    return [r for r in server.requests if r.path.endswith("#item")]


def test_batch_results_are_identical_to_synchronous_calls(api, tmp_path):
    items = build_items(tmp_path / "img", 3)
    with ScriptedServer(shapes="real", thinking=40) as server:
        batch = make(api, server, tmp_path / "b", batch=True, batch_poll=0.02)
        batch.use_run_dir(tmp_path / "run")
        got = batch.judge(items, progress=False)
        sent_in_batches = len(server.requests)
        sync = make(api, server, tmp_path / "s")
        want = sync.judge(items, progress=False)
        asked = len(server.requests)
        # batch answers are cached under the keys of synchronous calls: nothing is asked again
        assert make(api, server, tmp_path / "b").judge(items, progress=False) == want
        assert len(server.requests) == asked
    assert got == want and all(v.label is not None for v in got)
    # every request went through a batch: one per stage wave, none synchronously
    assert len(_batched(server)) == sent_in_batches == len(server.requests) - sent_in_batches
    assert len(server.batches.jobs) == batch.batcher.submitted == 3
    b, s = batch.stats.to_dict(), sync.stats.to_dict()
    assert b["calls"] == s["calls"] and b["thinking_tokens"] == s["thinking_tokens"] > 0
    share = models.BATCH_DISCOUNT[api][0]
    assert b["cost_usd"] == pytest.approx(share * s["cost_usd"], rel=1e-3)
    book = json.loads((tmp_path / "run" / BATCHES).read_text())["batches"]
    assert sorted(book) == sorted(server.batches.jobs)
    assert {e["state"] for e in book.values()} == {"done"}


def _killed_run(name, base_url, cache, run, images):
    os.environ["GEMINI_API_KEY"] = os.environ["OPENAI_API_KEY"] = "local-test-key"
    judge = get_judge(name, base_url=base_url, cache_dir=cache, batch=True, batch_poll=0.05)
    judge.notify = lambda line: None
    judge.use_run_dir(run)
    judge.judge(build_items(images, 2), progress=False)


def test_a_killed_run_resumes_by_polling_its_batches(api, tmp_path):
    run, images = tmp_path / "run", tmp_path / "img"
    build_items(images, 2)
    with ScriptedServer(shapes="real") as server:
        server.batches.delay = 60.0  # the first batch is still pending when the run is killed
        base = server.url if api == "gemini" else server.openai_base_url
        ctx = multiprocessing.get_context("fork")
        child = ctx.Process(
            target=_killed_run, args=(api, base, str(tmp_path / "c"), str(run), images)
        )
        child.start()
        deadline = time.monotonic() + 60
        while not (run / BATCHES).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        book = BatchBook(run / BATCHES).batches()
        assert len(book) == 1 and len(server.batches.jobs) == 1
        (first,) = book
        asked = len(server.requests)

        server.batches.delay = 0.3
        judge = make(api, server, tmp_path / "c", batch=True, batch_poll=0.05)
        judge.use_run_dir(run)
        verdicts = judge.judge(build_items(images, 2), progress=False)
    assert all(v.label is not None for v in verdicts)
    # the first wave was not submitted again: its requests waited for the batch paid for
    assert judge.batcher.resumed == len(book[first]["requests"]) == asked
    assert len(server.batches.jobs) == 1 + judge.batcher.submitted == 3
    assert len(_batched(server)) == asked + sum(
        len(e["requests"]) for k, e in BatchBook(run / BATCHES).batches().items() if k != first
    )


def test_failed_batch_items_are_judge_errors_and_submitted_again_next_time(api, tmp_path):
    items = build_items(tmp_path / "img", 2)
    with ScriptedServer(shapes="real") as server:
        server.push(Reply.error(500, stage="ranking"))
        judge = make(api, server, tmp_path / "c", batch=True, batch_poll=0.02)
        judge.use_run_dir(tmp_path / "run")
        verdicts = judge.judge(items, progress=False)
        failed = [v for v in verdicts if v.label is None]
        assert len(failed) == 1 and "the batch answered this request with an error" in (
            failed[0].error
        )
        assert judge.stats.retries == 0  # an item's error is final for this run
        # the failed request left the book: judging again submits it, once, and labels it
        again = make(api, server, tmp_path / "c", batch=True, batch_poll=0.02)
        again.use_run_dir(tmp_path / "run")
        assert all(v.label is not None for v in again.judge(items, progress=False))
        assert again.batcher.resumed == 0 and again.batcher.submitted == 1


def test_an_expired_batch_counts_its_unanswered_requests_as_judge_errors(api, tmp_path):
    items = build_items(tmp_path / "img", 2)
    with ScriptedServer(shapes="real") as server:
        server.batches.expire = True
        judge = make(api, server, tmp_path / "c", batch=True, batch_poll=0.02)
        verdicts = judge.judge(items, progress=False)
    assert [v.label for v in verdicts] == [None, None]  # every sample counted, none lost
    assert all("expired" in v.error.lower() for v in verdicts)
    # Gemini's expired job has no output; OpenAI's keeps the answers finished in time (the
    # first half); every request without an answer is one failed request
    jobs = list(server.batches.jobs.values())
    kept = [0 if api == "gemini" else len(job["items"]) // 2 for job in jobs]
    assert judge.stats.failed_requests == sum(len(j["items"]) for j in jobs) - sum(kept)


def test_batch_answers_that_cannot_succeed_take_the_synchronous_paths(api, tmp_path):
    items = build_items(tmp_path / "img", 2)
    with ScriptedServer(shapes="real") as server:
        server.push(
            Reply.real("safety", stage="typicality"), Reply.real("max_tokens", stage="ranking")
        )
        judge = make(api, server, tmp_path / "c", batch=True, batch_poll=0.02)
        verdicts = judge.judge(items, progress=False)
    blocked = [v for v in verdicts if v.label is None]
    assert len(blocked) == 1 and "blocked" in blocked[0].error  # final, not retried
    assert judge.stats.retries == 0
    # MAX_TOKENS without text: asked once more with a larger budget, in the next batch
    assert judge.stats.output_limit_retries == 1 and all(
        v.label is not None for v in verdicts if v is not blocked[0]
    )
    assert len(server.batches.jobs) == judge.batcher.submitted == 4


def test_batch_is_refused_where_the_api_has_no_batch_interface(tmp_path):
    with pytest.raises(ConfigError, match="no batch interface"):
        get_judge(
            "openai-compatible",
            base_url="http://127.0.0.1:9/v1",
            batch=True,
            cache_dir=str(tmp_path),
        )


def test_request_ids_are_stable_and_tell_budgets_apart(tmp_path):
    import dataclasses

    from slim_leakage.judge.backends.base import BackendRequest, Decoding

    request = BackendRequest(
        stage="ranking",
        version="v1",
        text="t",
        images=(),
        schema={},
        decoding=Decoding(0.0, 100, 0),
        key="k",
    )
    bigger = dataclasses.replace(request, decoding=Decoding(0.0, 400, 0))
    assert request_id(request) == request_id(dataclasses.replace(request))
    assert request_id(request) != request_id(bigger)


def test_batch_prices_are_half_the_list_prices_with_a_source():
    for provider, model in models.DEFAULTS.items():
        spec = models.lookup(provider, model)
        price, batch = spec.price, models.batch_price(spec)
        assert batch.input == pytest.approx(price.input / 2)
        assert batch.output == pytest.approx(price.output / 2)
        assert batch.source.startswith("https://")
        full, _ = pricing.cost_usd(provider, model, 1e6, 1e6)
        half, _ = pricing.cost_usd(provider, model, 1e6, 1e6, batch=True)
        assert half == pytest.approx(full / 2)


def test_slim_eval_judge_in_batch_mode_keeps_its_batches_beside_its_records(cli, tmp_path):
    from .test_cli import make_run

    run = tmp_path / "run"
    make_run(run)
    with ScriptedServer(shapes="real") as server:
        code, stdout, err = cli(
            "judge", str(run), "--judge", "openai",
            "--judge-arg", f"base_url={server.openai_base_url}",
            "--judge-arg", f"cache_dir={tmp_path / 'cache'}",
            "--judge-arg", "batch=true", "--judge-arg", "batch_poll=0.02",
            "--no-progress", "--json",
        )  # fmt: skip
    assert code == 0, err
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["n_labelled"] == 3 and summary["judge_errors"] == 0
    book = BatchBook(run / "judged" / "openai-gpt-5.4-mini-2026-03-17" / BATCHES).batches()
    assert sorted(book) == sorted(server.batches.jobs) and len(book) == 3
    assert len(_batched(server)) == len(server.requests)
