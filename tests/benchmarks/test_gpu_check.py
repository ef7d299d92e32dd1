"""``benchmarks/gpu_check.sh --cpu-smoke``: the prepared GPU check, end to end on the CPU at a
tiny size (the same scripts, phases and JSON as on a GPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"

pytest.importorskip("diffusers")


def _env(**extra) -> dict:
    env = {**os.environ, "PYTHON": sys.executable, **extra}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    return env


@pytest.mark.timeout(900)
def test_cpu_smoke_writes_one_json_with_every_phase(tmp_path):
    out = tmp_path / "out"
    done = subprocess.run(
        ["bash", str(SCRIPT), "--cpu-smoke"],
        cwd=ROOT,
        env=_env(OUT=str(out)),
        capture_output=True,
        text=True,
        timeout=880,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((out / "gpu_check.json").read_text())
    assert result["mode"] == "cpu" and result["ok"]
    phases = result["phases"]
    overhead, reference, memory = phases["overhead"], phases["reference"], phases["memory"]
    # planted blob masks of the sizes large animals have, and DeLeaker changed the output
    assert all(0.25 <= share <= 0.45 for share in overhead["mask_share"].values())
    assert overhead["fast_changes_output"] and overhead["fast_over_vanilla_time"] > 0
    # the fast path equals the explicit reference on the planted masks
    assert reference["fast_vs_reference_max_abs_diff_rel"] < 1e-5
    assert result["summary"]["fast_vs_reference_max_abs_diff_rel"] == pytest.approx(
        reference["fast_vs_reference_max_abs_diff_rel"]
    )
    # the SD3 phase: SD3's processors on planted masks, equal to their explicit reference
    sd3 = phases["sd3"]
    assert sd3["family"] == "sd3" and sd3["fast_changes_output"]
    assert all(0.25 <= share <= 0.45 for share in sd3["mask_share"].values())
    assert sd3["fast_vs_reference_max_abs_diff_rel"] < 1e-5
    assert result["summary"]["sd3_fast_over_vanilla_time"] == sd3["fast_over_vanilla_time"]
    flux2 = phases["flux2"]  # the same for FLUX.2's double- and fused single-stream blocks
    assert flux2["family"] == "flux2" and flux2["fast_changes_output"]
    assert flux2["fast_vs_reference_max_abs_diff_rel"] < 1e-5
    assert result["summary"]["flux2_fast_over_vanilla_time"] == flux2["fast_over_vanilla_time"]
    # the memory phase loaded the preset from a saved random-weight folder, plain and int8
    settings = {(r["offload"], r["quantize"]): r for r in memory["settings"]}
    assert ("none", "none") in settings
    for row in settings.values():
        assert "error" not in row, row
        assert row["image_size"] == [32, 32] and row["estimated_peak_bytes"] > 0
    # each family's phase: planted masks, an edit, and fast == reference at its smoke size
    for name in ("qwenimage", "zimage"):
        family = phases[name]
        assert family["family"] == name and family["fast_changes_output"]
        assert family["fast_vs_reference_max_abs_diff_rel"] < 1e-5
        assert result["summary"]["families"][name]["fast_over_vanilla_time"] > 0
    if "torchao-int8" in {q for _, q in settings}:
        quant, plain = settings["none", "torchao-int8"], settings["none", "none"]
        assert quant["estimated_peak_bytes"] < plain["estimated_peak_bytes"]


@pytest.mark.timeout(600)
def test_a_part_runs_only_its_phases(tmp_path):
    """On a lent GPU the check runs in parts, each short enough to run twice in one loan."""
    out = tmp_path / "out"
    done = subprocess.run(
        ["bash", str(SCRIPT), "--cpu-smoke", "--part", "families"],
        cwd=ROOT,
        env=_env(OUT=str(out)),
        capture_output=True,
        text=True,
        timeout=580,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((out / "gpu_check.json").read_text())
    assert result["part"] == "families" and result["ok"]
    assert sorted(result["phases"]) == ["flux2", "qwenimage", "sd3", "zimage"]
    assert result["not_run"] == ["overhead", "reference", "memory"]
    assert result["summary"]["fast_over_vanilla_time"] is None
    assert result["summary"]["sd3_fast_over_vanilla_time"] > 0


def test_an_unknown_part_is_refused():
    done = subprocess.run(
        ["bash", str(SCRIPT), "--part", "most"],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "--part 'most' is not core, families or all" in done.stderr


def test_an_unknown_option_is_refused():
    done = subprocess.run(
        ["bash", str(SCRIPT), "--gpu-please"], cwd=ROOT, env=_env(), capture_output=True, text=True
    )
    assert done.returncode == 2 and "usage: benchmarks/gpu_check.sh [--cpu-smoke]" in done.stderr
