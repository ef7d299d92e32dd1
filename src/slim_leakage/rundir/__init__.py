"""The run directory: where every file of a run lives, and the one way to write or read it.

A run directory (``slim-eval run --out DIR``, by default ``runs/<method>-<backbone>-<config>``)
is the unit of resumption::

    DIR/manifest.json        provenance and the identity a resume must match; written first
    DIR/samples.jsonl        the Sample records of the run
    DIR/images/vanilla/<sample>.png
    DIR/images/<method>/<sample>.png
    DIR/images/reference/<entity>.png          one single-entity image per entity
    DIR/images/masks/<sample>/<entity>.png     methods that produce overlays
    DIR/generations.jsonl    Generation records, appended as each image is saved
    DIR/judgements.jsonl     StageResult records, appended as each judge stage finishes
    DIR/verdicts.jsonl       one Verdict per sample, appended as each exists
    DIR/leakage.jsonl        one single-image leakage check per vanilla and method image
    DIR/metrics.json         RunMetrics
    DIR/report.html          the report
    DIR/thumbs/              the report's thumbnails of images/ (runs over 50 samples)
    DIR/.lock                held while a process works on the run
    DIR/shards/rank-R/       each rank's record files and process.json under ``accelerate launch``
    DIR/judged/<judge>/      ``slim-eval judge``: the same run judged again by another judge
    DIR/judge-batches.json   batches a judge submitted in batch mode (``BatchBook``)

File names in ``images/`` are :func:`slug` forms of the sample id, method and entity; sample ids
follow :data:`SAMPLE_ID_RULE`, and :func:`sample_problems` refuses samples that would share a
file (a repeated id, ids or entities that differ only in case or punctuation). Writers
(:class:`RunDir`) append each record as one complete line and write every other file
atomically, so a killed process loses nothing finished; readers (:func:`load_run`) get typed
records and never follow a path out of the directory. ``manifest.json`` is sealed each time it
is written (``manifest``), so a hand edit is named instead of trusted.

This package sits low in the import graph: it uses the records, the file helpers and the errors
only, so the run, the report, the leaderboard, the annotation page, the SLIM verifier and the
command line can all read and write runs through it. Import from here, not the submodules:
``layout`` (names, the sample-id rule), ``manifest`` (the seal), ``processes`` (shards, the lock, failed writes), ``writer`` (:class:`RunDir`,
:class:`Records`), ``reader`` (:func:`load_run`, :class:`RunData`).
"""

from __future__ import annotations

from .batches import BATCHES, BatchBook
from .layout import (
    GENERATIONS,
    JUDGEMENTS,
    LEAKAGE,
    MANIFEST,
    MANIFEST_SCHEMA,
    METRICS,
    REPORT,
    SAMPLE_ID_RULE,
    SAMPLES,
    SEED_POLICY,
    VERDICTS,
    image_file,
    inside_run,
    mask_file,
    reference_file,
    reference_id,
    sample_id_problem,
    sample_problems,
    slug,
    thumbnail_file,
)
from .manifest import differences, edited_fields, seal
from .processes import (
    WRITE_ERRNOS,
    Placement,
    RunLock,
    Shard,
    device_name,
    peak_memory,
    place_process,
    reset_peak_memory,
    write_error,
)
from .reader import RunData, load_run
from .writer import Records, RunDir, git_commit, library_versions

__all__ = [
    "BATCHES",
    "BatchBook",
    "GENERATIONS",
    "JUDGEMENTS",
    "LEAKAGE",
    "MANIFEST",
    "MANIFEST_SCHEMA",
    "METRICS",
    "REPORT",
    "SAMPLES",
    "SAMPLE_ID_RULE",
    "SEED_POLICY",
    "VERDICTS",
    "WRITE_ERRNOS",
    "Placement",
    "Records",
    "RunData",
    "RunDir",
    "RunLock",
    "Shard",
    "device_name",
    "differences",
    "edited_fields",
    "git_commit",
    "image_file",
    "inside_run",
    "library_versions",
    "load_run",
    "mask_file",
    "peak_memory",
    "place_process",
    "reference_file",
    "reference_id",
    "reset_peak_memory",
    "sample_id_problem",
    "sample_problems",
    "seal",
    "slug",
    "thumbnail_file",
    "write_error",
]
