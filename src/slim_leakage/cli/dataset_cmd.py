"""`slim-eval dataset`."""

from __future__ import annotations

from ._common import not_yet


def add_parser(sub) -> None:
    p = sub.add_parser("dataset", help="(not available yet)")
    p.set_defaults(func=not_yet("dataset", "it lands with its own capability"))
