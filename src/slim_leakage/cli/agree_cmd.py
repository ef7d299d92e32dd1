"""`slim-eval agree`: how well a run's judge agrees with human labels or an oracle run."""

from __future__ import annotations

from ..errors import UsageError, ValidationError
from ._common import print_json_last


def add_parser(sub) -> None:
    """Register ``agree``."""
    p = sub.add_parser(
        "agree",
        help="agreement of a run's judge with human labels (or an oracle-judged run)",
        description=(
            "Compare the judge's labels in RUN with a reference: a human-label CSV "
            "(sample_id,method,annotator,label) or the verdicts of another run of the same "
            "method, e.g. one judged by the exact `oracle` backend."
        ),
    )
    p.add_argument("--run", required=True, metavar="RUN", help="run directory with verdicts")
    ref = p.add_mutually_exclusive_group(required=True)
    ref.add_argument("--human", metavar="FILE", help="human-label CSV")
    ref.add_argument(
        "--reference-run", metavar="RUN2", help="a run whose verdicts are the reference"
    )
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=run)


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def run(args) -> int:
    """Compute and print the agreement report."""
    from ..judge.agreement import agreement, labels_from_verdicts, read_labels
    from ..rundir import load_run

    if args.n_boot < 1:
        raise UsageError(f"--n-boot {args.n_boot} must be at least 1.", hint="Use --n-boot 1000.")
    data = load_run(args.run)
    method = data.method
    if not data.verdicts:
        raise ValidationError(
            f"Run {args.run!r} has no verdicts.jsonl records.",
            hint="Judge the run first (`slim-eval run` judges as it goes).",
        )
    judge = {v.sample_id: v.label for v in data.verdicts if v.label is not None}
    judge_names = sorted({v.judge for v in data.verdicts if v.judge})
    if args.human:
        labels = read_labels(args.human)
        reference = {"kind": "human", "path": args.human}
    else:
        ref = load_run(args.reference_run)
        if ref.method != method:
            raise ValidationError(
                f"Reference run {args.reference_run!r} is of method {ref.method!r}, "
                f"but {args.run!r} is of {method!r}.",
                hint="Compare two runs of the same method.",
            )
        _check_same_images(data, ref)
        ref_judges = sorted({v.judge for v in ref.verdicts if v.judge}) or ["reference"]
        labels = labels_from_verdicts(ref.verdicts, annotator=",".join(ref_judges))
        reference = {"kind": "run", "path": args.reference_run, "judge": ref_judges}
    methods = sorted({lab.method for lab in labels})
    labels = [lab for lab in labels if lab.method == method]
    if not labels:
        raise ValidationError(
            f"The reference has no labels for method {method!r} (it has: "
            f"{', '.join(methods) or 'none'}).",
            hint="Label the images of this run's method, or pick the matching run.",
        )
    run_ids = {s.id for s in data.samples}
    unknown = sorted({lab.sample_id for lab in labels} - run_ids)
    unlabelled = sorted({lab.sample_id for lab in labels} & run_ids - set(judge))
    report = agreement(judge, labels, n_boot=args.n_boot, seed=args.seed)
    if report["n_samples"] == 0:
        raise ValidationError(
            f"The judge and the reference share no labelled sample of method {method!r}.",
            hint="Check that the labels' sample ids are those of the run's samples.jsonl.",
        )
    report = {
        "method": method,
        "judge": judge_names,
        "reference": reference,
        **report,
        "left_out": {"unknown_sample_ids": unknown, "judge_errors": unlabelled},
    }
    ci = report["spearman_ci"]
    print(
        f"method {method}: {report['n_samples']} samples, {report['n_judgements']} reference "
        f"labels from {report['n_annotators']} annotator(s)"
    )
    print(
        f"  Spearman rho        {_fmt(report['spearman'])}  95% CI "
        + ("n/a" if ci is None else f"[{ci[0]:.3f}, {ci[1]:.3f}]")
    )
    print(f"  Kendall tau-b       {_fmt(report['kendall_tau_b'])}")
    print(f"  pairwise accuracy   {_fmt(report['pairwise_accuracy'])}")
    print(f"  direction agreement {_fmt(report['direction_agreement'])}")
    print(
        f"  magnitude agreement {_fmt(report['magnitude_agreement'])} "
        f"(of {report['magnitude_n']} same-direction labels)"
    )
    print(f"  Krippendorff alpha  {_fmt(report['krippendorff_alpha_ordinal'])} (ordinal)")
    print("  confusion (rows: judge code, columns: reference code)")
    codes = ("+2", "+1", "0", "-1", "-2")
    print("        " + "".join(f"{c:>5}" for c in codes))
    for code, row in zip(codes, report["confusion"]["matrix"]):
        print(f"    {code:>4}" + "".join(f"{n:>5}" for n in row))
    for name, row in report["annotators"].items():
        print(
            f"  annotator {name}: {row['n_labels']} labels, vs rest rho "
            f"{_fmt(row['spearman_vs_rest'])} on {row['n_shared']}"
        )
    # what the figures leave out is said, never dropped silently
    if unknown:
        print(
            f"  note: {len(unknown)} reference sample id(s) are not in this run and are left "
            f"out: {_some(unknown)}"
        )
    if unlabelled:
        print(
            f"  note: {len(unlabelled)} sample(s) have no judge label (a judge error) and are "
            f"left out: {_some(unlabelled)}"
        )
    if args.json:
        print_json_last(report)
    return 0


def _some(ids: list[str], n: int = 5) -> str:
    return ", ".join(map(repr, ids[:n])) + (" ..." if len(ids) > n else "")


def _check_same_images(run, ref) -> None:
    """Refuse a reference run whose images are not this run's (another backbone or seed).

    Its labels would judge other pictures, so agreeing with them would measure nothing.

    Raises:
        ValidationError: Naming the first sample whose image differs, and both backbones.
    """
    for sample in run.samples:
        for role in ("vanilla", "method"):
            mine, theirs = run.generation(sample.id, role), ref.generation(sample.id, role)
            if mine is None or theirs is None or mine.sha256 == theirs.sha256:
                continue
            backbones = [(r.manifest.get("backbone") or {}).get("name") or "?" for r in (run, ref)]
            raise ValidationError(
                f"Reference run {str(ref.path)!r} judged other images: the {role} image of "
                f"sample {sample.id!r} differs from {str(run.path)!r}'s (backbones "
                f"{backbones[0]!r} and {backbones[1]!r}).",
                hint="Compare runs of the same images: judge this run's images again with "
                "`slim-eval judge RUN --judge oracle` (or another judge) instead.",
            )
