"""The protocol engine with an in-process backend: stages, orders, repair, errors, cache."""

from __future__ import annotations

import asyncio
import json

import pytest

from slim_leakage.errors import JudgeError, UsageError
from slim_leakage.judge import Judge, JudgeItem
from slim_leakage.judge.backends.base import TransientBackendError
from slim_leakage.records import LABELS, Sample, StageResult, Verdict

from .conftest import FakeBackend, build_items

RANK_MIT = '{"less_leaky": "image2", "magnitude": "major", "reason": "r"}'
RANK_DEG = '{"less_leaky": "image1", "magnitude": "major", "reason": "r"}'


def test_full_protocol_gives_one_verdict_per_item_in_order(make_judge, fake_backend, items):
    judge = make_judge()
    stages: list[StageResult] = []
    verdicts = judge.judge(items, on_stage=stages.append, progress=False)
    assert [v.sample_id for v in verdicts] == [i.sample.id for i in items]
    assert all(isinstance(v, Verdict) and v.label in LABELS for v in verdicts)
    # Six questions per item: two extractions, two typicality ratings, two ranking orders.
    assert fake_backend.count() == 6 * len(items)
    for stage in ("extraction-text", "extraction-images", "typicality", "ranking"):
        assert fake_backend.count(stage) == (2 if stage in ("typicality", "ranking") else 1) * 4
    kinds = [(s.stage, s.order) for s in stages if s.sample_id == "s0"]
    assert sorted(kinds, key=str) == sorted(
        [
            ("extraction", None),
            ("typicality", None),
            ("typicality", None),
            ("ranking", "ab"),
            ("ranking", "ba"),
        ],
        key=str,
    )
    extraction = next(s for s in stages if s.stage == "extraction" and s.sample_id == "s0")
    assert extraction.calls == 2
    assert extraction.output["from_images"]["cat"][0].startswith("reference cat")
    assert extraction.output["features"]["cat"][0].startswith("typical cat")
    assert judge.stats.judged == 4 and judge.stats.errors == 0 and judge.stats.calls == 24


def test_labels_follow_the_typicality_reports(make_judge, fake_backend, items):
    # The default ranking compares mean typicality: check the label against the reports.
    stages: list[StageResult] = []
    verdicts = make_judge().judge(items, on_stage=stages.append, progress=False)
    for v in verdicts:
        t = v.scores["typicality"]
        diff = sum(t["method"].values()) / 2 - sum(t["vanilla"].values()) / 2
        if abs(diff) < 0.25:
            assert v.label == "no-change"
        else:
            assert v.label.startswith("mitigation" if diff > 0 else "degradation")
            assert v.label.endswith("major" if abs(diff) >= 1.5 else "minor")
        assert v.order_flip is False
        assert v.judge == "fake/fake-1"


def test_ranking_is_asked_in_both_orders_with_swapped_reports(make_judge, fake_backend, items):
    make_judge().judge(items[:1], progress=False)
    ranks = [r for r in fake_backend.requests if r.stage == "ranking"]
    assert {r.context["order"] for r in ranks} == {"ab", "ba"}
    ab = next(r for r in ranks if r.context["order"] == "ab")
    ba = next(r for r in ranks if r.context["order"] == "ba")
    assert ab.context["inputs"]["image1"] == ba.context["inputs"]["image2"]
    assert ab.context["images"][0]["role"] == "vanilla"
    assert ba.context["images"][0]["role"] == "method"


def test_disagreeing_orders_resolve_to_no_change_and_count(make_judge, fake_backend, items):
    # Always "image2 is less leaky": position bias, so the two orders disagree.
    fake_backend.answer = lambda r: RANK_MIT if r.stage == "ranking" else None
    judge = make_judge()
    verdicts = judge.judge(items, progress=False)
    assert all(v.label == "no-change" and v.order_flip for v in verdicts)
    assert all(
        v.scores["orders"] == {"ab": "mitigation-major", "ba": "degradation-major"}
        for v in verdicts
    )
    assert judge.stats.order_flips == 4 and judge.stats.order_flip_rate == 1.0


def test_malformed_answer_is_repaired_once(make_judge, fake_backend, items):
    fake_backend.push("typicality", "not json at all")
    judge = make_judge()
    verdicts = judge.judge(items[:1], progress=False)
    assert verdicts[0].label is not None
    assert fake_backend.count("typicality+repair") == 1
    repair = next(r for r in fake_backend.requests if r.stage == "typicality+repair")
    assert "could not be used" in repair.text and "not json at all" in repair.text
    assert judge.stats.repairs == 1


