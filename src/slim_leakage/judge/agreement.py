"""Agreement between the judge and a reference (human labels, or an exact oracle).

Labels are compared through their ordinal codes (``records.LABEL_CODES``: +2 mitigation-major
... -2 degradation-major). Per sample the reference is the *mean* code of its annotators.
Statistics come from scipy where it has them (Spearman, Kendall tau-b); Krippendorff's alpha
and pairwise accuracy with ties are written out here from their definitions.

The human-label CSV format (documented in ``docs/human-labels.md``) is::

    sample_id,method,annotator,label
    s0001,deleaker,alice,mitigation-minor
"""

from __future__ import annotations

import csv
import dataclasses
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import MissingInputError, ValidationError, require
from ..records import LABEL_CODES, LABELS

#: The columns of a human-label CSV, in order.
CSV_COLUMNS: tuple[str, ...] = ("sample_id", "method", "annotator", "label")
LEVEL = 0.95


@dataclasses.dataclass(frozen=True)
class HumanLabel:
    """One human judgement of one sample (method image vs vanilla image).

    Attributes:
        sample_id: The sample judged.
        method: The method whose image was compared with the vanilla image.
        annotator: Who gave the label.
        label: One of :data:`~slim_leakage.records.LABELS`.
        line: Line number in the CSV it came from (0 when not from a file).
    """

    sample_id: str
    method: str
    annotator: str
    label: str
    line: int = 0

    @property
    def code(self) -> int:
        """The ordinal code of the label (+2 ... -2)."""
        return LABEL_CODES[self.label]


def parse_labels(rows: Iterable[Sequence[str]], *, source: str = "labels") -> list[HumanLabel]:
    """Parse CSV rows (header first) into labels, rejecting anything malformed.

    Args:
        rows: The CSV rows, the header row first.
        source: Name used in messages (the file name).

    Raises:
        ValidationError: On a wrong header, a wrong number of fields, an empty field, an
            unknown label, or a duplicate (sample_id, method, annotator), naming the line.
    """
    it = iter(rows)
    header = next(it, None)
    if header is None or [h.strip() for h in header] != list(CSV_COLUMNS):
        raise ValidationError(
            f"{source}:1: header is {header!r}, expected {','.join(CSV_COLUMNS)}.",
            hint="The first line of a labels file must be: " + ",".join(CSV_COLUMNS),
        )
    seen: dict[tuple[str, str, str], int] = {}
    out: list[HumanLabel] = []
    for line, row in enumerate(it, 2):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(CSV_COLUMNS):
            raise ValidationError(
                f"{source}:{line}: {len(row)} fields {row!r}, expected {len(CSV_COLUMNS)}.",
                hint="Each line is sample_id,method,annotator,label (quote commas).",
            )
        sample_id, method, annotator, label = (cell.strip() for cell in row)
        for name, value in zip(CSV_COLUMNS, (sample_id, method, annotator, label)):
            if not value:
                raise ValidationError(
                    f"{source}:{line}: empty {name}.", hint=f"Fill in the {name} column."
                )
        if label not in LABEL_CODES:
            raise ValidationError(
                f"{source}:{line}: unknown label {label!r}.",
                hint=f"Use one of: {', '.join(LABELS)}.",
            )
        key = (sample_id, method, annotator)
        if key in seen:
            raise ValidationError(
                f"{source}:{line}: annotator {annotator!r} labelled sample {sample_id!r} "
                f"(method {method!r}) again; first on line {seen[key]}.",
                hint="Keep one label per sample, method and annotator.",
            )
        seen[key] = line
        out.append(HumanLabel(sample_id, method, annotator, label, line))
    return out


