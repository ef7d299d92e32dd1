"""Validate a leaderboard entry: structure, dataset, ranges, judge and exact recomputation.

:func:`validate_entry` only reads JSON values: it never imports, evaluates or calls anything
named by the entry (a method name is a string to compare, not a registry lookup). It returns
*every* problem found, each naming the offending field, so a submitter fixes them in one pass.
:func:`validate_file` also reads the entry's verification record
(:mod:`.verification`): only such a record, signed by the maintainers, makes an entry verified.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import SlimError, ValidationError
from ..metrics import AGGREGATE_FIELDS, aggregate
from ..records import LABEL_CODES, LABELS, Sample, Verdict
from .build import sample_ids_sha256
from .dataset_ref import DatasetReference, DatasetResolver, shipped_dataset  # noqa: F401 (re-exported)
from .names import name_problems
from .pinned import Pinned, load_pinned
from .schema import KNOWN_VERSIONS, SCHEMA_NAME, SCHEMAS, check_structure, migrate
from .verification import (
    KeyCheck,
    Verification,
    check_record,
    default_public_key,
    load_checked_key,
    read_record,
    record_path,
)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
#: At most this many differences are listed per recomputed field.
MAX_DIFFS = 8
#: An entry whose judge errors exceed this share of its samples is listed but not ranked.
JUDGE_ERROR_LIMIT = 0.05
#: The status of a valid entry whose method or backbone the maintainers cannot regenerate.
NOT_REPRODUCED = "listed, not reproduced"
#: Bootstrap resamples an entry may ask the validator to recompute (a bound on its work).
MAX_N_BOOT = 100_000


@dataclasses.dataclass
class ValidationReport:
    """The outcome of validating one entry.

    Attributes:
        problems: Each problem, naming the offending field; empty when the entry is valid.
        notes: Facts that do not make the entry invalid (e.g. why it cannot be verified).
        verification: The verification record's verdict (``None``: not looked up).
        attempts: Verification attempts linked to the entry (:mod:`.history`).
        unranked: Why the entry, though valid, is not ranked (empty: it may be ranked): the
            verification's reasons when it is not verified, then too many judge errors.
    """

    problems: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    verification: Verification | None = None
    unranked: list[str] = dataclasses.field(default_factory=list)
    attempts: int = 0

    @property
    def ok(self) -> bool:
        """No problems."""
        return not self.problems

    @property
    def verified(self) -> bool:
        """Valid, and a maintainers' verification record verifies it."""
        return self.ok and self.verification is not None and self.verification.verified

    @property
    def status(self) -> str:
        """``verified``, ``rejected`` (by its verification), ``unverified`` or ``invalid``."""
        if not self.ok:
            return "invalid"
        return self.verification.status if self.verification else "unverified"

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form."""
        return {
            "ok": self.ok,
            "verified": self.verified,
            "status": self.status,
            "verification": self.verification.to_dict() if self.verification else None,
            "unranked": list(self.unranked),
            "attempts": self.attempts,
            "problems": list(self.problems),
            "notes": list(self.notes),
        }


def read_entry(path: str | Path) -> tuple[bytes, dict[str, Any]]:
    """Read an entry file: its bytes (what a verification record hashes) and its JSON.

    Nothing in it is executed.

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
    from .strictjson import read_strict

    raw, data = read_strict(path, what="entry file")
    if not isinstance(data, dict):
        raise ValidationError(f"{path} must hold one JSON object, not {type(data).__name__}.")
    return raw, data


def load_entry(path: str | Path) -> dict[str, Any]:
    """Read an entry file as plain JSON (see :func:`read_entry`)."""
    return read_entry(path)[1]


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


def _verdict_records(
    entry: dict, method: str, report: ValidationReport, *, errors_need_images: bool
) -> list[Verdict] | None:
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
                # from version 2 a judge error carries its images too: it is re-judged
                if label is not None or errors_need_images:
                    report.problems.append(
                        f"verdicts[{i}].{key}: missing (every sample's images are re-judged "
                        "by the maintainers, judge errors included)"
                        if label is None
                        else f"verdicts[{i}].{key}: missing for a labelled sample"
                    )
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
    digest = dataset.get("sample_ids_sha256")
    expected = sample_ids_sha256([s.id for s in ref.samples])
    if digest is not None and digest != expected:
        report.problems.append(
            f"dataset.sample_ids_sha256: {digest!r}, but the samples of {ref.config!r} hash "
            f"to {expected!r}"
        )


def _finite(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, int) or math.isfinite(value)


def _check_number(
    value: Any, path: str, report: ValidationReport, *, low: float = 0.0, high: float | None = None
) -> bool:
    """Problem unless ``value`` is null or a finite number in ``[low, high]``."""
    if value is None:
        return True
    if not _finite(value):
        report.problems.append(f"{path}: {value!r} is not a finite number")
        return False
    if high is None and value < low:
        report.problems.append(f"{path}: {value!r} is below {low:g}")
        return False
    if high is not None and not low <= value <= high:
        report.problems.append(f"{path}: {value!r} is outside [{low:g}, {high:g}]")
        return False
    return True


