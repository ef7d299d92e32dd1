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
    p.add_argument(
        "--force",
        action="store_true",
        help="replace an existing file at --out (never a run record)",
    )
    p.add_argument(
        "--partial",
        action="store_true",
        help="write the entry of a run that covers part of its config (--limit/--ids) anyway: "
        "a preview, which `validate` rejects against the shipped config",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    """Build and write the entry."""
    from ..leaderboard.build import build_entry
    from ..leaderboard.pinned import load_pinned
    from ..rundir import load_run
    from ..rundir.outputs import guard_output, json_text, write_output

    guard_output(args.out, force=args.force)  # before any work: an existing entry is kept
    pinned = load_pinned(args.pinned)
    data = load_run(args.run)
    entry = build_entry(  # an unfinished run: named
        data, name=args.name, notes=args.notes, submitter=args.submitter
    )
    if not args.partial:
        _check_whole_config(data)
    write_output(args.out, json_text(entry), force=args.force)
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


def _check_whole_config(data) -> None:
    """Refuse a run that covers part of its config (``--limit``, ``--ids``) before writing.

    The leaderboard compares methods on whole configs, so ``validate`` rejects such an entry;
    saying so now, with the way to finish the run, beats writing an entry that cannot pass.
    """
    from ..errors import SlimError, UsageError
    from ..leaderboard import validate  # the reference `validate` checks entries against

    config = (data.manifest.get("dataset") or {}).get("config")
    if not config:
        return
    try:
        wanted = [s.id for s in validate.shipped_dataset(config).samples]
    except SlimError:
        return  # not a config this package knows: validate names the problem
    have = {s.id for s in data.samples}
    if set(wanted) != have:
        raise UsageError(
            f"The run {str(data.path)!r} covers {len(have)} of the {len(wanted)} samples of "
            f"{config!r} (it was made with --limit or --ids); a leaderboard entry covers a "
            "whole config.",
            hint="Extend the run to the whole config: run the same command again without "
            "--limit/--ids (finished samples are kept, only the rest is generated and judged), "
            "then submit (--partial writes a preview entry that validate rejects).",
        )