def test_twice_malformed_answer_becomes_a_judge_error_not_a_guess(make_judge, fake_backend, items):
    fake_backend.push("ranking", RANK_MIT.replace("major", "none"))
    fake_backend.push("ranking+repair", '{"less_leaky": "image3"}')
    judge = make_judge()
    stages: list[StageResult] = []
    verdicts = judge.judge(items, on_stage=stages.append, progress=False)
    failed = [v for v in verdicts if v.label is None]
    assert len(failed) == 1 and len(verdicts) == 4
    assert "unusable answer after one repair" in failed[0].error
    assert judge.stats.errors == 1
    assert any(s.stage == "ranking" and s.error for s in stages)


def test_failed_answers_are_not_cached_and_rerun_retries_them(make_judge, fake_backend, items):
    fake_backend.push("typicality", "bad")
    fake_backend.push("typicality+repair", "still bad")
    judge = make_judge()
    first = judge.judge(items[:1], progress=False)
    assert first[0].label is None
    calls = fake_backend.count()
    second = judge.judge(items[:1], progress=False)
    assert second[0].label is not None
    assert fake_backend.count() == calls + 1 + 2  # the failed typicality, then both rankings


def test_rerun_of_a_finished_judgement_makes_zero_calls(make_judge, fake_backend, items):
    first = make_judge().judge(items, progress=False)
    calls = fake_backend.count()
    fresh = make_judge()  # a new judge on the same cache folder: a new process, in effect
    second = fresh.judge(items, progress=False)
    assert fake_backend.count() == calls
    assert second == first
    assert fresh.stats.calls == 0 and fresh.stats.cache_hits == 6 * len(items)


def test_other_methods_reuse_extraction_and_vanilla_typicality(make_judge, fake_backend, tmp_path):
    base = build_items(tmp_path / "a", 3, method="one")
    other = [
        JudgeItem(
            i.sample, "two", i.vanilla_image, tmp_path / "a" / f"{n}-two.png", i.reference_images
        )
        for n, i in enumerate(base)
    ]
    for n, item in enumerate(other):
        from PIL import Image

        Image.new("RGB", (16, 16), (n, 200, 7)).save(item.method_image)
    judge = make_judge()
    judge.judge(base + other, progress=False)
    # Per sample: 2 extractions + vanilla typicality shared; 1 typicality + 2 rankings each.
    assert fake_backend.count() == 3 * (3 + 3 + 3)
    assert judge.stats.cache_hits + judge.stats.shared == 3 * 3


def test_transient_errors_are_retried_then_reported(make_judge, fake_backend, items):
    fake_backend.push(
        "extraction-text",
        TransientBackendError("HTTP 500"),
        TransientBackendError("HTTP 429", retry_after=0.01, status=429),
    )
    judge = make_judge(max_retries=3)
    verdicts = judge.judge(items[:1], progress=False)
    assert verdicts[0].label is not None and judge.stats.retries == 2

    fake_backend.push("extraction-text", *[TransientBackendError("HTTP 503")] * 3)
    judge = make_judge(max_retries=2, cache=False)
    verdicts = judge.judge(items[1:2], progress=False)
    assert verdicts[0].label is None and "gave up after 3 attempts" in verdicts[0].error


def test_final_backend_errors_and_backend_bugs_fail_one_item_only(make_judge, fake_backend, items):
    fake_backend.push("typicality", JudgeError("HTTP 401: bad key"), ZeroDivisionError("bug"))
    judge = make_judge()
    verdicts = judge.judge(items, progress=False)
    errors = [v.error for v in verdicts if v.error]
    assert len(errors) in (1, 2)  # both failures may hit the same item
    assert any("HTTP 401" in e for e in errors) and any("ZeroDivisionError" in e for e in errors)
    assert sum(v.label is not None for v in verdicts) == 4 - len(errors)


def test_slow_backend_times_out_and_is_retried(make_judge, fake_backend, items):
    fake_backend.delay = 0.3
    judge = make_judge(timeout=0.05, max_retries=1, cache=False)
    verdicts = judge.judge(items[:1], progress=False)
    assert verdicts[0].label is None and "no answer within 0.05 s" in verdicts[0].error


