"""Toy-world images judged by the real oracle backend: submit, validate, rejudge, agree."""

import json

import numpy as np
import pytest

from slim_leakage._io import atomic_write_bytes, sha256_bytes
from slim_leakage.leaderboard.build import build_entry
from slim_leakage.leaderboard.rejudge import rejudge
from slim_leakage.leaderboard.validate import DatasetReference, validate_entry
from slim_leakage.metrics import aggregate
from slim_leakage.records import Generation, Sample
from slim_leakage.rundir import RunDir, load_run


def _png(array) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _toy_run(root, n=6):
    """A run whose vanilla images leak (entity b wears a's pattern) in some samples."""
    from slim_leakage.judge import JudgeItem, get_judge
    from slim_leakage.toy import world

    rng = np.random.default_rng(0)
    samples, generations, items = [], [], []
    for i, (a, b) in enumerate(world.lookalike_pairs()[:n]):
        placements = world.place((a, b), rng)
        clean = world.render(placements).image
        pattern = world.entity_type(a).pattern
        leaky = world.render(placements, patterns=[pattern, pattern]).image
        # samples alternate: method fixes the leak / method adds a leak / nothing changes
        vanilla, method = [(leaky, clean), (clean, leaky), (clean, clean)][i % 3]
        sample = Sample(
            id=f"toy{i}",
            prompt=world.caption((a, b)),
            entities=(a, b),
            seed=i,
            subset="simple",
            family="toy",
        )
        samples.append(sample)
        paths = {}
        for role, folder, image in (
            ("vanilla", "vanilla", vanilla),
            ("method", "deleaker", method),
        ):
            data = _png(image)
            rel = f"images/{folder}/{sample.id}.png"
            atomic_write_bytes(root / rel, data)
            paths[role] = root / rel
            generations.append(
                Generation(sample.id, role, "deleaker", rel, sha256_bytes(data), i, 32, 32)
            )
        items.append(JudgeItem(sample, "deleaker", paths["vanilla"], paths["method"], {}))
    judge = get_judge("oracle")
    verdicts = judge.judge(items, progress=False)
    run = RunDir(root)
    run.write_manifest(
        {
            "schema": 1,
            "package_version": "0.1.0",
            "git_commit": None,
            "method": {"name": "deleaker", "config": {}},
            "backbone": {"name": "toy"},
            "dataset": {"config": "toy-pairs", "fingerprint": "toyfp", "n_samples": n},
            "judge": judge.describe(),
            "cost": {},
        }
    )
    run.write_samples(samples)
    for record in (*generations, *verdicts):
        run.records.append(record)
    run.write_metrics(aggregate(verdicts, samples, method="deleaker", n_boot=100))
    return root, samples


@pytest.fixture
def toy_run(tmp_path):
    pytest.importorskip("slim_leakage.toy.world")
    return _toy_run(tmp_path / "toy")


def test_oracle_run_submits_validates_and_rejudges(toy_run):
    root, samples = toy_run
    labels = [v.label for v in load_run(root).verdicts]
    assert labels[:3] == ["mitigation-major", "degradation-major", "no-change"]
    entry = build_entry(load_run(root))
    assert entry["unverified"] is True  # the oracle is not the leaderboard's pinned judge
    reference = DatasetReference("toy-pairs", "toyfp", tuple(samples))
    report = validate_entry(json.loads(json.dumps(entry)), dataset=lambda config: reference)
    assert report.ok and not report.verified, report.problems
    # judge again with the entry's own judge (built from its backend name and model id)
    assert rejudge(entry, root, report=report) == 1.0
    assert report.ok
    assert "rejudge: 6 of 6 labels reproduced (1.000)" in report.notes


def test_rejudge_catches_a_relabelled_entry(toy_run):
    root, samples = toy_run
    entry = build_entry(load_run(root))
    entry["verdicts"][0]["label"] = "mitigation-minor"  # claims a smaller effect
    report = validate_entry(entry, dataset=lambda c: DatasetReference(c, "toyfp", tuple(samples)))
    report.problems.clear()  # (the recomputation check flags it too; look at rejudge alone)
    share = rejudge(entry, root, report=report, min_agreement=1.0)
    assert share == pytest.approx(5 / 6)
    assert any("'toy0' now 'mitigation-major'" in n for n in report.notes)
    assert report.problems == ["rejudge: only 0.833 of labels reproduced, below 1.0"]


def test_agree_with_the_oracle_run_as_reference(toy_run, tmp_path, cli):
    root, _ = toy_run
    code, out, err = cli("agree", "--reference-run", str(root), "--run", str(root), "--json")
    assert code == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert report["n_samples"] == 6
    assert report["spearman"] == pytest.approx(1.0)
    assert report["direction_agreement"] == 1.0 and report["magnitude_agreement"] == 1.0
    assert report["reference"]["judge"] == ["oracle/toy-oracle-v1"]
