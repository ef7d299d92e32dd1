"""Validation against the SLIM shipped in the repository (no stand-in dataset)."""

import json
import os
from pathlib import Path

import pytest

from slim_leakage.leaderboard.testing import synthetic_entry
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
    return synthetic_entry(
        samples,
        verdicts,
        fingerprint=fingerprint,
        name="fixture",
        method="deleaker",
        package_version="0.1.0",
    )


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


def _fake_slim_eval(tmp_path, fail: str = "") -> tuple[Path, Path]:
    """A stand-in for slim-eval that logs its arguments; a run leaves a metrics.json.

    A run whose ``--out`` ends with ``fail`` exits 1 and leaves nothing.
    """
    log = tmp_path / "calls.txt"
    fake = tmp_path / "slim-eval"
    failing = fail or "none"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {log}\n'
        '[ "$1" = --method ] || exit 0\n'
        'while [ "$1" != --out ]; do shift; done\n'
        f'case "$2" in */{failing}) exit 1;; esac\n'
        'mkdir -p "$2" && touch "$2/metrics.json"\n'
    )
    fake.chmod(0o755)
    return fake, log


def _make_toy_entries(fake: Path, runs: Path, jobs: int = 1):
    import subprocess

    return subprocess.run(
        [str(REPO / "leaderboard" / "make_toy_entries.sh"), "/keys/k.pem", str(runs)],
        env={**os.environ, "SLIM_EVAL": str(fake), "JOBS": str(jobs)},
        capture_output=True,
        text=True,
        check=False,
    )


def test_make_toy_entries_runs_the_documented_sequence(tmp_path):
    """The script's commands, recorded by a stand-in for slim-eval."""
    fake, log = _fake_slim_eval(tmp_path)
    runs = tmp_path / "runs"
    done = _make_toy_entries(fake, runs)
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    flags = "--no-references --no-progress"
    assert calls[:4] == [
        f"--method deleaker --out {runs}/deleaker {flags}",
        f"--method deleaker --method-arg smoothing=false --out {runs}/deleaker-nosmooth {flags}",
        f"--method instruction-prompt --out {runs}/instruction-prompt {flags}",
        f"--method vanilla --out {runs}/vanilla {flags}",
    ]
    assert calls[4].startswith(
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
    again = _make_toy_entries(fake, runs)
    assert again.returncode == 2 and "exists" in again.stderr


@pytest.mark.parametrize("jobs", [1, 4])
def test_make_toy_entries_stops_before_submitting_when_a_run_fails(tmp_path, jobs):
    """Runs made one or four at once: a failed run means no entry is rewritten."""
    fake, log = _fake_slim_eval(tmp_path, fail="instruction-prompt")
    runs = tmp_path / "runs"
    done = _make_toy_entries(fake, runs, jobs=jobs)
    assert done.returncode != 0
    calls = log.read_text().splitlines()
    assert not any(c.startswith(("submit", "verify-entry", "leaderboard")) for c in calls)
    assert not (runs / "instruction-prompt" / "metrics.json").exists()
