"""Render the leaderboard folder as a static page and a Markdown table.

Every entry is validated first (:mod:`.validate`); an invalid entry stops the render, so the
page only ever shows numbers that recompute from their verdicts. Verified and unverified
entries are both shown, with a badge.
"""

from __future__ import annotations

import dataclasses
import html
import json
from pathlib import Path
from typing import Any

from .._io import atomic_write_text
from ..errors import ValidationError
from ..records import LABELS
from .validate import DatasetResolver, load_entry, shipped_dataset, validate_entry

#: Colours of the five labels in the stacked bars (mitigation greens ... degradation reds).
COLOURS = dict(zip(LABELS, ("#1a9850", "#91cf60", "#d9d9d9", "#fc8d59", "#d73027")))
README_START = "<!-- leaderboard:start -->"
README_END = "<!-- leaderboard:end -->"


@dataclasses.dataclass(frozen=True)
class Row:
    """One entry as the page shows it.

    Attributes:
        file: The entry's file name.
        entry: The validated entry.
        verified: Whether it is verified (pinned judge, not marked unverified).
    """

    file: str
    entry: dict[str, Any]
    verified: bool

    def share(self, *labels: str) -> float | None:
        """Summed share of ``labels`` (``None`` when nothing was labelled)."""
        dist = self.entry["metrics"]["distribution"]
        values = [dist.get(label) for label in labels]
        return None if any(v is None for v in values) else sum(values)

    @property
    def mitigation(self) -> float | None:
        """Share of mitigation-major plus mitigation-minor."""
        return self.share("mitigation-major", "mitigation-minor")

    @property
    def degradation(self) -> float | None:
        """Share of degradation-minor plus degradation-major."""
        return self.share("degradation-minor", "degradation-major")

    def to_dict(self) -> dict[str, Any]:
        """The figures the page's script sorts and draws."""
        e = self.entry
        m = e["metrics"]
        cost = e["cost"].get("method") or {}
        return {
            "file": self.file,
            "name": e["name"],
            "method": e["method"]["name"],
            "backbone": e["backbone"]["preset"],
            "dataset": e["dataset"]["config"],
            "judge": f"{e['judge']['backend']}/{e['judge']['model_id']}",
            "n": m["n_samples"],
            "judge_errors": m["judge_errors"],
            "distribution": {label: m["distribution"].get(label) for label in LABELS},
            "intervals": {label: m["intervals"].get(label) for label in LABELS},
            "mitigation": self.mitigation,
            "no_change": m["distribution"].get("no-change"),
            "degradation": self.degradation,
            "seconds_per_image": cost.get("seconds_per_image"),
            "peak_memory_bytes": cost.get("peak_memory_bytes"),
            "verified": self.verified,
            "submitted": e["submitted"],
        }


