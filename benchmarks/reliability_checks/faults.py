"""The `faults` check: whole runs judged through a server injecting one fault kind at a time."""

from __future__ import annotations

import json
import time
from collections import Counter

from .common import (
    FAKE_OPENAI_KEY,
    FAULT_KINDS,
    SAMPLES,
    Workspace,
    cli,
    labels_of,
    line_problems,
    run_argv,
)


# -- 2. judge faults -----------------------------------------------------------------------------
def fault_run(ws: Workspace, kind: str, rate: float, seed: int) -> dict:
    """One whole run judged through a server injecting ``kind`` at ``rate``."""
    from slim_leakage.judge.testing import ScriptedServer

    out = ws.path(f"fault-{kind}-{rate:g}-{seed}")
    reference = labels_of(ws.reference())
    with ScriptedServer(
        fault_rates={kind: rate}, retry_after=0.05, timeout_delay=1.5, seed=seed, shapes="real"
    ) as server:
        t0 = time.perf_counter()
        code, _, err = cli(
            run_argv(
                out,
                ws.samples,
                server.openai_base_url,
                ws.path(f"{out.name}-cache"),
                judge_args={"timeout": 1},
            ),
            env={"OPENAI_API_KEY": FAKE_OPENAI_KEY},
        )
        seconds = time.perf_counter() - t0
        injected = Counter(server.faults_injected)  # a slow reply looks like an answer
        faults = sum(injected.values())
        requests = len(server.requests)
    labels = labels_of(out) if (out / "verdicts.jsonl").exists() else {}
    metrics_file = out / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
    expected = [s["id"] for s in SAMPLES[: ws.n_samples]]
    # A run whose every judgement failed (a safety block on every sample at a high rate) keeps
    # and counts them all, then exits 1 on purpose: nothing is lost, so it completes too.
    all_failed = code == 1 and metrics.get("n_labelled") == 0
    completed = (
        (code == 0 or all_failed)
        and sorted(labels) == sorted(expected)
        and metrics.get("n_labelled", -1) + metrics.get("judge_errors", -1) == len(expected)
        and not line_problems(out)
    )
    labelled = {k: v for k, v in labels.items() if v is not None}
    return {
        "kind": kind,
        "rate": rate,
        "completed": completed,
        "exit": code,
        "labelled": len(labelled),
        "judge_errors": len(labels) - len(labelled),
        "labels_correct": sum(1 for k, v in labelled.items() if v == reference.get(k)),
        "requests": requests,
        "faults_injected": faults,
        "seconds": round(seconds, 2),
        "error": None if code == 0 else err.strip()[-500:],
    }


def check_faults(ws: Workspace, rates: list[float], kinds=FAULT_KINDS, log=print) -> dict:
    """Every fault kind at every rate; the ``fault_*`` figures."""
    rows = []
    for k, kind in enumerate(kinds):
        for i, rate in enumerate(rates):
            # one fault stream per run: with a shared seed every kind would fault (or not) on
            # the very same requests
            row = fault_run(ws, kind, rate, seed=1 + 100 * k + i)
            rows.append(row)
            log(
                f"fault {kind}@{rate:g}: completed={row['completed']} labelled={row['labelled']} "
                f"errors={row['judge_errors']} faults={row['faults_injected']}/{row['requests']}"
            )
    labelled = sum(r["labelled"] for r in rows)
    return {
        "fault_runs": len(rows),
        "fault_runs_completed": sum(r["completed"] for r in rows),
        "fault_samples_labelled": labelled,
        "fault_samples_judge_errors": sum(r["judge_errors"] for r in rows),
        "fault_requests": sum(r["requests"] for r in rows),
        "fault_faults_injected": sum(r["faults_injected"] for r in rows),
        "fault_labels_correct_share": (
            round(sum(r["labels_correct"] for r in rows) / labelled, 6) if labelled else None
        ),
        "fault_rows": rows,
    }
