"""`slim-eval verify-entry`: the maintainers re-judge an entry and sign the record."""

from __future__ import annotations

from ._common import print_json_last


def add_judge_options(p) -> None:
    """The options of a re-judge, shared with ``validate --rejudge``."""
    p.add_argument("--images", metavar="RUN", help="run directory holding the entry's images")
    p.add_argument(
        "--subset",
        type=int,
        metavar="N",
        help="re-judge N labelled samples drawn from a seed derived from the entry's hash "
        "(plus every judge error) instead of all of them",
    )
    p.add_argument(
        "--judge-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="option for the pinned judge (repeatable), e.g. api_key=... or cache=true",
    )
    p.add_argument(
        "--image-metrics",
        default="lpips,kid",
        metavar="NAMES",
        help="image metrics to recompute from the images (comma-separated, or none; "
        "default lpips,kid; one whose weights are not local is noted, not computed)",
    )


def add_parser(sub) -> None:
    """Register ``verify-entry``."""
    p = sub.add_parser(
        "verify-entry",
        help="re-judge an entry with the pinned judge and write its signed verification record",
        description=(
            "Run by the leaderboard's maintainers. Check every image of RUN against the "
            "entry's hashes, re-judge the entry's samples (judge errors included) with the "
            "judge pinned for its dataset family, decide whether the labels reproduce, "
            "recompute the image metrics, and write the record signed with the maintainers' "
            "Ed25519 key to leaderboard/verifications/<entry>.json."
        ),
    )
    p.add_argument("entry", metavar="ENTRY", help="the entry file")
    add_judge_options(p)
    p.add_argument(
        "--key", required=True, metavar="FILE", help="the maintainers' private key (PEM)"
    )
    p.add_argument(
        "--out",
        metavar="FILE",
        help="where to write the record (default: verifications/<entry>.json beside the "
        "entry's folder)",
    )
    p.add_argument("--pinned", metavar="FILE", help="pinned config (default: shipped)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=run)


def judge_settings(args) -> dict:
    """``rejudge`` options from the parsed command line.

    Raises:
        UsageError: For a missing ``--images``, a bad ``--subset`` or an unknown image metric.
    """
    from .._config import parse_kv
    from ..errors import UsageError
    from ..image_metrics import check_metric_names

    if not args.images:
        raise UsageError("A re-judge needs --images RUN.", hint="Give the run with the images.")
    if args.subset is not None and args.subset < 1:
        raise UsageError(
            f"--subset {args.subset} is below 1.", hint="Give a positive count, or omit it."
        )
    names = [] if args.image_metrics == "none" else args.image_metrics.split(",")
    names = [n.strip() for n in names if n.strip()]
    check_metric_names(names)
    return {
        "judge_args": parse_kv(args.judge_arg, option="--judge-arg"),
        "subset": args.subset,
        "image_metrics": names,
    }


def print_decision(record: dict) -> None:
    """The record's figures and decision, one fact a line."""
    agreement = record["agreement"]
    share = agreement["share"]
    print(
        f"re-judged {len(record['samples'])} sample(s) with {record['judge']['backend']}/"
        f"{record['judge']['model_id']}: {agreement['agreed']} of {agreement['compared']} "
        f"reproduced ({'n/a' if share is None else f'{share:.3f}'}; threshold "
        f"{agreement['threshold']})"
    )
    if agreement["self_agreement"]:
        print(f"  judge self-agreement: {agreement['self_agreement']['share']}")
    for direction in ("mitigation", "degradation"):
        d = record["distribution"][direction]
        print(f"  {direction}: entry {d['entry']}, re-judged {d['rejudged']} {d['interval']}")
    for field, figure in record["image_metrics"].items():
        if field != "notes" and figure["recomputed"] is not None:
            print(f"  {field}: recomputed {figure['recomputed']} (entry {figure['entry']})")
    decision = record["decision"]
    print("decision: " + ("verified" if decision["verified"] else "rejected"))
    for reason in decision["reasons"]:
        print(f"  reason: {reason}")


def run(args) -> int:
    """Re-judge, sign and write the record; exit 0 when the decision is "verified"."""
    from .._io import atomic_write_json
    from ..leaderboard.pinned import load_pinned
    from ..leaderboard.rejudge import verify_entry_file
    from ..leaderboard.signing import load_private_key
    from ..leaderboard.verification import record_path, sign_record

    settings = judge_settings(args)
    pinned = load_pinned(args.pinned)
    key = load_private_key(args.key)
    record = verify_entry_file(args.entry, args.images, pinned=pinned, **settings)
    doc = sign_record(record, key, pinned)
    out = args.out or record_path(args.entry)
    atomic_write_json(out, doc)
    print_decision(record)
    print(f"wrote {out} (signed with key {doc['signature']['public_key_sha256'][:16]}...)")
    if args.json:
        print_json_last({"out": str(out), "decision": record["decision"]})
    return 0 if record["decision"]["verified"] else 1
