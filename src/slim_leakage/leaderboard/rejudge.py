"""Reproduce an entry and decide (``verify-entry``, ``validate --rejudge``).

Verification regenerates (:mod:`.regenerate`): the entry's declared method and config run on
its declared backbone preset over the chosen samples of the shipped dataset config, making the
vanilla and method images here; the submitted images (every one must hash to the SHA-256 the
entry records) must match the regenerated ones within the documented tolerance; and the judge
pinned for the entry's dataset family judges the **regenerated** images. Samples, prompts and
entities come from the shipped config only. The decision:

- **deterministic judge** (the toy world's oracle): every label, error and order flip must
  reproduce exactly;
- **VLM judge**: the chosen samples are asked twice more without a cache; the share of equal
  labels between those two passes is the judge's self-agreement ``a`` over ``n`` samples, and
  the entry must agree with the first pass on at least ``a - 1.645 * sqrt(2 a (1 - a) / n)``
  (the one-sided 95% margin of a difference of two such shares). A sample the entry reports
  as a judge error but that the judge now labels counts as a disagreement;
- for both, every submitted image must match its regeneration, the entry's mitigation and
  degradation shares must lie inside the 95% bootstrap intervals of the re-judged shares, and
  the re-judge itself may fail on no more samples than the judge-error limit allows.

The record states every figure and the rule, and ``slim-eval verify-entry`` signs it.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._io import sha256_bytes
from .._version import __version__
from ..errors import ValidationError
from ..metrics import direction_shares, label_counts
from ..records import LABEL_CODES, Verdict
from ..rundir import load_run
from .pinned import Pinned, PinnedJudge, load_pinned
from .sampling import RANDOM_RULE, SEED_RULE, choose_samples
from .schema import migrate
from .validate import JUDGE_ERROR_LIMIT, DatasetResolver
from .verification import RECORD_SCHEMA, RECORD_VERSION

#: One-sided 95% normal quantile of the VLM agreement margin.
Z_ONE_SIDED_95 = 1.645
#: Bootstrap settings of the re-judged shares' intervals (those of ``metrics.aggregate``).
N_BOOT = 1000
BOOT_SEED = 0


def build_judge(pin: PinnedJudge, judge_args: Mapping[str, Any] | None = None, **override: Any):
    """The pinned judge, without an answer cache unless ``judge_args`` turns one on."""
    from ..judge import get_judge

    options = {"cache": False, **dict(judge_args or {}), **override}
    if pin.model_id:
        options["model"] = pin.model_id
    return get_judge(pin.backend, **options)


def _judge(judge: Any, items: list) -> tuple[list[Verdict], set[str]]:
    """Judge ``items``; also the served model ids the judge or its records report."""
    served: set[str] = set()

    def on_stage(result: Any) -> None:
        served.add(getattr(result, "served_model_id", None) or "")

    verdicts = judge.judge(items, on_stage=on_stage, progress=False)
    for verdict in verdicts:
        served.add(getattr(verdict, "served_model_id", None) or "")
    describe = getattr(judge, "describe", None)
    if callable(describe):
        served.add(describe().get("served_model_id") or "")
    served.discard("")
    return verdicts, served


def _agrees(row: dict, verdict: Verdict, deterministic: bool) -> bool | None:
    """Whether the re-judge reproduces an entry row (``None``: not comparable)."""
    if deterministic:
        return (
            verdict.label == row["label"]
            and (verdict.error is None) == (row["error"] is None)
            and verdict.order_flip == row["order_flip"]
        )
    if verdict.label is None:
        return None  # the re-judge failed here; counted against the re-judge, not the entry
    return verdict.label == row["label"]


def vlm_threshold(self_agreement: float, n: int) -> float:
    """The least entry agreement a VLM judge's measured self-agreement allows (module doc)."""
    if n == 0:
        return 1.0
    margin = Z_ONE_SIDED_95 * math.sqrt(2 * self_agreement * (1 - self_agreement) / n)
    return round(max(0.0, self_agreement - margin), 6)


def _share_check(entry_share: float | None, rejudged: tuple) -> dict[str, Any]:
    share, interval = rejudged
    inside = None
    if entry_share is not None:
        entry_share = round(entry_share, 6)
    if entry_share is not None and interval is not None:
        inside = interval[0] - 1e-9 <= entry_share <= interval[1] + 1e-9
    return {"entry": entry_share, "rejudged": share, "interval": interval, "inside": inside}


