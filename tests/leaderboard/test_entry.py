import copy
import json
from pathlib import Path

import pytest

from slim_leakage.leaderboard.build import build_entry, load_pinned
from slim_leakage.leaderboard.rejudge import rejudge
from slim_leakage.leaderboard.schema import ENTRY_V1, check_structure, describe_fields
from slim_leakage.leaderboard.validate import ValidationReport, validate_entry
from slim_leakage.records import Verdict
from slim_leakage.rundir import load_run

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def entry(finished_run):
    return build_entry(load_run(finished_run), submitted="2026-11-28")


def _problems(entry, fake_slim):
    return validate_entry(entry, dataset=fake_slim).problems


def test_built_entry_is_valid_and_verified(entry, fake_slim):
    report = validate_entry(entry, dataset=fake_slim)
    assert report.problems == []
    assert report.verified
    assert entry["judge"]["model_id"] == load_pinned()["judge"]["model_id"]
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
    future = dict(entry, schema_version=2)
    assert "not a known version" in _problems(future, fake_slim)[0]
    other = dict(entry, schema="something-else")
    assert _problems(other, fake_slim)[0].startswith("schema: 'something-else'")
    assert _problems([entry], fake_slim) == ["entry: expected a JSON object, got list"]


def test_judge_must_be_pinned_unless_marked_unverified(run_factory, fake_slim):
    judge = {"backend": "openai", "model_id": "gpt-x", "prompt_versions": {"ranking": "v1"}}
    run = load_run(run_factory(judge=judge))
    entry = build_entry(run)
    assert entry["unverified"] is True  # build marks it: its judge is not the pinned one
    report = validate_entry(entry, dataset=fake_slim)
    assert report.ok and not report.verified
    assert any("judge.backend is 'openai'" in n for n in report.notes)
    entry["unverified"] = False
    problems = _problems(entry, fake_slim)
    assert any(p.startswith("judge.model_id is 'gpt-x', the leaderboard pins") for p in problems)


def test_validation_never_resolves_names_from_the_entry(entry, fake_slim, monkeypatch):
    from slim_leakage import methods

    def boom(*a, **k):
        raise AssertionError("validate must not look up a method")

    monkeypatch.setattr(methods, "get_method", boom, raising=False)
    entry["method"]["name"] = "__import__('os').system('false')"
    entry["metrics"]["method"] = entry["method"]["name"]
    assert validate_entry(entry, dataset=fake_slim).ok


def test_schema_describes_every_field():
    rows = {path for path, _, _ in describe_fields(ENTRY_V1)}
    assert {"verdicts[].label", "metrics.intervals", "judge.prompt_versions"} <= rows
    doc = (REPO / "docs" / "leaderboard.md").read_text()
    for path, _, _ in describe_fields(ENTRY_V1):
        if path.count(".") <= 1 and "*" not in path:
            assert f"`{path}`" in doc, path


def test_shipped_pinned_config_is_the_repository_copy():
    assert json.loads((REPO / "leaderboard" / "pinned.json").read_text()) == load_pinned()


# --- rejudge -----------------------------------------------------------------------------------


class _ReplayJudge:
    """Answers with given labels, standing in for a deterministic judge."""

    def __init__(self, labels):
        self.labels = labels
        self.seen = []

    def judge(self, items, progress=True):
        self.seen = list(items)
        return [
            Verdict(sample_id=i.sample.id, method=i.method, label=self.labels[i.sample.id])
            for i in self.seen
        ]


def test_rejudge_reproduces_labels(entry, finished_run):
    labels = {r["sample_id"]: r["label"] for r in entry["verdicts"] if r["label"]}
    judge = _ReplayJudge(labels)
    report = ValidationReport()
    assert rejudge(entry, finished_run, report=report, judge=judge) == 1.0
    assert report.problems == []
    assert len(judge.seen) == 9  # the judge error is not re-judged
    assert judge.seen[0].method_image.name == "p000.png"

    changed = dict(labels, p000="no-change", p001="no-change")
    report = ValidationReport()
    assert rejudge(entry, finished_run, report=report, judge=_ReplayJudge(changed)) == 7 / 9
    assert any("below 0.9" in p for p in report.problems)


def test_rejudge_shows_the_judge_the_runs_reference_images(entry, finished_run):
    from PIL import Image

    from slim_leakage.reference_images import ReferenceImage
    from slim_leakage.rundir import RunDir

    cat = ReferenceImage("cat", "a cat", 0, Image.new("RGB", (8, 8)))
    RunDir(finished_run).save_reference(cat)  # the run drew "cat" alone, not "cheetah"
    labels = {r["sample_id"]: r["label"] for r in entry["verdicts"] if r["label"]}
    judge = _ReplayJudge(labels)
    assert rejudge(entry, finished_run, report=ValidationReport(), judge=judge) == 1.0
    refs = [item.reference_images for item in judge.seen]
    assert refs == [{"cat": finished_run / "images" / "reference" / "cat.png"}] * 9


def test_rejudge_refuses_images_that_do_not_match(entry, finished_run):
    (finished_run / "images" / "deleaker" / "p002.png").write_bytes(b"other pixels")
    report = ValidationReport()
    assert rejudge(entry, finished_run, report=report, judge=_ReplayJudge({})) is None
    assert len(report.problems) == 1
    assert report.problems[0].startswith("verdicts[2].method_sha256:")


# --- the CLI -----------------------------------------------------------------------------------


def test_submit_then_validate_cli(finished_run, tmp_path, cli, fake_slim):
    out = tmp_path / "entry.json"
    code, text, err = cli("submit", str(finished_run), "--out", str(out), "--name", "DeLeaker")
    assert code == 0, err
    assert "wrote" in text
    entry = json.loads(out.read_text())
    assert entry["name"] == "DeLeaker" and entry["schema_version"] == 1
    code, text, err = cli("validate", str(out), "--json")
    assert code == 0, text + err
    assert json.loads(text.strip().splitlines()[-1])["ok"] is True
    assert "verified" in text

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


def test_exported_json_schema_matches_the_python_schema(entry):
    import jsonschema

    from slim_leakage.leaderboard.schema import to_json_schema

    schema = to_json_schema()
    shipped = json.loads((REPO / "leaderboard" / "schema" / "entry-v1.schema.json").read_text())
    assert shipped == schema
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
