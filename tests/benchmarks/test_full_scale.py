"""``benchmarks/full_scale.py`` end to end at a toy size: the same script, ranks, judge server,
report, submit and validate, with every top-level key it promises."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytest.importorskip("diffusers")
pytest.importorskip("google.genai")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_full_scale_runs_small_and_prints_every_key(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "full_scale.py")]
        + ["--samples", "60", "--small", "8", "--ranks", "2", "--latency", "0.05", "--json"]
        + ["--keep", str(tmp_path / "work")],
        env=env,
        capture_output=True,
        text=True,
        timeout=880,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    for key in ("samples", "report_bytes", "rank_devices", "wall_s", "peak_rss_mb"):
        assert key in result, key
    assert result["samples"] == 60 and result["rank_devices"] == ["cuda:0", "cuda:1"]
    assert result["judge_requests"] == result["scales"]["60"]["judge_calls_recorded"] > 0
    assert result["cost_growth"] > 0
    full = result["scales"]["60"]
    assert full["labelled"] == 60 and full["report_thumbnails"] == 120  # over 50: thumbnails
    assert result["scales"]["8"]["report_thumbnails"] == 0  # small: embedded
    assert not full["validate_ok"]  # 60 of the 1,338 pairs samples is not an entry
    assert any("are missing" in p for p in full["validate_problems"])
