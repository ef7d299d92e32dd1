"""A newcomer's second probe: nothing overwritten, early refusals, runs extended, one exit-code
table, --debug anywhere, and the Python API's errors for wrong types."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slim_leakage.cli.main import main
from slim_leakage.errors import EXIT_CODES, ConfigError, NotARunError


def _call(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _toy(out: Path, *extra: str) -> list[str]:
    return [
        "--method", "deleaker", "--out", str(out), "--no-progress", "--image-metrics", "none",
        *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """A finished two-sample toy run (the oracle judges it)."""
    pytest.importorskip("diffusers")
    out = tmp_path_factory.mktemp("probe") / "run"
    assert main(_toy(out, "--limit", "2")) == 0
    return out


def _digest(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_report_never_writes_over_a_runs_records(toy_run, capsys):
    before = _digest(toy_run)
    for name in ("verdicts.jsonl", "metrics.json", "manifest.json", "images/vanilla"):
        for force in ((), ("--force",)):
            code, _, err = _call(
                capsys, "report", str(toy_run), "--out", str(toy_run / name), *force
            )
            assert code == 2, err
            assert "record of the run" in err or "is a folder" in err
    code, out, _ = _call(capsys, "report", str(toy_run))  # its own report.html may be rewritten
    assert code == 0 and out.strip().endswith("report.html")
    after = _digest(toy_run)
    assert {k: v for k, v in after.items() if k != "report.html"} == {
        k: v for k, v in before.items() if k != "report.html"
    }


def test_report_and_submit_refuse_an_existing_file_or_a_device(toy_run, tmp_path, capsys):
    mine = tmp_path / "notes.txt"
    mine.write_text("mine")
    code, _, err = _call(capsys, "report", str(toy_run), "--out", str(mine))
    assert code == 2 and "already exists" in err and "--force" in err
    assert mine.read_text() == "mine"
    code, _, _ = _call(capsys, "report", str(toy_run), "--out", str(mine), "--force")
    assert code == 0 and "slim-leakage report" in mine.read_text()
    entry = tmp_path / "entry.json"
    entry.write_text('{"signed": true}')
    code, _, err = _call(capsys, "submit", str(toy_run), "--out", str(entry))
    assert code == 2 and "already exists" in err
    assert entry.read_text() == '{"signed": true}'
    code, _, err = _call(capsys, "submit", str(toy_run), "--out", "/dev/full")
    assert code == 2 and "not a regular file" in err
    code, _, err = _call(capsys, "submit", str(toy_run), "--out", str(tmp_path))
    assert code == 2 and "is a folder" in err


def test_submit_of_a_limited_run_is_refused_up_front_with_the_way_on(toy_run, tmp_path, capsys):
    code, _, err = _call(capsys, "submit", str(toy_run), "--out", str(tmp_path / "e.json"))
    assert code == 2 and "covers 2 of the 96 samples" in err and "without --limit" in err
    assert not (tmp_path / "e.json").exists()


def test_a_run_is_extended_and_never_cut_down(toy_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(toy_run, run)
    verdicts = (run / "verdicts.jsonl").read_text()
    code, _, err = _call(capsys, *_toy(run, "--limit", "3"))
    assert code == 0, err
    assert "resuming" in err and "2 of 3 sample(s) already judged are kept" in err
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["dataset"]["n_samples"] == 3
    assert [e["added"] for e in manifest["extensions"]] == [1]
    text = (run / "verdicts.jsonl").read_text()
    assert text.startswith(verdicts) and len(text.splitlines()) == 3  # only the new one judged
    before = _digest(run)
    code, _, err = _call(capsys, *_toy(run, "--limit", "2"))
    assert code == 2 and "--limit 3" in err and "never cut down" in err
    assert _digest(run) == before


@pytest.mark.parametrize(
    "argv",
    [
        ("report", "{x}"),
        ("submit", "{x}", "--out", "{x}.json"),
        ("judge", "{x}", "--judge", "oracle"),
        ("annotate", "{x}", "--annotator", "a"),
        ("agree", "--run", "{x}", "--reference-run", "{x}"),
        ("toy", "leakage", "{x}"),
    ],
)
def test_one_exit_code_for_a_path_that_is_no_run(argv, tmp_path, capsys):
    for missing in (tmp_path / "nope", tmp_path):  # missing, and a folder that is no run
        code, _, err = _call(capsys, *(a.format(x=missing) for a in argv))
        assert code == 2, err
        assert err.count("error:") == 1 and "hint:" in err


def test_the_exit_code_table_is_documented():
    doc = (Path(__file__).parents[2] / "docs" / "cli.md").read_text()
    for code in EXIT_CODES:
        assert f"| {code} |" in doc


def test_debug_is_taken_anywhere_on_the_line(tmp_path, capsys):
    code, _, err = _call(capsys, "report", str(tmp_path / "nope"))
    assert code == 2 and "Traceback" not in err
    for argv in (
        ["report", str(tmp_path / "nope"), "--debug"],
        ["report", "--debug", str(tmp_path / "nope")],
        ["--debug", "report", str(tmp_path / "nope")],
    ):
        with pytest.raises(NotARunError):
            main(argv)


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (("--backbone", "tiny-random"), "cannot judge images of --backbone tiny-random"),
        (("--backbone-arg", "height=33"), "height=32 or height=36"),
        (("--config", "toy-pairs", "--backbone-arg", "width=62"), "multiple of 4"),
        (("--config", "pairs"), "judges only toy-world entities"),
    ],
)
def test_what_cannot_work_is_refused_before_anything_is_made(extra, named, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = _call(capsys, *_toy(out, "--limit", "1", *extra))
    assert code == 2 and named in err, err
    assert not out.exists()


def test_one_entity_samples_and_entities_past_the_text_length_are_refused_early(
    tmp_path, capsys, monkeypatch
):
    from slim_leakage.records import Sample

    monkeypatch.setattr("slim_leakage.backbones.load_backbone", pytest.fail)
    samples = tmp_path / "s.jsonl"
    rows = [
        Sample(id="a", prompt="a tiger and a zebra", entities=("tiger",), seed=1),
        Sample(
            id="b",
            prompt="a tiger and a pony and a tiger and a pony and a tiger and a zebra",
            entities=("tiger", "zebra"),
            seed=1,
        ),
    ]
    samples.write_text("".join(s.to_json() + "\n" for s in rows))
    code, _, err = _call(capsys, *_toy(tmp_path / "out", "--config", str(samples)))
    assert code == 2, err
    assert "fewer than two entities: 'a'" in err and "falls past max_sequence_length=16" in err
    assert not (tmp_path / "out").exists()


def test_the_python_api_names_wrong_types():
    from slim_leakage import load_samples, load_slim
    from slim_leakage.methods.deleaker.state import normalise_entities

    with pytest.raises(ConfigError, match="config must be a config name"):
        load_slim(123)
    with pytest.raises(ConfigError, match=r"got one string 'pair-1'"):
        load_samples("toy-pairs", ids="pair-1")
    with pytest.raises(ConfigError, match="limit=0 selects no samples"):
        load_samples("toy-pairs", limit=0)
    with pytest.raises(ConfigError, match="limit must be a whole number"):
        load_samples("toy-pairs", limit="3")
    with pytest.raises(ConfigError, match=r"holds 1 \(int\)"):
        normalise_entities([1, 2])
    assert len(load_samples("toy-pairs", limit=2)) == 2


def test_an_empty_prompt_is_named_as_such():
    from slim_leakage.methods.deleaker.config import DeLeakerConfig
    from slim_leakage.methods.deleaker.state import DeLeakerState

    state = DeLeakerState(DeLeakerConfig(), ["cow", "horse"], blocks_per_step=2)
    with pytest.raises(ConfigError, match="Prompt 0 is ''"):
        state.resolve_prompts([""], lambda prompt, entities: {})


def test_registries_evaluate_and_deleaker_name_wrong_types():
    import slim_leakage as api
    from slim_leakage.errors import UnknownNameError

    for call in (lambda: api.get_method(123), lambda: api.get_judge(None)):
        with pytest.raises(UnknownNameError, match="is named by a string"):
            call()
    with pytest.raises(ConfigError, match=r"evaluate\(config=...\) takes a RunConfig or a SLIM"):
        api.evaluate(123)
    with pytest.raises(ConfigError, match="must be a diffusers FluxPipeline"):
        api.deleaker(None, ["cow", "horse"])
