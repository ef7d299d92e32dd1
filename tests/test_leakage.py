"""The absolute leakage rate: the maths against a plain reference, and the run's leakage stage
against the toy oracle's exact reading of the same images."""

from __future__ import annotations

import json
import random

import pytest

from slim_leakage.leakage import (
    check_row,
    latest_checks,
    leakage_rows,
    leakage_summary,
    paired_difference,
    role_summary,
)
from slim_leakage.metrics import bootstrap_indices
from slim_leakage.records import Sample


def _samples(n: int) -> list[Sample]:
    return [
        Sample(
            id=f"s{i}",
            prompt="a cat and a dog",
            entities=("cat", "dog"),
            seed=i,
            subset="simple" if i % 2 else "scene",
            family="pets" if i % 3 else "wild",
        )
        for i in range(n)
    ]


def _row(sample_id: str, role: str, leaks: dict, present: dict | None = None, error=None):
    present = present or dict.fromkeys(leaks, True)
    return {
        "kind": "check",
        "sample_id": sample_id,
        "role": role,
        "image_sha256": f"{role}-{sample_id}",
        "judge": "j",
        "leaky": None if error else any(leaks[e] and present[e] for e in leaks),
        "entities": {} if error else leaks,
        "present": {} if error else present,
        "error": error,
    }


def _random_rows(samples, rng):
    rows = []
    for s in samples:
        for role in ("vanilla", "method"):
            leaks = {e: rng.random() < 0.4 for e in s.entities}
            present = {e: rng.random() < 0.85 for e in s.entities}
            rows.append(_row(s.id, role, leaks, present))
    return rows


def _reference_ratio_interval(k, n, n_boot, seed):
    """The bootstrap interval written out as plain loops (the reference for the numpy path)."""
    idx = bootstrap_indices(len(k), n_boot=n_boot, seed=seed)
    values = []
    for b in range(n_boot):
        kk = sum(k[j] for j in idx[b])
        nn = sum(n[j] for j in idx[b])
        if nn:
            values.append(kk / nn)
    values.sort()

    def pct(q):  # numpy's default "linear" percentile
        pos = (len(values) - 1) * q
        lo = int(pos)
        hi = min(lo + 1, len(values) - 1)
        return values[lo] + (values[hi] - values[lo]) * (pos - lo)

    return [round(pct(0.025), 6), round(pct(0.975), 6)]


def test_rates_and_intervals_match_a_plain_reference():
    rng = random.Random(7)
    samples = _samples(40)
    checks = latest_checks(_random_rows(samples, rng))
    out = role_summary(checks, samples, "vanilla", n_boot=300, seed=3)
    rows = [checks[("vanilla", s.id)] for s in samples]
    k_img = [int(r["leaky"]) for r in rows]
    assert out["images"]["k"] == sum(k_img) and out["images"]["n"] == 40
    assert out["images"]["rate"] == round(sum(k_img) / 40, 6)
    assert out["images"]["ci95"] == _reference_ratio_interval(k_img, [1] * 40, 300, 3)
    k_ent = [sum(r["entities"][e] and r["present"][e] for e in r["entities"]) for r in rows]
    n_ent = [sum(r["present"].values()) for r in rows]
    assert out["entities"]["k"] == sum(k_ent) and out["entities"]["n"] == sum(n_ent)
    assert out["entities"]["ci95"] == _reference_ratio_interval(k_ent, n_ent, 300, 3)
    # per subset and family: the same figures over their samples
    assert sorted(out["per_subset"]) == ["scene", "simple"]
    simple = [s for s in samples if s.subset == "simple"]
    assert out["per_subset"]["simple"]["images"]["k"] == sum(
        int(checks[("vanilla", s.id)]["leaky"]) for s in simple
    )
    assert out["per_family"]["wild"]["n_samples"] == sum(s.family == "wild" for s in samples)


