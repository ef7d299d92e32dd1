"""Build a leaderboard entry from a finished run directory (``slim-eval submit``)."""

from __future__ import annotations

import datetime as _dt
import json
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ValidationError
from ..rundir import RunData
from .schema import CURRENT_VERSION, SCHEMA_NAME

#: File name of the pinned judge configuration (package data, mirrored in ``leaderboard/``).
PINNED_FILE = "pinned.json"


def load_pinned(path: str | Path | None = None) -> dict[str, Any]:
    """The leaderboard's pinned judge: ``{"judge": {backend, model_id, prompt_versions}}``.

    Args:
        path: A pinned-config JSON file; by default the copy shipped with the package.

    Raises:
        ValidationError: If the file is missing or malformed.
    """
    try:
        if path is None:
            text = resources.files("slim_leakage.leaderboard").joinpath(PINNED_FILE).read_text()
            where = f"slim_leakage/leaderboard/{PINNED_FILE}"
        else:
            text = Path(path).read_text(encoding="utf-8")
            where = str(path)
        data = json.loads(text)
    except FileNotFoundError as exc:
        raise ValidationError(
            f"Pinned judge configuration {str(path)!r} does not exist.",
            hint="Pass the leaderboard's pinned.json, or omit the option to use the shipped one.",
        ) from exc
    except json.JSONDecodeError as exc:
        raise ValidationError(f"Pinned judge configuration is not JSON ({exc}).") from exc
    judge = data.get("judge") if isinstance(data, dict) else None
    if not isinstance(judge, dict) or not {"backend", "model_id", "prompt_versions"} <= set(judge):
        raise ValidationError(
            f"{where} must hold {{'judge': {{'backend', 'model_id', 'prompt_versions'}}}}.",
            hint="Restore the file from the repository.",
        )
    return data


def judge_identity(description: dict[str, Any] | None) -> dict[str, Any]:
    """Backend, model id and prompt versions out of a manifest's ``judge`` description."""
    description = description or {}
    versions = description.get("prompt_versions") or description.get("prompts") or {}
    return {
        "backend": str(description.get("backend") or description.get("name") or "unknown"),
        "model_id": description.get("model_id") or description.get("model"),
        "prompt_versions": {str(k): str(v) for k, v in dict(versions).items()},
    }


def judge_matches_pinned(judge: dict[str, Any], pinned: dict[str, Any]) -> list[str]:
    """Differences between an entry's judge and the pinned one (empty when they match)."""
    want = pinned["judge"]
    out = []
    for key in ("backend", "model_id", "prompt_versions"):
        if judge.get(key) != want.get(key):
            out.append(f"judge.{key} is {judge.get(key)!r}, the leaderboard pins {want.get(key)!r}")
    return out


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


def build_entry(
    run: RunData,
    *,
    name: str | None = None,
    notes: str = "",
    unverified: bool = False,
    pinned: dict[str, Any] | None = None,
    submitted: str | None = None,
) -> dict[str, Any]:
    """Turn a finished, judged run into a leaderboard entry (a JSON-compatible dict).

    The reported metrics are the run's ``metrics.json`` as written; ``slim-eval validate``
    recomputes them from the per-sample verdicts the entry carries.

    Args:
        run: The loaded run directory.
        name: Display name (defaults to the method name).
        notes: Free text shown with the entry.
        unverified: Mark the entry unverified even if its judge is the pinned one.
        pinned: The pinned judge configuration (defaults to the shipped one). An entry whose
            judge differs from it is marked unverified.
        submitted: ISO date of submission (defaults to today, UTC).

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
    pinned = pinned or load_pinned()
    if judge_matches_pinned(judge, pinned):
        unverified = True
    cost = manifest.get("cost") or {}
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
    entry: dict[str, Any] = {
        "schema": SCHEMA_NAME,
        "schema_version": CURRENT_VERSION,
        "name": name or run.method,
        "submitted": submitted or _dt.datetime.now(_dt.timezone.utc).date().isoformat(),
        "unverified": bool(unverified),
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
            "sample_ids_sha256": dataset.get("sample_ids_sha256"),
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
    return entry