def _check_shares(block: dict, path: str, report: ValidationReport) -> None:
    for label, share in block.get("distribution", {}).items():
        _check_number(share, f"{path}.distribution.{label}", report, high=1.0)
    for label, count in block.get("counts", {}).items():
        _check_number(count, f"{path}.counts.{label}", report)


def _check_ranges(entry: dict, report: ValidationReport) -> None:
    """Range-check every displayed or recomputed number before any comparison."""
    metrics = entry["metrics"]
    for key in ("n_samples", "n_labelled", "judge_errors"):
        _check_number(metrics[key], f"metrics.{key}", report)
    _check_number(entry["dataset"]["n_samples"], "dataset.n_samples", report)
    _check_shares(metrics, "metrics", report)
    for label, interval in metrics["intervals"].items():
        path = f"metrics.intervals.{label}"
        if interval is None:
            continue
        if len(interval) != 2:
            report.problems.append(f"{path}: {interval!r} is not a [low, high] pair")
        elif not all(_finite(v) for v in interval):
            report.problems.append(f"{path}: {interval!r} holds a number that is not finite")
        elif not 0.0 <= interval[0] <= interval[1] <= 1.0:
            report.problems.append(
                f"{path}: {interval!r} is outside [0, 1] or its low bound exceeds its high bound"
            )
    for group in ("per_subset", "per_family"):
        for name, block in metrics[group].items():
            _check_shares(block, f"metrics.{group}.{name}", report)
    _check_number(metrics["order_flip_rate"], "metrics.order_flip_rate", report, high=1.0)
    _check_number(metrics["lpips"], "metrics.lpips", report)
    _check_number(metrics["kid"], "metrics.kid", report, low=-1.0)
    _check_number(metrics["kid_std"], "metrics.kid_std", report)
    _check_number(metrics["vqascore"], "metrics.vqascore", report, high=1.0)
    for role in ("vanilla", "method"):
        cost = entry["cost"][role]
        if cost is None:
            continue
        for key in ("seconds_per_image", "peak_memory_bytes", "images_timed"):
            _check_number(cost.get(key), f"cost.{role}.{key}", report)
    for key, value in (entry["cost"].get("judge") or {}).items():
        _check_number(value, f"cost.judge.{key}", report)


def _check_date(entry: dict, report: ValidationReport, today: _dt.date | None) -> None:
    value = entry["submitted"]
    try:
        if not _DATE.match(value):
            raise ValueError
        date = _dt.date.fromisoformat(value)
    except ValueError:
        report.problems.append(
            f"submitted: {value!r} is not an ISO 8601 date (YYYY-MM-DD, e.g. 2026-11-28)"
        )
        return
    today = today or _dt.datetime.now(_dt.timezone.utc).date()
    if date > today + _dt.timedelta(days=1):
        report.problems.append(f"submitted: {value} is in the future (today is {today})")


def recompute_aggregates(entry: dict, verdicts: Sequence[Verdict] | None = None) -> dict[str, Any]:
    """What ``metrics.aggregate`` gives for the entry's verdict rows (with the entry's
    ``metrics.extra.bootstrap``), as ``RunMetrics.to_dict()``.

    Args:
        entry: A structurally valid entry.
        verdicts: The rows as :class:`Verdict` records (built from the rows by default).

    Raises:
        SlimError: If the rows cannot be aggregated (duplicates, an unknown label ...).
    """
    method = entry["method"]["name"]
    boot = entry["metrics"]["extra"]["bootstrap"]
    if verdicts is None:
        verdicts = [
            Verdict(
                sample_id=r["sample_id"],
                method=method,
                label=r["label"],
                error=r["error"],
                order_flip=r["order_flip"],
            )
            for r in entry["verdicts"]
        ]
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
    return aggregate(
        verdicts, samples, method=method, n_boot=boot["n_boot"], seed=boot["seed"]
    ).to_dict()


def _check_metrics(entry: dict, report: ValidationReport, *, errors_need_images: bool) -> None:
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
    if not 1 <= boot["n_boot"] <= MAX_N_BOOT:
        report.problems.append(
            f"metrics.extra.bootstrap.n_boot: {boot['n_boot']} is outside 1..{MAX_N_BOOT}"
        )
        return
    verdicts = _verdict_records(entry, method, report, errors_need_images=errors_need_images)
    if verdicts is None:
        return
    ids = [v.sample_id for v in verdicts]
    if len(set(ids)) != len(ids):
        return  # already reported by the dataset check; aggregate would refuse
    try:
        recomputed = recompute_aggregates(entry, verdicts)
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


