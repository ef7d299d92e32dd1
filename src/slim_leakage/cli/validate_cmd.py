"""`slim-eval validate`: check leaderboard entries (exit 0 only if every one is valid)."""

from __future__ import annotations

from ._common import print_json_last


def add_parser(sub) -> None:
    """Register ``validate``."""
    from .verify_entry_cmd import add_judge_options

    p = sub.add_parser(
        "validate",
        help="validate leaderboard entries (schema, dataset, ranges, recomputation) and show "
        "whether each is verified",
        description=(
            "Exit 0 only if each ENTRY has a known schema version, covers every sample of "
            "its dataset config exactly once, matches the shipped SLIM fingerprint and "
            "sample ids, has in-range figures and an ISO 8601 date, and its aggregates "
            "recompute exactly from its per-sample verdicts. Nothing in an entry is executed. "
            "An entry is shown as verified only when its verification record "
            "(verifications/<entry>.json beside the entry's folder) is signed by the "
            "leaderboard's key, names the entry's exact bytes and says it reproduced."
        ),
    )
    p.add_argument("entries", nargs="+", metavar="ENTRY", help="entry JSON file(s)")
    p.add_argument(
        "--pinned",
        metavar="FILE",
        help="pinned config (default: the pinned.json beside the entries/ folder, else shipped)",
    )
    p.add_argument(
        "--records",
        metavar="DIR",
        help="folder of verification records (default: verifications/ beside the entries' folder)",
    )
    p.add_argument(
        "--public-key",
        metavar="FILE",
        help="the leaderboard's public key (default: the pinned key file beside the entries' "
        "folder; its fingerprint must be the pinned one)",
    )
    p.add_argument(
        "--rejudge",
        action="store_true",
        help="also re-judge the entry with its pinned judge exactly as verify-entry does "
        "(needs --images), without writing a record",
    )
    add_judge_options(p)
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=run)


def run(args) -> int:
    """Validate and print each entry's problems."""
    from ..errors import UsageError
    from ..leaderboard import validate as v
    from ..leaderboard.pinned import load_pinned, pinned_beside
    from ..leaderboard.verification import load_checked_key
    from .verify_entry_cmd import judge_settings, print_decision

    if args.rejudge and len(args.entries) != 1:
        raise UsageError("--rejudge checks one entry at a time.", hint="Give one ENTRY.")
    settings = judge_settings(args) if args.rejudge else {}
    pinned = load_pinned(args.pinned) if args.pinned else pinned_beside(args.entries[0])
    key = load_checked_key(args.public_key, pinned) if args.public_key else None
    reports = v.validate_files(
        args.entries, pinned=pinned, dataset=v.shipped_dataset, records=args.records, key=key
    )
    decision = None
    for path, report in reports.items():
        print(f"{path}: {report.status if report.ok else 'INVALID'}")
        for problem in report.problems:
            print(f"  problem: {problem}")
        shown = report.verification.reasons if report.verification else ()
        for reason in shown:
            print(f"  {report.verification.status}: {reason}")
        for reason in report.unranked:
            if reason not in shown:
                print(f"  not ranked: {reason}")
        for note in report.notes:
            print(f"  note: {note}")
    if args.rejudge and reports[args.entries[0]].ok:
        from ..leaderboard.rejudge import verify_entry_file

        record = verify_entry_file(args.entries[0], args.images, pinned=pinned, **settings)
        print_decision(record)
        decision = record["decision"]
    ok = all(r.ok for r in reports.values()) and (decision is None or decision["verified"])
    if args.json:
        out = {"ok": ok, "entries": {p: r.to_dict() for p, r in reports.items()}}
        if decision is not None:
            out["rejudge"] = decision
        print_json_last(out)
    return 0 if ok else 1
