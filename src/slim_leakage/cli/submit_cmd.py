"""`slim-eval submit`: build a leaderboard entry from a finished run."""

from __future__ import annotations


def add_parser(sub) -> None:
    """Register ``submit``."""
    p = sub.add_parser(
        "submit",
        help="build a leaderboard entry (JSON) from a finished run",
        description=(
            "Package a judged run as a leaderboard entry: provenance, metrics with intervals, "
            "cost, and the per-sample verdicts with image hashes. Check it with "
            "`slim-eval validate`; the maintainers verify it with `slim-eval verify-entry`."
        ),
    )
    p.add_argument("run", metavar="RUN", help="the run directory")
    p.add_argument("--out", required=True, metavar="FILE", help="where to write the entry")
    p.add_argument("--name", help="display name (default: the method name)")
    p.add_argument("--notes", default="", help="free text shown with the entry")
    p.add_argument(
        "--submitter",
        default="",
        metavar="WHO",
        help="who submits the entry (e.g. your GitHub handle); needed for it to be ranked",
    )
    p.add_argument("--pinned", metavar="FILE", help="pinned config (default: shipped)")
    p.set_defaults(func=run)


def run(args) -> int:
    """Build and write the entry."""
    from .._io import atomic_write_json
    from ..leaderboard.build import build_entry
    from ..leaderboard.pinned import load_pinned
    from ..rundir import load_run

    pinned = load_pinned(args.pinned)
    entry = build_entry(
        load_run(args.run), name=args.name, notes=args.notes, submitter=args.submitter
    )
    atomic_write_json(args.out, entry)
    m = entry["metrics"]
    print(
        f"wrote {args.out}: {entry['name']} on {entry['dataset']['config']} "
        f"({m['n_samples']} samples, {m['judge_errors']} judge errors)"
    )
    pin = pinned.for_config(entry["dataset"]["config"])
    if pin is None:
        print(
            f"note: no judge is pinned for {entry['dataset']['config']!r}: the entry can be "
            "listed but not verified or ranked"
        )
    for diff in pin.differences(entry["judge"]) if pin else ():
        print(f"note: {diff}; the entry can be listed but not verified or ranked")
    return 0
