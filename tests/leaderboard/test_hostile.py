"""Hostile entries: strict JSON, names that impersonate or inject, rejections that stick."""

from __future__ import annotations

import json

import pytest

from slim_leakage.errors import ValidationError
from slim_leakage.leaderboard.build import build_entry
from slim_leakage.leaderboard.names import md_cell, name_key, name_problems
from slim_leakage.leaderboard.render import README_END, markdown_table, render, update_readme
from slim_leakage.leaderboard.strictjson import MAX_DEPTH, MAX_FILE_BYTES, loads_strict
from slim_leakage.leaderboard.validate import validate_file
from slim_leakage.leaderboard.verification import record_path
from slim_leakage.records import LABELS
from slim_leakage.rundir import load_run

from .conftest import sign_verification


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (b'{"a": 1, "a": 2}', "the key 'a' occurs twice"),
        (b'{"a": {"b": [{"c": 1, "c": 1}]}}', "the key 'c' occurs twice"),
        (b'{"n": ' + b"9" * 400 + b"}", "digits) is beyond +-2^53"),
        (b'{"n": 9007199254740993}', "the integer 9007199254740993 is beyond +-2^53"),
        (b'{"n": -9007199254740993}', "is beyond +-2^53"),
        (b'{"x": ' + b"[" * 40 + b"]" * 40 + b"}", "nests 41 levels deep"),
        (b'{"x": ' + b"[" * 100000 + b"]" * 100000 + b"}", "nests 100001 levels deep"),
        (b'{"name": "a\\ud800b"}', "name holds a lone surrogate"),
        (b'{"\\udc00": 1}', "a key in the top object holds a lone surrogate"),
        (b'{"x": NaN}', "NaN is not a JSON number"),
        (b'{"x": -Infinity}', "-Infinity is not a JSON number"),
        (b'{"x": "caf\xe9"}', "is not UTF-8"),
        (b'{"x": 1', "is not valid JSON"),
    ],
)
def test_strict_json_refuses_with_one_line(text, says):
    with pytest.raises(ValidationError) as info:
        loads_strict(text, where="entry.json")
    assert says in info.value.message and "\n" not in info.value.message


def test_strict_json_accepts_what_entries_need():
    doc = {"a": [1, 2.5, None, True, "x\u00e9\U0001f600"], "b": {"c": 2**53}, "brackets": "[{"}
    assert loads_strict(json.dumps(doc).encode()) == doc
    deep = b'{"x": ' + b"[" * (MAX_DEPTH - 1) + b"]" * (MAX_DEPTH - 1) + b"}"
    assert loads_strict(deep)["x"] == [] or True


def test_an_oversized_entry_file_is_refused_before_it_is_read(tmp_path, fake_slim):
    path = tmp_path / "big.json"
    with path.open("wb") as fh:
        fh.truncate(MAX_FILE_BYTES + 1)
    report = validate_file(path, dataset=fake_slim)
    assert len(report.problems) == 1 and "above the" in report.problems[0]


def test_hostile_values_in_a_real_entry_are_refused_by_validate(finished_run, tmp_path, fake_slim):
    entry = build_entry(load_run(finished_run), submitted="2026-11-28", submitter="tests")
    text = json.dumps(entry, indent=2)
    cases = {
        "dup": text.replace('"name":', '"name": "shadow", "name":', 1),
        "big": text.replace('"judge_errors": 1', '"judge_errors": ' + "1" * 400, 1),
        "deep": text.replace('"config": {', '"config": {"x": ' + "[" * 50 + "]" * 50 + ",", 1),
        "surrogate": text.replace('"name": "deleaker"', '"name": "dele\\udc80ker"', 1),
    }
    for name, body in cases.items():
        path = tmp_path / f"{name}.json"
        path.write_text(body)
        report = validate_file(path, dataset=fake_slim)
        assert not report.ok and len(report.problems) == 1, (name, report.problems)


def test_dataset_config_must_be_a_shipped_name(finished_run):
    from slim_leakage.leaderboard.validate import shipped_dataset

    for config in ("/tmp/x.jsonl", "./toy-pairs.jsonl", "TOY-PAIRS", "toy-pairs "):
        with pytest.raises(ValidationError, match="not a shipped SLIM config name"):
            shipped_dataset(config)
    assert shipped_dataset("toy-pairs").config == "toy-pairs"


def test_names_compare_as_a_reader_sees_them():
    same = ["DeLeaker", "deleaker", "DELEAKER", "De\u200bLeaker", "ＤｅＬｅａｋｅｒ", " deleaker "]
    assert {name_key(n) for n in same} == {"deleaker"}
    assert name_key("De Leaker") != name_key("DeLeaker")
    assert name_problems("\u200b\u200d") and name_problems("a\u202eb") and name_problems("a\nb")
    assert name_problems("x" * 121) and not name_problems("Café ✓ (toy)")


def test_markdown_cells_cannot_inject():
    cell = md_cell("x | 1 | fake [link](http://e) ![i](u) <!-- leaderboard:end --> `c` *e*")
    assert "|" not in cell.replace("\\|", "")
    assert "](" not in cell.replace("\\](", "") and "<" not in cell
    assert README_END not in cell


