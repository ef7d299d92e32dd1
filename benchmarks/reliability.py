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

Usage: python benchmarks/reliability.py [--kill-trials 20] [--fuzz-cases 2000]
       [--rates 0.1,0.3,0.5] [--only kill,faults,...] [--forgery-run RUN] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import io
import json
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from slim_leakage.judge.testing import FAULT_KINDS as SERVER_FAULT_KINDS

#: Fake credentials planted by the checks; none may appear in any written file.
FAKE_OPENAI_KEY = "sk-fake-RELIABILITY-0123456789abcdef"
FAKE_ARG_KEY = "sk-fake-ARGUMENT-fedcba9876543210"
FAKE_GEMINI_KEY = "AIza-fake-RELIABILITY-0000"
FAKE_HF_TOKEN = "hf_fakeRELIABILITYtoken0000"
SECRETS = (FAKE_OPENAI_KEY, FAKE_ARG_KEY, FAKE_GEMINI_KEY, FAKE_HF_TOKEN)

#: Fault kinds of the local server exercised by the ``faults`` check: the simple ones, then the
#: shapes the real services send (the server runs with ``shapes="real"``): a 429 whose wait is in
#: the body, 503 overloaded, MAX_TOKENS spent on thinking, a safety block, a rerouted model. The
#: quota kinds stop a run by design (tests/judge/test_real_services.py checks that it resumes).
FAULT_KINDS = tuple(
    kind
    for kind in SERVER_FAULT_KINDS
    if kind not in ("position_bias", "blocked_prompt", "daily_quota", "insufficient_quota")
)

#: Four two-entity samples (ids, subsets and families as in SLIM).
SAMPLES = [
    {
        "id": "s1",
        "prompt": "a cow and a horse in a field",
        "entities": ["cow", "horse"],
        "seed": 1,
        "subset": "simple",
        "family": "bovids",
    },
    {
        "id": "s2",
        "prompt": "a cat and a cheetah near a river",
        "entities": ["cat", "cheetah"],
        "seed": 2,
        "subset": "simple",
        "family": "big-cats",
    },
    {
        "id": "s3",
        "prompt": "an owl and an eagle on a branch",
        "entities": ["owl", "eagle"],
        "seed": 3,
        "subset": "interaction",
        "family": "raptors",
    },
    {
        "id": "s4",
        "prompt": "a dog and a fox in a forest",
        "entities": ["dog", "fox"],
        "seed": 4,
        "subset": "interaction",
        "family": "canids",
    },
]

JSONL_FILES = ("generations.jsonl", "judgements.jsonl", "verdicts.jsonl")


# -- shared helpers ------------------------------------------------------------------------------
def write_samples(path: Path, samples: list[dict] | None = None) -> Path:
    """Write samples as a ``.jsonl`` file (one record per line)."""
    rows = SAMPLES if samples is None else samples
    path.write_text("".join(json.dumps(s) + "\n" for s in rows), encoding="utf-8")
    return path


def run_argv(
    out: Path,
    samples: Path,
    base_url: str | None,
    cache_dir: Path,
    *,
    method: str = "instruction-prompt",
    judge_args: dict[str, Any] | None = None,
    extra: list[str] | None = None,
) -> list[str]:
    """The ``slim-eval run`` arguments of every check (tiny backbone, local judge)."""
    argv = [
        "run",
        "--method",
        method,
        "--backbone",
        "tiny-random",
        "--backbone-arg",
        "num_inference_steps=1",
        "--backbone-arg",
        "max_sequence_length=64",
        "--device",
        "cpu",
        "--config",
        str(samples),
        "--out",
        str(out),
        "--image-metrics",
        "none",
        "--no-progress",
        "--batch-size",
        "2",
    ]
    if base_url is None:
        argv += ["--judge", "none"]
    else:
        options = {
            "base_url": base_url,
            "cache_dir": str(cache_dir),
            "concurrency": 4,
            "timeout": 2,
            "max_retries": 5,
            "backoff_base": 0.02,
            "backoff_cap": 0.2,
        }
        options.update(judge_args or {})
        argv += ["--judge", "openai-compatible"]
        for key, value in options.items():
            argv += ["--judge-arg", f"{key}={value}"]
    return argv + list(extra or [])