def test_missing_references_fall_back_to_prompt_features(make_judge, fake_backend, tmp_path):
    items = build_items(tmp_path / "x", 2, refs=False)
    stages: list[StageResult] = []
    verdicts = make_judge().judge(items, on_stage=stages.append, progress=False)
    assert all(v.label for v in verdicts)
    assert fake_backend.count("extraction-images") == 0
    assert all(s.output["from_images"] is None for s in stages if s.stage == "extraction")


def test_bad_items_fail_before_any_call(make_judge, fake_backend, items, tmp_path):
    judge = make_judge()
    missing = JudgeItem(items[0].sample, "m", tmp_path / "nope.png", items[0].method_image)
    with pytest.raises(UsageError, match="vanilla image of sample 's0' does not exist"):
        judge.judge([*items, missing], progress=False)
    single = Sample(id="x", prompt="a cat", entities=("cat",), seed=0)
    with pytest.raises(UsageError, match="needs two or more"):
        judge.judge([JudgeItem(single, "m", items[0].vanilla_image, items[0].method_image)])
    wrong_ref = JudgeItem(
        items[0].sample,
        "m",
        items[0].vanilla_image,
        items[0].method_image,
        {"dog": items[0].vanilla_image},
    )
    with pytest.raises(UsageError, match="'dog'"):
        judge.judge([wrong_ref], progress=False)
    with pytest.raises(UsageError, match="JudgeItem"):
        judge.judge([("not", "an item")], progress=False)
    assert fake_backend.count() == 0


def test_check_leakage_uses_one_image(make_judge, fake_backend, items):
    checks = make_judge().check_leakage(
        [(i.sample, i.vanilla_image, i.reference_images) for i in items]
    )
    assert [c.sample_id for c in checks] == [i.sample.id for i in items]
    for check in checks:
        borrowed = check.scores["borrowed_features"]
        assert check.leaky == any(borrowed.values())
        assert check.leaky == any(t <= 3 for t in check.scores["typicality"].values())
    assert fake_backend.count("ranking") == 0 and fake_backend.count("typicality") == len(items)


def test_judge_works_inside_a_running_event_loop(make_judge, fake_backend, items):
    judge = make_judge()

    async def inside():
        return judge.judge(items[:2], progress=False)

    assert len(asyncio.run(inside())) == 2


def test_describe_and_stats_are_json(make_judge, items):
    judge = make_judge()
    judge.judge(items[:1], progress=False)
    info = judge.describe()
    assert info["backend"] == "fake" and info["model_id"] == "fake-1"
    assert info["prompt_versions"]["typicality"] == "v1"
    assert info["decoding"]["temperature"] == 0.0
    json.dumps(info)
    stats = judge.stats.to_dict()
    assert stats["calls"] == 6 and stats["order_flip_rate"] == 0.0


def test_concurrency_limit_is_respected(make_judge, fake_backend, tmp_path):
    in_flight = peak = 0
    original = fake_backend.complete

    async def counting(requests):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        try:
            return await original(requests)
        finally:
            in_flight -= 1

    fake_backend.complete = counting
    make_judge(concurrency=3).judge(build_items(tmp_path / "c", 6), progress=False)
    assert peak == 3


def test_contract_violation_is_an_error_not_a_crash(make_judge, items):
    class Bad(FakeBackend):
        async def complete(self, requests):
            return []

    judge = Judge(Bad(), cache=False)
    verdicts = judge.judge(items[:1], progress=False)
    assert "returned 0 answers" in verdicts[0].error


def test_rpm_budget_paces_the_judge_and_is_reported(make_judge, fake_backend, items):
    import time

    judge = make_judge(rpm=600, concurrency=1)  # 10 requests a second, no burst
    start = time.monotonic()
    judge.judge(items[:1], progress=False)
    elapsed = time.monotonic() - start
    assert fake_backend.count() == 6
    assert elapsed >= 0.45 and judge.stats.waited_s >= 0.4


def test_progress_bar_names_the_judge_and_counts_items(make_judge, items, capsys):
    make_judge().judge(items, progress=True)
    err = capsys.readouterr().err
    assert "judge fake/fake-1" in err and "4/4" in err


def test_a_relabelled_image_is_the_same_image_under_another_caption():
    import dataclasses

    from slim_leakage.judge.backends.base import ImageInput

    image = ImageInput(b"png", "image/png", "ab" * 32, "vanilla", "cat", "Image", 3, 4)
    assert image.with_label("Image 2") == dataclasses.replace(image, label="Image 2")
