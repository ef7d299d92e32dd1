import copy
import json
from pathlib import Path

import pytest

from slim_leakage.leaderboard.build import build_entry, sample_ids_sha256
from slim_leakage.leaderboard.pinned import PinnedJudge, load_pinned
from slim_leakage.leaderboard.rejudge import rejudge
from slim_leakage.leaderboard.schema import (
    ENTRY_V1,
    ENTRY_V2,
    ENTRY_V3,
    check_structure,
    describe_fields,
    to_json_schema,
)
from slim_leakage.leaderboard.validate import validate_entry
from slim_leakage.rundir import load_run

from .conftest import CLEAN_SOURCE, ReplayJudge

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def entry(finished_run):
    return build_entry(load_run(finished_run), submitted="2026-11-28", submitter="tests")


def _problems(entry, fake_slim):
    return validate_entry(entry, dataset=fake_slim).problems


def test_built_entry_is_valid_but_not_verified_by_itself(entry, fake_slim):
    report = validate_entry(entry, dataset=fake_slim)
    assert report.problems == []
    assert not report.verified and report.status == "unverified"
    assert entry["schema_version"] == 3 and "unverified" not in entry
    assert entry["judge"]["model_id"] == load_pinned().families["slim"].model_id
    assert entry["dataset"]["sample_ids_sha256"] == sample_ids_sha256(
        [r["sample_id"] for r in entry["verdicts"]]
    )
    assert entry["cost"]["method"] == {
        "seconds_per_image": 0.75,
        "peak_memory_bytes": 1024,
        "images_timed": 10,
    }
    row = entry["verdicts"][3]
    assert row["label"] is None and row["error"] == "timeout"
    assert len(entry["verdicts"][0]["vanilla_sha256"]) == 64
    assert check_structure(json.loads(json.dumps(entry))) == []


def test_tampered_aggregate_is_named(entry, fake_slim):
    entry["metrics"]["distribution"]["mitigation-major"] = 0.5
    entry["metrics"]["intervals"]["no-change"] = [0.0, 1.0]
    problems = _problems(entry, fake_slim)
    assert any(
        p.startswith("metrics.distribution.mitigation-major: reported 0.5") for p in problems
    )
    assert any(p.startswith("metrics.intervals.no-change: reported [0.0, 1.0]") for p in problems)


def test_a_changed_verdict_no_longer_recomputes(entry, fake_slim):
    entry["verdicts"][0]["label"] = "degradation-major"  # metrics left as they were
    problems = _problems(entry, fake_slim)
    assert any(p.startswith("metrics.counts.degradation-major") for p in problems)
    assert any(p.startswith("metrics.per_subset.simple") for p in problems)


def test_missing_duplicate_and_foreign_samples(entry, fake_slim):
    rows = entry["verdicts"]
    rows[5] = copy.deepcopy(rows[4])  # p004 twice, p005 missing
    rows.append({**copy.deepcopy(rows[0]), "sample_id": "zzz"})
    problems = _problems(entry, fake_slim)
    assert "verdicts[5].sample_id: 'p004' occurs again (first at verdicts[4])" in problems
    assert any("1 sample(s) of 'pairs' are missing: 'p005'" in p for p in problems)
    assert any("1 sample(s) are not in 'pairs': 'zzz'" in p for p in problems)
    assert any(p.startswith("dataset.n_samples: 10 but the entry has 11") for p in problems)


def test_subset_must_match_the_dataset(entry, fake_slim):
    entry["verdicts"][0]["subset"] = "interaction"
    problems = _problems(entry, fake_slim)
    assert "verdicts[0].subset: 'interaction', the dataset says 'simple'" in problems


def test_fingerprint_and_config(entry, fake_slim):
    entry["dataset"]["fingerprint"] = "0" * 16
    assert any(p.startswith("dataset.fingerprint: '0000") for p in _problems(entry, fake_slim))
    entry["dataset"]["config"] = "triplets"
    assert any("Unknown dataset config 'triplets'" in p for p in _problems(entry, fake_slim))


