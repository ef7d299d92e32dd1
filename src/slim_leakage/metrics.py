"""Label aggregation: from per-sample verdicts to the scores of a run.

:func:`aggregate` is the one place where the 5-way distribution, its bootstrap intervals and
the per-subset / per-family breakdowns are computed. The run calls it to write ``metrics.json``
and ``slim-eval validate`` calls it again on a leaderboard entry's per-sample verdicts, so the
result must be a pure function of ``(verdicts, samples, method, n_boot, seed)``, in any
environment: the bootstrap draws come from SplitMix64 written out here (numpy does not promise
that its generators' streams stay the same across versions, and an entry made today must
validate with tomorrow's numpy), and every figure is rounded to :data:`DECIMALS` places so that
a recomputation compares equal with ``==``.

Image metrics (LPIPS, KID, VQAScore) are not computed here; the run adds them, its cost and its
notes to the returned :class:`~slim_leakage.records.RunMetrics` with
:meth:`~slim_leakage.records.RunMetrics.with_run_figures` (a run without verdicts starts from
:meth:`~slim_leakage.records.RunMetrics.unjudged`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from .errors import ValidationError
from .records import LABEL_CODES, LABELS, Generation, RunMetrics, Sample, StageResult, Verdict

#: Decimal places kept for shares and interval bounds (exact recomputation, readable JSON).
DECIMALS = 6
#: Coverage of the percentile bootstrap intervals.
LEVEL = 0.95


def _share(count: int, total: int) -> float | None:
    return None if total == 0 else round(count / total, DECIMALS)


def wilson(k: int, n: int, z: float = 1.96) -> list[float | None]:
    """Wilson score 95% interval of a rate ``k / n`` (``[None, None]`` when ``n == 0``)."""
    if n == 0:
        return [None, None]
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return [round(max(0.0, c - h), 4), round(min(1.0, c + h), 4)]


def label_counts(labels: Sequence[str]) -> dict[str, int]:
    """Label -> number of occurrences, with all five labels present (zeros included)."""
    counts = dict.fromkeys(LABELS, 0)
    for label in labels:
        counts[label] += 1
    return counts


def label_distribution(labels: Sequence[str]) -> dict[str, float | None]:
    """Label -> share of ``labels`` (rounded); every share is ``None`` when there are none."""
    counts = label_counts(labels)
    return {label: _share(counts[label], len(labels)) for label in LABELS}


_MASK64 = (1 << 64) - 1
_GAMMA = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB


def splitmix64(seed: int, count: int):
    """The first ``count`` outputs of SplitMix64 seeded with ``seed``, as a uint64 array.

    Output ``k`` (from 0) mixes the state ``seed + (k + 1) * 0x9E3779B97F4A7C15`` (mod 2**64);
    numpy's uint64 arithmetic wraps, which is exactly the modular arithmetic wanted.
    """
    import numpy as np

    state = np.arange(1, count + 1, dtype=np.uint64) * np.uint64(_GAMMA)
    state += np.uint64(seed & _MASK64)
    z = (state ^ (state >> np.uint64(30))) * np.uint64(_MIX1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(_MIX2)
    return z ^ (z >> np.uint64(31))


def bootstrap_indices(n: int, *, n_boot: int, seed: int):
    """The ``(n_boot, n)`` resampling indices drawn by :func:`bootstrap_intervals`.

    Index ``[b, j]`` is output ``b * n + j`` of :func:`splitmix64` modulo ``n`` (the modulo
    bias is below ``n / 2**64``). Exposed so that tests, and anyone re-deriving an interval by
    hand, can replay the draws.
    """
    import numpy as np

    draws = splitmix64(seed, n_boot * n) % np.uint64(n)
    return draws.astype(np.int64).reshape(n_boot, n)


def bootstrap_intervals(
    labels: Sequence[str], *, n_boot: int = 1000, seed: int = 0
) -> dict[str, list[float] | None]:
    """Percentile bootstrap 95% interval of each label's share.

    The labelled samples are resampled with replacement ``n_boot`` times (one shared set of
    draws for all five labels, so the intervals describe the same resamples).

    Args:
        labels: One label per labelled sample.
        n_boot: Number of bootstrap resamples.
        seed: Seed of the SplitMix64 stream the resamples are drawn from
            (:func:`bootstrap_indices`); the same seed gives the same intervals in any
            environment.

    Returns:
        Label -> ``[low, high]`` (rounded), or ``None`` for every label when ``labels`` is empty.
    """
    import numpy as np

    if not labels:
        return dict.fromkeys(LABELS)
    index = {label: i for i, label in enumerate(LABELS)}
    codes = np.array([index[label] for label in labels], dtype=np.int64)
    draws = codes[bootstrap_indices(len(codes), n_boot=n_boot, seed=seed)]  # (n_boot, n)
    return {label: _interval((draws == i).mean(axis=1)) for i, label in enumerate(LABELS)}


def _interval(resampled) -> list[float]:
    """The percentile bootstrap interval (:data:`LEVEL`) of one figure's resampled values."""
    import numpy as np

    alpha = (1.0 - LEVEL) / 2.0
    low, high = np.percentile(resampled, [100 * alpha, 100 * (1 - alpha)])
    return [round(float(low), DECIMALS), round(float(high), DECIMALS)]