def test_paired_difference_resamples_pairs_together():
    rng = random.Random(11)
    samples = _samples(30)
    checks = latest_checks(_random_rows(samples, rng))
    diff = paired_difference(checks, samples, n_boot=200, seed=5)
    v = [int(checks[("vanilla", s.id)]["leaky"]) for s in samples]
    m = [int(checks[("method", s.id)]["leaky"]) for s in samples]
    assert diff["n_pairs"] == 30
    assert diff["images"]["difference"] == round(sum(m) / 30 - sum(v) / 30, 6)
    idx = bootstrap_indices(30, n_boot=200, seed=5)
    draws = sorted(sum(m[j] - v[j] for j in idx[b]) / 30 for b in range(200))
    lo, hi = diff["images"]["ci95"]
    assert draws[4] <= lo + 1e-6 and hi <= draws[195] + 1e-6  # rounded to 6 places
    # identical images leak identically: the difference is exactly zero
    same = {**checks, **{("method", s.id): checks[("vanilla", s.id)] for s in samples}}
    zero = paired_difference(same, samples, n_boot=50, seed=0)
    assert zero["images"]["difference"] == 0.0 and zero["images"]["ci95"] == [0.0, 0.0]


def test_errors_are_counted_apart_and_the_latest_row_counts():
    samples = _samples(3)
    rows = [
        _row("s0", "vanilla", {"cat": True, "dog": False}),
        _row("s1", "vanilla", {}, error="timeout"),
        _row("s2", "vanilla", {"cat": False, "dog": False}),
        _row("s2", "vanilla", {"cat": False, "dog": True}),  # a later check of s2 replaces it
    ]
    out = leakage_summary(rows, samples, method="vanilla", n_boot=20)
    van = out["vanilla"]
    assert (van["n_checked"], van["errors"]) == (2, 1)
    assert van["images"]["k"] == 2 and van["images"]["n"] == 2
    assert out["method"] is None and out["difference"] is None
    assert leakage_rows(out)[0] == ("leakage rate, vanilla images", "100.0% [100.0, 100.0] (2/2)")


def test_an_absent_entity_is_not_counted_and_an_error_check_row_is_empty():
    class Check:
        sample_id = "s0"
        leaky = True
        error = None
        scores = {
            "borrowed_features": {"cat": ["stripes"], "dog": []},
            "present": {"cat": True, "dog": False},
        }

    row = check_row(Check(), role="vanilla", image_sha256="x", judge="j", entities=("cat", "dog"))
    assert row["entities"] == {"cat": True, "dog": False}
    assert row["present"] == {"cat": True, "dog": False}
    out = role_summary(latest_checks([row]), _samples(1), "vanilla", n_boot=10)
    assert (out["entities"]["k"], out["entities"]["n"]) == (1, 1)

    class Failed(Check):
        leaky = None
        error = "no answer"

    row = check_row(Failed(), role="method", image_sha256="y", judge="j", entities=("cat", "dog"))
    assert row["leaky"] is None and row["entities"] == {} and row["error"] == "no answer"


# -- the run's stage, in the toy world -------------------------------------------------------
@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    pytest.importorskip("diffusers")
    from slim_leakage.run import RunConfig, evaluate

    out = tmp_path_factory.mktemp("leak") / "run"
    config = RunConfig(
        out=str(out),
        method="deleaker",
        backbone="toy",
        judge="oracle",
        config="toy-pairs",
        limit=8,
        image_metrics=(),
        report=False,
        progress=False,
        device="cpu",
    )
    metrics = evaluate(config)
    return out, config, metrics


def test_the_judge_side_rate_equals_the_oracle_exact_rate(toy_run):
    from slim_leakage.toy.lab.measure import run_leakage

    out, _, metrics = toy_run
    leakage = metrics["leakage"]
    for role in ("vanilla", "method"):
        exact = run_leakage(out, role)
        k = sum(f["leak"]["k"] for f in exact.values())
        n = sum(f["leak"]["n"] for f in exact.values())
        assert leakage[role]["entities"]["k"] == k and leakage[role]["entities"]["n"] == n
        assert leakage[role]["n_checked"] == 8
    diff = leakage["difference"]
    assert diff["n_pairs"] == 8
    assert diff["entities"]["vanilla"] == leakage["vanilla"]["entities"]["rate"]
    assert json.loads(json.dumps(leakage)) == leakage


