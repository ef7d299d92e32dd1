"""The judge against the real services' shapes, replayed by the local protocol server.

Each behaviour of the Gemini and OpenAI backends that depends on what the real APIs send back
(thinking budgets, MAX_TOKENS with no text, blocked answers, RetryInfo waits, quotas that stop
a run, rerouted models) is checked here against ``ScriptedServer`` answering in those shapes.
"""

from __future__ import annotations

import json
import time

import pytest

from slim_leakage.errors import QuotaExhaustedError, UsageError
from slim_leakage.judge import get_judge, models
from slim_leakage.judge.testing import FAULT_KINDS, HOPELESS_KINDS, Reply, ScriptedServer
from slim_leakage.records import StageResult, Verdict

from .conftest import build_items

pytest.importorskip("openai")
pytest.importorskip("google.genai")

KEY = "local-test-key"


@pytest.fixture(autouse=True)
def keys(monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


def make(name, server, tmp_path, notes=None, **options):
    base_url = server.url if name == "gemini" else server.openai_base_url
    options.setdefault("cache_dir", str(tmp_path / "cache"))
    options.setdefault("backoff_base", 0.01)
    judge = get_judge(name, base_url=base_url, **options)
    judge.notify = notes.append if notes is not None else lambda line: None
    return judge


@pytest.fixture(params=["gemini", "openai"])
def api(request):
    return request.param


# -- the model table ------------------------------------------------------------------------------
def test_defaults_are_current_models_with_prices_and_sources():
    for provider, model in models.DEFAULTS.items():
        spec = models.lookup(provider, model)
        assert spec.stage == "ga" and spec.shutdown is None
        assert spec.price is not None and spec.price.read == models.READ_ON
        assert spec.price.source and spec.source
    gemini = models.lookup("gemini", "gemini-3.6-flash")
    assert (gemini.thinking, gemini.judging, gemini.sampling) == ("level", "low", False)
    assert models.lookup("gemini", "gemini-2.5-flash").thinking == "budget"
    assert models.lookup("openai", "gpt-4o-2024-08-06").shutdown == "2027-01-14"
    unknown = models.lookup("gemini", "gemini-99-ultra")
    assert not unknown.known and unknown.wire_settings() == {}
    assert "not in the judge's model table" in models.notice(unknown)


def test_an_unknown_model_is_sent_as_before_with_one_notice(tmp_path):
    notes = []
    with ScriptedServer() as server:
        judge = make("gemini", server, tmp_path, notes, model="gemini-99-ultra")
        verdicts = judge.judge(build_items(tmp_path / "img", 2), progress=False)
    assert all(v.label is not None for v in verdicts)
    assert len(notes) == 1 and "not in the judge's model table" in notes[0]
    config = server.requests[0].body["generationConfig"]
    assert config["temperature"] == 0.0 and config["maxOutputTokens"] == 1024
    assert "thinkingConfig" not in config
    assert judge.stats.priced is False


# -- thinking: budgets, MAX_TOKENS, accounting ---------------------------------------------------
def test_thinking_tokens_are_counted_and_priced_per_stage(api, tmp_path):
    with ScriptedServer(shapes="real", thinking=300) as server:
        judge = make(api, server, tmp_path)
        judge.judge(build_items(tmp_path / "img", 2), progress=False)
    stats = judge.stats
    assert stats.thinking_tokens == 300 * stats.calls and stats.output_limit_retries == 0
    assert sum(row["thinking_tokens"] for row in stats.by_stage.values()) == stats.thinking_tokens
    assert sum(row["calls"] for row in stats.by_stage.values()) == stats.calls
    price = models.lookup(api, judge.backend.model).price
    billed_out = stats.output_tokens + stats.thinking_tokens
    expected = (stats.input_tokens * price.input + billed_out * price.output) / 1e6
    assert stats.cost_usd == pytest.approx(expected)
    assert stats.to_dict()["by_stage"]["ranking"]["thinking_tokens"] == 300 * 4


def test_stage_records_carry_the_tokens_and_cost_of_their_calls(api, tmp_path):
    from slim_leakage.metrics import judge_usage

    records: list[StageResult] = []
    with ScriptedServer(shapes="real", thinking=300) as server:
        judge = make(api, server, tmp_path)
        judge.judge(build_items(tmp_path / "img", 2), progress=False, on_stage=records.append)
        usage = judge_usage(records)
        stats = judge.stats
        for field in ("calls", "input_tokens", "output_tokens", "thinking_tokens"):
            assert usage[field] == getattr(stats, field) > 0, field
        assert usage["cost_usd"] == pytest.approx(stats.cost_usd, abs=1e-6)
        assert usage["by_stage"]["ranking"]["thinking_tokens"] == 300 * 4
        # the same items again: every answer comes from the cache and nothing is spent
        again: list[StageResult] = []
        judge.judge(build_items(tmp_path / "img", 2), progress=False, on_stage=again.append)
    spent_again = judge_usage(again)
    assert again and spent_again["calls"] == spent_again["thinking_tokens"] == 0
    assert spent_again["cost_usd"] == 0.0
    assert all(r.calls == 0 and r.thinking_tokens == 0 and r.cost_usd == 0 for r in again)


def test_max_tokens_without_text_is_asked_once_more_with_a_larger_budget(api, tmp_path):
    # A model the table does not know gets no thinking allowance: 1,500 thinking tokens do not
    # fit in 1,024 and the answer is MAX_TOKENS with no text; 4x the budget fits.
    model = "gemini-99-ultra" if api == "gemini" else "my-reasoner"
    with ScriptedServer(shapes="real", thinking=1500) as server:
        judge = make(api, server, tmp_path, model=model)
        verdicts = judge.judge(build_items(tmp_path / "img", 1), progress=False)
    assert verdicts[0].label is not None, verdicts[0].error
    questions = 6
    assert judge.stats.output_limit_retries == questions and judge.stats.calls == 2 * questions
    assert judge.stats.retries == 0
    limits = sorted(
        {
            r.body.get("generationConfig", r.body).get("maxOutputTokens")
            or r.body.get("max_completion_tokens")
            for r in server.requests
        }
    )
    assert limits == [1024, 4096]
    # Thinking spent on the cut-off answers is counted too.
    assert judge.stats.thinking_tokens == questions * (1024 + 1500)


def test_the_default_models_leave_room_for_thinking(api, tmp_path):
    with ScriptedServer(shapes="real", thinking=1500) as server:
        judge = make(api, server, tmp_path)
        judge.judge(build_items(tmp_path / "img", 1), progress=False)
    assert judge.stats.calls == 6 and judge.stats.output_limit_retries == 0


def test_max_tokens_twice_is_a_judge_error_naming_the_cause(api, tmp_path):
    with ScriptedServer(shapes="real") as server:
        server.push(*[Reply.real("max_tokens", stage="extraction-text")] * 2)
        judge = make(api, server, tmp_path, concurrency=1)
        verdicts = judge.judge(build_items(tmp_path / "img", 1), progress=False)
    error = verdicts[0].error
    assert verdicts[0].label is None and "output limit" in error and "thinking" in error
    assert server.count(stage="extraction-text") == 2  # one try and one larger try, no more
    assert judge.stats.retries == 0


# -- answers no retry can change --------------------------------------------------------------
@pytest.mark.parametrize("shape", ["safety", "blocked_prompt"])
def test_blocked_answers_fail_their_sample_without_a_retry(api, shape, tmp_path):
    with ScriptedServer(shapes="real") as server:
        server.push(Reply.real(shape, stage="typicality"))
        judge = make(api, server, tmp_path, concurrency=1)
        verdicts = judge.judge(build_items(tmp_path / "img", 2), progress=False)
    failed = [v for v in verdicts if v.label is None]
    assert len(failed) == 1 and "blocked" in failed[0].error
    assert ("SAFETY" if api == "gemini" else "content_filter") in failed[0].error
    assert judge.stats.retries == 0 and judge.stats.repairs == 0
    blocked = [r for r in server.requests if r.reply == f"shape:{shape}"]
    assert len(blocked) == 1
    again = [
        r for r in server.requests if r.text == blocked[0].text and r.images == blocked[0].images
    ]
    assert len(again) == 1  # never asked again


@pytest.mark.parametrize("shape", ["daily_quota", "insufficient_quota"])
def test_a_quota_that_cannot_come_back_stops_the_run_and_it_resumes(api, shape, tmp_path):
    items = build_items(tmp_path / "img", 3)
    records, verdicts = [], []
    with ScriptedServer(shapes="real", latency=0.01) as server:
        server.push(Reply.ok(), Reply.ok(), Reply.real(shape, retry_after=9 * 3600 + 120))
        judge = make(api, server, tmp_path, concurrency=1)
        with pytest.raises(QuotaExhaustedError) as caught:
            judge.judge(items, progress=False, on_stage=records.append, on_verdict=verdicts.append)
        stop = [r for r in server.requests if r.reply == f"shape:{shape}"]
        assert len(stop) == 1
        assert not [r for r in server.requests if r.time > stop[0].time]  # nothing sent after
        assert judge.stats.retries == 0
        message = str(caught.value)
        if api == "gemini" and shape == "daily_quota":
            assert "GenerateRequestsPerDayPerProjectPerModel" in message
            assert "9 h 2 min" in message and caught.value.resets_at.endswith("Z")
        elif api == "gemini":  # limit 0: no wait helps, so no reset time is promised
            assert "GenerateRequestsPerDayPerProjectPerModel-FreeTier" in message
            assert "limit: 0" in message and caught.value.resets_at is None
        else:
            assert "insufficient_quota" in message and caught.value.quota == "insufficient_quota"
        assert "run the same command again" in caught.value.hint
        answered = len(server.requests) - 1
        assert len(records) >= 1  # what was finished is kept
        # The quota is back: the same judge on the same cache finishes, asking only the rest.
        resumed = make(api, server, tmp_path)
        done = resumed.judge(items, progress=False)
    assert all(v.label is not None for v in done)
    assert resumed.stats.cache_hits >= answered
    assert resumed.stats.calls <= 3 * 6 - answered


def test_a_quota_stop_through_the_command_line_keeps_the_run_resumable(cli, tmp_path):
    from .test_cli import make_run

    run = tmp_path / "run"
    make_run(run)
    with ScriptedServer(shapes="real") as server:
        args = (
            "judge",
            str(run),
            "--judge",
            "gemini",
            "--judge-arg",
            f"base_url={server.url}",
            "--judge-arg",
            f"cache_dir={tmp_path / 'cache'}",
            "--judge-arg",
            "concurrency=1",
            "--no-progress",
        )
        server.push(*[Reply.ok()] * 7, Reply.real("daily_quota", retry_after=60))
        code, _, err = cli(*args)
        assert code == 1 and "quota" in err and "run the same command again" in err
        out = run / "judged" / "gemini-gemini-3.6-flash"
        kept = (out / "judgements.jsonl").read_text().splitlines()
        assert len(kept) >= 3  # the stage records finished before the stop are kept
        before = len(server.requests)
        code, stdout, err = cli(*args, "--json")
        asked_again = len(server.requests) - before
    assert code == 0, err
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["n_labelled"] == 3 and summary["judge_errors"] == 0
    assert asked_again <= 18 - 7  # the answers given before the stop were not asked again


# -- waits: RetryInfo like Retry-After; 503 --------------------------------------------------------
def test_retry_info_pauses_every_request_for_its_delay(tmp_path):
    delay = 0.6
    with ScriptedServer(shapes="real") as server:
        server.push(Reply.real("retry_info", retry_after=delay))
        judge = make("gemini", server, tmp_path, concurrency=4)
        verdicts = judge.judge(build_items(tmp_path / "img", 3), progress=False)
    assert all(v.label is not None for v in verdicts)
    hit = next(r for r in server.requests if r.reply == "shape:retry_info")
    later = [r.time - hit.time for r in server.requests if r.time > hit.time + 0.05]
    assert later and min(later) >= delay - 0.05  # the whole window waited, not only one request
    assert judge.stats.retries == 1 and judge.stats.waited_s >= delay - 0.05


def test_a_plain_429_from_a_real_shapes_server_carries_its_wait_in_the_body(tmp_path):
    with ScriptedServer(shapes="real") as server:
        server.push(Reply.error(429, retry_after=0.4))
        judge = make("gemini", server, tmp_path, concurrency=1)
        start = time.monotonic()
        judge.judge(build_items(tmp_path / "img", 1), progress=False)
    assert time.monotonic() - start >= 0.4 and server.requests[0].reply == "shape:retry_info"


def test_overloaded_is_retried(api, tmp_path):
    with ScriptedServer(shapes="real") as server:
        server.push(Reply.real("overloaded"))
        judge = make(api, server, tmp_path, concurrency=1)
        verdicts = judge.judge(build_items(tmp_path / "img", 1), progress=False)
    assert verdicts[0].label is not None and judge.stats.retries == 1


# -- the served model ------------------------------------------------------------------------------
def test_the_served_model_is_recorded_everywhere_and_said_once(api, tmp_path):
    requested = models.DEFAULTS[api]
    served = f"{requested}-rerouted"
    notes, records = [], []
    items = build_items(tmp_path / "img", 2)
    with ScriptedServer(shapes="real", reroute={requested: served}) as server:
        judge = make(api, server, tmp_path, notes)
        verdicts = judge.judge(items, progress=False, on_stage=records.append)
        assert [line for line in notes if "answered by" in line] == [
            f"requested model {requested!r} was answered by {served!r}; both are recorded "
            "(served_model in the cache, stage records, verdicts and manifest)"
        ]
        assert {v.served_model for v in verdicts} == {served}
        assert {r.served_model for r in records} == {served}
        assert all(v.judge == f"{api}/{requested}" for v in verdicts)
        described = judge.describe()
        assert described["model_id"] == requested and described["served_models"] == [served]
        assert described["served_model_id"] == served
        rows = judge.cache._db.execute("SELECT model, served_model FROM answers").fetchall()
        assert set(rows) == {(requested, served)}
        # From the cache, the same served model comes back with the answer, and the manifest
        # of a run answered only from the cache still names it.
        cached = make(api, server, tmp_path)
        again = cached.judge(items, progress=False)
    assert again == verdicts and cached.stats.calls == 0
    assert cached.describe()["served_model_id"] == served


def test_records_written_before_the_served_model_still_load():
    stage = StageResult.from_json(
        '{"sample_id": "s", "stage": "ranking", "version": "v1", "key": "k", "calls": 1}'
    )
    verdict = Verdict.from_json('{"sample_id": "s", "method": "m", "label": "no-change"}')
    assert stage.served_model is None and verdict.served_model is None
    assert Verdict.from_json(verdict.to_json()) == verdict


# -- the Gemini API version ------------------------------------------------------------------------
def test_the_gemini_api_version_is_pinned(tmp_path, monkeypatch):
    from slim_leakage.judge.backends.gemini import API_VERSION

    monkeypatch.setenv("GOOGLE_GENAI_API_VERSION", "v1")  # the SDK's own override is not used
    with ScriptedServer() as server:
        make("gemini", server, tmp_path).judge(build_items(tmp_path / "img", 1), progress=False)
    assert API_VERSION == "v1beta"
    assert all(r.path.startswith("/v1beta/models/") for r in server.requests)


# -- a whole run in real shapes ---------------------------------------------------------------------
def test_a_gemini_run_in_real_shapes_labels_or_counts_every_sample(tmp_path):
    kinds = [k for k in FAULT_KINDS if k not in ("daily_quota", "insufficient_quota", "timeout")]
    rates = dict.fromkeys(kinds, 0.04)
    items = build_items(tmp_path / "img", 8)
    with ScriptedServer(shapes="real", thinking=200, fault_rates=rates, retry_after=0.02) as server:
        judge = make("gemini", server, tmp_path, concurrency=4)
        verdicts = judge.judge(items, progress=False)
    assert [v.sample_id for v in verdicts] == [i.sample.id for i in items]
    assert all((v.label is None) != (v.error is None) for v in verdicts)
    assert judge.stats.judged == len(items)
    assert judge.stats.thinking_tokens > 0
    # No answer that could not succeed was asked again (a blocked one is final).
    for hit in [r for r in server.requests if r.reply.removeprefix("shape:") in HOPELESS_KINDS]:
        same = [r for r in server.requests if (r.text, r.images) == (hit.text, hit.images)]
        assert same[-1] is hit


# -- images ------------------------------------------------------------------------------------------
def test_image_types_are_read_from_the_bytes_and_converted_when_needed(tmp_path):
    import io

    from PIL import Image

    from slim_leakage.judge.images import load_image

    gif = tmp_path / "a.gif"
    Image.new("RGB", (8, 8), (200, 10, 10)).save(gif, format="GIF")
    bmp = tmp_path / "b.bmp"
    Image.new("RGB", (8, 6), (10, 200, 10)).save(bmp, format="BMP")
    lying = tmp_path / "c.png"  # a JPEG under a .png name
    Image.new("RGB", (8, 8), (10, 10, 200)).save(lying, format="JPEG")
    for path in (gif, bmp):
        image = load_image(path, "vanilla")
        assert image.mime == "image/png" and image.data.startswith(b"\x89PNG")
        assert Image.open(io.BytesIO(image.data)).size == Image.open(path).size
    jpeg = load_image(lying, "vanilla")
    assert jpeg.mime == "image/jpeg" and jpeg.data == lying.read_bytes()
    png = tmp_path / "d.png"
    Image.new("RGB", (8, 8)).save(png)
    assert load_image(png, "vanilla").data == png.read_bytes()  # sent as it is: same key


def test_an_unreadable_image_is_an_error_naming_the_file_before_any_request(tmp_path):
    items = build_items(tmp_path / "img", 2)
    items[1].method_image.write_bytes(b"not an image at all")
    with ScriptedServer() as server:
        judge = make("gemini", server, tmp_path)
        with pytest.raises(UsageError, match="cannot be read as an image") as caught:
            judge.judge(items, progress=False)
        assert str(items[1].method_image) in str(caught.value)
        assert server.count() == 0
