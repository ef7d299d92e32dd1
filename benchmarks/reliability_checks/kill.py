"""The `kill` check: `slim-eval run` killed with SIGKILL at a random point, then resumed."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter

from .common import (
    FAKE_OPENAI_KEY,
    SAMPLES,
    Workspace,
    child_env,
    cli,
    comparable_metrics,
    count_lines,
    line_problems,
    run_argv,
    verdict_ids,
)


# -- 1. kill -9 ----------------------------------------------------------------------------------
def _kill_point(rng: random.Random, n_samples: int) -> tuple[str, int, float]:
    """A random (file, record count, delay): the child dies after that many records appear."""
    n_entities = 2 * n_samples
    targets = [
        ("manifest.json", 1),
        ("generations.jsonl", rng.randint(1, 2 * n_samples + n_entities)),
        ("judgements.jsonl", rng.randint(1, 6 * n_samples)),
        ("verdicts.jsonl", rng.randint(1, n_samples)),
        ("metrics.json", 1),
    ]
    name, count = rng.choice(targets)
    return name, count, rng.uniform(0.0, 0.15)


def kill_trial(ws: Workspace, index: int, rng: random.Random, *, limit_s: float = 120.0) -> dict:
    """One kill -9 and resume; returns what was checked."""
    out = ws.path(f"kill-{index}")
    cache = ws.path(f"kill-{index}-cache")
    argv = run_argv(out, ws.samples, ws.url, cache)
    name, count, delay = _kill_point(rng, ws.n_samples)
    child = subprocess.Popen(
        [sys.executable, "-m", "slim_leakage.cli", *argv],
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + limit_s
    killed = False
    target = out / name
    while child.poll() is None and time.monotonic() < deadline:
        reached = target.exists() if name.endswith(".json") else count_lines(target) >= count
        if reached:
            time.sleep(delay)
            if child.poll() is None:
                os.kill(child.pid, signal.SIGKILL)
                killed = True
            break
        time.sleep(0.002)
    if child.poll() is None and not killed:  # the bound: never leave a child running
        os.kill(child.pid, signal.SIGKILL)
        killed = True
    child.wait(timeout=30)
    child.stderr.close()
    torn_before = len(line_problems(out)) if out.exists() else 0
    code, _, err = cli(argv, env={"OPENAI_API_KEY": FAKE_OPENAI_KEY})
    ids = verdict_ids(out) if out.exists() else []
    expected = [s["id"] for s in SAMPLES[: ws.n_samples]]
    problems = line_problems(out) if out.exists() else ["no run directory"]
    same = (
        code == 0
        and (out / "metrics.json").exists()
        and comparable_metrics(out / "metrics.json")
        == comparable_metrics(ws.reference() / "metrics.json")
    )
    gens = Counter()
    from slim_leakage._io import iter_jsonl

    for row in iter_jsonl(out / "generations.jsonl"):
        gens[(row["role"], row["sample_id"], row.get("entity"))] += 1
    stages = Counter(
        (r["sample_id"], r["stage"], r["key"], r.get("order"))
        for r in iter_jsonl(out / "judgements.jsonl")
    )
    survived = (
        code == 0
        and sorted(ids) == sorted(expected)
        and len(ids) == len(set(ids))
        and not problems
        and all(v == 1 for v in gens.values())
        and same
    )
    return {
        "kill_after": f"{name}#{count}+{delay:.3f}s",
        "killed": killed and child.returncode == -signal.SIGKILL,
        "torn_before_resume": torn_before,
        "resume_exit": code,
        "verdicts_once": sorted(ids) == sorted(expected) and len(ids) == len(set(ids)),
        "lines_whole": not problems,
        "metrics_equal": same,
        "duplicate_stage_records": sum(v - 1 for v in stages.values()),
        "survived": survived,
        "error": None if code == 0 else err.strip()[-500:],
    }


def check_kill(ws: Workspace, trials: int, seed: int = 0, log=print) -> dict:
    """Kill -9 at random points, resume, compare; the ``kill_*`` figures."""
    rng = random.Random(seed)
    rows = []
    for i in range(trials):
        row = kill_trial(ws, i, rng)
        rows.append(row)
        log(f"kill {i + 1}/{trials}: {row['kill_after']} survived={row['survived']}")
    return {
        "kill_trials": len(rows),
        "kill_trials_killed": sum(r["killed"] for r in rows),
        "kill_trials_survived": sum(r["survived"] for r in rows),
        "kill_torn_lines_repaired": sum(r["torn_before_resume"] for r in rows),
        "kill_duplicate_stage_records": sum(r["duplicate_stage_records"] for r in rows),
        "kill_failures": [r for r in rows if not r["survived"]],
    }
