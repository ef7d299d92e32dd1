"""Build a leaderboard entry from a finished run directory (``slim-eval submit``)."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from typing import Any

from .._io import sha256_bytes
from ..errors import ValidationError
from ..rundir import RunData
from .pinned import judge_identity
from .schema import CURRENT_VERSION, SCHEMA_NAME


def sample_ids_sha256(ids: Sequence[str]) -> str:
    """SHA-256 of sample ids joined by newlines: the run manifest's ``sample_ids_sha256``."""
    return sha256_bytes("\n".join(ids).encode())


#: The judge figures an entry keeps of the run's ``cost.judge`` (its per-stage rows stay in
#: the run).
JUDGE_COST_FIELDS = ("calls", "input_tokens", "output_tokens", "thinking_tokens", "cost_usd")


def _cost(slot: Any) -> dict[str, Any] | None:
    if not isinstance(slot, dict):
        return None
    out = {
        "seconds_per_image": slot.get("seconds_per_image"),
        "peak_memory_bytes": slot.get("peak_memory_bytes"),
    }
    if slot.get("images_timed") is not None:
        out["images_timed"] = slot["images_timed"]
    return out


def _leak_checks(run: RunData) -> dict:
    """The run's single-image leakage checks, ``(role, sample_id) -> row`` (empty without)."""
    from .._io import iter_jsonl
    from ..leakage import latest_checks
    from ..rundir import LEAKAGE

    path = run.path / LEAKAGE
    return latest_checks(iter_jsonl(path)) if path.exists() else {}


def _leaks(checks: dict, role: str, sample_id: str) -> bool | None:
    row = checks.get((role, sample_id))
    return None if row is None else row.get("leaky")


def build_entry(
    run: RunData,
    *,
    name: str | None = None,
    notes: str = "",
    submitted: str | None = None,
    submitter: str = "",
) -> dict[str, Any]:
    """Turn a finished, judged run into a leaderboard entry (a JSON-compatible dict).

    The reported metrics are the run's ``metrics.json`` as written; ``slim-eval validate``
    recomputes them from the per-sample verdicts the entry carries. Whether the entry is
    verified is not the entry's to say: the maintainers' ``slim-eval verify-entry`` decides.

    Args:
        run: The loaded run directory.
        name: Display name (defaults to the method name).
        notes: Free text shown with the entry.
        submitted: ISO 8601 date of submission (defaults to today, UTC).
        submitter: Who submits the entry (a person or group, e.g. a GitHub handle); an
            entry without one is listed but never ranked.

    Raises:
        ValidationError: If the run has no metrics or verdicts, or a sample lacks a verdict.
    """
    if run.metrics is None:
        raise ValidationError(
            f"Run {str(run.path)!r} has no metrics.json.",
            hint="Let `slim-eval run` finish (it writes metrics.json last).",
        )
    verdicts = {v.sample_id: v for v in run.verdicts}
    missing = [s.id for s in run.samples if s.id not in verdicts]
    if missing:
        raise ValidationError(
            f"Run {str(run.path)!r} has no verdict for {len(missing)} sample(s), e.g. "
            f"{missing[0]!r}.",
            hint="Resume the run until every sample is judged.",
        )
    manifest = run.manifest
    method = manifest.get("method") or {}
    backbone = manifest.get("backbone") or {}
    dataset = manifest.get("dataset") or {}
    judge = judge_identity(manifest.get("judge"))
    cost = manifest.get("cost") or {}
    checks = _leak_checks(run)
    rows = []
    for sample in run.samples:
        v = verdicts[sample.id]
        van = run.generation(sample.id, "vanilla")
        met = run.generation(sample.id, "method")
        rows.append(
            {
                "sample_id": sample.id,
                "subset": sample.subset,
                "family": sample.family,
                "label": v.label,
                "error": v.error,
                "order_flip": v.order_flip,
                "vanilla_sha256": van.sha256 if van else None,
                "method_sha256": met.sha256 if met else None,
            }
        )
        if checks:  # the single-image checks behind metrics.leakage, so it can be recomputed
            rows[-1]["vanilla_leaks"] = _leaks(checks, "vanilla", sample.id)
            rows[-1]["method_leaks"] = _leaks(
                checks, "vanilla" if run.method == "vanilla" else "method", sample.id
            )
    entry: dict[str, Any] = {
        "schema": SCHEMA_NAME,
        "schema_version": CURRENT_VERSION,
        "name": name or run.method,
        "submitter": submitter,
        "submitted": submitted or _dt.datetime.now(_dt.timezone.utc).date().isoformat(),
        "notes": notes,
        "method": {"name": run.method, "config": dict(method.get("config") or {})},
        "backbone": {
            "preset": str(backbone.get("name") or backbone.get("preset") or "unknown"),
            "description": dict(backbone),
        },
        "dataset": {
            "config": str(dataset.get("config") or "unknown"),
            "fingerprint": dataset.get("fingerprint"),
            "n_samples": len(run.samples),
            "sample_ids_sha256": sample_ids_sha256([s.id for s in run.samples]),
        },
        "judge": judge,
        "package": {
            "version": str(manifest.get("package_version") or "unknown"),
            "git_commit": manifest.get("git_commit"),
        },
        "metrics": run.metrics.to_dict(),
        "cost": {"vanilla": _cost(cost.get("vanilla")), "method": _cost(cost.get("method"))},
        "verdicts": rows,
    }
    if isinstance(cost.get("judge"), dict):
        entry["cost"]["judge"] = {k: cost["judge"].get(k) for k in JUDGE_COST_FIELDS}
    return entry
