"""Shared pieces of the reliability checks: fake keys, the samples, the `slim-eval` calls, the workspace."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
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