def cli(argv: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run ``slim-eval`` in this process; returns (exit code, stdout, stderr)."""
    from slim_leakage.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return code, out.getvalue(), err.getvalue()


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment of child processes: the fake key, one thread, no colour or hub access."""
    env = dict(os.environ)
    env.update(
        {
            "OPENAI_API_KEY": FAKE_OPENAI_KEY,
            "OMP_NUM_THREADS": "1",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


#: What ``metrics.json`` measures per image, so two runs never share: per role in
#: ``extra.cost``, the seconds per image and the peak accelerator memory.
MEASURED_PER_IMAGE = ("seconds_per_image", "peak_memory_bytes")


def comparable_metrics(path: Path) -> dict:
    """``metrics.json`` without the values measured per image (:data:`MEASURED_PER_IMAGE`).

    The rest of ``extra.cost`` (which roles, how many images timed) must be equal.
    """
    data = json.loads(path.read_text())
    for slot in ((data.get("extra") or {}).get("cost") or {}).values():
        for key in MEASURED_PER_IMAGE:
            slot.pop(key, None)
    return data


def line_problems(root: Path) -> list[str]:
    """Torn or unparsable lines in the run's JSONL files."""
    problems = []
    for name in JSONL_FILES:
        path = root / name
        if not path.exists():
            continue
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            problems.append(f"{name}: last line has no newline")
        for i, line in enumerate(data.splitlines()):
            try:
                json.loads(line)
            except ValueError:
                problems.append(f"{name}:{i + 1}: not JSON")
    return problems


def count_lines(path: Path) -> int:
    """Complete lines of a file (0 when it does not exist)."""
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def tree_digest(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root`` (relative path -> hash)."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink() and path.name != ".lock":
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def verdict_ids(root: Path) -> list[str]:
    """Sample ids in ``verdicts.jsonl``, in file order."""
    from slim_leakage._io import iter_jsonl

    return [row["sample_id"] for row in iter_jsonl(root / "verdicts.jsonl")]


def labels_of(root: Path) -> dict[str, str | None]:
    """Sample id -> label (``None`` for a judge error) from ``verdicts.jsonl``."""
    from slim_leakage._io import iter_jsonl

    return {row["sample_id"]: row.get("label") for row in iter_jsonl(root / "verdicts.jsonl")}


class Workspace:
    """A temporary folder, the samples file and one local protocol server for all checks."""

    def __init__(self, root: Path | None = None, *, n_samples: int = 4) -> None:
        self._tmp = None
        if root is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="slim-reliability-")
            root = Path(self._tmp.name)
        self.root = root
        self.samples = write_samples(root / "samples.jsonl", SAMPLES[:n_samples])
        self.n_samples = n_samples
        self.server = None
        self._reference: Path | None = None

    def __enter__(self) -> Workspace:
        from slim_leakage.judge.testing import ScriptedServer

        self.server = ScriptedServer().start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    @property
    def url(self) -> str:
        return self.server.openai_base_url

    def path(self, name: str) -> Path:
        return self.root / name

    def reference(self) -> Path:
        """An uninterrupted, fault-free run (made once)."""
        if self._reference is None:
            out = self.path("reference")
            code, _, err = cli(
                run_argv(out, self.samples, self.url, self.path("reference-cache")),
                env={"OPENAI_API_KEY": FAKE_OPENAI_KEY},
            )
            if code != 0:
                raise RuntimeError(f"the reference run failed ({code}): {err.strip()[-2000:]}")
            self._reference = out
        return self._reference


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


# -- 2. judge faults -----------------------------------------------------------------------------
def fault_run(ws: Workspace, kind: str, rate: float, seed: int) -> dict:
    """One whole run judged through a server injecting ``kind`` at ``rate``."""
    from slim_leakage.judge.testing import ScriptedServer

    out = ws.path(f"fault-{kind}-{rate:g}-{seed}")
    reference = labels_of(ws.reference())
    injected = Counter()
    with ScriptedServer(
        fault_rates={kind: rate}, retry_after=0.05, timeout_delay=1.5, seed=seed, shapes="real"
    ) as server:
        draw = server._fault

        def counted(name):  # count what the server injects (a slow reply looks like an answer)
            injected[name] += 1
            return draw(name)

        server._fault = counted
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


# -- 3. bad inputs -------------------------------------------------------------------------------
_PNG_1x1 = None


def _png(size: int, shade: int = 128) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (size, size), (shade, 255 - shade, shade // 2)).save(buf, format="PNG")
    return buf.getvalue()


def _finished_run(ws: Workspace, name: str) -> Path:
    """A copy of the reference run (a finished run that bad inputs must not touch)."""
    dst = ws.path(name)
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(ws.reference(), dst, symlinks=True)
    return dst


def _valid_entry(ws: Workspace) -> Path:
    path = ws.path("entry.json")
    if not path.exists():
        code, _, err = cli(["submit", str(ws.reference()), "--out", str(path)])
        if code != 0:
            raise RuntimeError(f"submit failed: {err}")
    return path


def _entry_variant(ws: Workspace, name: str, change: Callable[[dict], Any]) -> Path:
    entry = json.loads(_valid_entry(ws).read_text())
    change(entry)
    path = ws.path(name)
    path.write_text(json.dumps(entry, allow_nan=True))
    return path


def _sample_variant(ws: Workspace, name: str, change: Callable[[list], Any]) -> Path:
    rows = copy.deepcopy(SAMPLES[: ws.n_samples])
    change(rows)
    return write_samples(ws.path(name), rows)


def _images_folder(ws: Workspace, name: str, writer: Callable[[Path], None]) -> Path:
    folder = ws.path(name)
    folder.mkdir(exist_ok=True)
    for s in SAMPLES[: ws.n_samples]:
        (folder / f"{s['id']}.png").write_bytes(_png(32))
    writer(folder)
    return folder


def _tampered_run(ws: Workspace, name: str, how: str) -> Path:
    """A finished run whose ``generations.jsonl`` points outside the run directory."""
    run = _finished_run(ws, name)
    outside = ws.path(f"{name}-outside.png")
    outside.write_bytes(_png(32, 7))
    rows = [json.loads(line) for line in (run / "generations.jsonl").read_text().splitlines()]
    for row in rows:
        if row["role"] == "method" and row["sample_id"] == "s1":
            if how == "dotdot":
                row["path"] = f"../{outside.name}"
            elif how == "absolute":
                row["path"] = str(outside)
            else:  # symlink: the recorded path stays inside, the file is a link leaving it
                target = run / row["path"]
                target.unlink()
                target.symlink_to(outside)
            row["sha256"] = hashlib.sha256(outside.read_bytes()).hexdigest()
    (run / "generations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def _labels_csv(ws: Workspace, name: str, data: bytes) -> Path:
    path = ws.path(name)
    path.write_bytes(data)
    return path


_BAD_VERDICT = '{"sample_id": "s9", "method": "instruction-prompt", "label": "better"}'


def _folder(ws: Workspace, name: str) -> Path:
    path = ws.path(name)
    path.mkdir(exist_ok=True)
    return path


def _own_folder(ws: Workspace, name: str) -> Path:
    """A folder of someone's own files (a run must not write beside them)."""
    path = _folder(ws, name)
    (path / "report.html").write_text("my own report")
    (path / "notes.txt").write_text("my own notes")
    return path


def _one_long_prompt(rows: list) -> None:
    """Keep the first sample only, its prompt grown to about 500 KB."""
    rows[0]["prompt"] += " and hay" * 62_500
    del rows[1:]


def _first_only(rows: list) -> None:
    del rows[1:]


def _edit_json(name: str, path: tuple, value: Any) -> Callable[[Path], None]:
    def edit(run: Path) -> None:
        data = json.loads((run / name).read_text())
        where = data
        for key in path[:-1]:
            where = where[key]
        where[path[-1]] = value
        (run / name).write_text(json.dumps(data, indent=2))

    return edit


def _cut_short(name: str) -> Callable[[Path], None]:
    def edit(run: Path) -> None:
        data = (run / name).read_bytes()
        (run / name).write_bytes(data[: len(data) // 2])

    return edit


def _insert_line(name: str, after: int, text: str) -> Callable[[Path], None]:
    def edit(run: Path) -> None:
        lines = (run / name).read_text().splitlines()
        lines.insert(after, text)
        (run / name).write_text("\n".join(lines) + "\n")

    return edit


def _edited_run(ws: Workspace, name: str, edit: Callable[[Path], None]) -> Path:
    """A copy of the finished reference run, edited by hand."""
    run = _finished_run(ws, name)
    edit(run)
    return run


def _command_on(command: str, run_dir: Path, run: Callable, ws: Workspace) -> list[str]:
    if command == "resume":
        return run(out=run_dir.name)
    if command == "submit":
        return ["submit", str(run_dir), "--out", str(ws.path(f"{run_dir.name}.json"))]
    return [command, str(run_dir)]


def _samples_edited_after_a_run(ws: Workspace, name: str, run: Callable) -> list[str]:
    """Generate two samples into ``name``, then edit a prompt in the samples file in place."""
    path = write_samples(ws.path(f"{name}.jsonl"), copy.deepcopy(SAMPLES[:2]))
    argv = run(out=name, samples=path, judge=False)
    code, _, err = cli(argv)
    if code != 0:
        raise RuntimeError(f"the run to edit failed ({code}): {err.strip()[-500:]}")
    rows = copy.deepcopy(SAMPLES[:2])
    rows[0]["prompt"] = "a cow and a horse by a lake"
    write_samples(path, rows)
    return argv


def _other_images_run(ws: Workspace, name: str) -> Path:
    """A copy of the reference run whose method images are other pictures (another backbone)."""
    run = _finished_run(ws, name)
    rows = [json.loads(line) for line in (run / "generations.jsonl").read_text().splitlines()]
    for row in rows:
        if row["role"] == "method":
            row["sha256"] = hashlib.sha256(row["sha256"].encode()).hexdigest()
    (run / "generations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def lost_work(root: Path) -> list[str]:
    """Finished work a run directory lost: an image file two records claim, or one whose
    bytes are no longer those its record names (overwritten)."""
    from slim_leakage._io import iter_jsonl

    if not (root / "generations.jsonl").is_file():
        return []
    try:
        rows = list(iter_jsonl(root / "generations.jsonl"))
    except Exception as exc:  # noqa: BLE001 - an unreadable record file is lost work too
        return [f"generations.jsonl unreadable: {exc}"]
    owners: dict[str, set] = {}
    digests: dict[str, set] = {}
    latest: dict[str, str] = {}
    for row in rows:
        owner = (row.get("role"), row.get("sample_id"), row.get("entity"))
        owners.setdefault(row.get("path"), set()).add(owner)
        digests.setdefault(row.get("path"), set()).add(row.get("sha256"))
        latest[row.get("path")] = row.get("sha256")
    lost = [
        f"{path}: written for {len(who)} images" for path, who in owners.items() if len(who) > 1
    ]
    # one file, recorded with two contents: a later image replaced an earlier one (the run is
    # on the CPU, where an image drawn again has the same bytes)
    lost += [f"{path}: replaced" for path, seen in digests.items() if len(seen) > 1]
    for path, digest in latest.items():
        image = root / path
        if image.is_file() and hashlib.sha256(image.read_bytes()).hexdigest() != digest:
            lost.append(f"{path}: overwritten")
    return lost


def bad_input_cases(ws: Workspace) -> list[dict]:
    """The table of bad inputs: argv, expected exit code and the text the message must name.

    Each case is a dict: ``name``, ``argv`` (a callable building it, so files are made lazily),
    ``code`` (expected exit code), ``names`` (strings the error output must contain),
    ``kind`` (``error``: one error line and a hint; ``problems``: validation problems;
    ``output``: a command that works and must say ``names``, never print ``absent`` or a line
    longer than ``max_line``), ``guard`` (a directory that must not change), ``env`` (extra
    environment), ``child`` (run in a child process, so the libraries' own log handlers, which
    hold the process's first stderr, are seen too), ``sandbox`` (``readonly`` / ``full``).
    """
    url, cache = ws.url, ws.path("bad-cache")

    counter = iter(range(1000))

    def run(*extra, out=None, method="instruction-prompt", samples=None, judge=True):
        # A fresh --out per case, so one case's leftovers cannot answer for another.
        return run_argv(
            ws.path(out or f"bad-out-{next(counter)}"),
            samples or ws.samples,
            url if judge else None,
            cache,
            method=method,
            extra=list(extra),
        )

    def replace(argv: list[str], option: str, value: str) -> list[str]:
        argv = list(argv)
        argv[argv.index(option) + 1] = value
        return argv

    def entry_case(name, change, names):
        return {
            "name": name,
            "argv": lambda: ["validate", str(_entry_variant(ws, f"{name}.json", change))],
            "code": 1,
            "names": names,
            "kind": "problems",
        }

    def first_row(entry):
        return entry["verdicts"][0]

    def swap(argv: list[str], old: str, new: str) -> list[str]:
        return [new if a == old else a for a in argv]

    def samples_case(name, change, code, names):
        # generation only: a samples problem must be refused whatever the judge
        path = f"samples-{next(counter)}.jsonl"
        return {
            "name": name,
            "argv": lambda: run(samples=_sample_variant(ws, path, change), judge=False),
            "code": code,
            "names": names,
        }

    def edited_case(command, what, edit, names):
        name = f"edited-{command}-{next(counter)}"
        return {
            "name": f"{command} after {what} (kept)",
            "argv": lambda: _command_on(command, _edited_run(ws, name, edit), run, ws),
            "code": 1,
            "names": names,
            "guard": name,
        }

    with socket.socket() as sock:  # a local port nothing listens on once released
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]

    cases = [
        {
            "name": "unknown method",
            "argv": lambda: run(method="deleakr"),
            "code": 2,
            "names": ["deleakr", "deleaker"],
        },
        {
            "name": "unknown backbone",
            "argv": lambda: replace(run(), "--backbone", "flux-devv"),
            "code": 2,
            "names": ["flux-devv", "flux-dev"],
        },
        {
            "name": "unknown judge",
            "argv": lambda: replace(run(), "--judge", "openai-compatibel"),
            "code": 2,
            "names": ["openai-compatibel", "openai-compatible"],
        },
        {
            "name": "unknown dataset config",
            "argv": lambda: replace(run(), "--config", "pairz"),
            "code": 2,
            "names": ["pairz", "pairs"],
        },
        {
            "name": "method-arg typo",
            "argv": lambda: run("--method-arg", "instructon=x"),
            "code": 2,
            "names": ["instructon", "instruction"],
        },
        {
            "name": "method-arg bad value",
            "argv": lambda: run("--method-arg", "position=middle"),
            "code": 2,
            "names": ["middle", "position"],
        },
        {
            "name": "method-arg without =",
            "argv": lambda: run("--method-arg", "position"),
            "code": 2,
            "names": ["position", "key=value"],
        },
        {
            "name": "method-arg twice",
            "argv": lambda: run(
                "--method-arg", "position=prefix", "--method-arg", "position=suffix"
            ),
            "code": 2,
            "names": ["position", "twice"],
        },
        {
            "name": "deleaker option typo",
            "argv": lambda: run("--method-arg", "alpah=1.6", method="deleaker"),
            "code": 2,
            "names": ["alpah", "alpha"],
        },
        {
            "name": "backbone-arg typo",
            "argv": lambda: run("--backbone-arg", "num_inferance_steps=2"),
            "code": 2,
            "names": ["num_inferance_steps", "num_inference_steps"],
        },
        {
            "name": "backbone-arg bad value",
            "argv": lambda: run("--backbone-arg", "height=tall"),
            "code": 2,
            "names": ["tall", "height"],
        },
        {
            "name": "judge-arg typo",
            "argv": lambda: run("--judge-arg", "concurrancy=4"),
            "code": 2,
            "names": ["concurrancy", "concurrency"],
        },
        {
            "name": "judge-arg bad value",
            "argv": lambda: run("--judge-arg", "rpm=-5"),
            "code": 2,
            "names": ["rpm", "-5"],
        },
        {
            "name": "limit zero",
            "argv": lambda: run("--limit", "0"),
            "code": 2,
            "names": ["limit", "0"],
        },
        {
            "name": "negative batch size",
            "argv": lambda: replace(run(), "--batch-size", "-1"),
            "code": 2,
            "names": ["batch_size", "-1"],
        },
        {
            "name": "unknown image metric",
            "argv": lambda: replace(run(), "--image-metrics", "lpipz"),
            "code": 2,
            "names": ["lpipz", "lpips"],
        },
        {
            "name": "unknown sample id",
            "argv": lambda: run("--ids", "s1,nope"),
            "code": 2,
            "names": ["nope"],
        },
        {
            "name": "missing ids file",
            "argv": lambda: run("--ids", "@" + str(ws.path("no.txt"))),
            "code": 2,
            "names": ["no.txt"],
        },
        {
            "name": "run-config not JSON",
            "argv": lambda: run("--run-config", str(_labels_csv(ws, "rc.json", b"{method: x"))),
            "code": 2,
            "names": ["rc.json"],
        },
        {
            "name": "run-config unknown key",
            "argv": lambda: run(
                "--run-config", str(_labels_csv(ws, "rc2.json", b'{"metod": "vanilla"}'))
            ),
            "code": 2,
            "names": ["metod", "method"],
        },
        {
            "name": "samples file missing",
            "argv": lambda: replace(run(), "--config", str(ws.path("nope.jsonl"))),
            "code": 1,
            "names": ["nope.jsonl"],
        },
        {
            "name": "entity absent from prompt",
            "argv": lambda: run(
                samples=_sample_variant(
                    ws, "absent.jsonl", lambda rows: rows[0].update(entities=["cow", "zebra"])
                )
            ),
            "code": 2,
            "names": ["zebra"],
        },
        {
            "name": "empty prompt",
            "argv": lambda: run(
                samples=_sample_variant(ws, "empty.jsonl", lambda rows: rows[1].update(prompt=""))
            ),
            "code": 1,
            "names": ["s2", "prompt"],
        },
        {
            "name": "samples not UTF-8",
            "argv": lambda: replace(
                run(),
                "--config",
                str(
                    _labels_csv(
                        ws,
                        "latin.jsonl",
                        json.dumps(SAMPLES[0]).replace("cow", "c\u00f6w").encode("latin-1") + b"\n",
                    )
                ),
            ),
            "code": 1,
            "names": ["latin.jsonl", "UTF-8"],
        },
        {
            "name": "samples malformed JSON line",
            "argv": lambda: replace(
                run(),
                "--config",
                str(
                    _labels_csv(
                        ws, "torn.jsonl", (json.dumps(SAMPLES[0]) + '\n{"id": "s2", \n').encode()
                    )
                ),
            ),
            "code": 1,
            "names": ["torn.jsonl", "2"],
        },
        {
            "name": "images: corrupt PNG",
            "argv": lambda: run(
                "--method-arg",
                "folder="
                + str(
                    _images_folder(
                        ws,
                        "img-corrupt",
                        lambda f: (f / "s2.png").write_bytes(b"\x89PNG\r\n\x1a\nnope"),
                    )
                ),
                method="images",
            ),
            "code": 1,
            "names": ["s2"],
        },
        {
            "name": "images: mis-sized PNG",
            "argv": lambda: run(
                "--method-arg",
                "folder="
                + str(
                    _images_folder(ws, "img-size", lambda f: (f / "s3.png").write_bytes(_png(48)))
                ),
                method="images",
            ),
            "code": 1,
            "names": ["s3", "48"],
        },
        {
            "name": "images: missing image",
            "argv": lambda: run(
                "--method-arg",
                "folder="
                + str(_images_folder(ws, "img-missing", lambda f: (f / "s4.png").unlink())),
                method="images",
            ),
            "code": 1,
            "names": ["s4"],
        },
        {
            "name": "images: folder missing",
            "argv": lambda: run(
                "--method-arg", "folder=" + str(ws.path("no-such-folder")), method="images"
            ),
            "code": 2,
            "names": ["no-such-folder"],
        },
        {
            "name": "resume with other options (finished run kept)",
            "argv": lambda: run(
                "--method-arg", "position=prefix", out=_finished_run(ws, "guard-mismatch").name
            ),
            "code": 2,
            "names": ["position"],
            "guard": "guard-mismatch",
        },
        {
            "name": "openai judge without key",
            "argv": lambda: replace(run(), "--judge", "openai"),
            "code": 2,
            "names": ["OPENAI_API_KEY"],
            "env": {"OPENAI_API_KEY": ""},
        },
        {
            "name": "judge: generation path with ..",
            "argv": lambda: [
                "judge",
                str(_tampered_run(ws, "tamper-dotdot", "dotdot")),
                "--judge",
                "openai-compatible",
                "--judge-arg",
                f"base_url={url}",
                "--judge-arg",
                f"cache_dir={cache}",
                "--no-progress",
            ],
            "code": 1,
            "names": ["..", "s1"],
        },
        {
            "name": "judge: absolute generation path",
            "argv": lambda: [
                "judge",
                str(_tampered_run(ws, "tamper-abs", "absolute")),
                "--judge",
                "openai-compatible",
                "--judge-arg",
                f"base_url={url}",
                "--judge-arg",
                f"cache_dir={cache}",
                "--no-progress",
            ],
            "code": 1,
            "names": ["tamper-abs-outside.png"],
        },
        {
            "name": "judge: image symlink leaving the run",
            "argv": lambda: [
                "judge",
                str(_tampered_run(ws, "tamper-link", "symlink")),
                "--judge",
                "openai-compatible",
                "--judge-arg",
                f"base_url={url}",
                "--judge-arg",
                f"cache_dir={cache}",
                "--no-progress",
            ],
            "code": 1,
            "names": ["s1"],
        },
        {
            "name": "submit: generation path with ..",
            "argv": lambda: [
                "submit",
                str(_tampered_run(ws, "tamper-submit", "dotdot")),
                "--out",
                str(ws.path("tampered-entry.json")),
            ],
            "code": 1,
            "names": [".."],
        },
        {
            "name": "report: image symlink leaving the run",
            "argv": lambda: ["report", str(_tampered_run(ws, "tamper-report", "symlink"))],
            "code": 1,
            "names": ["s1"],
        },
        {
            "name": "labels CSV not UTF-8",
            "argv": lambda: [
                "agree",
                "--run",
                str(ws.reference()),
                "--human",
                str(
                    _labels_csv(
                        ws,
                        "latin.csv",
                        "sample_id,method,annotator,label\ns1,x,j\u00fcrgen,no-change\n".encode(
                            "latin-1"
                        ),
                    )
                ),
            ],
            "code": 1,
            "names": ["latin.csv"],
        },
        {
            "name": "labels CSV missing columns",
            "argv": lambda: [
                "agree",
                "--run",
                str(ws.reference()),
                "--human",
                str(_labels_csv(ws, "cols.csv", b"sample_id,label\ns1,no-change\n")),
            ],
            "code": 1,
            "names": ["cols.csv", "annotator"],
        },
        {
            "name": "labels CSV unknown label",
            "argv": lambda: [
                "agree",
                "--run",
                str(ws.reference()),
                "--human",
                str(
                    _labels_csv(
                        ws,
                        "lab.csv",
                        b"sample_id,method,annotator,label\ns1,instruction-prompt,a,better\n",
                    )
                ),
            ],
            "code": 1,
            "names": ["better"],
        },
        {
            "name": "labels CSV binary garbage",
            "argv": lambda: [
                "agree",
                "--run",
                str(ws.reference()),
                "--human",
                str(_labels_csv(ws, "bin.csv", b"\x00\x01\x02,\x00\n\xff\xfe")),
            ],
            "code": 1,
            "names": ["bin.csv"],
        },
        entry_case(
            "entry wrong type",
            lambda e: e["metrics"].update(n_labelled="4"),
            ["metrics.n_labelled"],
        ),
        entry_case("entry unknown field", lambda e: e.update(score=1.0), ["score"]),
        entry_case(
            "entry NaN share",
            lambda e: e["metrics"]["distribution"].update({"no-change": math.nan}),
            ["distribution"],
        ),
        entry_case(
            "entry huge number",
            lambda e: e["dataset"].update(n_samples=10**400),
            ["dataset.n_samples"],
        ),
        entry_case(
            "entry infinite interval",
            lambda e: e["metrics"]["intervals"].update({"no-change": [0.0, math.inf]}),
            ["intervals"],
        ),
        entry_case(
            "entry changed label",
            lambda e: first_row(e).update(
                label="mitigation-major"
                if first_row(e)["label"] != "mitigation-major"
                else "no-change"
            ),
            ["counts"],
        ),
        {
            "name": "entry not JSON",
            "argv": lambda: ["validate", str(_labels_csv(ws, "notjson.json", b"{'schema': 1}"))],
            "code": 1,
            "names": ["notjson.json"],
            "kind": "problems",
        },
        {
            "name": "entry not UTF-8",
            "argv": lambda: [
                "validate",
                str(
                    _labels_csv(ws, "latin-entry.json", '{"name": "J\u00fcrgen"}'.encode("latin-1"))
                ),
            ],
            "code": 1,
            "names": ["latin-entry.json"],
            "kind": "problems",
        },
        {
            "name": "entry missing file",
            "argv": lambda: ["validate", str(ws.path("missing-entry.json"))],
            "code": 1,
            "names": ["missing-entry.json"],
            "kind": "problems",
        },
        # -- samples whose ids or entities would share a file, and fields of the wrong type --
        *[
            samples_case(name, change, code, names)
            for name, change, code, names in (
                (
                    "duplicate id, judge none (images overwritten before)",
                    lambda rows: rows[1].update(id="s1"),
                    1,
                    ["'s1' is used 2 times", ":1", ":2"],
                ),
                (
                    "ids that name one file (a slash and a dash)",
                    lambda rows: (rows[0].update(id="a-b"), rows[1].update(id="A_b")),
                    1,
                    ["'a-b'", "'A_b'", "a-b.png"],
                ),
                ("id with a slash", lambda rows: rows[0].update(id="a/b"), 1, ["'a/b'", "'/'"]),
                ("id with a space", lambda rows: rows[0].update(id="s 1"), 1, ["'s 1'", "' '"]),
                ("id too long", lambda rows: rows[0].update(id="x" * 200), 1, ["200 characters"]),
                ("id starting with a dot", lambda rows: rows[0].update(id=".s1"), 1, ["'.s1'"]),
                ("empty id", lambda rows: rows[0].update(id=""), 1, [":1", "id ''"]),
                ("id not a text", lambda rows: rows[0].update(id=7), 1, [":1", "'id'"]),
                (
                    "an entity named twice in a sample",
                    lambda rows: rows[0].update(entities=["cow", "Cow"]),
                    1,
                    ["'cow'", "'Cow'"],
                ),
                (
                    "entities written two ways (one reference file)",
                    lambda rows: rows[1].update(
                        prompt="a Cow and a cheetah near a river", entities=["Cow", "cheetah"]
                    ),
                    1,
                    ["'cow'", "'Cow'", "images/reference/cow.png"],
                ),
                ("seed as text", lambda rows: rows[0].update(seed="1"), 1, [":1", "'seed'"]),
                ("seed with a fraction", lambda rows: rows[0].update(seed=1.5), 1, ["'seed'"]),
                ("negative seed", lambda rows: rows[0].update(seed=-1), 1, ["seed -1"]),
                ("seed past 64 bits", lambda rows: rows[0].update(seed=2**64), 1, ["seed 1844"]),
                ("seed as a boolean", lambda rows: rows[0].update(seed=True), 1, ["'seed'"]),
                (
                    "entities as one string",
                    lambda rows: rows[0].update(entities="cow and horse"),
                    1,
                    [":1", "'entities'"],
                ),
                (
                    "entity not a text",
                    lambda rows: rows[0].update(entities=["cow", 2]),
                    1,
                    ["item 2"],
                ),
                ("prompt not a text", lambda rows: rows[0].update(prompt=5), 1, ["'prompt'"]),
                ("seed missing", lambda rows: rows[0].pop("seed"), 1, [":1", "'seed'"]),
                (
                    "unknown sample field",
                    lambda rows: rows[0].update(sed=1),
                    1,
                    ["'sed'", "Did you mean 'seed'"],
                ),
                (
                    "several bad lines at once",
                    lambda rows: (rows[1].update(seed=0.5), rows[2].update(id="")),
                    1,
                    ["2 problems", ":2", ":3"],
                ),
            )
        ],
        {
            "name": "duplicate id, judged",
            "argv": lambda: run(
                samples=_sample_variant(
                    ws, "dup-judged.jsonl", lambda rows: rows[3].update(id="s2")
                )
            ),
            "code": 1,
            "names": ["'s2' is used 2 times"],
        },
        {
            "name": "samples line not an object",
            "argv": lambda: replace(
                run(), "--config", str(_labels_csv(ws, "array.jsonl", b'["s1", "a cow"]\n'))
            ),
            "code": 1,
            "names": ["array.jsonl:1", "JSON object"],
        },
        {
            "name": "samples file empty",
            "argv": lambda: replace(run(), "--config", str(_labels_csv(ws, "none.jsonl", b"\n"))),
            "code": 1,
            "names": ["none.jsonl", "no samples"],
        },
        {
            "name": "samples path is a folder",
            "argv": lambda: replace(run(), "--config", str(_folder(ws, "samples.d.jsonl"))),
            "code": 1,
            "names": ["samples.d.jsonl", "is a folder"],
        },
        # -- the selection ---------------------------------------------------------------------
        {
            "name": "--ids of separators only",
            "argv": lambda: run("--ids", ", ,"),
            "code": 2,
            "names": ["', ,'", "no sample id"],
        },
        {
            "name": "--ids file empty",
            "argv": lambda: run("--ids", "@" + str(_labels_csv(ws, "ids-empty.txt", b"\n \n"))),
            "code": 2,
            "names": ["ids-empty.txt", "empty"],
        },
        {
            "name": "--ids file not UTF-8",
            "argv": lambda: run("--ids", "@" + str(_labels_csv(ws, "ids.txt", b"s1\ns\xfc2\n"))),
            "code": 2,
            "names": ["ids.txt:2", "UTF-8"],
        },
        {
            "name": "--ids file is a folder",
            "argv": lambda: run("--ids", "@" + str(_folder(ws, "ids.d"))),
            "code": 2,
            "names": ["ids.d", "folder"],
        },
        # -- run-config files with values of the wrong type ------------------------------------
        *[
            {
                "name": f"run-config {name}",
                "argv": (
                    lambda name=name, text=text: run(
                        "--run-config",
                        str(_labels_csv(ws, f"rc-{name.replace(' ', '-')}.json", text)),
                    )
                ),
                "code": 2,
                "names": names,
            }
            for name, text, names in (
                ("float for an integer", b'{"limit": 2.5}', ["limit=2.5"]),
                ("boolean for an integer", b'{"limit": true}', ["limit=True"]),
                ("text for a mapping", b'{"method_args": "x=1"}', ["method_args='x=1'"]),
                ("list for a text", b'{"backbone_path": ["w"]}', ["backbone_path=['w']"]),
                ("integer for a boolean", b'{"references": 0}', ["references=0"]),
                ("unknown dtype", b'{"dtype": "float64"}', ["'float64'", "float32"]),
                ("empty id list", b'{"ids": []}', ["ids is empty"]),
                ("not an object", b'["run"]', ["JSON object", "list"]),
                ("not UTF-8", '{"method": "v\u00e4nilla"}'.encode("latin-1"), ["not-UTF-8"]),
            )
        ],
        # -- devices, weights, judges and the output folder ------------------------------------
        {
            "name": "device that is not a device name",
            "argv": lambda: replace(run(), "--device", "gpu"),
            "code": 2,
            "names": ["'gpu'", "cpu"],
        },
        {
            "name": "device this machine lacks",
            "argv": lambda: replace(run(), "--device", "cuda:99"),
            "code": 2,
            "names": ["'cuda:99'"],
        },
        {
            "name": "backbone path that does not exist",
            "argv": lambda: run("--backbone-path", "./no-such-weights"),
            "code": 2,
            "names": ["./no-such-weights"],
        },
        {
            "name": "judge server not reachable",
            "argv": lambda: swap(
                run(), f"base_url={url}", f"base_url=http://127.0.0.1:{closed_port}/v1"
            ),
            "code": 1,
            "names": [f"127.0.0.1:{closed_port}", "cannot be reached"],
        },
        {
            "name": "judge base_url without a scheme",
            "argv": lambda: swap(run(), f"base_url={url}", "base_url=127.0.0.1:8000/v1"),
            "code": 2,
            "names": ["127.0.0.1:8000/v1", "http"],
        },
        {
            "name": "model for a judge with no model choice",
            "argv": lambda: (
                replace(run(judge=False), "--judge", "oracle") + ["--judge-arg", "model=gpt-4o"]
            ),
            "code": 2,
            "names": ["'gpt-4o'", "no model choice"],
        },
        {
            "name": "judge options with judge none",
            "argv": lambda: run(judge=False) + ["--judge-arg", "model=x"],
            "code": 2,
            "names": ["model", "'none'"],
        },
        {
            "name": "judge budget infinite",
            "argv": lambda: run("--judge-arg", "tpm=inf"),
            "code": 2,
            "names": ["tpm=inf", "finite"],
        },
        {
            "name": "judge rpm zero",
            "argv": lambda: run("--judge-arg", "rpm=0"),
            "code": 2,
            "names": ["rpm=0.0", "> 0"],
        },
        {
            "name": "backbone-arg not a number",
            "argv": lambda: run("--backbone-arg", "guidance_scale=nan"),
            "code": 2,
            "names": ["guidance_scale=nan", "finite"],
        },
        {
            "name": "method-arg for a method without options",
            "argv": lambda: run("--method-arg", "x=1", method="vanilla"),
            "code": 2,
            "names": ["'x'", "takes no options"],
        },
        {
            "name": "--out is a file",
            "argv": lambda: run(out=_labels_csv(ws, "out-file.txt", b"mine").name),
            "code": 2,
            "names": ["out-file.txt", "is a file"],
        },
        {
            "name": "--out holds someone's files (kept)",
            "argv": lambda: run(out=_own_folder(ws, "my-folder").name),
            "code": 2,
            "names": ["my-folder", "'report.html'"],
            "guard": "my-folder",
        },
        {
            "name": "rank environment broken",
            "argv": lambda: run(),
            "code": 2,
            "names": ["WORLD_SIZE='two'"],
            "env": {"WORLD_SIZE": "two"},
        },
        # -- a finished run edited by hand: refused, and left as it was ------------------------
        edited_case(
            "resume",
            "a manifest identity edit",
            _edit_json("manifest.json", ("identity", "method", "config", "position"), "prefix"),
            ["manifest.json", "identity.method.config.position"],
        ),
        edited_case(
            "resume",
            "a manifest judge edit",
            _edit_json("manifest.json", ("judge", "model_id"), "gpt-4o"),
            ["judge.model_id"],
        ),
        edited_case(
            "resume",
            "a manifest config_hash edit",
            _edit_json("manifest.json", ("config_hash",), "0" * 16),
            ["config_hash"],
        ),
        edited_case(
            "resume", "a manifest cut short", _cut_short("manifest.json"), ["manifest.json"]
        ),
        edited_case(
            "submit",
            "a manifest judge edit",
            _edit_json("manifest.json", ("judge", "model_id"), "gpt-4o"),
            ["judge.model_id"],
        ),
        edited_case(
            "report",
            "a manifest method edit",
            _edit_json("manifest.json", ("method", "config", "position"), "prefix"),
            ["method.config.position"],
        ),
        edited_case(
            "resume",
            "an empty record mid-file",
            _insert_line("generations.jsonl", 2, "{}"),
            ["generations.jsonl:3", "misses"],
        ),
        edited_case(
            "resume",
            "a broken line mid-file",
            _insert_line("generations.jsonl", 3, '{"sample_id": '),
            ["generations.jsonl:4", "not valid JSON"],
        ),
        edited_case(
            "resume",
            "an unknown label mid-file",
            _insert_line("verdicts.jsonl", 1, _BAD_VERDICT),
            ["verdicts.jsonl:2", "'better'"],
        ),
        edited_case(
            "submit",
            "an unknown label mid-file",
            _insert_line("verdicts.jsonl", 1, _BAD_VERDICT),
            ["verdicts.jsonl:2", "'better'"],
        ),
        {
            "name": "resume with samples edited under the same ids (kept)",
            "argv": lambda: _samples_edited_after_a_run(ws, "edited-samples", run),
            "code": 2,
            "names": ["other samples", "'s1'", "prompt"],
            "guard": "edited-samples",
        },
        {
            "name": "resume with another --ids (kept)",
            "argv": lambda: run("--ids", "s1,s2", out=_finished_run(ws, "guard-ids").name),
            "code": 2,
            "names": ["sample_ids_sha256"],
            "guard": "guard-ids",
        },
        {
            "name": "agree: a reference run of other images",
            "argv": lambda: [
                "agree",
                "--run",
                str(ws.reference()),
                "--reference-run",
                str(_other_images_run(ws, "other-images")),
            ],
            "code": 1,
            "names": ["other images", "'s1'"],
        },
        {
            "name": "agree: labels of unknown sample ids (said, not dropped)",
            "argv": lambda: [
                "agree",
                "--run",
                str(ws.reference()),
                "--human",
                str(
                    _labels_csv(
                        ws,
                        "unknown-ids.csv",
                        b"sample_id,method,annotator,label\ns1,instruction-prompt,a,no-change\n"
                        b"zz9,instruction-prompt,a,no-change\n",
                    )
                ),
            ],
            "code": 0,
            "names": ["1 reference sample id(s) are not in this run", "'zz9'"],
            "kind": "output",
        },
        {
            "name": "validate a folder",
            "argv": lambda: ["validate", str(_folder(ws, "entries.d"))],
            "code": 1,
            "names": ["entries.d", "is a folder"],
            "kind": "problems",
        },
        {
            "name": "estimate without --json prints no JSON",
            "argv": lambda: ["estimate", "--judge", "openai", "--config", str(ws.samples)],
            "code": 0,
            "names": ["STAGE", "estimated cost"],
            "absent": ['{"'],
            "kind": "output",
        },
        {
            "name": "every judgement failed (exit 1, work kept)",
            "argv": lambda: replace(run(judge=False), "--judge", "oracle"),
            "code": 1,
            "names": ["Every judgement of this run failed", "toy"],
        },
        {
            "name": "a 500 KB prompt (never echoed)",
            "argv": lambda: (
                run(
                    samples=_sample_variant(ws, "long.jsonl", _one_long_prompt),
                    judge=False,
                )
                + ["--no-references"]
            ),
            "code": 0,
            "names": ["note: a prompt is longer than a text encoder reads"],
            "max_line": 400,
            "kind": "output",
            "child": True,
        },
        {
            "name": "--no-progress draws no library bars",
            "argv": lambda: (
                run(judge=False, samples=_sample_variant(ws, "one.jsonl", _first_only))
                + ["--no-references"]
            ),
            "code": 0,
            "names": ["results for instruction-prompt"],
            "absent": ["it/s]", "%|"],
            "kind": "output",
            "child": True,
        },
        {
            "name": "read-only output directory",
            "argv": lambda: run(out="ro/run"),
            "code": 1,
            "names": ["ro"],
            "sandbox": "readonly",
        },
        {
            "name": "full output directory",
            "argv": lambda: run(out="full/run"),
            "code": 1,
            "names": ["full"],
            "sandbox": "full",
        },
    ]
    for case in cases:
        case.setdefault("kind", "error")
    return cases


def _sandboxed(case: dict, argv: list[str], ws: Workspace) -> tuple[int, str, str]:
    """Run a case in a child process with its output folder on a read-only or tiny tmpfs."""
    if shutil.which("unshare") is None:
        return -1, "", "unshare is not available: cannot make a read-only or full folder"
    folder = ws.path("ro" if case["sandbox"] == "readonly" else "full")
    folder.mkdir(exist_ok=True)
    mount = (
        f"mount -t tmpfs -o size=1m,ro tmpfs {folder}"
        if case["sandbox"] == "readonly"
        else f"mount -t tmpfs -o size=24k tmpfs {folder}"
    )
    cmd = " ".join(
        [mount, "&&", "exec", sys.executable, "-m", "slim_leakage.cli"] + [f"'{a}'" for a in argv]
    )
    proc = subprocess.run(
        ["unshare", "-rm", "sh", "-c", cmd],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc.returncode, proc.stdout, proc.stderr


def judge_bad_input(case: dict, code: int, stdout: str, stderr: str) -> list[str]:
    """What is wrong with the answer to a bad input (empty: handled)."""
    wrong = []
    text = stdout + stderr
    if code != case["code"]:
        wrong.append(f"exit {code}, expected {case['code']}")
    if "Traceback" in text:
        wrong.append("printed a traceback")
    if case["kind"] == "output":
        for absent in case.get("absent", ()):
            if absent in text:
                wrong.append(f"printed {absent!r}")
        longest = max((len(line) for line in text.splitlines()), default=0)
        if longest > case.get("max_line", 10_000):
            wrong.append(f"printed a line of {longest} characters")
        where = text
    elif case["kind"] == "error":
        errors = [line for line in stderr.splitlines() if line.startswith("error:")]
        if len(errors) != 1:
            wrong.append(f"{len(errors)} error lines")
        elif (
            errors[0].startswith("error: ")
            and ": " in errors[0][7:40]
            and errors[0][7:8].isupper()
            and errors[0][7:].split(":", 1)[0].isidentifier()
        ):
            wrong.append(f"unexpected exception: {errors[0][:160]}")
        if not any(line.startswith("hint:") for line in stderr.splitlines()):
            wrong.append("no hint")
        # several problems at once are one error whose lines list them ("  - ...")
        where = "\n".join(
            line for line in stderr.splitlines() if line.startswith(("error:", "hint:", "  - "))
        )
    else:
        where = text
    for name in case["names"]:
        if name not in where:
            wrong.append(f"message does not name {name!r}")
    return wrong


def check_bad_inputs(ws: Workspace, log=print, only: set[str] | None = None) -> dict:
    """Try every bad input; the ``bad_inputs_*`` figures."""
    rows = []
    for case in bad_input_cases(ws):
        if only and case["name"] not in only:
            continue
        argv = case["argv"]()
        guard = ws.path(case["guard"]) if case.get("guard") else None
        before = tree_digest(guard) if guard else None
        if case.get("sandbox"):
            code, out, err = _sandboxed(case, argv, ws)
        elif case.get("child"):
            proc = subprocess.run(
                [sys.executable, "-m", "slim_leakage.cli", *argv],
                env=child_env(),
                capture_output=True,
                text=True,
                timeout=600,
            )
            code, out, err = proc.returncode, proc.stdout, proc.stderr
        else:
            env = {"OPENAI_API_KEY": FAKE_OPENAI_KEY, **case.get("env", {})}
            code, out, err = cli(argv, env=env)
        wrong = judge_bad_input(case, code, out, err)
        lost = []
        if guard is not None and tree_digest(guard) != before:
            wrong.append("finished output changed")
            lost.append(f"{guard.name} changed")
        out_dir = Path(argv[argv.index("--out") + 1]) if argv[0] == "run" else None
        if out_dir is not None and case["code"] == 2 and guard is None and out_dir.is_dir():
            wrong.append("a usage error left a run directory behind")
        if out_dir is not None and out_dir.is_dir() and out_dir != guard:
            lost += lost_work(out_dir)  # a guarded run was edited on purpose; its check is above
        if lost:
            wrong.append(f"work lost: {'; '.join(lost)[:200]}")
        message = " | ".join(line for line in (out + err).splitlines() if line.strip())[-300:]
        rows.append(
            {
                "name": case["name"],
                "handled": not wrong,
                "data_lost": bool(lost),
                "wrong": wrong,
                "message": message,
            }
        )
        log(f"bad input {case['name']!r}: {wrong or 'ok'}")
    return {
        "bad_inputs_tried": len(rows),
        "bad_inputs_handled": sum(r["handled"] for r in rows),
        "data_loss_cases": sum(r["data_lost"] for r in rows),
        "bad_input_rows": rows,
    }


# -- 4. secrets ----------------------------------------------------------------------------------
def scan_for_secrets(roots: list[Path], secrets: tuple[str, ...] = SECRETS) -> tuple[int, list]:
    """Scan every file under ``roots`` for the secrets (UTF-8, UTF-16 and base64 forms).

    Returns:
        (files scanned, one "file: secret..." entry per hit).
    """
    import base64

    forms = []
    for secret in secrets:
        raw = secret.encode()
        forms += [(secret, raw), (secret, secret.encode("utf-16-le"))]
        # base64 of the key at each of the three alignments a longer text could give it
        for shift in range(3):
            encoded = base64.b64encode(b"x" * shift + raw)[4 if shift else 0 :][:-4]
            forms.append((secret, encoded))
    scanned, where = 0, []
    for root in roots:
        paths = [root] if root.is_file() else (sorted(root.rglob("*")) if root.exists() else [])
        for path in paths:
            if not path.is_file() or path.is_symlink():
                continue
            data = path.read_bytes()
            scanned += 1
            for secret, form in forms:
                if form in data:
                    where.append(f"{path}: {secret[:12]}...")
                    break
    return scanned, where


def check_secrets(ws: Workspace, log=print) -> dict:
    """Plant fake keys in the environment and the arguments; scan every written file."""
    run = ws.path("secrets-run")
    cache = ws.path("secrets-cache")
    env = {
        "OPENAI_API_KEY": FAKE_OPENAI_KEY,
        "GEMINI_API_KEY": FAKE_GEMINI_KEY,
        "HF_TOKEN": FAKE_HF_TOKEN,
    }
    code, _, err = cli(
        run_argv(run, ws.samples, ws.url, cache, judge_args={"api_key": FAKE_ARG_KEY}), env=env
    )
    entry = ws.path("secrets-entry.json")
    steps = {"run": code}
    if code == 0:
        steps["submit"] = cli(["submit", str(run), "--out", str(entry)], env=env)[0]
        steps["judge"] = cli(
            [
                "judge",
                str(run),
                "--judge",
                "openai-compatible",
                "--judge-arg",
                f"base_url={ws.url}",
                "--judge-arg",
                f"cache_dir={cache}",
                "--judge-arg",
                f"api_key={FAKE_ARG_KEY}",
                "--no-progress",
            ],
            env=env,
        )[0]
        steps["report"] = cli(["report", str(run)], env=env)[0]
    scanned, where = scan_for_secrets([run, cache, entry])
    found = len(where)
    keyed = sum(1 for r in ws.server.requests if r.has_auth)
    log(f"secrets: steps {steps}, scanned {scanned} files, found {found}")
    return {
        "secrets_files_scanned": scanned,
        "secrets_found": found,
        "secrets_where": where,
        "secrets_steps": steps,
        "secrets_requests_with_key_header": keyed,
        "secrets_error": None if code == 0 else err.strip()[-500:],
    }


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


# -- 6. leaderboard fuzzing ----------------------------------------------------------------------
def fuzz_base_entry(n: int = 24, seed: int = 0) -> tuple[dict, Callable, dict]:
    """A valid entry over ``n`` synthetic samples, with its dataset resolver and pinned judge."""
    from slim_leakage.leaderboard.pinned import load_pinned
    from slim_leakage.leaderboard.testing import synthetic_entry
    from slim_leakage.leaderboard.validate import DatasetReference
    from slim_leakage.records import LABELS, Sample, Verdict

    rng = random.Random(seed)
    samples = tuple(
        Sample(
            id=f"p{i:03d}",
            prompt="a cat and a lion",
            entities=("cat", "lion"),
            seed=i,
            subset=("simple", "interaction")[i % 2],
            family=("felines", "canids", "birds")[i % 3],
        )
        for i in range(n)
    )
    verdicts = []
    for s in samples:
        error = rng.random() < 0.1
        verdicts.append(
            Verdict(
                sample_id=s.id,
                method="m",
                label=None if error else rng.choice(LABELS),
                error="judge failed" if error else None,
                order_flip=(not error) and rng.random() < 0.2,
            )
        )
    entry = synthetic_entry(
        samples, verdicts, fingerprint="fp", name="fuzz", backbone="tiny-random"
    )
    reference = DatasetReference(config="pairs", fingerprint="fp", samples=samples)

    def resolver(config: str) -> DatasetReference:
        from slim_leakage.errors import ValidationError

        if config != "pairs":
            raise ValidationError(f"Dataset config {config!r} is not known.")
        return reference

    return entry, resolver, load_pinned()


#: Paths (as tuples of keys) whose change must make an entry invalid.
def is_protected(path: tuple) -> bool:
    """Whether a change at ``path`` changes an aggregate or a verdict."""
    if not path:
        return True
    if path[0] == "metrics":
        from slim_leakage.metrics import AGGREGATE_FIELDS

        return len(path) >= 2 and path[1] in AGGREGATE_FIELDS
    if path[0] == "verdicts":
        return len(path) < 3 or path[2] in {"sample_id", "subset", "family", "label", "order_flip"}
    # The judge identity is no longer a validity matter: an entry by another judge is valid
    # and simply cannot be verified (the ``forgeries`` check covers what verification needs).
    return path[0] in {"schema", "schema_version", "dataset"}


def same_json(a: Any, b: Any) -> bool:
    """Equal as JSON values (1 and 1.0 are the same number; True and 1 are not)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if isinstance(a, float) and math.isnan(a) or isinstance(b, float) and math.isnan(b):
            return False
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, prefix + (i,))
    return out


def _get(doc: Any, path: tuple) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def mutation_strategy(entry: dict):
    """A hypothesis strategy of (description, mutated entry, protected-change flag)."""
    from hypothesis import strategies as st

    paths = [p for p in _paths(entry) if p]
    json_scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**30), max_value=10**30),
        st.sampled_from([10**400, -(10**400), 0, 1, -1, 2**63]),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=12),
        st.sampled_from(
            [
                "",
                "no-change",
                "mitigation-major",
                "degradation-minor",
                "nan",
                "NaN",
                "1e309",
                "../../etc/passwd",
                "__import__('os')",
                "p000",
            ]
        ),
    )
    json_values = st.recursive(
        json_scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
        ),
        max_leaves=6,
    )

    def numeric_nudge(value):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return st.just(value)
        return st.sampled_from(
            [value + 1, value - 1, value + 1e-6, value * 2, -value, value + 0.5, float(value)]
        )

    @st.composite
    def mutate(draw):
        doc = copy.deepcopy(entry)
        op = draw(st.sampled_from(["set", "nudge", "delete", "add", "swap", "dup", "retype"]))
        path = draw(st.sampled_from(paths))
        parent, key = _get(doc, path[:-1]), path[-1]
        old = copy.deepcopy(parent[key])
        if op == "set":
            parent[key] = draw(json_values)
        elif op == "nudge":
            parent[key] = draw(numeric_nudge(old))
        elif op == "delete":
            del parent[key]
        elif op == "add":
            target = old if isinstance(old, (dict, list)) else parent
            if isinstance(target, dict):
                target[draw(st.text(min_size=1, max_size=8))] = draw(json_values)
            else:
                target.insert(draw(st.integers(0, len(target))), draw(json_values))
        elif op == "swap" and isinstance(parent, list) and len(parent) > 1:
            j = draw(st.integers(0, len(parent) - 1))
            parent[key], parent[j] = parent[j], parent[key]
        elif op == "dup" and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
        elif op == "retype":
            parent[key] = (
                json.loads(json.dumps(old))
                if not isinstance(old, (int, float))
                else (str(old) if not isinstance(old, bool) else int(old))
            )
        changed = not same_json(doc, entry)
        protected = changed and _protected_change(entry, doc)
        return f"{op} {'.'.join(map(str, path))}", doc, protected

    return mutate()


def _protected_change(old: Any, new: Any, path: tuple = ()) -> bool:
    """Whether ``new`` differs from ``old`` anywhere that :func:`is_protected` names."""
    if same_json(old, new):
        return False
    if isinstance(old, dict) and isinstance(new, dict):
        return any(
            _protected_change(old.get(k), new.get(k), path + (k,))
            if k in old and k in new
            else is_protected(path + (k,))
            for k in set(old) | set(new)
        )
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return any(_protected_change(a, b, path + (i,)) for i, (a, b) in enumerate(zip(old, new)))
    return is_protected(path)


def check_fuzz(cases: int, seed: int = 0, log=print) -> dict:
    """Mutate a valid entry ``cases`` times; count crashes and wrong acceptances."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hseed

    from slim_leakage.leaderboard.validate import validate_entry

    entry, resolver, pinned = fuzz_base_entry()
    base = validate_entry(copy.deepcopy(entry), pinned=pinned, dataset=resolver)
    if not base.ok:
        raise RuntimeError(f"the base entry is not valid: {base.problems}")
    stats = Counter()
    examples: list[str] = []

    @hseed(seed)
    @settings(
        max_examples=cases,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        derandomize=False,
    )
    @given(mutation_strategy(entry))
    def one(case):
        what, doc, protected = case
        stats["cases"] += 1
        # Entries reach the validator through a JSON file: round-trip like one.
        text = json.dumps(doc, allow_nan=True)
        parsed = json.loads(text)
        try:
            report = validate_entry(parsed, pinned=pinned, dataset=resolver)
        except Exception as exc:  # noqa: BLE001 - counting crashes is the point
            stats["crashes"] += 1
            if len(examples) < 10:
                examples.append(f"crash on {what}: {type(exc).__name__}: {exc}"[:300])
            return
        if protected:
            stats["protected"] += 1
            if report.ok:
                stats["wrongly_accepted"] += 1
                if len(examples) < 10:
                    examples.append(f"accepted {what}")
        elif report.ok:
            stats["accepted_harmless"] += 1

    one()
    log(f"fuzz: {dict(stats)}")
    return {
        "fuzz_cases": stats["cases"],
        "fuzz_protected_changes": stats["protected"],
        "fuzz_wrongly_accepted": stats["wrongly_accepted"],
        "fuzz_crashes": stats["crashes"],
        "fuzz_harmless_accepted": stats["accepted_harmless"],
        "fuzz_examples": examples,
    }


# -- main ----------------------------------------------------------------------------------------
CHECKS = ("kill", "faults", "bad_inputs", "secrets", "concurrent", "fuzz", "forgeries")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
                    "slim_forgeries", Path(__file__).with_name("forgeries.py")
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


if __name__ == "__main__":
    main()
