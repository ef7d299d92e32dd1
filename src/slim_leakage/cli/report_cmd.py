"""`slim-eval report RUN`: (re)write the self-contained report.html of a run."""

from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="write the HTML report of a run")
    p.add_argument("run_dir", metavar="RUN", help="a run directory")
    p.add_argument("--out", default=None, help="where to write it (default RUN/report.html)")
    p.add_argument(
        "--images",
        choices=["auto", "embed", "thumbnails"],
        default="auto",
        help="embed every image (one file), or link small thumbnails written to RUN/thumbs/ "
        "(default auto: embed up to 50 samples)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="replace an existing file at --out that is not a report (never a run's records)",
    )
    p.set_defaults(func=run)


def is_report(path: Path) -> bool:
    """Whether ``path`` holds a report this command wrote (it may be rewritten)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return b"<title>slim-leakage report" in head


def run(args) -> int:
    from ..report import write_report
    from ..rundir import load_run
    from ..rundir.outputs import guard_output

    load_run(args.run_dir)  # a folder that is no run is named before anything is written
    target = Path(args.out) if args.out else Path(args.run_dir) / "report.html"
    guard_output(target, force=args.force, own=is_report)
    path = write_report(args.run_dir, target, images=args.images)
    print(path)
    return 0
