"""Fixtures: complete run directories written with the record classes, and a fake SLIM."""

from __future__ import annotations

import io

import pytest

from slim_leakage._io import atomic_write_bytes, sha256_bytes
from slim_leakage.leaderboard.build import load_pinned
from slim_leakage.leaderboard.rundir import write_run
from slim_leakage.leaderboard.validate import DatasetReference
from slim_leakage.metrics import aggregate
from slim_leakage.records import LABELS, Generation, Sample, Verdict

FINGERPRINT = "f" * 16


def _png(seed: int, shade: int) -> bytes:
    from PIL import Image

    img = Image.new("RGB", (8, 8), (seed * 37 % 256, shade, 90))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def make_samples(n: int = 10) -> list[Sample]:
    """``n`` pair samples over two subsets and two families."""
    return [
        Sample(
            id=f"p{i:03d}",
            prompt=f"a cat and a cheetah in scene {i}",
            entities=("cat", "cheetah"),
            seed=100 + i,
            subset=("simple", "interaction")[i % 2],
            family=("big-cats", "birds")[i // 5 % 2],
            config="pairs",
        )
        for i in range(n)
    ]


def make_run(root, *, method="deleaker", labels=None, judge=None, n=10):
    """Write a finished, judged run like `slim-eval run` does, with real PNG files."""
    samples = make_samples(n)
    labels = labels or [LABELS[i % 5] if i != 3 else None for i in range(n)]
    pinned = load_pinned()["judge"]
    judge = judge or {**pinned, "decoding": {"temperature": 0.0}}
    generations, verdicts = [], []
    for i, s in enumerate(samples):
        for role, folder, shade in (("vanilla", "vanilla", 10), ("method", method, 200)):
            data = _png(i, shade)
            rel = f"images/{folder}/{s.id}.png"
            atomic_write_bytes(root / rel, data)
            generations.append(
                Generation(
                    sample_id=s.id,
                    role=role,
                    method="vanilla" if role == "vanilla" else method,
                    path=rel,
                    sha256=sha256_bytes(data),
                    seed=s.seed,
                    width=8,
                    height=8,
                    seconds=0.5,
                )
            )
        lab = labels[i]
        verdicts.append(
            Verdict(sample_id=s.id, method=method, label=lab, order_flip=(i == 1), judge="g")
            if lab
            else Verdict(sample_id=s.id, method=method, label=None, error="timeout")
        )
    metrics = aggregate(verdicts, samples, method=method, n_boot=200)
    manifest = {
        "schema": 1,
        "package_version": "0.1.0",
        "git_commit": "abc123",
        "method": {"name": method, "config": {"alpha": 1.0}},
        "backbone": {"name": "tiny-random", "family": "flux", "dtype": "float32"},
        "dataset": {"config": "pairs", "fingerprint": FINGERPRINT, "n_samples": n},
        "judge": judge,
        "cost": {
            "vanilla": {"seconds_per_image": 0.5, "images_timed": n, "peak_memory_bytes": None},
            "method": {"seconds_per_image": 0.75, "images_timed": n, "peak_memory_bytes": 1024},
        },
    }
    return write_run(
        root,
        manifest=manifest,
        samples=samples,
        generations=generations,
        verdicts=verdicts,
        metrics=metrics,
    )


@pytest.fixture
def finished_run(tmp_path):
    return make_run(tmp_path / "run")


@pytest.fixture
def run_factory(tmp_path):
    def factory(name="run", **kwargs):
        return make_run(tmp_path / name, **kwargs)

    return factory


@pytest.fixture
def fake_slim(monkeypatch):
    """Make the 'shipped' SLIM config `pairs` the fixture samples (10 of them)."""
    from slim_leakage.errors import ValidationError
    from slim_leakage.leaderboard import validate

    def resolver(config):
        if config != "pairs":
            raise ValidationError(f"Unknown dataset config {config!r}.")
        return DatasetReference("pairs", FINGERPRINT, tuple(make_samples(10)))

    monkeypatch.setattr(validate, "shipped_dataset", resolver)
    return resolver