def judge_error_reasons(entry: dict) -> list[str]:
    """Why an entry is not ranked because of its judge errors (empty when within the limit)."""
    n = entry["metrics"]["n_samples"]
    errors = entry["metrics"]["judge_errors"]
    if n and errors / n > JUDGE_ERROR_LIMIT:
        return [
            f"judge errors on {errors} of {n} samples ({100 * errors / n:.1f}%) exceed the "
            f"limit of {100 * JUDGE_ERROR_LIMIT:g}%"
        ]
    return []


def validate_entry(
    entry: Any,
    *,
    pinned: Pinned | None = None,
    dataset: DatasetResolver = shipped_dataset,
    today: _dt.date | None = None,
) -> ValidationReport:
    """Check an entry and return every problem found (verification is :func:`validate_file`'s).

    Args:
        entry: The parsed JSON of the entry (version 1 entries are read as version 2).
        pinned: The leaderboard's pinned configuration (default: the shipped one).
        dataset: Resolves a dataset config name to its :class:`DatasetReference`.
        today: The date a submission may not be later than (default: today, UTC).

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
    entry, notes = migrate(entry)
    report.notes += notes
    report.problems += name_problems(entry["name"])
    if entry.get("submitter"):
        report.problems += name_problems(entry["submitter"], "submitter")
    _check_date(entry, report, today)
    _check_dataset(entry, dataset, report)
    pinned = pinned or load_pinned()
    pin = pinned.for_config(entry["dataset"]["config"])
    if pin is None:
        report.notes.append(
            f"cannot be verified: no judge is pinned for dataset config "
            f"{entry['dataset']['config']!r}"
        )
    else:
        report.notes += [f"cannot be verified: {d}" for d in pin.differences(entry["judge"])]
    before = len(report.problems)
    _check_ranges(entry, report)
    if len(report.problems) == before:  # recompute only numbers known to be in range
        _check_metrics(entry, report, errors_need_images=version >= 2)
    if report.ok:
        report.unranked += judge_error_reasons(entry)
        if not entry.get("submitter"):
            report.unranked.append(
                "the entry names no submitter (schema version 3 `submitter`; `slim-eval "
                "submit --submitter WHO`)"
            )
    return report


def validate_file(
    path: str | Path,
    *,
    pinned: Pinned | None = None,
    dataset: DatasetResolver = shipped_dataset,
    records: str | Path | None = None,
    key: KeyCheck | None = None,
    today: _dt.date | None = None,
) -> ValidationReport:
    """Validate an entry file and look up its verification record.

    Args:
        path: The entry file.
        pinned: The pinned configuration (default: the shipped one).
        dataset: Dataset reference resolver.
        records: Folder of verification records (default: ``verifications/`` beside the
            entry's folder).
        key: The leaderboard's public key (default: the pinned key file beside the entry's
            folder, checked against the pinned fingerprint).
        today: See :func:`validate_entry`.
    """
    pinned = pinned or load_pinned()
    try:
        raw, entry = read_entry(path)
    except ValidationError as exc:
        return ValidationReport(problems=[exc.message])
    report = validate_entry(entry, pinned=pinned, dataset=dataset, today=today)
    if not report.ok:
        return report
    key = key or load_checked_key(default_public_key(path, pinned), pinned)
    doc, missing = read_record(record_path(path, records))
    if doc is None:
        report.verification = Verification("unverified", (str(missing),))
    else:
        report.verification = check_record(
            doc,
            entry_bytes=raw,
            entry_file=Path(path).name,
            config=entry["dataset"]["config"],
            key=key,
            pinned=pinned,
        )
    _history_and_reproducibility(report, path, records, migrate(entry)[0], raw, key)
    if not report.verification.verified:
        report.unranked[:0] = list(report.verification.reasons)
    return report


def _history_and_reproducibility(
    report: ValidationReport,
    path: str | Path,
    records: str | Path | None,
    entry: dict,
    raw: bytes,
    key: KeyCheck,
) -> None:
    """Rejections of earlier versions stick; what cannot be regenerated is never verified."""
    from .._io import sha256_bytes
    from .history import linked_rejections
    from .regenerate import why_not_reproducible
    from .verification import earlier_text

    folder = record_path(path, records).parent
    rejected, report.attempts = linked_rejections(
        folder, Path(path).name, entry, key, sha256_bytes(raw)
    )
    status = report.verification.status
    if rejected and status == "unverified":
        report.verification = Verification("rejected", (earlier_text(rejected, report.attempts),))
    elif rejected:
        report.notes.append(earlier_text(rejected, report.attempts))
    why = why_not_reproducible(entry)
    if why and report.verification.status != "rejected":
        report.verification = Verification(NOT_REPRODUCED, tuple(why))


def validate_files(
    paths: Sequence[str | Path],
    *,
    pinned: Pinned | None = None,
    dataset: DatasetResolver = shipped_dataset,
    records: str | Path | None = None,
    key: KeyCheck | None = None,
) -> dict[str, ValidationReport]:
    """Validate several entry files (:func:`validate_file`); an unreadable file is a report with
    one problem."""
    return {
        str(path): validate_file(path, pinned=pinned, dataset=dataset, records=records, key=key)
        for path in paths
    }