def entry_files(folder: str | Path) -> list[Path]:
    """The entry files of a leaderboard folder (``entries/*.json``, sorted by name)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValidationError(
            f"Leaderboard folder {str(folder)!r} does not exist.",
            hint="Give the repository's leaderboard/ folder.",
        )
    return sorted((folder / "entries").glob("*.json"))


def collect(
    folder: str | Path,
    *,
    pinned: dict[str, Any] | None = None,
    dataset: DatasetResolver = shipped_dataset,
) -> list[Row]:
    """Load and validate every entry; rows sorted by mitigation share, best first.

    Raises:
        ValidationError: Listing every problem of every invalid entry.
    """
    cache: dict[str, Any] = {}

    def cached(config: str):
        if config not in cache:
            try:
                cache[config] = dataset(config)
            except ValidationError as exc:
                cache[config] = exc
        if isinstance(cache[config], ValidationError):
            raise cache[config]
        return cache[config]

    rows, problems = [], []
    for path in entry_files(folder):
        try:
            entry = load_entry(path)
        except ValidationError as exc:
            problems.append(f"{path.name}: {exc.message}")
            continue
        report = validate_entry(entry, pinned=pinned, dataset=cached)
        if not report.ok:
            problems += [f"{path.name}: {p}" for p in report.problems]
            continue
        rows.append(Row(path.name, entry, report.verified))
    if problems:
        raise ValidationError(
            f"{len(problems)} problem(s) in the leaderboard entries:\n  " + "\n  ".join(problems),
            hint="Fix or remove the invalid entries (`slim-eval validate` lists the same).",
        )
    rows.sort(key=lambda r: (-(r.mitigation or 0.0), r.entry["name"]))
    return rows


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _secs(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g} s"


def _bytes(value: int | None) -> str:
    if value is None:
        return ""
    size, unit = float(value), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            break
        size /= 1024
    return f"{size:.3g} {unit}"


def markdown_table(rows: list[Row]) -> str:
    """The README table: one line per entry, in page order."""
    if not rows:
        return "_No entries yet._\n"
    lines = [
        "| # | Method | Backbone | Data | Mitigation | No change | Degradation | "
        "Judge errors | s / image | Status |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, row in enumerate(rows, 1):
        d = row.to_dict()
        name = d["name"].replace("|", "\\|")
        lines.append(
            f"| {i} | {name} | {d['backbone']} | {d['dataset']} ({d['n']}) | "
            f"{_pct(d['mitigation'])} | {_pct(d['no_change'])} | {_pct(d['degradation'])} | "
            f"{d['judge_errors']} | {_secs(d['seconds_per_image'])} | "
            f"{'verified' if d['verified'] else 'unverified'} |"
        )
    return "\n".join(lines) + "\n"


def _bar(d: dict[str, Any]) -> str:
    parts = []
    for label in LABELS:
        share = d["distribution"][label] or 0.0
        ci = d["intervals"][label]
        tip = f"{label}: {_pct(share)}" + (
            "" if ci is None else f" (95% CI {_pct(ci[0])} to {_pct(ci[1])})"
        )
        parts.append(
            f'<span class="seg" data-label="{label}" title="{html.escape(tip)}" '
            f'style="width:{100 * share:.4f}%;background:{COLOURS[label]}"></span>'
        )
    return f'<div class="bar">{"".join(parts)}</div>'


def html_page(rows: list[Row]) -> str:
    """A self-contained page (inline CSS and script, no network) with a sortable table."""
    body = []
    for i, row in enumerate(rows, 1):
        d = row.to_dict()
        badge = (
            '<span class="badge verified">verified</span>'
            if d["verified"]
            else '<span class="badge unverified">unverified</span>'
        )
        cells = [
            (str(i), i),
            (html.escape(d["name"]), d["name"]),
            (html.escape(d["backbone"]), d["backbone"]),
            (f"{html.escape(d['dataset'])} ({d['n']})", d["dataset"]),
            (_pct(d["mitigation"]), d["mitigation"]),
            (_pct(d["no_change"]), d["no_change"]),
            (_pct(d["degradation"]), d["degradation"]),
            (_bar(d), d["mitigation"]),
            (str(d["judge_errors"]), d["judge_errors"]),
            (
                _secs(d["seconds_per_image"])
                + (f", peak {_bytes(d['peak_memory_bytes'])}" if d["peak_memory_bytes"] else ""),
                d["seconds_per_image"],
            ),
            (badge, 1 if d["verified"] else 0),
        ]
        tds = "".join(
            f"<td data-value='{html.escape(json.dumps(value), quote=True)}'>{text}</td>"
            for text, value in cells
        )
        body.append(f'<tr data-file="{html.escape(d["file"])}">{tds}</tr>')
    heads = [
        "#",
        "Method",
        "Backbone",
        "Data",
        "Mitigation",
        "No change",
        "Degradation",
        "5-way split",
        "Judge errors",
        "Cost",
        "Status",
    ]
    thead = "".join(f'<th data-col="{i}">{h}</th>' for i, h in enumerate(heads))
    legend = " ".join(
        f'<span class="key"><span class="swatch" style="background:{c}"></span>{label}</span>'
        for label, c in COLOURS.items()
    )
    empty = "" if rows else '<p id="empty">No entries yet.</p>'
    return _TEMPLATE.format(thead=thead, tbody="\n".join(body), legend=legend, empty=empty)


_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>SLIM leakage leaderboard</title>
<style>
  body {{ font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }}
  table {{ border-collapse: collapse; }}
  th, td {{ padding: .35rem .6rem; border-bottom: 1px solid #ddd; text-align: left; }}
  th {{ cursor: pointer; user-select: none; }}
  th, td {{ white-space: nowrap; }}
  th[aria-sort="ascending"]::after {{ content: " \\25B2"; }}
  th[aria-sort="descending"]::after {{ content: " \\25BC"; }}
  .bar {{ display: flex; width: 160px; height: 14px; border: 1px solid #bbb; }}
  .seg {{ display: block; height: 100%; }}
  .badge {{ border-radius: 3px; padding: 0 .4rem; font-size: .85rem; }}
  .verified {{ background: #d9f0d3; color: #1b5e20; }}
  .unverified {{ background: #fde0c5; color: #8a4b08; }}
  .key {{ margin-right: 1rem; font-size: .9rem; }}
  .swatch {{ display: inline-block; width: .8rem; height: .8rem; margin-right: .3rem; }}
</style>
</head>
<body>
<h1>SLIM semantic-leakage leaderboard</h1>
<p>Share of SLIM samples where the method's image shows less (mitigation) or more
(degradation) leakage than the vanilla image, as labelled by the pinned judge. Every number
recomputes from the entry's per-sample verdicts. Cost is the method's seconds per image and
peak accelerator memory. Click a column to sort.</p>
<p>{legend}</p>
{empty}
<table id="board">
<thead><tr>{thead}</tr></thead>
<tbody>
{tbody}
</tbody>
</table>
<script>
"use strict";
(function () {{
  const table = document.getElementById("board");
  const body = table.tBodies[0];
  table.querySelectorAll("th").forEach(function (th) {{
    th.addEventListener("click", function () {{
      const col = Number(th.dataset.col);
      const desc = th.getAttribute("aria-sort") !== "descending";
      table.querySelectorAll("th").forEach(function (h) {{ h.removeAttribute("aria-sort"); }});
      th.setAttribute("aria-sort", desc ? "descending" : "ascending");
      const rows = Array.from(body.rows);
      rows.sort(function (a, b) {{
        const x = JSON.parse(a.cells[col].dataset.value);
        const y = JSON.parse(b.cells[col].dataset.value);
        if (x === y) return 0;
        if (x === null) return 1;
        if (y === null) return -1;
        const order = x < y ? -1 : 1;
        return desc ? -order : order;
      }});
      rows.forEach(function (r) {{ body.appendChild(r); }});
    }});
  }});
}})();
</script>
</body>
</html>
"""