def test_unknown_fields_and_wrong_types_are_named(entry, fake_slim):
    entry["colour"] = "blue"
    entry["judge"]["temperature"] = 0
    entry["verdicts"][2]["order_flip"] = "no"
    entry["metrics"]["n_samples"] = 10.0
    del entry["package"]["git_commit"]
    problems = _problems(entry, fake_slim)
    assert any(p.startswith("colour: unknown field") for p in problems)
    assert any(p.startswith("judge.temperature: unknown field") for p in problems)
    assert "verdicts[2].order_flip: expected true/false, got a string" in problems
    assert "metrics.n_samples: expected an integer, got a number" in problems
    assert "package.git_commit: missing required field" in problems


def test_bad_labels_and_hashes(entry, fake_slim):
    entry["verdicts"][0]["label"] = "much-better"
    entry["verdicts"][1]["method_sha256"] = "xyz"
    entry["verdicts"][2]["error"] = "also an error"
    problems = _problems(entry, fake_slim)
    assert any(p.startswith("verdicts[0].label: unknown label 'much-better'") for p in problems)
    assert "verdicts[1].method_sha256: 'xyz' is not a SHA-256 hex" in problems
    assert any(p.startswith("verdicts[2]: exactly one of label and error") for p in problems)


def test_schema_name_and_version(entry, fake_slim):
    future = dict(entry, schema_version=4)
    assert "not a known version" in _problems(future, fake_slim)[0]
    other = dict(entry, schema="something-else")
    assert _problems(other, fake_slim)[0].startswith("schema: 'something-else'")
    assert _problems([entry], fake_slim) == ["entry: expected a JSON object, got list"]


def test_another_judge_is_valid_but_cannot_be_verified(run_factory, fake_slim):
    judge = {"backend": "openai", "model_id": "gpt-x", "prompt_versions": {"ranking": "v1"}}
    entry = build_entry(load_run(run_factory(judge=judge)))
    report = validate_entry(entry, dataset=fake_slim)
    assert report.ok and not report.verified
    assert any(n.startswith("cannot be verified: judge.backend is 'openai'") for n in report.notes)
    # an entry cannot claim verification: the v1 flag is an unknown field in version 2
    entry["unverified"] = False
    assert "unverified: unknown field" in " ".join(_problems(entry, fake_slim))


def test_a_served_model_is_compared_when_the_pin_lists_served_ids(entry, fake_slim):
    pinned = load_pinned()
    pin = pinned.families["slim"]
    # the shipped pin names the Gemini backend's default model and the id it is served as
    from slim_leakage.judge.backends.gemini import GeminiBackend

    assert pin.model_id == GeminiBackend.default_model
    assert pin.served_model_ids == (pin.model_id,)
    assert pin.differences({**pin.identity(), "served_model_id": pin.model_id}) == []
    assert len(pin.differences({**pin.identity(), "served_model_id": "anything"})) == 1
    loose = PinnedJudge(**{**pin.__dict__, "served_model_ids": ()})
    assert loose.differences({**pin.identity(), "served_model_id": "anything"}) == []
    strict = PinnedJudge(**{**pin.__dict__, "served_model_ids": (f"{pin.model_id}-001",)})
    assert strict.differences({**pin.identity(), "served_model_id": f"{pin.model_id}-001"}) == []
    diffs = strict.differences({**pin.identity(), "served_model_id": "other-model"})
    assert len(diffs) == 1 and "judge.served_model_id is 'other-model'" in diffs[0]
    entry["judge"]["served_model_id"] = "other-model"  # v2 entries may carry it
    assert validate_entry(entry, dataset=fake_slim).ok


def test_validation_never_resolves_names_from_the_entry(entry, fake_slim, monkeypatch):
    from slim_leakage import methods

    def boom(*a, **k):
        raise AssertionError("validate must not look up a method")

    monkeypatch.setattr(methods, "get_method", boom, raising=False)
    entry["method"]["name"] = "__import__('os').system('false')"
    entry["metrics"]["method"] = entry["method"]["name"]
    assert validate_entry(entry, dataset=fake_slim).ok


def test_schema_describes_every_field():
    rows = {path for path, _, _ in describe_fields(ENTRY_V3)}
    assert {"verdicts[].label", "metrics.intervals", "judge.served_model_id", "submitter"} <= rows
    assert "unverified" not in rows
    doc = (REPO / "docs" / "leaderboard.md").read_text()
    for path, _, _ in describe_fields(ENTRY_V3):
        if path.count(".") <= 1 and "*" not in path:
            assert f"`{path}`" in doc, path


