"""``validate --rejudge``: judge an entry's images again and compare with its labels.

The images come from a run directory. Each one must hash to the SHA-256 the entry records
(so the labels being re-checked belong to exactly those pixels); then the judge the entry names
(normally the pinned one) labels them again and the share of equal labels is compared with a
threshold. A VLM judge is not perfectly repeatable, hence a threshold rather than equality.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._io import sha256_file
from ..rundir import load_run
from .validate import ValidationReport


def _judge_items(entry: dict, run_dir: str | Path, report: ValidationReport) -> list | None:
    from ..judge import JudgeItem

    data = load_run(run_dir)
    samples = {s.id: s for s in data.samples}
    method = entry["method"]["name"]
    items = []
    for i, row in enumerate(entry["verdicts"]):
        if row["label"] is None:
            continue  # the entry has nothing to compare for a judge error
        sample = samples.get(row["sample_id"])
        if sample is None:
            report.problems.append(
                f"verdicts[{i}]: sample {row['sample_id']!r} is not in {str(run_dir)!r}"
            )
            continue
        paths = {}
        for role, key in (("vanilla", "vanilla_sha256"), ("method", "method_sha256")):
            path = data.image_path(sample.id, role)
            if not path.is_file():
                report.problems.append(f"verdicts[{i}].{key}: image {str(path)!r} is missing")
                continue
            digest = sha256_file(path)
            if digest != row[key]:
                report.problems.append(
                    f"verdicts[{i}].{key}: {str(path)!r} hashes to {digest}, not {row[key]}"
                )
                continue
            paths[role] = path
        if len(paths) < 2:
            continue
        refs = {}
        for entity in sample.entities:
            ref = data.reference_path(entity)
            if ref.is_file():
                refs[entity] = ref
        items.append(JudgeItem(sample, method, paths["vanilla"], paths["method"], refs))
    return None if report.problems else items


def rejudge(
    entry: dict,
    run_dir: str | Path,
    *,
    report: ValidationReport,
    min_agreement: float = 0.9,
    judge: Any = None,
    judge_args: Mapping[str, Any] | None = None,
) -> float | None:
    """Check image hashes, judge the images again and add problems/notes to ``report``.

    Args:
        entry: A structurally valid entry.
        run_dir: The run directory holding its images.
        report: The entry's validation report (extended in place).
        min_agreement: Least share of samples whose new label equals the entry's.
        judge: A judge (``.judge(items, progress=False) -> list[Verdict]``); by default the
            entry's judge backend and model are built with ``judge_args``.
        judge_args: Options for ``get_judge`` (cache directory, API key, ...).

    Returns:
        The share of equal labels, or ``None`` if the images could not be checked.
    """
    items = _judge_items(entry, run_dir, report)
    if items is None:
        report.verified = False
        return None
    if judge is None:
        from ..judge import get_judge

        options = dict(judge_args or {})
        if entry["judge"]["model_id"]:
            options.setdefault("model", entry["judge"]["model_id"])
        judge = get_judge(entry["judge"]["backend"], **options)
    verdicts = judge.judge(items, progress=False)
    labels = {row["sample_id"]: row["label"] for row in entry["verdicts"]}
    same = 0
    for verdict in verdicts:
        if verdict.label == labels.get(verdict.sample_id):
            same += 1
        else:
            report.notes.append(
                f"rejudge: {verdict.sample_id!r} now {verdict.label or verdict.error!r}, "
                f"the entry says {labels.get(verdict.sample_id)!r}"
            )
    share = same / len(verdicts) if verdicts else 1.0
    report.notes.append(f"rejudge: {same} of {len(verdicts)} labels reproduced ({share:.3f})")
    if share < min_agreement:
        report.problems.append(
            f"rejudge: only {share:.3f} of labels reproduced, below {min_agreement}"
        )
        report.verified = False
    return share