def _image_metrics(
    entry: dict, items: dict[str, Any], names: Sequence[str], kid_feature: Any
) -> dict[str, Any]:
    from ..image_metrics import compute_image_metrics

    rows = [r for r in entry["verdicts"] if r["sample_id"] in items]
    pairs = [
        (items[r["sample_id"]].vanilla_image, items[r["sample_id"]].method_image) for r in rows
    ]
    prompts = [items[r["sample_id"]].sample.prompt for r in rows]
    computed = compute_image_metrics(
        pairs, metrics=list(names), prompts=prompts, kid_feature=kid_feature
    )
    out: dict[str, Any] = {"notes": computed.pop("notes")}
    for field, value in computed.items():
        out[field] = {
            "entry": entry["metrics"].get(field),
            "recomputed": None if value is None else round(float(value), 6),
        }
    return out


def _own_items(run_dir: Path, ids: Sequence[str], method: str) -> dict[str, Any]:
    """Judge items over the regenerated images (samples as the shipped config has them)."""
    from ..judge import JudgeItem

    data = load_run(run_dir)
    samples = {s.id: s for s in data.samples}
    items = {}
    for sid in ids:
        sample = samples[sid]
        refs = {}
        for entity in sample.entities:
            ref = data.reference_path(entity)
            if ref.is_file():
                refs[entity] = ref
        items[sid] = JudgeItem(
            sample, method, data.image_path(sid, "vanilla"), data.image_path(sid, "method"), refs
        )
    return items


def _refuse(what: str, problems: list[str], hint: str) -> ValidationError:
    shown = "\n  ".join(problems[:10]) + ("\n  ..." if len(problems) > 10 else "")
    return ValidationError(f"{what}:\n  {shown}", hint=hint)