def test_shipped_pinned_config_is_the_repository_copy():
    assert json.loads((REPO / "leaderboard" / "pinned.json").read_text()) == load_pinned().raw


# --- what is checked beyond recomputation -----------------------------------------------------


def test_sample_id_digest_is_recomputed(entry, fake_slim):
    entry["dataset"]["sample_ids_sha256"] = "0" * 64
    assert any(
        p.startswith("dataset.sample_ids_sha256: '0000") and "hash to" in p
        for p in _problems(entry, fake_slim)
    )
    del entry["dataset"]["sample_ids_sha256"]
    assert "dataset.sample_ids_sha256: missing required field" in _problems(entry, fake_slim)


@pytest.mark.parametrize(
    "value", ["2026-13-45", "yesterday", "28/11/2026", "2026-11-28T10:00", "20261128", ""]
)
def test_the_submission_date_is_iso_8601(entry, fake_slim, value):
    entry["submitted"] = value
    problems = _problems(entry, fake_slim)
    assert problems == [
        f"submitted: {value!r} is not an ISO 8601 date (YYYY-MM-DD, e.g. 2026-11-28)"
    ]


def test_a_submission_date_in_the_future_is_refused(entry, fake_slim):
    import datetime

    entry["submitted"] = "2026-12-05"
    report = validate_entry(entry, dataset=fake_slim, today=datetime.date(2026, 11, 30))
    assert report.problems == ["submitted: 2026-12-05 is in the future (today is 2026-11-30)"]
    assert validate_entry(entry, dataset=fake_slim, today=datetime.date(2026, 12, 5)).ok


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("metrics", "intervals", "no-change"), [-0.1, 0.5], "is outside [0, 1]"),
        (("metrics", "intervals", "no-change"), [0.6, 0.5], "low bound exceeds its high bound"),
        (("metrics", "intervals", "no-change"), [0.1, float("inf")], "not finite"),
        (("metrics", "intervals", "no-change"), [0.1], "is not a [low, high] pair"),
        (("metrics", "distribution", "no-change"), 1.5, "is outside [0, 1]"),
        (("metrics", "distribution", "no-change"), float("nan"), "is not a finite number"),
        (("metrics", "counts", "no-change"), -1, "is below 0"),
        (("metrics", "order_flip_rate"), 2.0, "is outside [0, 1]"),
        (("metrics", "lpips"), -0.5, "is below 0"),
        (("metrics", "vqascore"), 3.0, "is outside [0, 1]"),
        (("cost", "method", "seconds_per_image"), -1.0, "is below 0"),
        (("cost", "method", "peak_memory_bytes"), -5, "is below 0"),
    ],
)
def test_figures_are_range_checked_before_the_comparison(entry, fake_slim, path, value, message):
    doc = entry
    for key in path[:-1]:
        doc = doc[key]
    doc[path[-1]] = value
    problems = _problems(json.loads(json.dumps(entry)), fake_slim)
    field = ".".join(path)
    assert any(p.startswith(f"{field}: ") and message in p for p in problems), problems
    # the range problem is reported instead of a recomputation difference
    assert not any("recomputed" in p for p in problems)


def test_the_bootstrap_size_is_bounded(entry, fake_slim):
    entry["metrics"]["extra"]["bootstrap"]["n_boot"] = 10**12
    assert _problems(entry, fake_slim) == [
        "metrics.extra.bootstrap.n_boot: 1000000000000 is outside 1..100000"
    ]


def test_a_judge_error_must_carry_its_image_hashes(entry, fake_slim):
    entry["verdicts"][3]["method_sha256"] = None  # p003 is the judge error
    problems = _problems(entry, fake_slim)
    assert problems == [
        "verdicts[3].method_sha256: missing (every sample's images are re-judged by the "
        "maintainers, judge errors included)"
    ]


def test_version_1_entries_are_read_and_their_flag_is_informational(entry, fake_slim):
    v1 = copy.deepcopy(entry)
    v1["schema_version"] = 1
    v1["unverified"] = False  # the forgery the flag allowed: claiming verification
    del v1["submitter"]  # version 3's
    del v1["dataset"]["sample_ids_sha256"]
    v1["verdicts"][3]["method_sha256"] = None  # version 1 let a judge error go without images
    v1["metrics"].pop("leakage", None)  # version 1 predates the leakage rates
    report = validate_entry(v1, dataset=fake_slim)
    assert report.ok and not report.verified, report.problems
    assert report.notes[0].startswith(
        'schema version 1, read as version 2: its "unverified": false'
    )
    assert check_structure(v1, ENTRY_V1) == []


