"""`slim-eval leaderboard render`: the leaderboard folder as a static page and a table."""

from __future__ import annotations


def add_parser(sub) -> None:
    """Register ``leaderboard`` and its ``render`` action."""
    p = sub.add_parser("leaderboard", help="render the leaderboard page and Markdown table")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    r = actions.add_parser(
        "render",
        help="validate every entry and write OUT/index.html and OUT/leaderboard.md",
        description=(
            "Validate every entry in DIR/entries/*.json (an invalid one stops the render) and "
            "write a static page (sortable table, 5-way bars, cost, verified badge) and a "
            "Markdown table."
        ),
    )
    r.add_argument("folder", metavar="DIR", help="the leaderboard folder (e.g. leaderboard/)")
    r.add_argument("--out", required=True, metavar="SITE", help="output folder for the page")
    r.add_argument(
        "--readme",
        metavar="FILE",
        help="also replace the table between the leaderboard markers of this README",
    )
    r.add_argument("--pinned", metavar="FILE", help="pinned judge config (default: shipped)")
    r.set_defaults(func=run)


def run(args) -> int:
    """Render and report what was written."""
    from ..leaderboard import validate as v
    from ..leaderboard.build import load_pinned
    from ..leaderboard.render import render

    rows = render(
        args.folder,
        args.out,
        pinned=load_pinned(args.pinned),
        dataset=v.shipped_dataset,
        readme=args.readme,
    )
    verified = sum(1 for r in rows if r.verified)
    print(
        f"rendered {len(rows)} entr{'y' if len(rows) == 1 else 'ies'} ({verified} verified) "
        f"to {args.out}/index.html and {args.out}/leaderboard.md"
        + (f"; updated {args.readme}" if args.readme else "")
    )
    return 0
