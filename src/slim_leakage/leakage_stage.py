"""The run's leakage stage: one single-image leakage check per vanilla and method image.

After the comparison verdicts, the run asks the judge's ``check_leakage`` whether each image
leaks (the question the SLIM verifier asks) and appends one row per image to ``leakage.jsonl``
as each chunk of answers arrives, so a killed run keeps every answer and a resume checks only
the images without one (or whose bytes changed, or whose check failed). Images with the same
bytes are checked once: a ``vanilla`` run's method images are its vanilla images.

With the judge's cache on, the checks cost no new call: the extraction and the blind
per-image typicality rating they run are the very requests the comparison already made (the
cache key is the request's content). The calls the stage did make are recorded as ``usage``
rows and reported beside the rates.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ._io import append_jsonl, iter_jsonl, repair_jsonl
from .leakage import ROLES, check_row, latest_checks, leakage_summary, usage_total
from .records import Generation, Sample
from .rundir import LEAKAGE

#: Images checked per ``check_leakage`` call (each chunk's rows are written when it returns).
CHUNK = 16

_USAGE = ("calls", "cache_hits", "input_tokens", "output_tokens", "thinking_tokens", "cost_usd")


def _stats(judge: Any) -> dict[str, float]:
    stats = getattr(judge, "stats", None)
    return {f: getattr(stats, f, 0) or 0 for f in _USAGE}


def check_images(
    root: Path,
    samples: Sequence[Sample],
    generations: Mapping[tuple[str, str], Generation],
    references: Mapping[str, Path],
    judge: Any,
    *,
    method: str,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Check every image of the run that has no valid check yet; return ``metrics.leakage``.

    Args:
        root: The run directory.
        samples: The run's samples.
        generations: ``(role, sample_id) -> Generation`` of the vanilla and method images.
        references: Entity -> reference image (sent to extraction, as in the comparison).
        judge: The run's judge (``check_leakage`` and ``name``).
        method: The run's method name.
        progress: Show the judge's progress bar.
        log: Where one progress line goes.

    Returns:
        :func:`slim_leakage.leakage.leakage_summary` with ``judge_usage`` (the calls this
        stage made over all invocations) added.
    """
    path = root / LEAKAGE
    repair_jsonl(path)
    rows = list(iter_jsonl(path)) if path.exists() else []
    name = getattr(judge, "name", type(judge).__name__)
    have = latest_checks(rows)
    roles = ("vanilla",) if method == "vanilla" else ROLES
    # (image digest, sample) -> a valid check of those bytes for that sample
    answered: dict[tuple[str, str], dict] = {
        (row["image_sha256"], row["sample_id"]): row
        for row in have.values()
        if row.get("leaky") is not None and row.get("judge") == name
    }
    todo: list[tuple[str, Sample, Generation]] = []
    for sample in samples:
        for role in roles:
            gen = generations.get((role, sample.id))
            if gen is None:
                continue
            row = have.get((role, sample.id))
            if (
                row is not None
                and row.get("leaky") is not None
                and row.get("image_sha256") == gen.sha256
                and row.get("judge") == name
            ):
                continue
            todo.append((role, sample, gen))
    if todo and log is not None:
        log(f"leakage: checking {len(todo)} image(s) with {name}")
    for start in range(0, len(todo), CHUNK):
        chunk = todo[start : start + CHUNK]
        # an image already answered under another role (same bytes) costs no check
        ask = [(r, s, g) for r, s, g in chunk if (g.sha256, s.id) not in answered]
        unique: dict[tuple[str, str], tuple[Sample, Path, dict]] = {}
        for _, sample, gen in ask:
            refs = {e: references[e] for e in sample.entities if e in references}
            unique.setdefault((gen.sha256, sample.id), (sample, root / gen.path, refs))
        before = _stats(judge)
        answers = judge.check_leakage(list(unique.values()), progress=progress) if unique else []
        after = _stats(judge)
        got = dict(zip(unique, answers))
        for role, sample, gen in chunk:
            key = (gen.sha256, sample.id)
            if key in got:
                row = check_row(
                    got[key],
                    role=role,
                    image_sha256=gen.sha256,
                    judge=name,
                    entities=sample.entities,
                )
                if row["leaky"] is not None:
                    answered[key] = row
            else:
                row = {**answered[key], "role": role}
            append_jsonl(path, json.dumps(row, sort_keys=True))
            rows.append(row)
        if unique:
            usage = {"kind": "usage", "images": len(unique)}
            usage.update({f: after[f] - before[f] for f in _USAGE})
            usage["cost_usd"] = round(float(usage["cost_usd"]), 9)
            append_jsonl(path, json.dumps(usage, sort_keys=True))
            rows.append(usage)
    summary = leakage_summary(rows, samples, method=method)
    summary["judge"] = name
    summary["judge_usage"] = usage_total(rows)
    return summary


def with_leakage(run: Any, metrics: Any, judge: Any) -> Any:
    """``metrics`` with ``leakage`` set from the run's checks (unchanged without a judge).

    Args:
        run: The :class:`~slim_leakage.run.Run` finishing (its directory, samples, method,
            configuration and log).
        metrics: Its :class:`~slim_leakage.records.RunMetrics`.
        judge: The run's judge, or ``None`` (judge ``none``, or nothing judged).
    """
    import dataclasses

    if judge is None or not callable(getattr(judge, "check_leakage", None)):
        return metrics
    from .progress import progress_enabled

    records = run.dir.merged.generations()
    generations = {(g.role, g.sample_id): g for g in records if g.role in ROLES}
    references = {
        g.entity: run.dir.root / g.path for g in records if g.role == "reference" and g.entity
    }
    summary = check_images(
        run.dir.root,
        run.samples,
        generations,
        references,
        judge,
        method=run.method.name,
        progress=progress_enabled(run.config.progress),
        log=run.log,
    )
    return dataclasses.replace(metrics, leakage=summary)