def test_too_many_judge_errors_keep_an_entry_off_the_ranking(run_factory, fake_slim):
    labels = ["no-change"] * 9 + [None]  # 1 of 10: 10% judge errors
    report = validate_entry(
        build_entry(load_run(run_factory(labels=labels)), submitter="tests"), dataset=fake_slim
    )
    assert report.ok
    assert report.unranked == ["judge errors on 1 of 10 samples (10.0%) exceed the limit of 5%"]


# --- rejudge -----------------------------------------------------------------------------------


def _pin(deterministic=True):
    base = load_pinned().families["slim"]
    return PinnedJudge(**{**base.__dict__, "deterministic": deterministic})


def _labels(entry):
    return {r["sample_id"]: r["label"] for r in entry["verdicts"]}


def _rejudge(entry, run, judge, *, deterministic=True, seconds=None, **kw):
    raw = json.dumps(entry).encode()
    return rejudge(
        entry,
        raw,
        run,
        pin=_pin(deterministic),
        judge=judge,
        second_judges=seconds,
        image_metrics=(),
        regenerated=run,  # the fixture run stands in for the regeneration
        source=CLEAN_SOURCE,
        **kw,
    )


def _flip_order_flips(entry):
    # order flips must reproduce for a deterministic judge; the replay judge never flips
    for row in entry["verdicts"]:
        row["order_flip"] = False


def test_rejudge_reproduces_labels_and_rejudges_judge_errors(entry, finished_run):
    _flip_order_flips(entry)
    judge = ReplayJudge(_labels(entry))
    record = _rejudge(entry, finished_run, judge)
    assert record["decision"] == {"verified": True, "reasons": []}
    assert len(judge.seen) == 10  # the judge error (p003) is re-judged too
    assert judge.seen[0].method_image.name == "p000.png"
    assert record["agreement"]["share"] == 1.0 and record["agreement"]["threshold"] == 1.0
    assert record["sampling"]["mode"] == "all"

    # a deterministic judge must reproduce every label: one change rejects
    changed = dict(_labels(entry), p000="no-change")
    record = _rejudge(entry, finished_run, ReplayJudge(changed))
    assert not record["decision"]["verified"]
    assert record["decision"]["reasons"][0].startswith("the re-judge reproduced 9 of 10 samples")


def test_a_judge_error_that_the_judge_now_labels_is_a_disagreement(entry, finished_run):
    _flip_order_flips(entry)
    labels = dict(_labels(entry), p003="degradation-major")  # the entry hid it as an error
    record = _rejudge(entry, finished_run, ReplayJudge(labels))
    assert not record["decision"]["verified"]
    row = next(r for r in record["samples"] if r["sample_id"] == "p003")
    assert row["entry_error"] == "timeout" and row["label"] == "degradation-major"
    assert row["agree"] is False


def test_vlm_threshold_comes_from_the_judges_self_agreement(entry, finished_run):
    from slim_leakage.leaderboard.rejudge import vlm_threshold

    # the entry's judge error (p003) gets a label now: a disagreement, as is p000
    labels = dict(_labels(entry), p003="no-change")
    one_off = dict(labels, p000="no-change")  # p000 is mitigation-major in the entry
    # the judge agrees with itself everywhere: the entry must reproduce exactly
    record = _rejudge(
        entry,
        finished_run,
        ReplayJudge(one_off),
        deterministic=False,
        seconds=[ReplayJudge(labels), ReplayJudge(labels)],
    )
    assert record["agreement"]["self_agreement"] == {"compared": 10, "agreed": 10, "share": 1.0}
    assert record["agreement"]["threshold"] == 1.0
    assert record["agreement"]["agreed"] == 8 and not record["decision"]["verified"]
    # a judge that disagrees with itself on 2 of 10 allows two disagreements
    noisy = dict(labels, p001="no-change", p004="no-change")
    record = _rejudge(
        entry,
        finished_run,
        ReplayJudge(one_off),
        deterministic=False,
        seconds=[ReplayJudge(labels), ReplayJudge(noisy)],
    )
    a = 8 / 10
    assert record["agreement"]["threshold"] == vlm_threshold(a, 10)
    assert vlm_threshold(a, 10) == pytest.approx(
        a - 1.645 * (2 * a * (1 - a) / 10) ** 0.5, abs=1e-6
    )
    assert record["agreement"]["share"] == 0.8
    assert record["decision"]["verified"], record["decision"]
    assert record["samples"][0]["second_label"] == "mitigation-major"