def _signs(labels: Sequence[str]):
    """+1 for a mitigation label, 0 for no change, -1 for a degradation label."""
    import numpy as np

    return np.sign(np.array([LABEL_CODES[label] for label in labels], dtype=np.int64))


#: The three directions of a label, by the sign of its code.
DIRECTIONS: dict[str, int] = {"mitigation": 1, "no-change": 0, "degradation": -1}


def direction_shares(
    labels: Sequence[str], *, n_boot: int = 1000, seed: int = 0
) -> dict[str, tuple[float | None, list[float] | None]]:
    """Share of each direction (mitigation, no change, degradation) with its bootstrap interval.

    The draws are those of :func:`bootstrap_intervals` (same ``n_boot`` and ``seed``).

    Returns:
        Direction -> ``(share, [low, high])`` rounded, or ``(None, None)`` with no labels.
    """
    if not labels:
        return dict.fromkeys(DIRECTIONS, (None, None))
    signs = _signs(labels)
    draws = signs[bootstrap_indices(len(signs), n_boot=n_boot, seed=seed)]
    return {
        name: (
            round(float((signs == sign).mean()), DECIMALS),
            _interval((draws == sign).mean(axis=1)),
        )
        for name, sign in DIRECTIONS.items()
    }


def net_mitigation(
    labels: Sequence[str], *, n_boot: int = 1000, seed: int = 0
) -> tuple[float | None, list[float] | None]:
    """Mitigation share minus degradation share, with its paired percentile bootstrap interval.

    The two shares are over the same labelled samples, so their difference is resampled as one
    figure: each resample (the same :func:`bootstrap_indices` draws as
    :func:`bootstrap_intervals`) gives ``share(code > 0) - share(code < 0)`` of the samples it
    drew, and the interval is the 2.5th and 97.5th percentile of those differences.

    Args:
        labels: One label per labelled sample.
        n_boot: Number of bootstrap resamples.
        seed: Seed of the SplitMix64 stream (:func:`bootstrap_indices`).

    Returns:
        ``(net, [low, high])`` rounded to :data:`DECIMALS` places, or ``(None, None)`` when
        ``labels`` is empty.
    """
    if not labels:
        return None, None
    signs = _signs(labels)
    net = round(float(signs.sum()) / len(signs), DECIMALS)
    resampled = signs[bootstrap_indices(len(signs), n_boot=n_boot, seed=seed)].mean(axis=1)
    return net, _interval(resampled)


