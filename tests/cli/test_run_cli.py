"""`slim-eval run` from the command line: real judge over the local protocol server, resume,
usage errors, and `accelerate launch` with two CPU processes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("diffusers")
pytest.importorskip("openai")

from slim_leakage._io import iter_jsonl  # noqa: E402
from slim_leakage.judge.testing import ScriptedServer  # noqa: E402
from slim_leakage.records import Sample  # noqa: E402

SAMPLES = [
    Sample(id="a1", prompt="a cow and a horse in a field", entities=("cow", "horse"), seed=11),
    Sample(
        id="a2", prompt="a cat and a cheetah near a river", entities=("cat", "cheetah"), seed=12
    ),
    Sample(id="a3", prompt="an owl and an eagle on a branch", entities=("owl", "eagle"), seed=13),
]


@pytest.fixture
def server():
    with ScriptedServer() as srv:
        yield srv


def _args(tmp_path, server, out="run"):
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(s.to_json() + "\n" for s in SAMPLES))
    return [
        "run", "--method", "instruction-prompt", "--backbone", "tiny-random", "--device", "cpu",
        "--backbone-arg", "num_inference_steps=1", "--backbone-arg", "max_sequence_length=64",
        "--judge", "openai-compatible", "--judge-arg", f"base_url={server.openai_base_url}",
        "--judge-arg", f"cache_dir={tmp_path / 'cache'}",
        "--config", str(samples), "--out", str(tmp_path / out), "--image-metrics", "none",
        "--no-progress", "--json",
    ]  # fmt: skip


def test_cli_run_judges_through_the_protocol_server_and_resumes(tmp_path, server, cli, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    code, out, err = cli(*_args(tmp_path, server))
    assert code == 0, err
    first_line = out.splitlines()[0]
    assert first_line.startswith("slim-eval: method instruction-prompt on backbone tiny-random")
    metrics = json.loads(out.strip().splitlines()[-1])
    assert metrics["n_samples"] == 3 and metrics["n_labelled"] + metrics["judge_errors"] == 3
    calls = server.count()
    assert calls > 0
    code, out2, _ = cli(*_args(tmp_path, server))
    assert code == 0
    assert server.count() == calls  # nothing judged twice
    assert json.loads(out2.strip().splitlines()[-1])["counts"] == metrics["counts"]
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            assert b"sk-test-not-a-real-key" not in path.read_bytes(), path


def test_cli_usage_errors_exit_2_with_one_line(tmp_path, server, cli):
    code, _, err = cli(*_args(tmp_path, server), "--method-arg", "alpah=2")
    assert code == 2
    assert err.startswith("error: ") and "hint: " in err and "Traceback" not in err
    code, _, err = cli("run", "--method", "deleeker", "--config", "pairs")
    assert code == 2 and "Did you mean 'deleaker'" in err


@pytest.mark.skipif(
    shutil.which("accelerate") is None
    and not (Path(sys.executable).parent / "accelerate").exists(),
    reason="accelerate is not installed",
)
def test_accelerate_launch_two_cpu_processes(tmp_path, server):
    accelerate = shutil.which("accelerate") or str(Path(sys.executable).parent / "accelerate")
    cmd = [
        accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no",
        "-m", "slim_leakage.cli", *_args(tmp_path, server, out="dist"),
    ]  # fmt: skip
    env = {**os.environ, "OPENAI_API_KEY": "sk-test", "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    root = tmp_path / "dist"
    verdicts = [v["sample_id"] for v in iter_jsonl(root / "verdicts.jsonl")]
    assert verdicts == ["a1", "a2", "a3"]  # merged in sample order
    shard_ids = [
        sorted(v["sample_id"] for v in iter_jsonl(root / "shards" / f"rank-{r}" / "verdicts.jsonl"))
        for r in (0, 1)
    ]
    assert shard_ids == [["a1", "a3"], ["a2"]]
    assert json.loads((root / "metrics.json").read_text())["n_samples"] == 3


def test_cli_run_in_batch_mode_keeps_its_batch_ids_in_the_run_directory(
    tmp_path, server, cli, monkeypatch
):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    args = _args(tmp_path, server)
    judge = args.index("openai-compatible")
    args[judge] = "openai"  # the compatible judge has no batch interface
    args += ["--judge-arg", "batch=true", "--judge-arg", "batch_poll=0.02"]
    code, out, err = cli(*args)
    assert code == 0, err
    metrics = json.loads(out.strip().splitlines()[-1])
    assert metrics["n_labelled"] + metrics["judge_errors"] == 3
    book = json.loads((tmp_path / "run" / "judge-batches.json").read_text())["batches"]
    assert sorted(book) == sorted(server.batches.jobs) and book
    assert all(r.path.endswith("#item") for r in server.requests)
