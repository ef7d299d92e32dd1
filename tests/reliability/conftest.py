"""Shared pieces of the reliability tests: the benchmark's helpers and one workspace."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "reliability.py"


def _load_bench(path: Path = BENCH, name: str = "slim_reliability_bench"):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def bench():
    """``benchmarks/reliability.py`` as a module (the tests run its checks at small counts)."""
    return _load_bench()


@pytest.fixture(scope="session")
def forgeries():
    """``benchmarks/forgeries.py`` as a module."""
    return _load_bench(BENCH.with_name("forgeries.py"), "slim_forgeries_bench")


@pytest.fixture(scope="module")
def workspace(bench, tmp_path_factory):
    """A workspace with the local protocol server and a finished reference run."""
    pytest.importorskip("diffusers")
    with bench.Workspace(tmp_path_factory.mktemp("reliability")) as ws:
        ws.reference()
        yield ws


@pytest.fixture
def run_args(tmp_path):
    """``run_args(*extra, backbone=...)``: `slim-eval run` arguments over a one-sample file."""
    from slim_leakage.records import Sample

    def make(*extra: str, backbone: str = "tiny-random") -> list[str]:
        samples = tmp_path / "samples.jsonl"
        sample = Sample(id="s1", prompt="a cow and a horse", entities=("cow", "horse"), seed=1)
        samples.write_text(sample.to_json() + "\n")
        return [
            "run", "--method", "vanilla", "--backbone", backbone, "--config", str(samples),
            "--out", str(tmp_path / "out"), "--no-progress", "--image-metrics", "none",
            # the default judge (the toy oracle) cannot read tiny-random's noise; a caller's
            # own --judge comes later and wins
            "--judge", "none", *extra,
        ]  # fmt: skip

    return make


@pytest.fixture
def no_weights(monkeypatch):
    """Fail the test if anything tries to load a backbone."""

    def boom(*args, **kwargs):
        raise AssertionError("weights were loaded before the input was validated")

    monkeypatch.setattr("slim_leakage.backbones.load_backbone", boom)
