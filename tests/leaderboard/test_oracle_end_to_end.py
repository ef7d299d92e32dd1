"""Toy-world images judged by the real oracle backend: submit, validate, verify, agree."""

import json

import numpy as np
import pytest

from slim_leakage._io import atomic_write_bytes, sha256_bytes
from slim_leakage.errors import ValidationError
from slim_leakage.leaderboard.build import build_entry
from slim_leakage.leaderboard.rejudge import verify_entry_file
from slim_leakage.leaderboard.validate import (
    DatasetReference,
    recompute_aggregates,
    validate_entry,
)
from slim_leakage.metrics import AGGREGATE_FIELDS, aggregate
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


@pytest.fixture
def toy_slim(toy_run, monkeypatch):
    """Make the shipped config ``toy-pairs`` the fixture's six samples."""
    from slim_leakage.leaderboard import validate

    root, samples = toy_run
    reference = DatasetReference("toy-pairs", "toyfp", tuple(samples))

    def resolver(config):
        if config != "toy-pairs":
            raise ValidationError(f"Unknown dataset config {config!r}.")
        return reference

    monkeypatch.setattr(validate, "shipped_dataset", resolver)
    return resolver


def _entry_file(folder, entry, name="toy.json"):
    path = folder / "entries" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entry, indent=2))
    return path


def _recompute(entry):
    entry["metrics"].update(
        {k: v for k, v in recompute_aggregates(entry).items() if k in AGGREGATE_FIELDS}
    )


def test_oracle_run_submits_validates_and_verifies(toy_run, toy_slim, tmp_path, maintainers):
    root, _ = toy_run
    labels = [v.label for v in load_run(root).verdicts]
    assert labels[:3] == ["mitigation-major", "degradation-major", "no-change"]
    entry = build_entry(load_run(root))
    report = validate_entry(json.loads(json.dumps(entry)), dataset=toy_slim)
    assert report.ok and not report.verified, report.problems
    assert not any(n.startswith("cannot be verified") for n in report.notes)  # oracle is pinned
    path = _entry_file(maintainers.install(tmp_path / "lb"), entry)
    # the oracle pinned for toy configs, built from pinned.json, re-judges every sample
    record = verify_entry_file(path, root, pinned=maintainers.pinned, image_metrics=())
    assert record["judge"]["backend"] == "oracle" and record["judge"]["deterministic"]
    assert record["agreement"] == {
        "compared": 6,
        "agreed": 6,
        "share": 1.0,
        "threshold": 1.0,
        "rule": "deterministic judge: every label, error and order flip must reproduce",
        "self_agreement": None,
    }
    assert record["decision"] == {"verified": True, "reasons": []}
    assert record["images"]["checked"] == 12


def test_verify_entry_catches_relabelled_and_hidden_samples(
    toy_run, toy_slim, tmp_path, maintainers
):
    root, _ = toy_run
    entry = build_entry(load_run(root))
    folder = maintainers.install(tmp_path / "lb")
    # labels changed and every aggregate recomputed: consistent, so validate accepts it ...
    relabelled = json.loads(json.dumps(entry))
    relabelled["verdicts"][0]["label"] = "mitigation-minor"
    _recompute(relabelled)
    assert validate_entry(relabelled, dataset=toy_slim).ok
    path = _entry_file(folder, relabelled, "relabelled.json")
    record = verify_entry_file(path, root, pinned=maintainers.pinned, image_metrics=())
    # ... but the oracle's label for toy0 does not reproduce, so verification rejects it
    assert not record["decision"]["verified"]
    assert record["decision"]["reasons"][0].startswith("the re-judge reproduced 5 of 6 samples")
    # the degradation (toy1) turned into a judge error: re-judged too, and caught
    hidden = json.loads(json.dumps(entry))
    hidden["verdicts"][1].update(label=None, error="judge failed")
    _recompute(hidden)
    assert validate_entry(hidden, dataset=toy_slim).ok
    path = _entry_file(folder, hidden, "hidden.json")
    record = verify_entry_file(path, root, pinned=maintainers.pinned, image_metrics=())
    row = record["samples"][1]
    assert (row["entry_error"], row["label"], row["agree"]) == (
        "judge failed",
        "degradation-major",
        False,
    )
    assert not record["decision"]["verified"]


def test_verify_entry_cli_signs_and_validate_shows_the_badge(
    toy_run, toy_slim, tmp_path, maintainers, cli
):
    root, _ = toy_run
    folder = maintainers.install(tmp_path / "lb")
    path = _entry_file(folder, build_entry(load_run(root)))
    pinned = str(folder / "pinned.json")
    code, out, err = cli(
        "verify-entry", str(path), "--images", str(root), "--key", str(maintainers.private_path),
        "--pinned", pinned, "--image-metrics", "none",
    )  # fmt: skip
    assert code == 0, out + err
    assert "re-judged 6 sample(s) with oracle/toy-oracle-v1: 6 of 6 reproduced" in out
    assert "decision: verified" in out
    record_file = folder / "verifications" / "toy.json"
    assert record_file.is_file()
    code, out, err = cli("validate", str(path), "--pinned", pinned)
    assert code == 0, out + err
    assert f"{path}: verified" in out
    # validate --rejudge runs the same decision without writing a record
    record_file.unlink()
    code, out, err = cli(
        "validate", str(path), "--pinned", pinned, "--rejudge", "--images", str(root),
        "--image-metrics", "none",
    )  # fmt: skip
    assert code == 0, out + err
    assert f"{path}: unverified" in out and "decision: verified" in out
    assert not record_file.exists()
    # the project's key is not the pinned one here: verify-entry refuses to sign with it
    other = tmp_path / "other.pem"
    from slim_leakage.leaderboard import signing

    signing.write_private_key(other, signing.generate_key_pair()[0])
    code, _, err = cli(
        "verify-entry", str(path), "--images", str(root), "--key", str(other),
        "--pinned", pinned, "--image-metrics", "none",
    )  # fmt: skip
    assert code == 2 and "pinned.json pins" in err
    assert not record_file.exists()


def test_agree_with_the_oracle_run_as_reference(toy_run, tmp_path, cli):
    root, _ = toy_run
    code, out, err = cli("agree", "--reference-run", str(root), "--run", str(root), "--json")
    assert code == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert report["n_samples"] == 6
    assert report["spearman"] == pytest.approx(1.0)
    assert report["direction_agreement"] == 1.0 and report["magnitude_agreement"] == 1.0
    assert report["reference"]["judge"] == ["oracle/toy-oracle-v1"]
