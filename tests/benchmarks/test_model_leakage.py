"""``benchmarks/model_leakage.py``: one offline backbone end to end, its JSON and the toy check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "model_leakage.py"

pytest.importorskip("diffusers")


@pytest.mark.timeout(900)
def test_the_toy_backbone_agrees_with_the_oracle_exact_reading(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--backbones", "toy", "--limit", "3", "--json"]
        + ["--out", str(tmp_path / "runs"), "--device", "cpu"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=880,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    (row,) = result["backbones"]
    assert row["backbone"] == "toy" and row["samples"] == row["checked"] == 3
    assert row["seconds_per_image"] > 0 and row["peak_memory_bytes"] > 0
    agree = row["toy_agreement"]
    assert agree["entities"] == 6
    assert agree["found_agreement"] == agree["leak_agreement"] == 1.0
    assert agree["judge_k_n"] == agree["exact_k_n"] == row["entity_k_n"]


def test_every_offline_preset_is_measured():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import model_leakage
    finally:
        sys.path.pop(0)
    names = model_leakage.offline_presets()
    assert {"tiny-random", "tiny-sana", "toy"} <= set(names)
    assert "diffusers" not in names and "images" not in names