def update_readme(path: str | Path, table: str) -> None:
    """Replace the text between the leaderboard markers of a README with ``table``.

    Raises:
        ValidationError: If the README lacks the markers.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise ValidationError(
            f"{path} has no {README_START} ... {README_END} markers.",
            hint="Add the two marker lines where the table should go.",
        )
    new = text[: start + len(README_START)] + "\n" + table + text[end:]
    atomic_write_text(path, new)


def render(
    folder: str | Path,
    out: str | Path,
    *,
    pinned: dict[str, Any] | None = None,
    dataset: DatasetResolver = shipped_dataset,
    readme: str | Path | None = None,
) -> list[Row]:
    """Validate the entries of ``folder`` and write ``out/index.html`` and ``out/leaderboard.md``.

    Args:
        folder: The leaderboard folder (entries in ``folder/entries/*.json``).
        out: Output folder for the page.
        pinned: The pinned judge configuration (default: shipped).
        dataset: Dataset reference resolver (default: the shipped SLIM).
        readme: A README whose marked table is replaced, if given.

    Returns:
        The rows, in page order.
    """
    rows = collect(folder, pinned=pinned, dataset=dataset)
    out = Path(out)
    table = markdown_table(rows)
    atomic_write_text(out / "index.html", html_page(rows))
    atomic_write_text(out / "leaderboard.md", table)
    if readme is not None:
        update_readme(readme, table)
    return rows
