"""Validate a leaderboard entry: structure, dataset, judge and exact recomputation.

:func:`validate_entry` only reads JSON values: it never imports, evaluates or calls anything
named by the entry (a method name is a string to compare, not a registry lookup). It returns
*every* problem found, each naming the offending field, so a submitter fixes them in one pass.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import SlimError, ValidationError
from ..metrics import AGGREGATE_FIELDS, aggregate
from ..records import LABEL_CODES, LABELS, Sample, Verdict
from .build import judge_matches_pinned, load_pinned
from .schema import KNOWN_VERSIONS, SCHEMA_NAME, SCHEMAS, check_structure

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
#: At most this many differences are listed per recomputed field.
MAX_DIFFS = 8


@dataclasses.dataclass(frozen=True)
class DatasetReference:
    """The shipped SLIM config an entry must cover.

    Attributes:
        config: Dataset config name (``pairs``).
        fingerprint: The shipped data's fingerprint.
        samples: Its samples (ids, subsets, families are checked).
    """

    config: str
    fingerprint: str | None
    samples: tuple[Sample, ...]


#: config name -> reference, or an error message when the config cannot be loaded.
DatasetResolver = Callable[[str], "DatasetReference"]


def shipped_dataset(config: str) -> DatasetReference:
    """The reference for a config of the SLIM shipped with the package.

    Raises:
        ValidationError: If the config cannot be loaded (unknown name, data missing).
    """
    try:
        from ..slim import dataset_fingerprint, load_samples

        samples = tuple(load_samples(config))
        fingerprint = dataset_fingerprint(config)
    except ImportError as exc:
        raise ValidationError(
            f"The shipped SLIM cannot be loaded to check config {config!r} ({exc}).",
            hint="Install the package with its data (pip install -e .) and retry.",
        ) from exc
    except SlimError as exc:
        raise ValidationError(
            f"Dataset config {config!r} is not a shipped SLIM config: {exc.message}",
            hint="Entries must be evaluated on a shipped config (`slim-eval ls configs`).",
        ) from exc
    return DatasetReference(config=config, fingerprint=fingerprint, samples=samples)


@dataclasses.dataclass
class ValidationReport:
    """The outcome of validating one entry.

    Attributes:
        problems: Each problem, naming the offending field; empty when the entry is valid.
        notes: Facts that do not make the entry invalid (e.g. why it is unverified).
        verified: Valid, judged by the pinned judge and not marked unverified.
    """

    problems: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    verified: bool = False

    @property
    def ok(self) -> bool:
        """No problems."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form."""
        return {
            "ok": self.ok,
            "verified": self.verified,
            "problems": list(self.problems),
            "notes": list(self.notes),
        }


