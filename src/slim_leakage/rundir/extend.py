"""A run asked for other samples than it holds: extend it, start it afresh, or say why not.

A finished ``--limit 8`` run asked for ``--limit 9`` (or more ``--ids``) is *extended*: the
samples it holds keep their images and verdicts, the new ones are generated and judged, and
the manifest records the extension (``extensions``: when, how many before and after). A run
that holds no finished work yet (a request refused after the folder was made) is started
afresh. Anything else is refused with what differs and the fix: a run is never cut down to
fewer samples, and never mixes two configurations.
"""

from __future__ import annotations

import copy
import datetime as _dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import RunConfigMismatchError
from ..records import Sample
from .manifest import differences

#: What :func:`reconcile` decided.
FRESH = "fresh"


def _without_samples(identity: dict[str, Any]) -> dict[str, Any]:
    rest = copy.deepcopy(identity)
    (rest.get("dataset") or {}).pop("sample_ids_sha256", None)
    return rest


def has_work(run) -> bool:
    """Whether the run directory holds any finished work (a record or an image)."""
    records = run.records
    for path in (records.generations_path, records.verdicts_path, records.judgements_path):
        if path.is_file() and path.stat().st_size:
            return True
    images = Path(run.root) / "images"
    return images.is_dir() and any(p.is_file() for p in images.rglob("*"))


def reconcile(
    run, manifest: dict[str, Any], identity: dict[str, Any], digest: str, samples: Sequence[Sample]
) -> dict[str, Any] | str | None:
    """Decide what to do with a run whose identity differs from the request's.

    Args:
        run: The :class:`~slim_leakage.rundir.RunDir`.
        manifest: Its manifest (unsealed).
        identity: The request's identity; ``digest`` its hash.
        samples: The request's samples.

    Returns:
        The extended manifest (already written, with the new ``samples.jsonl``), :data:`FRESH`
        when the folder holds no finished work and may be started again, or ``None`` when only
        the generic "different configuration" error fits.

    Raises:
        RunConfigMismatchError: For a request that selects fewer or other samples of the same
            configuration, naming the counts and the fix.
    """
    if not has_work(run):
        return FRESH
    # compared as written (2 and 2.0 differ in the file), as the identity's hash does
    if differences(_without_samples(manifest.get("identity", {})), _without_samples(identity)):
        return None
    before = [s.id for s in run.samples()]
    wanted = [s.id for s in samples]
    old, new = set(before), set(wanted)
    if new < old or (new != old and not old <= new):
        missing = len(old - new)
        extra = len(new - old)
        raise RunConfigMismatchError(
            f"{run.root} holds a run of {len(old)} samples; this request selects "
            f"{len(new)}"
            + (f", leaving out {missing} of the run's" if missing else "")
            + (f" and adding {extra} new" if extra else "")
            + " (--limit/--ids differ). A run is extended, never cut down.",
            hint=f"Resume with --limit {len(old)} (or the same --ids), or a larger --limit "
            "to extend it; for fewer samples choose a new --out directory.",
        )
    run._check_same_samples(samples)  # shared ids must hold the same samples
    dataset = dict(manifest.get("dataset") or {})
    n_before = int(dataset.get("n_samples") or len(before))
    run.write_samples(samples)  # first: a kill before the manifest is written is redone
    updated = dict(manifest)
    updated["identity"] = identity
    updated["config_hash"] = digest
    dataset["n_samples"] = len(samples)
    dataset["sample_ids_sha256"] = identity.get("dataset", {}).get("sample_ids_sha256")
    updated["dataset"] = dataset
    updated["extensions"] = [
        *manifest.get("extensions", []),
        {
            "at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "samples_before": n_before,
            "samples_after": len(samples),
            "added": len(samples) - n_before,
        },
    ]
    run.write_manifest(updated)
    return updated


def resume_note(run, samples: Sequence[Sample], done: dict, log=None) -> str | None:
    """One line saying what a resumed run keeps and what is left (``None`` for a run with no
    finished work), also given to ``log`` when there is one."""
    judged = {v.sample_id for v in run.records.unique_verdicts() if v.label is not None}
    images = len(done)
    if not images and not judged:
        return None
    ids = {s.id for s in samples}
    n_judged = len(judged & ids)
    extensions = []
    manifest = run.read_manifest() or {}
    if manifest.get("extensions"):
        last = manifest["extensions"][-1]
        extensions = [f"extended from {last['samples_before']} to {last['samples_after']}"]
    parts = [
        f"resuming {run.root}: {images} image(s) already generated and {n_judged} of "
        f"{len(samples)} sample(s) already judged are kept",
        *extensions,
    ]
    rest = len(samples) - n_judged
    tail = f"; {rest} sample(s) to do" if rest else "; nothing left to judge"
    note = "; ".join(parts) + tail
    if log is not None:
        log(note)
    return note
