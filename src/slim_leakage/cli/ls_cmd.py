"""`slim-eval ls`: list methods, judge backends, backbones and dataset configs (no torch)."""

from __future__ import annotations

import json

WHAT = ("methods", "judges", "backbones", "configs")


def add_parser(sub) -> None:
    p = sub.add_parser("ls", help="list methods, judges, backbones and dataset configs")
    p.add_argument("what", nargs="?", choices=WHAT + ("all",), default="all", help="what to list")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=run)


def _methods() -> list[dict]:
    from ..methods import METHODS

    return METHODS.describe(lambda method: method.info())


def _judges() -> list[dict]:
    from ..judge import JUDGES

    def info(factory) -> dict:
        describe = getattr(factory, "info", None)
        return describe() if callable(describe) else {}

    return JUDGES.describe(info)


def _backbones() -> list[dict]:
    from ..backbones import BACKBONES

    return BACKBONES.describe(
        lambda preset: {
            "family": getattr(preset, "family", "?"),
            "model_id": getattr(preset, "model_id", ""),
            "description": getattr(preset, "description", ""),
        }
    )


def _configs() -> list[dict]:
    from ..slim import describe_configs

    return describe_configs()


def collect(what: str) -> dict[str, list[dict]]:
    """The listing as data: ``{"methods": [...], ...}``."""
    table = {"methods": _methods, "judges": _judges, "backbones": _backbones, "configs": _configs}
    keys = WHAT if what == "all" else (what,)
    return {k: table[k]() for k in keys}


def _fmt(rows: list[dict], cols: list[str]) -> str:
    if not rows:
        return "  (none)"
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols}
    lines = [("  " + "  ".join(c.upper().ljust(widths[c]) for c in cols)).rstrip()]
    for r in rows:
        lines.append(("  " + "  ".join(str(r.get(c, "")).ljust(widths[c]) for c in cols)).rstrip())
    return "\n".join(lines)


def run(args) -> int:
    data = collect(args.what)
    if args.json:
        print(json.dumps(data, sort_keys=True))
        return 0
    cols = {
        "methods": ["name", "needs", "backbones", "description"],
        "judges": ["name", "model_id", "description"],
        "backbones": ["name", "family", "model_id", "description"],
        "configs": ["name", "rows", "description"],
    }
    for key, rows in data.items():
        for r in rows:
            for c in ("needs", "backbones"):
                if isinstance(r.get(c), list):
                    r[c] = ",".join(r[c]) or "-"
            if "error" in r:
                r["description"] = f"(failed to load: {r['error']})"
        print(f"{key}:")
        print(_fmt(rows, cols[key]))
    return 0
