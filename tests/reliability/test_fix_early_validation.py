"""Regression test: run.py: validate the backbone before writing anything."""

from __future__ import annotations

import pytest

from slim_leakage.cli.main import main
from slim_leakage.records import Sample


def _cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _run_args(tmp_path, *extra, backbone="tiny-random"):
    samples = tmp_path / "samples.jsonl"
    samples.write_text(
        Sample(id="s1", prompt="a cow and a horse", entities=("cow", "horse"), seed=1).to_json()
        + "\n"
    )
    return [
        "run",
        "--method",
        "vanilla",
        "--backbone",
        backbone,
        "--config",
        str(samples),
        "--out",
        str(tmp_path / "out"),
        "--no-progress",
        "--image-metrics",
        "none",
        *extra,
    ]


@pytest.fixture
def no_weights(monkeypatch):
    """Fail the test if anything tries to load a backbone."""

    def boom(*args, **kwargs):
        raise AssertionError("weights were loaded before the input was validated")

    monkeypatch.setattr("slim_leakage.backbones.load_backbone", boom)


# -- run.py: validate the backbone before writing anything ---------------------------------------
@pytest.mark.parametrize(
    ("extra", "backbone", "named"),
    [
        ((), "flux-devv", "flux-devv"),
        (("--backbone-arg", "num_inferance_steps=2"), "tiny-random", "num_inferance_steps"),
        (("--backbone-arg", "height=tall"), "tiny-random", "tall"),
    ],
)
def test_bad_backbone_fails_before_the_run_directory_exists(
    tmp_path, capsys, no_weights, extra, backbone, named
):
    code, _, err = _cli(capsys, *_run_args(tmp_path, *extra, backbone=backbone))
    assert code == 2
    assert named in err and "hint:" in err
    # a corrected command with the same --out must not be refused as a "different config"
    assert not (tmp_path / "out").exists()


def test_missing_api_key_fails_before_generation(tmp_path, capsys, no_weights, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    code, _, err = _cli(
        capsys,
        *_run_args(tmp_path, "--judge", "openai", "--judge-arg", f"cache_dir={tmp_path / 'c'}"),
    )
    assert code == 2
    assert "OPENAI_API_KEY" in err
    assert not (tmp_path / "out").exists()
