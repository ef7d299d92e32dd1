"""``slim-eval sweep``: variants as runs, shared vanilla and reference images, one judge cache."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from slim_leakage.errors import ConfigError
from slim_leakage.run import RunConfig
from slim_leakage.sweep import (
    PAPER_ABLATION,
    PAPER_RATIOS,
    Variant,
    check_variants,
    file_variants,
    grid_variants,
    preset_variants,
    run_sweep,
)


def test_grid_is_every_combination_in_order():
    variants = grid_variants(["alpha=1.0,1.5", "smoothing=true,false"])
    assert [v.name for v in variants] == [
        "alpha=1.0 smoothing=true",
        "alpha=1.0 smoothing=false",
        "alpha=1.5 smoothing=true",
        "alpha=1.5 smoothing=false",
    ]
    assert variants[1].method_args == {"alpha": "1.0", "smoothing": "false"}
    with pytest.raises(ConfigError, match="lists no value"):
        grid_variants(["alpha="])
    with pytest.raises(ConfigError, match="twice"):
        grid_variants(["alpha=1", "alpha=2"])


def test_sweep_file_variants_and_grid(tmp_path):
    path = tmp_path / "sweep.json"
    path.write_text(
        json.dumps(
            {
                "variants": [{"name": "late edits", "method_args": {"edit_start": [0.5, 0]}}],
                "grid": {"alpha": [1.0, 1.5]},
            }
        )
    )
    variants = file_variants(path)
    assert [v.name for v in variants] == ["late edits", "alpha=1.0", "alpha=1.5"]
    assert variants[0].method_args == {"edit_start": [0.5, 0]}
    path.write_text(json.dumps({"variants": [{"name": "only", "method_args": {}}]}))
    assert [v.name for v in file_variants(path)] == ["only"]  # no grid adds no variant
    path.write_text(json.dumps({"variant": []}))
    with pytest.raises(ConfigError, match="'variants' and/or 'grid'"):
        file_variants(path)
    path.write_text(json.dumps({"variants": [{"method_args": {}}]}))
    with pytest.raises(ConfigError, match=r"variants\[0\]"):
        file_variants(path)


def test_paper_ablation_preset():
    variants = preset_variants("paper-ablation", "deleaker")
    assert variants[0] == Variant("deleaker", {})
    assert len(variants) == len(PAPER_ABLATION) == 10
    assert len({v.folder for v in variants}) == 10
    by_name = {v.name: v.method_args for v in variants}
    assert by_name["w/o image-text strengthening"] == {"self_identity": False}
    assert by_name["no temporal smoothing"] == {"use_history": False}
    assert set(PAPER_RATIOS) < set(by_name)
    with pytest.raises(ConfigError, match="--method deleaker"):
        preset_variants("paper-ablation", "vanilla")
    with pytest.raises(ConfigError, match="Unknown sweep preset"):
        preset_variants("paper", "deleaker")


def test_variants_must_not_share_a_folder():
    with pytest.raises(ConfigError, match="no variant"):
        check_variants([])
    with pytest.raises(ConfigError, match="gives no folder name"):
        check_variants([Variant("")])
    with pytest.raises(ConfigError, match="share the run folder runs/a-b"):
        check_variants([Variant("a b"), Variant("A/B")])


def test_cli_refuses_a_sweep_without_variants(cli):
    code, _, err = cli("sweep", "--limit", "1")
    assert code == 2 and "no variant" in err
    code, _, err = cli("sweep", "--method", "vanilla", "--preset", "paper-ablation")
    assert code == 2 and "--method deleaker" in err


def test_a_sweep_under_a_launcher_is_refused_before_anything_loads(cli, monkeypatch, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    out = tmp_path / "sweep"
    code, _, err = cli(
        "sweep", "--preset", "paper-ablation", "--config", "toy-pairs", "--out", str(out)
    )
    assert code == 2 and "WORLD_SIZE=2" in err and "--device cuda:N" in err
    assert not out.exists()


# -- end to end on the toy world ------------------------------------------------------------------
@pytest.fixture(scope="module")
def toy_sweep(tmp_path_factory):
    pytest.importorskip("diffusers")
    tmp = tmp_path_factory.mktemp("sweep")
    base = RunConfig(
        out=str(tmp / "sweep"),
        method="deleaker",
        backbone="toy",
        device="cpu",
        judge="oracle",
        judge_args={"cache_dir": str(tmp / "cache")},
        config="toy-pairs",
        limit=3,
        image_metrics=(),
        report=False,
        progress=False,
    )
    variants = grid_variants(["smoothing=true,false"])
    lines: list[str] = []
    summary = run_sweep(base, variants, log=lines.append)
    return base, variants, summary, tmp / "sweep", lines


def test_each_variant_is_a_run_and_the_table_has_intervals(toy_sweep):
    from slim_leakage.rundir import load_run

    _, _, summary, root, lines = toy_sweep
    assert sum("loading backbone" in line for line in lines) == 1  # one backbone for all runs
    assert [v["name"] for v in summary["variants"]] == ["smoothing=true", "smoothing=false"]
    for entry, smoothing in zip(summary["variants"], (True, False)):
        run = load_run(root / entry["run"])
        assert run.manifest["method"]["config"]["smoothing"] is smoothing
        assert entry["options"]["smoothing"] is smoothing
        m = entry["metrics"]
        assert m["n_labelled"] == 3 and abs(sum(m["distribution"].values()) - 1) < 1e-9
        assert set(m["intervals"]) == set(m["distribution"])
        assert m["improved"]["k"] + m["degraded"]["k"] <= 3
        assert m["improved"]["ci95"][0] <= (m["improved"]["share"] or 0) <= m["improved"]["ci95"][1]
    assert "ratio_to_first" in summary["variants"][1]
    on_disk = json.loads((root / "sweep.json").read_text())
    assert on_disk["variants"] == summary["variants"]
    md = (root / "sweep.md").read_text()
    assert "| smoothing=false |" in md and "Shared instead of generated" in md


def test_vanilla_and_references_are_generated_once_and_shared(toy_sweep):
    from slim_leakage.rundir import load_run

    _, _, summary, root, _ = toy_sweep
    first, second = (load_run(root / v["run"]) for v in summary["variants"])
    shared = [g for g in second.generations if g.role in ("vanilla", "reference")]
    assert len(shared) == 3 + len({e for s in first.samples for e in s.entities})
    assert summary["saved"]["images"] == len(shared)
    for gen in shared:
        mine, theirs = second.path / gen.path, first.path / gen.path
        assert mine.read_bytes() == theirs.read_bytes()
        assert os.stat(mine).st_ino == os.stat(theirs).st_ino  # a hard link, not a copy
    # the vanilla image's typicality (and the extraction) were answered once for both variants
    assert summary["saved"]["judge_requests"] >= 3
    assert summary["judge_calls"] > 0


def test_a_finished_sweep_resumes_with_nothing_to_do(toy_sweep):
    base, variants, summary, root, _ = toy_sweep
    lines: list[str] = []
    again = run_sweep(base, variants, log=lines.append)
    assert not any("loading backbone" in line for line in lines)
    assert again["saved"]["images"] == 0 and again["judge_calls"] == 0
    assert [v["metrics"] for v in again["variants"]] == [v["metrics"] for v in summary["variants"]]


def test_sweep_page_draws_the_bars_side_by_side_in_chromium(toy_sweep, chromium_dom):
    _, _, summary, root, _ = toy_sweep
    page = root / "sweep.html"
    html = page.read_text()
    assert "http://" not in html and "https://" not in html
    dom = chromium_dom(page.resolve().as_uri() + "#sort=degraded")
    assert "2 variants, sorted by degraded" in dom  # the page's script ran
    rows = re.findall(r'<tr data-order="(\d)" data-improved="[\d.]+" data-degraded="([\d.]+)"', dom)
    degraded = [float(d) for _, d in rows]
    assert len(rows) == 2 and degraded == sorted(degraded, reverse=True)
    assert dom.count('class="seg"') == 10  # five segments per variant
    widths = re.findall(r'class="seg" data-label="([a-z-]+)" style="width:([\d.]+)%', dom)
    first = summary["variants"][int(rows[0][0])]["metrics"]["distribution"]
    assert {k: float(w) for k, w in widths[:5]} == pytest.approx(
        {k: 100 * v for k, v in first.items()}, abs=0.01
    )


def test_the_command_line_runs_a_sweep_and_resumes(cli, toy_sweep):
    base, _, summary, root, _ = toy_sweep
    code, out, _ = cli(
        "sweep",
        "--grid",
        "smoothing=true,false",
        "--limit",
        "3",
        "--image-metrics",
        "none",
        "--no-report",
        "--no-progress",
        "--device",
        "cpu",
        "--out",
        str(root),
        "--json",
    )
    assert code == 0, out
    printed = json.loads(out.strip().splitlines()[-1])
    assert printed["saved"]["images"] == 0 and printed["judge_calls"] == 0
    assert Path(root / "sweep.md").read_text() in out


def test_another_grid_into_the_same_folder_keeps_the_earlier_rows(tmp_path):
    import json

    from slim_leakage.sweep import Variant, earlier_variants

    (tmp_path / "runs" / "alpha-1").mkdir(parents=True)
    (tmp_path / "runs" / "alpha-1" / "manifest.json").write_text("{}")
    old = {"variants": [
        {"name": "alpha=1", "method_args": {"alpha": "1"}},
        {"name": "alpha=2", "method_args": {"alpha": "2"}},  # its run folder is gone
        {"name": "beta=1", "method_args": {"beta": "1"}},
    ]}  # fmt: skip
    (tmp_path / "sweep.json").write_text(json.dumps(old))
    kept = earlier_variants(tmp_path, [Variant("beta=1", {"beta": "1"})])
    assert kept == [Variant("alpha=1", {"alpha": "1"})]
    assert earlier_variants(tmp_path / "nothing", []) == []