def test_shares_outside_the_rejudged_interval_reject_even_a_noisy_judge(entry, finished_run):
    ids = list(_labels(entry))
    worse = {sid: "degradation-major" for sid in ids}
    a = {sid: "no-change" for sid in ids}
    b = {sid: "mitigation-minor" for sid in ids}  # self-agreement 0: any agreement passes
    record = _rejudge(
        entry,
        finished_run,
        ReplayJudge(worse),
        deterministic=False,
        seconds=[ReplayJudge(a), ReplayJudge(b)],
    )
    assert record["agreement"]["threshold"] == 0.0
    reasons = record["decision"]["reasons"]
    assert any(r.startswith("the entry's mitigation share") for r in reasons), reasons
    assert any(r.startswith("the entry's degradation share") for r in reasons), reasons


def test_a_rejudge_that_fails_too_often_decides_nothing(entry, finished_run):
    _flip_order_flips(entry)
    labels = dict(_labels(entry), p000=None)
    record = _rejudge(
        entry,
        finished_run,
        ReplayJudge(labels),
        deterministic=False,
        seconds=[ReplayJudge(labels), ReplayJudge(labels)],
    )
    assert any(
        "the re-judge itself gave no label on 2 of 10 samples" in r
        for r in record["decision"]["reasons"]
    )


def test_a_subset_is_drawn_from_the_maintainers_signature_with_every_judge_error(
    entry, maintainers
):
    from slim_leakage.leaderboard.sampling import check_seed, choose_samples, subset_seed

    digest = "ab" * 32
    seed, signature = subset_seed(maintainers.private_key, digest)
    assert (seed, signature) == subset_seed(maintainers.private_key, digest)  # deterministic
    assert seed < 2**53  # exact in every JSON reader
    public = maintainers.private_key.public_key()
    assert check_seed(public, digest, seed, signature) is None
    assert check_seed(public, digest, seed + 1, signature) is not None
    assert check_seed(public, "cd" * 32, seed, signature) is not None
    ids, sampling = choose_samples(entry, seed, 4)
    assert ids == choose_samples(entry, seed, 4)[0]
    assert "p003" in ids and len(ids) == 5  # 4 drawn labelled samples + the judge error
    assert sampling["seed"] == seed and sampling["mode"] == "subset"
    assert ids == [r["sample_id"] for r in entry["verdicts"] if r["sample_id"] in ids]
    # another entry hash gives another seed; without the private key nobody can compute it
    seeds = {subset_seed(maintainers.private_key, f"{k:02x}" * 32)[0] for k in range(8)}
    assert len(seeds) == 8
    others = {tuple(choose_samples(entry, s, 4)[0]) for s in seeds}
    assert len(others) > 1
    assert choose_samples(entry, seed, 99)[1]["mode"] == "all"


def test_rejudge_shows_the_judge_the_runs_reference_images(entry, finished_run):
    from PIL import Image

    from slim_leakage.reference_images import ReferenceImage
    from slim_leakage.rundir import RunDir

    cat = ReferenceImage("cat", "a cat", 0, Image.new("RGB", (8, 8)))
    RunDir(finished_run).save_reference(cat)  # the run drew "cat" alone, not "cheetah"
    judge = ReplayJudge(_labels(entry))
    _rejudge(entry, finished_run, judge)
    refs = [item.reference_images for item in judge.seen]
    assert refs == [{"cat": finished_run / "images" / "reference" / "cat.png"}] * 10


def test_rejudge_refuses_images_that_do_not_match(entry, finished_run):
    from slim_leakage.errors import ValidationError

    (finished_run / "images" / "deleaker" / "p002.png").write_bytes(b"other pixels")
    judge = ReplayJudge({})
    with pytest.raises(ValidationError, match=r"1 image\(s\) of .* do not match") as exc:
        _rejudge(entry, finished_run, judge)
    assert "verdicts[2].method_sha256:" in exc.value.message
    assert judge.seen == []


