"""Regression test: run.py: validate the backbone before writing anything."""

from __future__ import annotations

import pytest


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
    tmp_path, cli, no_weights, extra, backbone, named, run_args
):
    code, _, err = cli(*run_args(*extra, backbone=backbone))
    assert code == 2
    assert named in err and "hint:" in err
    # a corrected command with the same --out must not be refused as a "different config"
    assert not (tmp_path / "out").exists()


def test_missing_api_key_fails_before_generation(tmp_path, cli, no_weights, monkeypatch, run_args):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    code, _, err = cli(
        *run_args("--judge", "openai", "--judge-arg", f"cache_dir={tmp_path / 'c'}"),
    )
    assert code == 2
    assert "OPENAI_API_KEY" in err
    assert not (tmp_path / "out").exists()
