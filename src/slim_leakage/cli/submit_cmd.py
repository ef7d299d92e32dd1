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
            "`slim-eval validate`."
        ),
    )
    p.add_argument("run", metavar="RUN", help="the run directory")
    p.add_argument("--out", required=True, metavar="FILE", help="where to write the entry")
    p.add_argument("--name", help="display name (default: the method name)")
    p.add_argument("--notes", default="", help="free text shown with the entry")
    p.add_argument(
        "--unverified",
        action="store_true",
        help="mark the entry unverified (automatic when its judge is not the pinned one)",
    )
    p.add_argument("--pinned", metavar="FILE", help="pinned judge config (default: shipped)")
    p.set_defaults(func=run)


def run(args) -> int:
    """Build and write the entry."""
    from .._io import atomic_write_json
    from ..leaderboard.build import build_entry, judge_matches_pinned, load_pinned
    from ..rundir import load_run

    pinned = load_pinned(args.pinned)
    data = load_run(args.run)
    entry = build_entry(
        data, name=args.name, notes=args.notes, unverified=args.unverified, pinned=pinned
    )
    atomic_write_json(args.out, entry)
    m = entry["metrics"]
    print(
        f"wrote {args.out}: {entry['name']} on {entry['dataset']['config']} "
        f"({m['n_samples']} samples, {m['judge_errors']} judge errors)"
    )
    for diff in judge_matches_pinned(entry["judge"], pinned):
        print(f"unverified: {diff}")
    if entry["unverified"]:
        print("the entry is marked unverified")
    return 0
