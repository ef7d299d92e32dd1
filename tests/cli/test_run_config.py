"""`slim-eval run` options: RunConfig holds every default; the command line only maps flags."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from slim_leakage.cli.main import build_parser
from slim_leakage.cli.run_cmd import build_run_config
from slim_leakage.errors import ConfigError
from slim_leakage.records import Sample
from slim_leakage.run import Run, RunConfig


def _config(*argv: str) -> RunConfig:
    return build_run_config(build_parser().parse_args(["run", *argv]))


def test_without_options_the_command_line_gives_runconfig_defaults():
    assert _config() == RunConfig()


def test_the_out_folder_rule_lives_in_runconfig():
    assert RunConfig().out_dir == Path("runs/deleaker-toy-toy-pairs")
    mine = RunConfig(method="vanilla", backbone="tiny-random", config="data/mine.jsonl")
    assert mine.out_dir == Path("runs/vanilla-tiny-random-mine")
    assert RunConfig(out="elsewhere").out_dir == Path("elsewhere")
    # evaluate() and the command line agree on where a run goes
    assert Run(mine).dir.root == mine.out_dir
    assert (
        _config(
            "--method", "vanilla", "--backbone", "tiny-random", "--config", "data/mine.jsonl"
        ).out_dir
        == mine.out_dir
    )
    # a replaced field moves the default folder with it
    assert dataclasses.replace(mine, method="deleaker").out_dir == Path(
        "runs/deleaker-tiny-random-mine"
    )


def test_command_line_beats_file_beats_defaults(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"method": "vanilla", "batch_size": 2, "judge_args": {"a": "1"}}))
    from_file = _config("--run-config", str(path))
    assert (from_file.method, from_file.batch_size, from_file.judge) == ("vanilla", 2, "oracle")
    both = _config("--run-config", str(path), "--method", "deleaker", "--judge-arg", "b=2")
    assert (both.method, both.batch_size) == ("deleaker", 2)
    assert both.judge_args == {"a": "1", "b": "2"}
    path.write_text(json.dumps({"methd": "vanilla"}))
    with pytest.raises(ConfigError, match="no option 'methd'. Did you mean 'method'"):
        _config("--run-config", str(path))


def test_a_command_line_run_resolves_once(tmp_path, cli, monkeypatch):
    import slim_leakage.slim

    calls = []
    real = slim_leakage.slim.load_samples

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(slim_leakage.slim, "load_samples", counting)
    samples = tmp_path / "samples.jsonl"
    sample = Sample(id="s1", prompt="a cow and a horse", entities=("cow", "horse"), seed=1)
    samples.write_text(sample.to_json() + "\n")
    code, out, err = cli(
        "run", "--method", "vanilla", "--backbone", "tiny-random", "--device", "cpu",
        "--backbone-arg", "num_inference_steps=1", "--judge", "none", "--no-references",
        "--config", str(samples), "--out", str(tmp_path / "out"), "--image-metrics", "none",
        "--no-report", "--no-progress",
    )  # fmt: skip
    assert code == 0, err
    assert "(1 samples)" in out
    assert len(calls) == 1
