"""`slim-eval validate`: check leaderboard entries (exit 0 only if every one is valid)."""

from __future__ import annotations

from ._common import print_json_last


def add_parser(sub) -> None:
    """Register ``validate``."""
    p = sub.add_parser(
        "validate",
        help="validate leaderboard entries (schema, dataset, pinned judge, recomputation)",
        description=(
            "Exit 0 only if each ENTRY has a known schema version, covers every sample of "
            "its dataset config exactly once, matches the shipped SLIM fingerprint, uses the "
            "pinned judge (or is marked unverified) and its aggregates recompute exactly from "
            "its per-sample verdicts. Nothing in an entry is executed."
        ),
    )
    p.add_argument("entries", nargs="+", metavar="ENTRY", help="entry JSON file(s)")
    p.add_argument("--pinned", metavar="FILE", help="pinned judge config (default: shipped)")
    p.add_argument(
        "--rejudge",
        action="store_true",
        help="judge the images again (needs --images) and compare with the entry's labels",
    )
    p.add_argument("--images", metavar="RUN", help="run directory holding the entry's images")
    p.add_argument(
        "--min-agreement",
        type=float,
        default=0.9,
        help="with --rejudge: least share of equal labels to pass (default 0.9)",
    )
    p.add_argument(
        "--judge-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="with --rejudge: option for the judge (repeatable), e.g. cache_dir=...",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=run)


def run(args) -> int:
    """Validate and print each entry's problems."""
    from .._config import parse_kv
    from ..errors import UsageError
    from ..leaderboard import validate as v
    from ..leaderboard.build import load_pinned

    if args.rejudge and not args.images:
        raise UsageError("--rejudge needs --images RUN.", hint="Give the run with the images.")
    if args.rejudge and len(args.entries) != 1:
        raise UsageError("--rejudge checks one entry at a time.", hint="Give one ENTRY.")
    if not 0.0 <= args.min_agreement <= 1.0:
        raise UsageError(
            f"--min-agreement {args.min_agreement} is outside [0, 1].", hint="Use e.g. 0.9."
        )
    judge_args = parse_kv(args.judge_arg, option="--judge-arg")
    pinned = load_pinned(args.pinned)
    reports = v.validate_files(args.entries, pinned=pinned, dataset=v.shipped_dataset)
    if args.rejudge:
        from ..leaderboard.rejudge import rejudge

        path = args.entries[0]
        if reports[path].ok:
            rejudge(
                v.load_entry(path),
                args.images,
                report=reports[path],
                min_agreement=args.min_agreement,
                judge_args=judge_args,
            )
    for path, report in reports.items():
        status = (
            "verified" if report.verified else ("valid, unverified" if report.ok else "INVALID")
        )
        print(f"{path}: {status}")
        for problem in report.problems:
            print(f"  problem: {problem}")
        for note in report.notes:
            print(f"  note: {note}")
    ok = all(r.ok for r in reports.values())
    if args.json:
        print_json_last({"ok": ok, "entries": {p: r.to_dict() for p, r in reports.items()}})
    return 0 if ok else 1