def read_labels(path: str | Path) -> list[HumanLabel]:
    """Read a human-label CSV file (see :func:`parse_labels` for what is rejected)."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(
            f"Labels file {str(path)!r} does not exist.",
            hint="Give a CSV with columns " + ",".join(CSV_COLUMNS) + ".",
        )
    # utf-8-sig: spreadsheets often save CSV with a byte-order mark before the header
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            return parse_labels(csv.reader(fh), source=str(path))
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise ValidationError(
            f"Labels file {str(path)!r} is not UTF-8 text (byte {exc.object[exc.start]:#04x} on "
            f"line {line}).",
            hint="Save the CSV as UTF-8 (in a spreadsheet: CSV UTF-8) and retry.",
        ) from exc
    except csv.Error as exc:
        raise ValidationError(
            f"Labels file {str(path)!r} is not a readable CSV ({exc}).",
            hint="Give a CSV with columns " + ",".join(CSV_COLUMNS) + ".",
        ) from exc


# ---------------------------------------------------------------------------------------------
# Statistics


def _quiet(fn, *args, **kwargs):
    # scipy warns on constant input and returns NaN; we report None instead.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _scipy_stats():
    return require("scipy.stats", "metrics", feature="Agreement statistics")


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def spearman(x: Sequence[float], y: Sequence[float]) -> tuple[float | None, float | None]:
    """Spearman rho and its p-value (``None`` when undefined: n < 2 or constant input)."""
    stats = _scipy_stats()
    if len(x) < 2:
        return None, None
    res = _quiet(stats.spearmanr, x, y)
    return _finite(res.statistic), _finite(res.pvalue)


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> tuple[float | None, float | None]:
    """Kendall tau-b (tie-corrected) and its p-value (``None`` when undefined)."""
    stats = _scipy_stats()
    if len(x) < 2:
        return None, None
    res = _quiet(stats.kendalltau, x, y, variant="b")
    return _finite(res.statistic), _finite(res.pvalue)


def pairwise_accuracy(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Share of sample pairs that ``x`` and ``y`` order the same way, ties included.

    A pair counts as agreeing when ``sign(x_i - x_j) == sign(y_i - y_j)``: both prefer the same
    sample, or both call it a tie. ``None`` for fewer than two samples.
    """
    import numpy as np

    n = len(x)
    if n < 2:
        return None
    xa = np.asarray(x, dtype=float)
    ya = np.asarray(y, dtype=float)
    i, j = np.triu_indices(n, k=1)
    agree = np.sign(xa[i] - xa[j]) == np.sign(ya[i] - ya[j])
    return float(agree.mean())


def krippendorff_alpha(
    units: Mapping[Any, Sequence[float]], *, level: str = "ordinal"
) -> float | None:
    """Krippendorff's alpha over units with any number of values each (missing allowed).

    Built from the coincidence matrix; units with fewer than two values are not pairable and
    are left out. ``ordinal`` uses the rank-based distance of Krippendorff (2011), ``interval``
    the squared difference, ``nominal`` 0/1.

    Args:
        units: Unit -> the values the coders gave it.
        level: ``ordinal``, ``interval`` or ``nominal``.

    Returns:
        Alpha, or ``None`` when fewer than two pairable values exist or all values are equal.
    """
    if level not in ("ordinal", "interval", "nominal"):
        raise ValidationError(
            f"Unknown alpha level {level!r}.", hint="Use ordinal, interval or nominal."
        )
    pairable = [list(v) for v in units.values() if len(v) >= 2]
    values = sorted({value for unit in pairable for value in unit})
    if len(values) < 2:
        return None
    index = {value: i for i, value in enumerate(values)}
    k = len(values)
    coincidence = [[0.0] * k for _ in range(k)]
    for unit in pairable:
        m = len(unit)
        for a in range(m):
            for b in range(m):
                if a != b:
                    coincidence[index[unit[a]]][index[unit[b]]] += 1.0 / (m - 1)
    marginals = [sum(row) for row in coincidence]
    n = sum(marginals)

    def delta2(c: int, d: int) -> float:
        if level == "nominal":
            return 0.0 if c == d else 1.0
        if level == "interval":
            return (values[c] - values[d]) ** 2
        lo, hi = min(c, d), max(c, d)
        return (sum(marginals[lo : hi + 1]) - (marginals[c] + marginals[d]) / 2.0) ** 2

    observed = sum(coincidence[c][d] * delta2(c, d) for c in range(k) for d in range(k))
    expected = sum(marginals[c] * marginals[d] * delta2(c, d) for c in range(k) for d in range(k))
    if expected == 0:
        return None
    return 1.0 - (n - 1) * observed / expected


def confusion_matrix(pairs: Iterable[tuple[str, str]]) -> list[list[int]]:
    """5x5 counts of (row label, column label) pairs, both in :data:`LABELS` order."""
    index = {label: i for i, label in enumerate(LABELS)}
    matrix = [[0] * len(LABELS) for _ in LABELS]
    for row, col in pairs:
        matrix[index[row]][index[col]] += 1
    return matrix


def _sign(value: float) -> int:
    return (value > 0) - (value < 0)


def spearman_interval(
    x: Sequence[float], y: Sequence[float], *, n_boot: int = 1000, seed: int = 0
) -> tuple[list[float] | None, int]:
    """Percentile bootstrap 95% interval of Spearman rho over resampled samples.

    Resamples where rho is undefined (constant codes) are dropped; the second value is how
    many resamples were used.
    """
    import numpy as np

    if len(x) < 3:
        return None, 0
    xa = np.asarray(x, dtype=float)
    ya = np.asarray(y, dtype=float)
    rng = np.random.default_rng(seed)
    rhos = []
    for row in rng.integers(0, len(xa), size=(n_boot, len(xa))):
        rho, _ = spearman(xa[row], ya[row])
        if rho is not None:
            rhos.append(rho)
    if not rhos:
        return None, 0
    alpha = (1.0 - LEVEL) / 2.0
    low, high = np.percentile(rhos, [100 * alpha, 100 * (1 - alpha)])
    return [float(low), float(high)], len(rhos)