def rejudge(
    entry: dict,
    entry_bytes: bytes,
    run_dir: str | Path,
    *,
    pin: PinnedJudge,
    entry_file: str = "entry.json",
    judge: Any = None,
    second_judges: Sequence[Any] | None = None,
    judge_args: Mapping[str, Any] | None = None,
    subset: int | None = None,
    seed: int | None = None,
    seed_signature: str | None = None,
    image_metrics: Sequence[str] = ("lpips", "kid"),
    kid_feature: Any = None,
    source: Mapping[str, Any] | None = None,
    regenerated: str | Path | None = None,
    workdir: str | Path | None = None,
    history: Sequence[dict] = (),
    git_commit: str | None = None,
) -> dict[str, Any]:
    """Reproduce a valid entry and return the (unsigned) verification record.

    Args:
        entry: The entry (valid, read in its current form).
        entry_bytes: The entry file's bytes (hashed into the record).
        run_dir: The run directory holding the submitted images.
        pin: The judge pinned for the entry's dataset family.
        entry_file: The entry file's name (recorded; a record verifies one file).
        judge: The judge to use (default: the pinned one, built with ``judge_args``).
        second_judges: For a VLM pin, two more judges for the self-agreement passes.
        judge_args: Options for the pinned judge (keys, cache, rate limits ...).
        subset: Labelled samples to draw (default: all samples).
        seed: The subset seed (:func:`.sampling.subset_seed`); ``None`` with a subset: a
            random one (a self-check).
        seed_signature: The maintainers' signature the seed comes from (recorded).
        image_metrics: Image metrics to recompute from the regenerated images.
        kid_feature: A KID feature extractor (tests).
        source: The code that runs (:func:`.regenerate.source_state`).
        regenerated: A run directory already regenerated for these samples (else one is made).
        workdir: Where the regeneration goes (default: a temporary folder).
        history: Earlier attempts at this entry (recorded; see :mod:`.history`).
        git_commit: Overrides ``source["git_commit"]`` (tests).

    Raises:
        ValidationError: If the entry's judge is not the pinned one, it cannot be regenerated,
            or a submitted image is missing, mis-sized or does not hash to the entry's SHA-256.
    """
    import os
    import tempfile

    from .regenerate import (
        TOLERANCE_RULE,
        check_submitted,
        compare_images,
        regenerate,
        why_not_reproducible,
    )

    diffs = pin.differences(entry["judge"])
    if diffs:
        raise ValidationError(
            "The entry cannot be verified: " + "; ".join(diffs) + ".",
            hint=f"Judge the run with the pinned {pin.backend} judge and submit it again.",
        )
    why = why_not_reproducible(entry)
    if why:
        raise _refuse(
            "The entry cannot be verified (listed, not reproduced)",
            why,
            "Only a registry method of this package on a preset of this package can be "
            "regenerated; docs/leaderboard.md says how a plug-in package can be run.",
        )
    submitted, problems = check_submitted(entry, run_dir)
    if problems:
        raise _refuse(
            f"{len(problems)} image(s) of {str(run_dir)!r} do not match the entry",
            problems,
            "Give the run directory the entry was submitted from (--images RUN).",
        )
    digest = sha256_bytes(entry_bytes)
    rule = SEED_RULE
    if subset is not None and seed is None:
        seed, rule = int.from_bytes(os.urandom(8), "big"), RANDOM_RULE
    ids, sampling = choose_samples(entry, seed, subset, rule=rule)
    sampling["seed_signature"] = seed_signature if sampling["mode"] == "subset" else None
    source = dict(source or {"version": __version__, "git_commit": None, "dirty": None})
    if git_commit is not None:
        source["git_commit"] = git_commit
    with tempfile.TemporaryDirectory(prefix="slim-verify-", dir=workdir) as tmp:
        regen = Path(regenerated) if regenerated else Path(tmp) / "regenerated"
        if regenerated is None:
            regenerate(entry, ids, regen, references=not pin.deterministic)
        items = _own_items(regen, ids, entry["method"]["name"])
        comparisons = {
            sid: {
                role: compare_images(getattr(items[sid], f"{role}_image"), submitted[sid][role])
                for role in ("vanilla", "method")
            }
            for sid in ids
        }
        record = _decide(
            entry, ids, items, comparisons, pin, judge, second_judges, judge_args,
            image_metrics, kid_feature,
        )  # fmt: skip
    mismatched = [sid for sid in ids if not all(c["match"] for c in comparisons[sid].values())]
    record["decision"]["reasons"][:0] = (
        [
            f"{len(mismatched)} of {len(ids)} samples' submitted images differ from their "
            f"regeneration beyond the tolerance (first: {mismatched[0]!r}"
            + next(
                (f": {c['problem']}" for c in comparisons[mismatched[0]].values() if c["problem"]),
                "",
            )
            + ")"
        ]
        if mismatched
        else []
    )
    record["decision"]["verified"] = not record["decision"]["reasons"]
    return {
        "schema": RECORD_SCHEMA,
        "schema_version": RECORD_VERSION,
        "entry": {
            "file": entry_file,
            "sha256": digest,
            "name": entry["name"],
            "submitter": entry.get("submitter"),
            "method": entry["method"]["name"],
            "dataset_config": entry["dataset"]["config"],
            "schema_version": entry["schema_version"],
        },
        "judge": record.pop("judge"),
        "date": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "package": {
            "version": source.get("version", __version__),
            "git_commit": source.get("git_commit"),
        },
        "source": {"dirty": source.get("dirty")},
        "images": {"run": Path(run_dir).name, "checked": 2 * len(submitted)},
        "reproduction": {
            "method": entry["method"]["name"],
            "method_config": entry["method"]["config"],
            "backbone": entry["backbone"]["preset"],
            "dataset_config": entry["dataset"]["config"],
            "dataset_fingerprint": entry["dataset"]["fingerprint"],
            "judged": "the regenerated images",
            "tolerance": TOLERANCE_RULE,
            "compared": 2 * len(ids),
            "identical": sum(c["identical"] for s in comparisons.values() for c in s.values()),
            "matching": sum(c["match"] for s in comparisons.values() for c in s.values()),
            "mismatched_samples": mismatched,
        },
        "sampling": sampling,
        **record,
        "history": list(history),
        "attempt": len(history) + 1,
    }


def _leak_flags(
    rows: Mapping[str, dict], ids: Sequence[str], items: Mapping[str, Any], judge: Any
) -> dict[str, Any] | None:
    """Check the entry's per-image leak flags (the models table's figure) on our own images.

    The entry says, per sample, whether its vanilla and method images leak; the pinned judge
    answers the same single-image check for the regenerated images, and the record keeps how
    many of the entry's flags it reproduced. ``None`` when the entry carries no flags.
    """
    wanted = [
        (sid, role)
        for sid in ids
        for role in ("vanilla", "method")
        if rows[sid].get(f"{role}_leaks") is not None
    ]
    if not wanted:
        return None
    triples = [
        (
            items[sid].sample,
            items[sid].vanilla_image if role == "vanilla" else items[sid].method_image,
            items[sid].reference_images,
        )
        for sid, role in wanted
    ]
    checks = judge.check_leakage(triples)
    compared = agreed = 0
    differing = []
    for (sid, role), check in zip(wanted, checks):
        if check.leaky is None:
            continue
        compared += 1
        if bool(rows[sid][f"{role}_leaks"]) == check.leaky:
            agreed += 1
        else:
            differing.append(f"{sid}/{role}")
    return {
        "compared": compared,
        "agreed": agreed,
        "share": round(agreed / compared, 6) if compared else None,
        "differing": differing[:20],
    }


