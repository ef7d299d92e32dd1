"""The `concurrent` check: a second process on a run directory held by a first."""

from __future__ import annotations

import subprocess
import sys
import time

from .common import (
    FAKE_OPENAI_KEY,
    Workspace,
    child_env,
    cli,
    line_problems,
    run_argv,
    verdict_ids,
)


# -- 5. two processes ----------------------------------------------------------------------------
def check_concurrent(ws: Workspace, trials: int = 3, log=print) -> dict:
    """Start two runs on one directory at once; the second must be refused, records stay whole."""
    from slim_leakage.judge.testing import ScriptedServer

    rows = []
    with ScriptedServer(latency=0.3) as slow:  # keeps the first process busy judging
        for i in range(trials):
            out = ws.path(f"concurrent-{i}")
            argv = run_argv(out, ws.samples, slow.openai_base_url, ws.path(f"concurrent-{i}-c"))
            first = subprocess.Popen(
                [sys.executable, "-m", "slim_leakage.cli", *argv],
                env=child_env(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            deadline = time.monotonic() + 120
            while not (out / ".lock").exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            # The lock file exists as soon as the first process holds the lock.
            time.sleep(0.2)
            code, _, err = cli(argv, env={"OPENAI_API_KEY": FAKE_OPENAI_KEY})
            try:
                first.wait(timeout=240)
            except subprocess.TimeoutExpired:
                first.kill()
                first.wait()
            first_err = first.stderr.read()
            first.stderr.close()
            ids = verdict_ids(out) if (out / "verdicts.jsonl").exists() else []
            corrupt = bool(line_problems(out)) or len(ids) != len(set(ids))
            refused = code == 1 and "in use" in err and "pid" in err
            rows.append(
                {
                    "second_exit": code,
                    "refused": refused,
                    "first_exit": first.returncode,
                    "corrupt": corrupt,
                    "second_message": err.strip()[-300:],
                    "first_error": None if first.returncode == 0 else first_err.strip()[-300:],
                }
            )
            log(f"concurrent {i}: second exit {code} refused={refused} corrupt={corrupt}")
    return {
        "concurrent_trials": len(rows),
        "concurrent_refused": sum(r["refused"] for r in rows),
        "concurrent_corruptions": sum(r["corrupt"] for r in rows),
        "concurrent_rows": rows,
    }
