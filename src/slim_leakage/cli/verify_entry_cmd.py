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
        help="reproduce N labelled samples (plus every judge error) instead of all of them, "
        "drawn from a seed derived from the maintainers' signature over the entry's hash "
        "(validate --rejudge: a random seed)",
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
        help="reproduce an entry (regenerate its images, judge them with the pinned judge) "
        "and write its signed verification record",
        description=(
            "Run by the leaderboard's maintainers. Validate the entry, check the key's "
            "fingerprint, regenerate the vanilla and method images of the chosen samples of "
            "the shipped dataset config with the entry's declared method, config and backbone "
            "preset, compare them with the submitted images of RUN (each must hash to the "
            "entry's SHA-256), judge the regenerated images with the judge pinned for the "
            "dataset family, decide whether the entry reproduces, and write the record signed "
            "with the maintainers' Ed25519 key to leaderboard/verifications/<entry>.json."
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
    p.add_argument(
        "--pinned",
        metavar="FILE",
        help="pinned config (default: the pinned.json beside the entries/ folder, else shipped)",
    )
    p.add_argument(
        "--records",
        metavar="DIR",
        help="folder of the earlier records (the history; default: the --out folder)",
    )
    p.add_argument(
        "--allow-dirty",
        action="store_true",
        help="sign even though the package's files differ from their commit (the record says "
        "so and then verifies nothing: for trying the procedure only)",
    )
    p.add_argument(
        "--workdir", metavar="DIR", help="where the regenerated images go (default: a temp dir)"
    )
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
    rep = record["reproduction"]
    print(
        f"regenerated {len(record['samples'])} sample(s) of {rep['dataset_config']} with "
        f"{rep['method']} on {rep['backbone']}: {rep['matching']} of {rep['compared']} submitted "
        f"images match ({rep['identical']} byte-identical)"
    )
    print(
        f"judged the regenerated images of {len(record['samples'])} sample(s) with {record['judge']['backend']}/"
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
    """Validate, check the key, reproduce, sign and write; exit 0 when "verified".

    The order is the safe one: the entry is validated before the private key is read, the
    key's fingerprint and the source tree are checked before anything is generated, and
    nothing is written unless the whole reproduction finished.
    """
    from pathlib import Path

    from .._io import atomic_write_json, sha256_bytes
    from ..errors import UsageError
    from ..leaderboard.history import prior_attempts
    from ..leaderboard.pinned import load_pinned, pinned_beside
    from ..leaderboard.regenerate import source_state
    from ..leaderboard.rejudge import prepare_entry, rejudge
    from ..leaderboard.sampling import subset_seed
    from ..leaderboard.signing import load_private_key, public_key_sha256
    from ..leaderboard.verification import KeyCheck, record_path, sign_record

    settings = judge_settings(args)
    pinned = load_pinned(args.pinned) if args.pinned else pinned_beside(args.entry)
    raw, entry, pin = prepare_entry(args.entry, pinned=pinned)
    key = load_private_key(args.key)
    fingerprint = public_key_sha256(key.public_key())
    if fingerprint != pinned.key_sha256:
        raise UsageError(
            f"The key {args.key!r} has fingerprint {fingerprint[:16]}..., pinned.json pins "
            f"{pinned.key_sha256[:16]}...; nothing was generated.",
            hint="Sign with the maintainers' current key, or rotate the key first "
            "(docs/leaderboard.md, 'Rotating the key').",
        )
    source = source_state()
    if source["dirty"] and not args.allow_dirty:
        raise UsageError(
            "The package's files differ from commit "
            f"{(source['git_commit'] or '?')[:12]}; a record must name the code that ran.",
            hint="Commit or stash the changes (git status), or verify from a release.",
        )
    out = Path(args.out) if args.out else record_path(args.entry)
    history = prior_attempts(
        Path(args.records) if args.records else out.parent,
        Path(args.entry).name,
        entry,
        KeyCheck(key=key.public_key()),
    )
    seed, signature = subset_seed(key, sha256_bytes(raw))
    record = rejudge(
        entry,
        raw,
        args.images,
        pin=pin,
        entry_file=Path(args.entry).name,
        seed=seed,
        seed_signature=signature,
        source=source,
        history=history,
        workdir=args.workdir,
        **settings,
    )
    doc = sign_record(record, key, pinned)
    atomic_write_json(out, doc)
    print_decision(record)
    print(f"wrote {out} (signed with key {doc['signature']['public_key_sha256'][:16]}...)")
    if args.json:
        print_json_last({"out": str(out), "decision": record["decision"]})
    return 0 if record["decision"]["verified"] else 1