# ---------------------------------------------------------------------------------------------
# The report


def agreement(
    judge: Mapping[str, str],
    labels: Sequence[HumanLabel],
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Measure how well the judge's labels agree with reference labels.

    Args:
        judge: Sample id -> the judge's label (samples the judge failed on left out).
        labels: Reference labels of one method (human annotators, or an oracle as a single
            annotator).
        n_boot: Bootstrap resamples for the Spearman interval.
        seed: Bootstrap seed.

    Returns:
        A JSON-compatible dict: ``n_samples`` (samples both have), ``spearman``,
        ``spearman_p``, ``spearman_ci``, ``kendall_tau_b``, ``kendall_p``,
        ``pairwise_accuracy``, ``confusion`` (rows: judge label, columns: reference label, one
        count per reference judgement), ``direction_agreement`` (sign of the judge's code
        against the sign of the mean reference code, per sample), ``magnitude_agreement``
        (among reference judgements that agree with a non-zero judge direction, the share with
        the same magnitude, minor vs major), ``krippendorff_alpha_ordinal`` over the reference
        annotators, and ``annotators`` (each one against the mean of the others).
    """
    for sample_id, label in judge.items():
        if label not in LABEL_CODES:
            raise ValidationError(
                f"Judge label {label!r} of sample {sample_id!r} is not a known label.",
                hint=f"Use one of: {', '.join(LABELS)}.",
            )
    by_sample: dict[str, list[HumanLabel]] = {}
    for lab in labels:
        by_sample.setdefault(lab.sample_id, []).append(lab)
    common = sorted(set(judge) & set(by_sample))
    judge_codes = [LABEL_CODES[judge[s]] for s in common]
    mean_codes = [sum(lab.code for lab in by_sample[s]) / len(by_sample[s]) for s in common]

    rho, rho_p = spearman(judge_codes, mean_codes)
    tau, tau_p = kendall_tau_b(judge_codes, mean_codes)
    ci, n_valid = spearman_interval(judge_codes, mean_codes, n_boot=n_boot, seed=seed)

    pairs = [(judge[s], lab.label) for s in common for lab in by_sample[s]]
    direction = [_sign(j) == _sign(h) for j, h in zip(judge_codes, mean_codes)]
    same_direction = [
        (LABEL_CODES[j], LABEL_CODES[h])
        for j, h in pairs
        if LABEL_CODES[j] != 0 and _sign(LABEL_CODES[j]) == _sign(LABEL_CODES[h])
    ]
    magnitude = [abs(j) == abs(h) for j, h in same_direction]

    annotators = sorted({lab.annotator for lab in labels})
    per_annotator: dict[str, dict[str, Any]] = {}
    for name in annotators:
        own, rest = [], []
        for items in by_sample.values():
            mine = [lab.code for lab in items if lab.annotator == name]
            others = [lab.code for lab in items if lab.annotator != name]
            if mine and others:
                own.append(mine[0])
                rest.append(sum(others) / len(others))
        rho_a, _ = spearman(own, rest)
        tau_a, _ = kendall_tau_b(own, rest)
        per_annotator[name] = {
            "n_labels": sum(1 for lab in labels if lab.annotator == name),
            "n_shared": len(own),
            "spearman_vs_rest": rho_a,
            "kendall_tau_b_vs_rest": tau_a,
        }

    return {
        "n_samples": len(common),
        "n_judgements": len(pairs),
        "n_annotators": len(annotators),
        "n_judge_only": len(set(judge) - set(by_sample)),
        "n_reference_only": len(set(by_sample) - set(judge)),
        "spearman": rho,
        "spearman_p": rho_p,
        "spearman_ci": ci,
        "kendall_tau_b": tau,
        "kendall_p": tau_p,
        "pairwise_accuracy": pairwise_accuracy(judge_codes, mean_codes),
        "confusion": {
            "labels": list(LABELS),
            "rows": "judge",
            "columns": "reference",
            "matrix": confusion_matrix(pairs),
        },
        "direction_agreement": (sum(direction) / len(direction)) if direction else None,
        "magnitude_agreement": (sum(magnitude) / len(magnitude)) if magnitude else None,
        "magnitude_n": len(magnitude),
        "krippendorff_alpha_ordinal": krippendorff_alpha(
            {s: [lab.code for lab in items] for s, items in by_sample.items()}, level="ordinal"
        ),
        "annotators": per_annotator,
        "bootstrap": {"n_boot": n_boot, "seed": seed, "level": LEVEL, "n_valid": n_valid},
    }


def labels_from_verdicts(verdicts: Iterable[Any], *, annotator: str) -> list[HumanLabel]:
    """Turn a reference run's verdicts (e.g. the ``oracle`` judge) into reference labels.

    Verdicts without a label (judge errors) are skipped.
    """
    return [HumanLabel(v.sample_id, v.method, annotator, v.label) for v in verdicts if v.label]
