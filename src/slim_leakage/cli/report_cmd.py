"""`slim-eval report`."""

from __future__ import annotations

from ._common import not_yet


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="(not available yet)")
    p.set_defaults(func=not_yet("report", "it lands with its own capability"))