def test_the_stage_resumes_and_records_its_calls(toy_run):
    from slim_leakage._io import iter_jsonl
    from slim_leakage.run import evaluate

    out, config, first = toy_run
    rows = list(iter_jsonl(out / "leakage.jsonl"))
    checks = [r for r in rows if r["kind"] == "check"]
    assert len(checks) == 16 and {r["role"] for r in checks} == {"vanilla", "method"}
    usage = first["leakage"]["judge_usage"]
    # the checks re-ask the comparison's own extraction and typicality requests: all cached
    assert usage["calls"] == 0 and usage["cache_hits"] >= 16
    assert [r["images"] for r in rows if r["kind"] == "usage"] == [16]
    # a finished run computes its metrics again without a new check
    again = evaluate(config)
    assert list(iter_jsonl(out / "leakage.jsonl")) == rows
    assert again["leakage"] == first["leakage"]
    # a lost answer (the last row cut off, as a kill leaves it) is asked again, only it
    lines = (out / "leakage.jsonl").read_text().splitlines()
    kept = [ln for ln in lines if json.loads(ln)["kind"] == "check"][:-1]
    (out / "leakage.jsonl").write_text("\n".join(kept) + "\n")
    third = evaluate(config)
    rows3 = [r for r in iter_jsonl(out / "leakage.jsonl") if r["kind"] == "check"]
    assert len(rows3) == 16
    assert third["leakage"]["vanilla"] == first["leakage"]["vanilla"]
    assert third["leakage"]["method"] == first["leakage"]["method"]


def test_a_vanilla_run_reports_the_model_rate(tmp_path):
    pytest.importorskip("diffusers")
    from slim_leakage.run import RunConfig, evaluate

    metrics = evaluate(
        RunConfig(
            out=str(tmp_path / "v"),
            method="vanilla",
            backbone="toy",
            judge="oracle",
            config="toy-pairs",
            limit=4,
            image_metrics=(),
            report=False,
            progress=False,
            device="cpu",
        )
    )
    leakage = metrics["leakage"]
    assert leakage["method"] is None and leakage["difference"] is None
    assert leakage["vanilla"]["n_checked"] == 4
    assert leakage["vanilla"]["images"]["rate"] is not None


def test_estimate_names_the_extra_calls():
    from slim_leakage.judge.estimate import estimate
    from slim_leakage.slim import load_samples

    result = estimate("gemini", load_samples("pairs", limit=5), methods=2)
    leak = result["leakage"]
    asked = ("extraction-text", "extraction-images", "typicality")
    assert leak["calls_with_cache"] == 0
    assert leak["calls_without_cache"] == sum(result["calls"][q] for q in asked) > 0


def test_the_entry_carries_the_checks_and_the_models_table_recomputes_them(toy_run):
    import types

    from slim_leakage.leaderboard.build import build_entry
    from slim_leakage.leaderboard.models_table import model_rows
    from slim_leakage.leaderboard.schema import ENTRY_V3, check_structure
    from slim_leakage.rundir import load_run

    out, _, metrics = toy_run
    entry = build_entry(load_run(out), submitted="2026-12-07", submitter="maintainers")
    assert check_structure(entry, ENTRY_V3) == []
    for key in ("vanilla", "method", "difference"):  # judge_usage grows with each resume
        assert entry["metrics"]["leakage"][key] == metrics["leakage"][key]
    flags = [r["vanilla_leaks"] for r in entry["verdicts"]]
    assert sum(flags) == metrics["leakage"]["vanilla"]["images"]["k"]
    (model,) = model_rows([types.SimpleNamespace(file="e.json", entry=entry, verified=True)])
    assert model.recomputed and model.images == metrics["leakage"]["vanilla"]["images"]
