"""`slim-eval submit`."""

from __future__ import annotations

from ._common import not_yet


def add_parser(sub) -> None:
    p = sub.add_parser("submit", help="(not available yet)")
    p.set_defaults(func=not_yet("submit", "it lands with its own capability"))