def _decide(
    entry: dict,
    ids: list[str],
    items: dict[str, Any],
    comparisons: dict[str, dict],
    pin: PinnedJudge,
    judge: Any,
    second_judges: Sequence[Any] | None,
    judge_args: Mapping[str, Any] | None,
    image_metrics: Sequence[str],
    kid_feature: Any,
) -> dict[str, Any]:
    """Judge the regenerated images and compare them with the entry (the record's figures)."""
    rows = {r["sample_id"]: r for r in entry["verdicts"]}
    judge = judge or build_judge(pin, judge_args)
    verdicts, served = _judge(judge, [items[sid] for sid in ids])
    seconds: list[list[Verdict]] = []
    if not pin.deterministic:
        others = second_judges or [build_judge(pin, judge_args, cache=False) for _ in range(2)]
        for other in others[:2]:
            more, more_served = _judge(other, [items[sid] for sid in ids])
            seconds.append(more)
            served |= more_served
    reasons: list[str] = []
    samples, agreed, compared = [], 0, 0
    for k, verdict in enumerate(verdicts):
        row = rows[verdict.sample_id]
        agree = _agrees(row, verdict, pin.deterministic)
        if agree is not None:
            compared += 1
            agreed += int(agree)
        comparison = comparisons[verdict.sample_id]
        sample = {
            "sample_id": verdict.sample_id,
            "entry_label": row["label"],
            "entry_error": row["error"],
            "entry_order_flip": row["order_flip"],
            "label": verdict.label,
            "error": verdict.error,
            "order_flip": verdict.order_flip,
            "agree": agree,
            "vanilla_match": comparison["vanilla"]["match"],
            "method_match": comparison["method"]["match"],
        }
        if seconds:
            sample["second_label"] = seconds[0][k].label
        samples.append(sample)
    share = round(agreed / compared, 6) if compared else None
    self_agreement = None
    if pin.deterministic:
        threshold = 1.0
        rule = "deterministic judge: every label, error and order flip must reproduce"
    else:
        pairs = [
            (a.label, b.label)
            for a, b in zip(*seconds)
            if a.label is not None and b.label is not None
        ]
        same = sum(1 for a, b in pairs if a == b)
        a_share = same / len(pairs) if pairs else 0.0
        self_agreement = {
            "compared": len(pairs),
            "agreed": same,
            "share": round(a_share, 6) if pairs else None,
        }
        threshold = vlm_threshold(a_share, len(pairs))
        rule = (
            "VLM judge: the entry must agree with the re-judge on at least the judge's "
            "self-agreement a (two more passes, no cache) minus 1.645 * sqrt(2 a (1 - a) / n)"
        )
    leak_flags = _leak_flags(rows, ids, items, judge)
    if leak_flags is not None:
        leak_flags["threshold"] = threshold
        if leak_flags["share"] is None or leak_flags["share"] < threshold:
            reasons.append(
                f"the single-image leak checks reproduced {leak_flags['agreed']} of "
                f"{leak_flags['compared']} of the entry's flags, below the threshold {threshold}"
            )
    if share is None or share < threshold:
        reasons.append(
            f"the re-judge reproduced {agreed} of {compared} samples "
            f"({'n/a' if share is None else f'{share:.3f}'}), below the threshold {threshold}"
        )
    labels = [v.label for v in verdicts if v.label is not None]
    rejudged = direction_shares(labels, n_boot=N_BOOT, seed=BOOT_SEED)
    entry_codes = [LABEL_CODES[r["label"]] for r in entry["verdicts"] if r["label"] is not None]
    entry_shares = {
        "mitigation": sum(1 for c in entry_codes if c > 0) / len(entry_codes)
        if entry_codes
        else None,
        "degradation": sum(1 for c in entry_codes if c < 0) / len(entry_codes)
        if entry_codes
        else None,
    }
    distribution = {
        "counts": label_counts(labels),
        "bootstrap": {"n_boot": N_BOOT, "seed": BOOT_SEED},
    }
    for direction in ("mitigation", "degradation"):
        check = _share_check(entry_shares[direction], rejudged[direction])
        distribution[direction] = check
        if check["inside"] is False:
            reasons.append(
                f"the entry's {direction} share {check['entry']} lies outside the re-judged "
                f"95% interval {check['interval']}"
            )
    n = entry["metrics"]["n_samples"]
    rejudge_errors = sum(1 for v in verdicts if v.label is None)
    uncompared = len(verdicts) - compared
    if verdicts and uncompared / len(verdicts) > JUDGE_ERROR_LIMIT:
        reasons.append(
            f"the re-judge itself gave no label on {uncompared} of {len(verdicts)} samples, "
            f"more than the {100 * JUDGE_ERROR_LIMIT:g}% limit; run verify-entry again"
        )
    if len(served) > 1:
        reasons.append(f"the service answered with several models: {sorted(served)}")
    served_id = next(iter(served)) if len(served) == 1 else None
    judge_block = {
        "family": pin.family,
        **pin.identity(),
        "served_model_id": served_id,
        "deterministic": pin.deterministic,
    }
    reasons += pin.differences(judge_block, where="re-judge")
    return {
        "judge": judge_block,
        "samples": samples,
        "agreement": {
            "compared": compared,
            "agreed": agreed,
            "share": share,
            "threshold": threshold,
            "rule": rule,
            "self_agreement": self_agreement,
        },
        "distribution": distribution,
        "leak_flags": leak_flags,
        "judge_errors": {
            "entry": entry["metrics"]["judge_errors"],
            "n_samples": n,
            "rate": round(entry["metrics"]["judge_errors"] / n, 6) if n else 0.0,
            "limit": JUDGE_ERROR_LIMIT,
            "rejudged": rejudge_errors,
        },
        "image_metrics": _image_metrics(entry, items, image_metrics, kid_feature),
        "decision": {"verified": not reasons, "reasons": reasons},
    }