def _breakdown(groups: dict[str, list[Verdict]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key in sorted(groups):
        labels = [v.label for v in groups[key] if v.label is not None]
        out[key] = {
            "n": len(groups[key]),
            "n_labelled": len(labels),
            "counts": label_counts(labels),
            "distribution": label_distribution(labels),
        }
    return out


def match_verdicts(
    verdicts: Sequence[Verdict], samples: Sequence[Sample], *, method: str
) -> list[tuple[Sample, Verdict]]:
    """Pair every sample with its one verdict, in sample order.

    Raises:
        ValidationError: On a duplicate sample id, a verdict for another method, a verdict for
            an unknown sample, a duplicate verdict, or a sample without a verdict.
    """
    by_id: dict[str, Sample] = {}
    for sample in samples:
        if sample.id in by_id:
            raise ValidationError(
                f"Sample id {sample.id!r} occurs twice in the samples.",
                hint="Each sample must be listed exactly once.",
            )
        by_id[sample.id] = sample
    found: dict[str, Verdict] = {}
    for verdict in verdicts:
        if verdict.method != method:
            raise ValidationError(
                f"Verdict for sample {verdict.sample_id!r} is for method {verdict.method!r}, "
                f"not {method!r}.",
                hint="Aggregate the verdicts of one method at a time.",
            )
        if verdict.sample_id not in by_id:
            raise ValidationError(
                f"Verdict for unknown sample {verdict.sample_id!r}.",
                hint="Pass the samples the verdicts were made for.",
            )
        if verdict.sample_id in found:
            raise ValidationError(
                f"Sample {verdict.sample_id!r} has more than one verdict.",
                hint="Keep exactly one verdict per sample.",
            )
        found[verdict.sample_id] = verdict
    missing = [s.id for s in samples if s.id not in found]
    if missing:
        shown = ", ".join(map(repr, missing[:5])) + (" ..." if len(missing) > 5 else "")
        raise ValidationError(
            f"{len(missing)} sample(s) have no verdict: {shown}.",
            hint="Judge every sample first (a failed judgement is a verdict with an error).",
        )
    return [(sample, found[sample.id]) for sample in samples]


def aggregate(
    verdicts: Sequence[Verdict],
    samples: Sequence[Sample],
    *,
    method: str,
    n_boot: int = 1000,
    seed: int = 0,
) -> RunMetrics:
    """Score a run from its verdicts: 5-way counts and shares with bootstrap intervals.

    Shares are over the *labelled* samples (judge errors are counted apart, never as
    ``no-change``). The per-subset and per-family breakdowns skip samples whose subset or
    family is empty.

    Args:
        verdicts: Exactly one verdict per sample, all for ``method``.
        samples: The samples of the run (their order does not change the result).
        method: The method evaluated.
        n_boot: Bootstrap resamples for the intervals (at least 1).
        seed: Bootstrap seed.

    Returns:
        The metrics; ``extra["bootstrap"]`` records ``n_boot``, ``seed`` and ``level`` so that
        the intervals can be recomputed.

    Raises:
        ValidationError: If verdicts and samples do not match one to one (see
            :func:`match_verdicts`) or ``n_boot`` is below 1.
    """
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 1:
        raise ValidationError(
            f"n_boot={n_boot!r} is not a positive integer.", hint="Use for example n_boot=1000."
        )
    pairs = match_verdicts(verdicts, samples, method=method)
    labelled = [v for _, v in pairs if v.label is not None]
    labels = [v.label for v in labelled]
    subsets: dict[str, list[Verdict]] = {}
    families: dict[str, list[Verdict]] = {}
    for sample, verdict in pairs:
        if sample.subset:
            subsets.setdefault(sample.subset, []).append(verdict)
        if sample.family:
            families.setdefault(sample.family, []).append(verdict)
    flips = sum(1 for v in labelled if v.order_flip)
    return RunMetrics(
        method=method,
        n_samples=len(pairs),
        n_labelled=len(labels),
        judge_errors=len(pairs) - len(labels),
        counts=label_counts(labels),
        distribution=label_distribution(labels),
        intervals=bootstrap_intervals(labels, n_boot=n_boot, seed=seed),
        order_flip_rate=_share(flips, len(labels)),
        per_subset=_breakdown(subsets),
        per_family=_breakdown(families),
        extra={"bootstrap": {"n_boot": n_boot, "seed": seed, "level": LEVEL}},
    )


#: RunMetrics fields that :func:`aggregate` computes (the rest are image metrics and extras).
AGGREGATE_FIELDS: tuple[str, ...] = (
    "method",
    "n_samples",
    "n_labelled",
    "judge_errors",
    "counts",
    "distribution",
    "intervals",
    "order_flip_rate",
    "per_subset",
    "per_family",
)


def cost_summary(generations: Iterable[Generation], sample_ids: Sequence[str]) -> dict:
    """Seconds per image, images timed and peak memory of the vanilla and method images.

    Computed from the generation records (each keeps its image's timing), so a run resumed
    after a kill reports every image, whichever invocation drew it.

    Args:
        generations: The run's generation records; the last record of an image counts.
        sample_ids: The run's samples.
    """
    wanted = set(sample_ids)
    latest: dict[tuple[str, str], Generation] = {}
    for gen in generations:
        if gen.role in ("vanilla", "method") and gen.sample_id in wanted:
            latest[(gen.role, gen.sample_id)] = gen
    out = {}
    for role in ("vanilla", "method"):
        timed = [g for (r, _), g in latest.items() if r == role]
        if not timed:
            continue
        peaks = [g.peak_memory_bytes for g in timed if g.peak_memory_bytes is not None]
        out[role] = {
            "seconds_per_image": round(sum(g.seconds for g in timed) / len(timed), 6),
            "images_timed": len(timed),
            "peak_memory_bytes": max(peaks) if peaks else None,
        }
    return out


#: The usage figures a stage record carries, summed by :func:`judge_usage`.
USAGE_FIELDS = ("calls", "input_tokens", "output_tokens", "thinking_tokens", "cost_usd")


def judge_usage(stage_records: Iterable[StageResult]) -> dict:
    """Calls, tokens (thinking apart) and cost of a run's judging, in total and per stage.

    Summed over every stage record, so a run judged over several invocations (resumed, or
    judged again after judge errors) counts every call it paid for; answers from the cache
    count nothing.

    Args:
        stage_records: The run's stage records (``judgements.jsonl``).

    Returns:
        ``{"calls", "input_tokens", "output_tokens", "thinking_tokens", "cost_usd",
        "by_stage": {stage: the same figures}}``.
    """
    total = dict.fromkeys(USAGE_FIELDS, 0)
    by_stage: dict[str, dict] = {}
    for record in stage_records:
        row = by_stage.setdefault(record.stage, dict.fromkeys(USAGE_FIELDS, 0))
        for field in USAGE_FIELDS:
            value = getattr(record, field)
            row[field] += value
            total[field] += value
    for row in (total, *by_stage.values()):
        row["cost_usd"] = round(row["cost_usd"], 6)
    return {**total, "by_stage": by_stage}
