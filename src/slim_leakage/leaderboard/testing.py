"""Leaderboard entries made without a run, for tests and benchmarks.

:func:`build_entry` turns a finished run into an entry; validation, fuzzing and timing need
entries over many samples (the whole shipped ``pairs`` config, say) without generating images.
:func:`synthetic_entry` makes one from samples and verdicts: the pinned SLIM judge, metrics
aggregated from the verdicts, and stand-in image hashes derived from the sample ids.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .._io import sha256_bytes
from ..metrics import aggregate
from ..records import Sample, Verdict
from .build import sample_ids_sha256
from .pinned import load_pinned
from .schema import CURRENT_VERSION, SCHEMA_NAME


def synthetic_entry(
    samples: Sequence[Sample],
    verdicts: Sequence[Verdict],
    *,
    fingerprint: str,
    config: str = "pairs",
    name: str = "synthetic",
    method: str = "m",
    backbone: str = "flux-dev",
    package_version: str = "0",
    n_boot: int = 1000,
) -> dict[str, Any]:
    """A structurally valid entry over ``samples`` with one verdict each (in sample order).

    Args:
        samples: The samples, in dataset order.
        verdicts: One verdict per sample, in the same order.
        fingerprint: The dataset fingerprint the entry claims.
        config: The SLIM config it claims.
        name: Display name.
        method: The method name (of the entry and of its metrics).
        backbone: The backbone preset it claims.
        package_version: The package version it claims.
        n_boot: Bootstrap draws for the metrics' intervals.

    Returns:
        A JSON-compatible dict (round-tripped through JSON, as a file would give it).
    """
    metrics = aggregate(verdicts, list(samples), method=method, n_boot=n_boot)
    entry = {
        "schema": SCHEMA_NAME,
        "schema_version": CURRENT_VERSION,
        "name": name,
        "submitter": "tests",
        "submitted": "2026-11-28",
        "notes": "",
        "method": {"name": method, "config": {}},
        "backbone": {"preset": backbone, "description": {}},
        "dataset": {
            "config": config,
            "fingerprint": fingerprint,
            "n_samples": len(samples),
            "sample_ids_sha256": sample_ids_sha256([s.id for s in samples]),
        },
        "judge": load_pinned().families["slim"].identity(),
        "package": {"version": package_version, "git_commit": None},
        "metrics": metrics.to_dict(),
        "cost": {"vanilla": None, "method": None},
        "verdicts": [
            {
                "sample_id": s.id,
                "subset": s.subset,
                "family": s.family,
                "label": v.label,
                "error": v.error,
                "order_flip": v.order_flip,
                "vanilla_sha256": sha256_bytes(f"v{s.id}".encode()),
                "method_sha256": sha256_bytes(f"m{s.id}".encode()),
            }
            for s, v in zip(samples, verdicts, strict=True)
        ],
    }
    return json.loads(json.dumps(entry))
