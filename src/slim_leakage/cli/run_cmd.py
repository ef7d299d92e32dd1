"""`slim-eval run`: generate, judge and score a method on SLIM."""

from __future__ import annotations

from ._common import not_yet


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="generate, judge and score a method on SLIM (the main job)")
    p.add_argument("--method", default="deleaker", help="registered method (slim-eval ls methods)")
    p.set_defaults(func=not_yet("run", "it lands with the run capability"))
