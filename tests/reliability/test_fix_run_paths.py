"""Regression test: records and readers: paths stay inside the run."""

from __future__ import annotations

import json

import pytest

from slim_leakage.errors import (
    DatasetError,
    RunError,
)
from slim_leakage.records import Generation


# -- records and readers: paths stay inside the run -----------------------------------------------
def _generation(path: str) -> dict:
    return {
        "sample_id": "s1",
        "role": "method",
        "method": "m",
        "path": path,
        "sha256": "0" * 64,
        "seed": 1,
        "width": 8,
        "height": 8,
    }


@pytest.mark.parametrize("path", ["../outside.png", "/etc/passwd", "images/../../x.png", ""])
def test_generation_paths_leaving_the_run_are_refused(path):
    with pytest.raises(DatasetError, match="not a path inside the run directory"):
        Generation.from_dict(_generation(path))


def test_generation_paths_inside_the_run_are_kept():
    assert Generation.from_dict(_generation("images/m/s1.png")).path == "images/m/s1.png"


def test_inside_run_refuses_a_link_leading_out(tmp_path):
    from slim_leakage.rundir import inside_run

    run = tmp_path / "run"
    (run / "images").mkdir(parents=True)
    secret = tmp_path / "secret.txt"
    secret.write_text("not an image")
    (run / "images" / "a.png").symlink_to(secret)
    (run / "images" / "b.png").write_bytes(b"png")
    (run / "images" / "c.png").symlink_to(run / "images" / "b.png")  # a link inside is fine
    with pytest.raises(RunError, match="leads outside the run directory"):
        inside_run(run, "images/a.png")
    assert inside_run(run, "images/c.png") == run / "images" / "c.png"


def test_report_never_embeds_a_file_outside_the_run(workspace, bench, cli):
    run = bench._tampered_run(workspace, "t-report", "symlink")
    code, out, err = cli("report", str(run))
    assert code == 1
    assert "leads outside the run directory" in err
    report = run / "report.html"
    assert not report.exists() or "t-report-outside" not in report.read_text()


def test_resume_regenerates_a_linked_image_and_leaves_its_target_alone(workspace, bench, capsys):
    run = bench._tampered_run(workspace, "t-resume", "symlink")
    outside = workspace.path("t-resume-outside.png")
    before = outside.read_bytes()
    rows = [json.loads(x) for x in (run / "verdicts.jsonl").read_text().splitlines()]
    # drop the verdict of the tampered sample so the resume has to judge it again
    (run / "verdicts.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows if r["sample_id"] != "s1")
    )
    code, _, err = bench.cli(
        bench.run_argv(run, workspace.samples, workspace.url, workspace.path("t-resume-c")),
        env={"OPENAI_API_KEY": bench.FAKE_OPENAI_KEY},
    )
    assert code == 0, err
    image = run / "images" / "instruction-prompt" / "s1.png"
    assert not image.is_symlink()
    assert outside.read_bytes() == before
    assert bench.comparable_metrics(run / "metrics.json") == bench.comparable_metrics(
        workspace.reference() / "metrics.json"
    )