def load_entry(path: str | Path) -> dict[str, Any]:
    """Read an entry file as plain JSON (nothing in it is executed).

    Raises:
        ValidationError: If the file is missing, not JSON, or not a JSON object.
    """
    path = Path(path)
    if path.is_dir():
        raise ValidationError(
            f"Entry file {str(path)!r} is a folder, not an entry file.",
            hint="Give the entry's JSON file (for a folder of entries: slim-eval validate "
            "FOLDER/*.json).",
        )
    if not path.is_file():
        raise ValidationError(
            f"Entry file {str(path)!r} does not exist.",
            hint="Build one with `slim-eval submit RUN --out entry.json`.",
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValidationError(f"{path} is not valid JSON ({exc}).") from exc
    if not isinstance(data, dict):
        raise ValidationError(f"{path} must hold one JSON object, not {type(data).__name__}.")
    return data


def _diff(reported: Any, recomputed: Any, path: str, out: list[str]) -> None:
    if len(out) >= MAX_DIFFS:
        return
    if isinstance(reported, dict) and isinstance(recomputed, dict):
        for key in sorted(set(reported) | set(recomputed), key=str):
            if key not in reported:
                out.append(f"{path}.{key}: missing (recomputed {recomputed[key]!r})")
            elif key not in recomputed:
                out.append(f"{path}.{key}: reported {reported[key]!r}, not in the recomputation")
            else:
                _diff(reported[key], recomputed[key], f"{path}.{key}", out)
        return
    # JSON distinguishes 1 from 1.0 only by spelling; compare values, and types for bools.
    same = reported == recomputed and isinstance(reported, bool) == isinstance(recomputed, bool)
    if not same:
        out.append(f"{path}: reported {reported!r}, recomputed {recomputed!r}")


def _verdict_records(entry: dict, method: str, report: ValidationReport) -> list[Verdict] | None:
    out = []
    for i, row in enumerate(entry["verdicts"]):
        label = row["label"]
        if label is not None and label not in LABEL_CODES:
            report.problems.append(
                f"verdicts[{i}].label: unknown label {label!r} (allowed: {', '.join(LABELS)})"
            )
            continue
        if (label is None) == (row["error"] is None):
            report.problems.append(
                f"verdicts[{i}]: exactly one of label and error must be set "
                f"(label={label!r}, error={row['error']!r})"
            )
            continue
        for key in ("vanilla_sha256", "method_sha256"):
            digest = row[key]
            if digest is None:
                if label is not None:
                    report.problems.append(f"verdicts[{i}].{key}: missing for a labelled sample")
            elif not _SHA256.match(digest):
                report.problems.append(f"verdicts[{i}].{key}: {digest!r} is not a SHA-256 hex")
        out.append(
            Verdict(
                sample_id=row["sample_id"],
                method=method,
                label=label,
                error=row["error"],
                order_flip=row["order_flip"],
            )
        )
    return out if len(out) == len(entry["verdicts"]) else None


def _check_dataset(entry: dict, resolver: DatasetResolver, report: ValidationReport) -> None:
    dataset = entry["dataset"]
    rows = entry["verdicts"]
    seen: dict[str, int] = {}
    for i, row in enumerate(rows):
        if row["sample_id"] in seen:
            report.problems.append(
                f"verdicts[{i}].sample_id: {row['sample_id']!r} occurs again "
                f"(first at verdicts[{seen[row['sample_id']]}])"
            )
        else:
            seen[row["sample_id"]] = i
    if dataset["n_samples"] != len(rows):
        report.problems.append(
            f"dataset.n_samples: {dataset['n_samples']} but the entry has {len(rows)} verdicts"
        )
    try:
        ref = resolver(dataset["config"])
    except SlimError as exc:
        report.problems.append(f"dataset.config: {exc.message}")
        return
    if ref.fingerprint is None or dataset["fingerprint"] != ref.fingerprint:
        report.problems.append(
            f"dataset.fingerprint: {dataset['fingerprint']!r} does not match the shipped "
            f"SLIM {ref.config!r} ({ref.fingerprint!r})"
        )
    by_id = {s.id: s for s in ref.samples}
    missing = [s.id for s in ref.samples if s.id not in seen]
    extra = [sid for sid in seen if sid not in by_id]
    if missing:
        shown = ", ".join(map(repr, missing[:MAX_DIFFS])) + (" ..." if len(missing) > 8 else "")
        report.problems.append(
            f"verdicts: {len(missing)} sample(s) of {ref.config!r} are missing: {shown}"
        )
    if extra:
        shown = ", ".join(map(repr, extra[:MAX_DIFFS])) + (" ..." if len(extra) > 8 else "")
        report.problems.append(
            f"verdicts: {len(extra)} sample(s) are not in {ref.config!r}: {shown}"
        )
    for i, row in enumerate(rows):
        sample = by_id.get(row["sample_id"])
        if sample is None:
            continue
        for key in ("subset", "family"):
            if row[key] != getattr(sample, key):
                report.problems.append(
                    f"verdicts[{i}].{key}: {row[key]!r}, the dataset says {getattr(sample, key)!r}"
                )
    if not missing and not extra and len(seen) == len(rows):
        # the format fixes the row order (dataset order), so one entry has one byte form
        for i, (row, sample) in enumerate(zip(rows, ref.samples)):
            if row["sample_id"] != sample.id:
                report.problems.append(
                    f"verdicts[{i}].sample_id: {row['sample_id']!r}, but the rows must be in "
                    f"dataset order, which has {sample.id!r} here"
                )
                break


def _check_metrics(entry: dict, report: ValidationReport) -> None:
    method = entry["method"]["name"]
    metrics = entry["metrics"]
    if metrics["method"] != method:
        report.problems.append(
            f"metrics.method: {metrics['method']!r} but method.name is {method!r}"
        )
    boot = metrics["extra"].get("bootstrap")
    if not isinstance(boot, dict) or not all(
        isinstance(boot.get(k), int) and not isinstance(boot.get(k), bool)
        for k in ("n_boot", "seed")
    ):
        report.problems.append(
            "metrics.extra.bootstrap: needs integer n_boot and seed to recompute the intervals"
        )
        return
    verdicts = _verdict_records(entry, method, report)
    if verdicts is None:
        return
    ids = [v.sample_id for v in verdicts]
    if len(set(ids)) != len(ids):
        return  # already reported by the dataset check; aggregate would refuse
    # aggregate() reads only id, subset and family of a sample; the rest is filler.
    samples = [
        Sample(
            id=row["sample_id"],
            prompt="-",
            entities=("-",),
            seed=0,
            subset=row["subset"],
            family=row["family"],
        )
        for row in entry["verdicts"]
    ]
    try:
        recomputed = aggregate(
            verdicts, samples, method=method, n_boot=boot["n_boot"], seed=boot["seed"]
        ).to_dict()
    except SlimError as exc:
        report.problems.append(f"metrics: cannot recompute ({exc.message})")
        return
    for key in AGGREGATE_FIELDS:
        diffs: list[str] = []
        _diff(metrics[key], recomputed[key], f"metrics.{key}", diffs)
        report.problems += diffs
    if boot.get("level") != recomputed["extra"]["bootstrap"]["level"]:
        report.problems.append(
            f"metrics.extra.bootstrap.level: {boot.get('level')!r}, this version uses "
            f"{recomputed['extra']['bootstrap']['level']!r}"
        )


def validate_entry(
    entry: Any,
    *,
    pinned: dict[str, Any] | None = None,
    dataset: DatasetResolver = shipped_dataset,
) -> ValidationReport:
    """Check an entry and return every problem found.

    Args:
        entry: The parsed JSON of the entry.
        pinned: The leaderboard's pinned judge configuration (default: the shipped one).
        dataset: Resolves a dataset config name to its :class:`DatasetReference`.

    Returns:
        The report; ``report.ok`` is true only if there are no problems.
    """
    report = ValidationReport()
    if not isinstance(entry, dict):
        report.problems.append(f"entry: expected a JSON object, got {type(entry).__name__}")
        return report
    if entry.get("schema") != SCHEMA_NAME:
        report.problems.append(f"schema: {entry.get('schema')!r}, expected {SCHEMA_NAME!r}")
        return report
    version = entry.get("schema_version")
    if version not in KNOWN_VERSIONS or isinstance(version, bool):
        report.problems.append(
            f"schema_version: {version!r} is not a known version (known: "
            f"{', '.join(map(str, KNOWN_VERSIONS))}); upgrade slim-leakage to validate it"
        )
        return report
    structure = check_structure(entry, SCHEMAS[version])
    if structure:
        report.problems += structure
        return report
    _check_dataset(entry, dataset, report)
    judge_diffs = judge_matches_pinned(entry["judge"], pinned or load_pinned())
    if judge_diffs:
        if entry["unverified"]:
            report.notes += [f"unverified: {d}" for d in judge_diffs]
        else:
            report.problems += [
                f'{d} (mark the entry "unverified": true to list it anyway)' for d in judge_diffs
            ]
    elif entry["unverified"]:
        report.notes.append("unverified: marked so by the submitter")
    _check_metrics(entry, report)
    report.verified = report.ok and not entry["unverified"]
    return report


def validate_files(
    paths: Sequence[str | Path],
    *,
    pinned: dict[str, Any] | None = None,
    dataset: DatasetResolver = shipped_dataset,
) -> dict[str, ValidationReport]:
    """Validate several entry files; an unreadable file is a report with one problem."""
    out: dict[str, ValidationReport] = {}
    for path in paths:
        try:
            entry = load_entry(path)
        except ValidationError as exc:
            out[str(path)] = ValidationReport(problems=[exc.message])
            continue
        out[str(path)] = validate_entry(entry, pinned=pinned, dataset=dataset)
    return out
