"""Validation against the SLIM shipped in the repository (no stand-in dataset)."""

import json
import os
from pathlib import Path

import pytest

from slim_leakage._io import sha256_bytes
from slim_leakage.leaderboard.build import sample_ids_sha256
from slim_leakage.leaderboard.pinned import load_pinned
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
        "method": {"name": "deleaker", "config": {}},
        "backbone": {"preset": "flux-dev", "description": {}},
        "dataset": {
            "config": "pairs",
            "fingerprint": fingerprint,
            "n_samples": len(samples),
            "sample_ids_sha256": sample_ids_sha256([s.id for s in samples]),
        },
        "judge": load_pinned().families["slim"].identity(),
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
    assert f"{path}: unverified" in out  # valid; only a signed record verifies it


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


REPO = Path(__file__).resolve().parents[2]
TOY_ENTRIES = ("toy-deleaker", "toy-deleaker-nosmooth", "toy-instruction-prompt", "toy-vanilla")


def test_make_toy_entries_runs_the_documented_sequence(tmp_path):
    """The script's commands, recorded by a stand-in for slim-eval."""
    import subprocess

    log = tmp_path / "calls.txt"
    fake = tmp_path / "slim-eval"
    fake.write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    fake.chmod(0o755)
    runs = tmp_path / "runs"

    def script():
        return subprocess.run(
            [str(REPO / "leaderboard" / "make_toy_entries.sh"), "/keys/k.pem", str(runs)],
            env={**os.environ, "SLIM_EVAL": str(fake)},
            capture_output=True,
            text=True,
            check=False,
        )

    done = script()
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    assert calls[0] == f"--method deleaker --out {runs}/deleaker --no-progress"
    assert calls[2] == (
        f"--method deleaker --method-arg smoothing=false --out {runs}/deleaker-nosmooth "
        "--no-progress"
    )
    assert calls[4] == f"--method instruction-prompt --out {runs}/instruction-prompt --no-progress"
    assert calls[6] == f"--method vanilla --out {runs}/vanilla --no-progress"
    assert calls[1].startswith(
        f"submit {runs}/deleaker --out leaderboard/entries/toy-deleaker.json --name deleaker (toy)"
    )
    verify = [c for c in calls if c.startswith("verify-entry")]
    assert verify == [
        f"verify-entry leaderboard/entries/toy-{run}.json --images {runs}/{run} --key /keys/k.pem"
        for run in ("deleaker", "deleaker-nosmooth", "instruction-prompt", "vanilla")
    ]
    assert calls[-1] == (
        f"leaderboard render leaderboard/ --out {runs}/site --readme leaderboard/README.md"
    )
    # a second invocation into the same folder would mix old and new runs: refused
    runs.mkdir()
    again = script()
    assert again.returncode == 2 and "exists" in again.stderr
