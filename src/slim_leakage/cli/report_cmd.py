"""`slim-eval report RUN`: (re)write the self-contained report.html of a run."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="write the HTML report of a run")
    p.add_argument("run_dir", metavar="RUN", help="a run directory")
    p.add_argument("--out", default=None, help="where to write it (default RUN/report.html)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..report import write_report

    path = write_report(args.run_dir, args.out)
    print(path)
    return 0
