"""`slim-eval report RUN`: (re)write the self-contained report.html of a run."""

from __future__ import annotations


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
    p.set_defaults(func=run)


def run(args) -> int:
    from ..report import write_report

    path = write_report(args.run_dir, args.out, images=args.images)
    print(path)
    return 0
