"""Reliability and security of `slim-eval`, in figures.

Seven checks, each printing its counts (all traffic to 127.0.0.1, every loop bounded in count and
time):

1. ``kill``: ``slim-eval run`` in a child process, killed with SIGKILL at a random point (after
   a random number of records of a random file, plus a random delay), then resumed; every
   sample must be judged exactly once, every JSONL line must be whole, and ``metrics.json`` must
   equal that of an uninterrupted run (but for the seconds per image and peak memory in
   ``extra.cost``, which are measured).
2. ``faults``: whole runs judged through the local protocol server injecting one fault kind at
   a time (429 with Retry-After, 500, dropped connections, timeouts, malformed, truncated and
   wrong-schema JSON) at rates from 10% to 50%; every run must finish with each sample labelled
   or counted as a judge error, and the labels it gives are compared with a fault-free run.
3. ``bad_inputs``: a table of wrong inputs to the CLI; each must give one ``error:`` line naming
   the value (several problems of one request: one error listing each), a ``hint:`` line, the
   right exit code (2 usage, 1 run failure), no traceback, and leave finished output untouched;
   ``data_loss_cases`` counts cases after which work was lost (a finished run changed, an image
   file claimed by two records or overwritten).
4. ``secrets``: fake API keys in arguments and environment; every file a run, the judge cache
   and a leaderboard entry write is scanned for them.
5. ``concurrent``: a second process on a run directory held by a first must refuse (the lock),
   and the first one's records must stay whole.
6. ``fuzz``: property-based mutations (hypothesis) of a valid leaderboard entry; ``validate``
   must never crash and never accept a changed aggregate or verdict.
7. ``forgeries``: every tamper a submitter might use to earn a rank, each generated from a real
   toy entry verified under a throwaway maintainers' key (``benchmarks/forgeries.py``);
   ``forgeries_accepted`` must be 0.

The run uses the ``tiny-random`` backbone (1 step, 64 text tokens) and the
``openai-compatible`` judge pointed at :class:`slim_leakage.judge.testing.ScriptedServer`.

The checks live in the package ``benchmarks/reliability_checks/`` (one module per family,
the bad-input cases as tables); this file runs them and re-exports their names, so
``python benchmarks/reliability.py --json`` and the tests' ``bench.check_kill(...)`` keep working.

Usage: python benchmarks/reliability.py [--kill-trials 20] [--fuzz-cases 2000]
       [--rates 0.1,0.3,0.5] [--only kill,faults,...] [--forgery-run RUN] [--json]
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

# benchmarks/ is no package: put it on the path so that reliability_checks imports as one
sys.path.insert(0, str(Path(__file__).resolve().parent))

from reliability_checks import MODULES  # noqa: E402

for _name in MODULES:
    _module = importlib.import_module(f"reliability_checks.{_name}")
    globals().update({k: v for k, v in vars(_module).items() if not k.startswith("__")})

main = importlib.import_module("reliability_checks.cli").main

if __name__ == "__main__":
    main()
