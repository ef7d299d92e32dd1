"""The command line of the reliability checks: which checks, their counts, the JSON figures."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from .bad_inputs import check_bad_inputs
from .common import Workspace
from .concurrent import check_concurrent
from .faults import check_faults
from .fuzz import check_fuzz
from .kill import check_kill
from .secrets import check_secrets

CHECKS = ("kill", "faults", "bad_inputs", "secrets", "concurrent", "fuzz", "forgeries")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description="Reliability and security of slim-eval, in figures."
    )
    parser.add_argument("--kill-trials", type=int, default=20)
    parser.add_argument("--rates", default="0.1,0.3,0.5")
    parser.add_argument("--fuzz-cases", type=int, default=2000)
    parser.add_argument("--concurrent-trials", type=int, default=2)
    parser.add_argument("--only", default=",".join(CHECKS), help="comma-separated checks")
    parser.add_argument(
        "--forgery-run", type=Path, help="forgeries: a finished toy deleaker run to start from"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", action="store_true", help="per-row details in the JSON")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    only = [c.strip() for c in args.only.split(",") if c.strip()]
    unknown = sorted(set(only) - set(CHECKS))
    if unknown:
        parser.error(f"unknown check(s) {unknown}; choose from {', '.join(CHECKS)}")
    for name, value in (("--kill-trials", args.kill_trials), ("--fuzz-cases", args.fuzz_cases)):
        if not 1 <= value <= 100_000:
            parser.error(f"{name} {value} is outside 1..100000")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    import torch

    torch.set_num_threads(1)
    figures: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "checks": only}
    started = time.perf_counter()
    with Workspace() as ws:
        timings = {}
        for check in only:
            t0 = time.perf_counter()
            if check == "kill":
                figures.update(check_kill(ws, args.kill_trials, seed=args.seed, log=log))
            elif check == "faults":
                rates = [float(r) for r in args.rates.split(",")]
                figures.update(check_faults(ws, rates, log=log))
            elif check == "bad_inputs":
                figures.update(check_bad_inputs(ws, log=log))
            elif check == "secrets":
                figures.update(check_secrets(ws, log=log))
            elif check == "concurrent":
                figures.update(check_concurrent(ws, args.concurrent_trials, log=log))
            elif check == "fuzz":
                figures.update(check_fuzz(args.fuzz_cases, seed=args.seed, log=log))
            elif check == "forgeries":  # benchmarks/forgeries.py (benchmarks/ is no package)
                import importlib.util

                spec = importlib.util.spec_from_file_location(
                    "slim_forgeries", Path(__file__).resolve().parents[1] / "forgeries.py"
                )
                forgeries = importlib.util.module_from_spec(spec)
                sys.modules[spec.name] = forgeries  # its dataclasses look their module up
                spec.loader.exec_module(forgeries)
                figures.update(
                    forgeries.check_forgeries(ws.path("forgeries"), run=args.forgery_run, log=log)
                )
            timings[check] = round(time.perf_counter() - t0, 1)
        figures["seconds"] = timings
    figures["total_seconds"] = round(time.perf_counter() - started, 1)
    figures["load_average_1min"] = round(os.getloadavg()[0], 1)
    if not args.verbose:
        for key in ("fault_rows", "concurrent_rows", "forgery_rows"):
            figures.pop(key, None)
        figures["bad_input_rows"] = [
            r for r in figures.get("bad_input_rows", []) if not r["handled"]
        ]
    if args.json:
        print(json.dumps(figures, sort_keys=True, default=str))
    else:
        print(json.dumps(figures, indent=2, sort_keys=True, default=str))
    return figures