def test_readme_markers_must_be_unique(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(
        "<!-- leaderboard:start -->\nold\n<!-- leaderboard:end -->\n<!-- leaderboard:end -->\n"
    )
    with pytest.raises(ValidationError, match="once each"):
        update_readme(readme, "| new |\n")


@pytest.fixture
def rejected(run_factory, tmp_path, maintainers, fake_slim):
    """A leaderboard folder with one entry the maintainers rejected."""
    folder = maintainers.install(tmp_path / "lb")
    run = run_factory("run", labels=[LABELS[i % 5] for i in range(10)])
    path = folder / "entries" / "deleaker.json"
    path.parent.mkdir()
    entry = build_entry(load_run(run), name="DeLeaker", submitted="2026-11-28", submitter="eve")
    path.write_text(json.dumps(entry, indent=2))
    changed = {r["sample_id"]: r["label"] for r in entry["verdicts"]}
    changed["p000"] = "no-change" if changed["p000"] != "no-change" else "mitigation-major"
    record = sign_verification(path, run, maintainers, labels=changed, dataset=fake_slim)
    assert not record["decision"]["verified"]
    return folder, path, run


def _report(path, maintainers, fake_slim):
    report = validate_file(path, pinned=maintainers.pinned, dataset=fake_slim)
    assert report.ok, report.problems
    return report


def test_a_rejection_sticks_through_edits_and_renames(rejected, maintainers, fake_slim):
    folder, path, _ = rejected
    assert _report(path, maintainers, fake_slim).status == "rejected"
    # one byte changed: the record no longer names these bytes, but the file's history does
    path.write_bytes(path.read_bytes().replace(b"{", b"{ ", 1))
    report = _report(path, maintainers, fake_slim)
    assert report.status == "rejected" and report.unranked[0].startswith("rejected earlier")
    assert report.attempts == 1
    # moved to another file: linked by its display name
    moved = folder / "entries" / "deleaker-v2.json"
    path.rename(moved)
    assert _report(moved, maintainers, fake_slim).status == "rejected"
    # display name changed too: linked by its submitter and method
    entry = json.loads(moved.read_text())
    entry["name"] = "Totally New (v3)"
    moved.write_text(json.dumps(entry, indent=2))
    report = _report(moved, maintainers, fake_slim)
    assert report.status == "rejected" and "rejected earlier" in report.unranked[0]


def test_a_new_verification_carries_the_history(rejected, maintainers, fake_slim):
    folder, path, run = rejected
    path.write_bytes(path.read_bytes().replace(b"{", b"{ ", 1))  # resubmitted, labels as before
    from slim_leakage.leaderboard.history import prior_attempts
    from slim_leakage.leaderboard.verification import KeyCheck

    entry = json.loads(path.read_bytes())
    key = KeyCheck(key=maintainers.private_key.public_key())
    history = prior_attempts(folder / "verifications", path.name, entry, key)
    assert len(history) == 1 and not history[0]["verified"]
    from slim_leakage.leaderboard.rejudge import verify_entry_file

    from .conftest import CLEAN_SOURCE, ReplayJudge

    labels = {r["sample_id"]: r["label"] for r in entry["verdicts"]}
    record = verify_entry_file(
        path, run, pinned=maintainers.pinned, dataset=fake_slim, judge=ReplayJudge(labels),
        second_judges=[ReplayJudge(labels)] * 2, image_metrics=(), regenerated=run,
        source=CLEAN_SOURCE, history=history,
    )  # fmt: skip
    assert record["decision"]["verified"] and record["attempt"] == 2
    record_path(path).write_text(json.dumps(maintainers.sign(record)))
    report = _report(path, maintainers, fake_slim)
    assert report.status == "verified" and report.attempts == 2
    assert any(n.startswith("rejected earlier") for n in report.notes)
    rows = render(folder, folder / "site", pinned=maintainers.pinned, dataset=fake_slim)
    assert "verified (attempt 2)" in markdown_table(rows)


def test_two_entries_cannot_share_a_display_name(rejected, maintainers, fake_slim, run_factory):
    folder, path, _ = rejected
    run = run_factory("other", labels=[LABELS[i % 5] for i in range(10)])
    twin = build_entry(
        load_run(run), name="ＤＥＬＥＡＫＥＲ", submitted="2026-11-28", submitter="x"
    )
    (folder / "entries" / "twin.json").write_text(json.dumps(twin, indent=2))
    sign_verification(folder / "entries" / "twin.json", run, maintainers, dataset=fake_slim)
    rows = render(folder, folder / "site", pinned=maintainers.pinned, dataset=fake_slim)
    by_file = {r.file: r for r in rows}
    # the rejected entry holds no rank either way; the twin's name is taken by the older one
    assert by_file["twin.json"].rank is None
    assert any(
        "display name is the one of deleaker.json" in u
        for u in by_file["twin.json"].report.unranked
    )