def test_rejudge_refuses_an_entry_judged_by_another_judge(entry, finished_run):
    from slim_leakage.errors import ValidationError

    entry["judge"]["model_id"] = "other"
    with pytest.raises(ValidationError, match="cannot be verified: judge.model_id is 'other'"):
        _rejudge(entry, finished_run, ReplayJudge({}))


# --- the CLI -----------------------------------------------------------------------------------


def test_submit_then_validate_cli(finished_run, tmp_path, cli, fake_slim):
    out = tmp_path / "entry.json"
    code, text, err = cli("submit", str(finished_run), "--out", str(out), "--name", "DeLeaker")
    assert code == 0, err
    assert "wrote" in text
    entry = json.loads(out.read_text())
    assert entry["name"] == "DeLeaker" and entry["schema_version"] == 3
    code, text, err = cli("validate", str(out), "--json")
    assert code == 0, text + err
    result = json.loads(text.strip().splitlines()[-1])["entries"][str(out)]
    assert result["ok"] is True and result["status"] == "unverified"
    assert f"{out}: unverified" in text
    assert "unverified: no verification record (verifications/entry.json)" in text

    entry["metrics"]["order_flip_rate"] = 0.0
    entry["extra_field"] = 1
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(entry))
    code, text, _ = cli("validate", str(bad), str(out))
    assert code == 1
    assert "INVALID" in text and "problem: extra_field: unknown field" in text


def test_validate_cli_rejudge_and_usage(finished_run, tmp_path, cli, fake_slim):
    out = tmp_path / "entry.json"
    assert cli("submit", str(finished_run), "--out", str(out))[0] == 0
    code, _, err = cli("validate", str(out), "--rejudge")
    assert code == 2 and "--images" in err
    (tmp_path / "not.json").write_text("{")
    code, text, _ = cli("validate", str(tmp_path / "not.json"))
    assert code == 1 and "is not valid JSON" in text
    code, text, _ = cli("validate", str(tmp_path / "missing.json"))
    assert code == 1 and "does not exist" in text


def test_submit_refuses_an_unfinished_run(run_factory, tmp_path, cli):
    run = run_factory()
    (run / "metrics.json").unlink()
    code, _, err = cli("submit", str(run), "--out", str(tmp_path / "e.json"))
    assert code == 1 and "has no metrics.json" in err
    assert not (tmp_path / "e.json").exists()


def test_exported_json_schemas_match_the_python_schemas(entry):
    import jsonschema

    for version, t in ((1, ENTRY_V1), (2, ENTRY_V2), (3, ENTRY_V3)):
        path = REPO / "leaderboard" / "schema" / f"entry-v{version}.schema.json"
        assert json.loads(path.read_text()) == to_json_schema(t, version=version), path
    schema = to_json_schema()
    validator = jsonschema.Draft202012Validator(schema)
    assert list(validator.iter_errors(entry)) == []
    broken = copy.deepcopy(entry)
    broken["colour"] = "blue"
    broken["verdicts"][2]["order_flip"] = "no"
    broken["metrics"]["n_samples"] = 10.5
    del broken["package"]["git_commit"]
    assert len(list(validator.iter_errors(broken))) == 4
    assert len(check_structure(broken)) == 4


def test_validate_names_a_folder_as_a_folder(tmp_path, cli):
    code, text, _ = cli("validate", str(tmp_path))
    assert code == 1
    assert f"problem: Entry file {str(tmp_path)!r} is a folder, not an entry file." in text


def test_submit_refuses_a_run_whose_manifest_was_edited(finished_run, tmp_path, cli, fake_slim):
    import json as _json

    manifest = finished_run / "manifest.json"
    data = _json.loads(manifest.read_text())
    data["judge"]["model_id"] = "the-pinned-model"
    manifest.write_text(_json.dumps(data))
    code, _, err = cli("submit", str(finished_run), "--out", str(tmp_path / "entry.json"))
    assert code == 1
    assert "manifest.json was changed after the run wrote it: judge.model_id." in err
    assert not (tmp_path / "entry.json").exists()
