"""Validation against the SLIM shipped in the repository (no stand-in dataset)."""

import json

import pytest

from slim_leakage._io import sha256_bytes
from slim_leakage.leaderboard.build import load_pinned
from slim_leakage.leaderboard.schema import CURRENT_VERSION, SCHEMA_NAME
from slim_leakage.metrics import aggregate
from slim_leakage.records import LABELS, Verdict


@pytest.fixture(scope="module")
def pairs():
    from slim_leakage.slim import dataset_fingerprint, load_samples

    return load_samples("pairs"), dataset_fingerprint("pairs")


def _entry(samples, fingerprint):
    verdicts = [
        Verdict(sample_id=s.id, method="deleaker", label=LABELS[i % 5], order_flip=i % 7 == 0)
        for i, s in enumerate(samples)
    ]
    metrics = aggregate(verdicts, samples, method="deleaker")
    return {
        "schema": SCHEMA_NAME,
        "schema_version": CURRENT_VERSION,
        "name": "fixture",
        "submitted": "2026-11-28",
        "unverified": False,
        "method": {"name": "deleaker", "config": {}},
        "backbone": {"preset": "flux-dev", "description": {}},
        "dataset": {"config": "pairs", "fingerprint": fingerprint, "n_samples": len(samples)},
        "judge": load_pinned()["judge"],
        "package": {"version": "0.1.0", "git_commit": None},
        "metrics": metrics.to_dict(),
        "cost": {"vanilla": None, "method": None},
        "verdicts": [
            {
                "sample_id": s.id,
                "subset": s.subset,
                "family": s.family,
                "label": v.label,
                "error": None,
                "order_flip": v.order_flip,
                "vanilla_sha256": sha256_bytes(f"v{s.id}".encode()),
                "method_sha256": sha256_bytes(f"m{s.id}".encode()),
            }
            for s, v in zip(samples, verdicts)
        ],
    }


def test_full_pairs_entry_validates_against_the_shipped_slim(pairs, tmp_path, cli):
    samples, fingerprint = pairs
    path = tmp_path / "entry.json"
    path.write_text(json.dumps(_entry(samples, fingerprint)))
    code, out, err = cli("validate", str(path))
    assert code == 0, out + err
    assert "verified" in out


def test_a_partial_run_does_not_validate(pairs, tmp_path, cli):
    samples, fingerprint = pairs
    entry = _entry(samples[:5], fingerprint)
    entry["dataset"]["fingerprint"] = "0" * 64
    path = tmp_path / "entry.json"
    path.write_text(json.dumps(entry))
    code, out, _ = cli("validate", str(path), "--json")
    assert code == 1
    problems = json.loads(out.strip().splitlines()[-1])["entries"][str(path)]["problems"]
    assert any(f"{len(samples) - 5} sample(s) of 'pairs' are missing" in p for p in problems)
    assert any(p.startswith("dataset.fingerprint: '0000") for p in problems)
