"""`slim-eval estimate`."""

from __future__ import annotations

from ._common import not_yet


def add_parser(sub) -> None:
    p = sub.add_parser("estimate", help="(not available yet)")
    p.set_defaults(func=not_yet("estimate", "it lands with its own capability"))