def prepare_entry(
    path: str | Path, *, pinned: Pinned, dataset: DatasetResolver | None = None
) -> tuple[bytes, dict[str, Any], PinnedJudge]:
    """Validate an entry file and find its pinned judge: ``(bytes, entry, pin)``.

    Raises:
        ValidationError: If the entry is invalid or no judge is pinned for its dataset config.
    """
    from .validate import read_entry, shipped_dataset, validate_entry

    raw, entry = read_entry(path)
    report = validate_entry(entry, pinned=pinned, dataset=dataset or shipped_dataset)
    if not report.ok:
        raise ValidationError(
            f"{path} is not a valid entry:\n  " + "\n  ".join(report.problems),
            hint="Only a valid entry is re-judged; `slim-eval validate` lists the same problems.",
        )
    entry = migrate(entry)[0]
    pin = pinned.for_config(entry["dataset"]["config"])
    if pin is None:
        configs = sorted(c for p in pinned.families.values() for c in p.configs)
        raise ValidationError(
            f"No judge is pinned for dataset config {entry['dataset']['config']!r}.",
            hint=f"The leaderboard verifies entries on {', '.join(configs)}.",
        )
    return raw, entry, pin


def verify_entry_file(
    path: str | Path,
    run_dir: str | Path,
    *,
    pinned: Pinned | None = None,
    dataset: DatasetResolver | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Validate an entry file, then reproduce it (:func:`rejudge`); the unsigned record.

    Args:
        path: The entry file.
        run_dir: The run directory holding its submitted images.
        pinned: The pinned configuration (default: the shipped one).
        dataset: Dataset reference resolver (default: the shipped SLIM).
        **options: Passed to :func:`rejudge` (``judge``, ``subset``, ``seed`` ...).

    Raises:
        ValidationError: If the entry is invalid, no judge is pinned for its dataset config,
            its judge is not the pinned one, it cannot be regenerated, or its images do not
            match.
    """
    from .regenerate import source_state

    raw, entry, pin = prepare_entry(path, pinned=pinned or load_pinned(), dataset=dataset)
    options.setdefault("source", source_state())
    return rejudge(entry, raw, run_dir, pin=pin, entry_file=Path(path).name, **options)
