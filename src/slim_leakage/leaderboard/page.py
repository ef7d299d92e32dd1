"""The leaderboard page: one self-contained HTML file (inline CSS and script, nothing fetched).

One table per ranking group (dataset config, judge family), each sortable by clicking a column
header. Every entry text is HTML-escaped; figures nobody re-measured carry a visible
"self-reported" tag. The table is laid out to fit a 1,400-pixel-wide window with the status
column visible (long reasons wrap inside their cell); a headless-Chromium test checks it.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

from ..records import LABELS

#: Colours of the five labels in the stacked bars (mitigation greens ... degradation reds).
COLOURS = dict(zip(LABELS, ("#1a9850", "#91cf60", "#d9d9d9", "#fc8d59", "#d73027")))
#: The mark of a figure the leaderboard did not measure or recompute.
SELF_REPORTED = "self-reported"
#: Sort value of each status in the status column (best first when sorted descending).
STATUS_VALUE = {"verified": 3, "unverified": 2, "listed, not reproduced": 1, "rejected": 0}


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _signed_pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:+.1f}%"


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


def _net_text(d: dict[str, Any]) -> str:
    ci = d["net_interval"]
    return _signed_pct(d["net"]) + (
        "" if ci is None else f" [{_signed_pct(ci[0])}, {_signed_pct(ci[1])}]"
    )


def _rank_text(d: dict[str, Any]) -> str:
    if d["rank"] is None:
        return "-"
    return f"{d['rank']} (tie)" if d["tie"] else str(d["rank"])


def _status_text(d: dict[str, Any]) -> str:
    status = d["status"]
    if d.get("attempts", 0) > 1:
        status += f" (attempt {d['attempts']})"
    if d["rank"] is not None:
        return status
    return f"{status}; not ranked: " + "; ".join(d["unranked"])


def figure_texts(d: dict[str, Any]) -> dict[str, str]:
    """The texts of the figures that may be self-reported (``lpips``, ``cost``, ``memory``,
    ``judge_cost``, ``package``, ``backbone``), each ending in "(self-reported)" unless the
    leaderboard measured or reproduced it; ``d`` is :meth:`Row.to_dict`.

    The backbone counts as reproduced only when a verification regenerated the entry on it.
    """
    mark = f" ({SELF_REPORTED})"
    lpips = "n/a" if d["lpips"] is None else f"{d['lpips']:.3g}"
    if d["lpips"] is not None and not d["lpips_recomputed"]:
        lpips += mark
    cost = _secs(d["seconds_per_image"])
    if d["seconds_per_image"] is not None:
        cost += mark
    memory = _bytes(d["peak_memory_bytes"])
    judge_cost = "n/a" if d["judge_cost_usd"] is None else f"${d['judge_cost_usd']:.4g}{mark}"
    return {
        "lpips": lpips,
        "cost": cost,
        "memory": f"{memory}{mark}" if memory else "n/a",
        "judge_cost": judge_cost,
        "package": f"{d['package']}{mark}",
        "backbone": d["backbone"] + ("" if d["verified"] else mark),
    }


def _css_class(status: str) -> str:
    return re.sub(r"[^a-z]+", "-", status.lower()).strip("-")


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


def _mark(text: str) -> str:
    """HTML of a figure text, with its "(self-reported)" suffix as a visible tag."""
    suffix = f" ({SELF_REPORTED})"
    if not text.endswith(suffix):
        return html.escape(text)
    return (
        f'{html.escape(text[: -len(suffix)])} <span class="self-reported" '
        f'title="reported by the submitter, not measured by the leaderboard">{SELF_REPORTED}</span>'
    )


def _net_html(d: dict[str, Any]) -> str:
    """Net mitigation, with its interval on a second, smaller line."""
    text = _net_text(d)
    head, _, interval = text.partition(" ")
    if not interval:
        return html.escape(text)
    return f'{html.escape(head)}<div class="ci">{html.escape(interval)}</div>'


def _rows_html(rows: list) -> str:
    body = []
    for row in rows:
        d = row.to_dict()
        f = figure_texts(d)
        status = html.escape(d["status"])
        badge = f'<span class="badge {_css_class(d["status"])}">{status}</span>'
        if d.get("attempts", 0) > 1:
            badge += f' <span class="attempts">attempt {d["attempts"]}</span>'
        if d["rank"] is None:
            badge += f'<div class="why">not ranked: {html.escape("; ".join(d["unranked"]))}</div>'
        cost = _mark(f["cost"]) + (f", peak {_mark(f['memory'])}" if d["peak_memory_bytes"] else "")
        by = (
            f'<div class="by">by {html.escape(d["submitter"])}</div>'
            if d["submitter"]
            else '<div class="by">no submitter</div>'
        )
        rank_html = html.escape(_rank_text(d)).replace(
            " (tie)", ' <span class="tie" title="its interval overlaps">tie</span>'
        )
        cells = [
            (rank_html, d["rank"]),
            (html.escape(d["name"]) + by, d["name"]),
            (_mark(f["backbone"]), d["backbone"]),
            (f"{html.escape(d['dataset'])} ({d['n']})", d["dataset"]),
            (_net_html(d), d["net"]),
            (_pct(d["mitigation"]), d["mitigation"]),
            (_pct(d["no_change"]), d["no_change"]),
            (_pct(d["degradation"]), d["degradation"]),
            (_bar(d), d["mitigation"]),
            (str(d["judge_errors"]), d["judge_errors"]),
            (_mark(f["lpips"]), d["lpips"]),
            (cost, d["seconds_per_image"]),
            (_mark(f["judge_cost"]), d["judge_cost_usd"]),
            (_mark(f["package"]), d["package"]),
            (badge, STATUS_VALUE.get(d["status"], 1)),
        ]
        tds = "".join(
            f"<td data-value='{html.escape(json.dumps(value), quote=True)}'>{text}</td>"
            for text, value in cells
        )
        body.append(f'<tr data-file="{html.escape(d["file"])}">{tds}</tr>')
    return "\n".join(body)


HEADS = (
    "Rank",
    "Method",
    "Backbone",
    "Data",
    "Net mitigation [95% CI]",
    "Mitigation",
    "No change",
    "Degradation",
    "5-way split",
    "Judge errors",
    "LPIPS",
    "Cost",
    "Judge cost",
    "Package",
    "Status",
)


def html_page(rows: list) -> str:
    """The page: one sortable table per ranking group, rows in page order."""
    thead = "".join(f'<th data-col="{i}">{h}</th>' for i, h in enumerate(HEADS))
    tables = []
    for k, key in enumerate(dict.fromkeys(r.group for r in rows)):
        group = [r for r in rows if r.group == key]
        title = html.escape(group[0].group_title)
        table_id = "board" if k == 0 else f"board-{k}"
        tables.append(
            f'<h2>{title}</h2>\n<table id="{table_id}" class="board">\n'
            f"<thead><tr>{thead}</tr></thead>\n<tbody>\n{_rows_html(group)}\n</tbody>\n</table>"
        )
    legend = " ".join(
        f'<span class="key"><span class="swatch" style="background:{c}"></span>{label}</span>'
        for label, c in COLOURS.items()
    )
    empty = "" if rows else '<p id="empty">No entries yet.</p>'
    return _TEMPLATE.format(tables="\n".join(tables), legend=legend, empty=empty)


_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>SLIM leakage leaderboard</title>
<style>
  body {{ font-family: system-ui, sans-serif; color: #222; }}
  table {{ border-collapse: collapse; }}
  th, td {{ border-bottom: 1px solid #ddd; text-align: left; }}
  th {{ cursor: pointer; user-select: none; }}
  body {{ font-size: 13px; margin: 1rem; }}
  table {{ width: 100%; }}
  th, td {{ white-space: normal; padding: .3rem .35rem; vertical-align: top; }}
  td:nth-child(1), td:nth-child(5), td:nth-child(6), td:nth-child(7), td:nth-child(8),
  td:nth-child(10) {{ white-space: nowrap; }}
  td:nth-child(15) {{ min-width: 10rem; }}
  .by, .attempts, .ci {{ font-size: .75rem; color: #555; }}
  h2 {{ font-size: 1.05rem; margin-top: 1.5rem; }}
  th[aria-sort="ascending"]::after {{ content: " \\25B2"; }}
  th[aria-sort="descending"]::after {{ content: " \\25BC"; }}
  .bar {{ display: flex; width: 90px; height: 14px; border: 1px solid #bbb; }}
  .seg {{ display: block; height: 100%; }}
  .badge {{ border-radius: 3px; padding: 0 .4rem; font-size: .85rem; }}
  .verified {{ background: #d9f0d3; color: #1b5e20; }}
  .unverified {{ background: #fde0c5; color: #8a4b08; }}
  .rejected {{ background: #f8d0d0; color: #8b1a1a; }}
  .listed-not-reproduced {{ background: #e4e4f4; color: #333366; }}
  .why {{ font-size: .8rem; color: #555; white-space: normal; }}
  .self-reported, .tie {{ font-size: .75rem; color: #666; border: 1px solid #bbb;
    border-radius: 3px; padding: 0 .25rem; }}
  .key {{ margin-right: 1rem; font-size: .9rem; }}
  .swatch {{ display: inline-block; width: .8rem; height: .8rem; margin-right: .3rem; }}
</style>
</head>
<body>
<h1>SLIM semantic-leakage leaderboard</h1>
<p>Share of SLIM samples where the method's image shows less (mitigation) or more
(degradation) leakage than the vanilla image, as labelled by the judge. Every share recomputes
from the entry's per-sample verdicts. An entry is <em>verified</em> only when the maintainers
regenerated its images from the registry method, its config and the backbone preset on the
shipped data set, found the submitted images equal to theirs and judged their own images with
the pinned judge, and signed the record. Entries are ranked only against entries of the same
data config and judge family (one table each); only verified entries with at most 5% judge
errors are ranked, by net mitigation (mitigation minus degradation, with its paired bootstrap
95% interval); entries whose intervals overlap share a rank (tie). Figures marked
<span class="self-reported">self-reported</span> were not measured by the leaderboard. Cost is
the method's seconds per image and peak accelerator memory. Click a column to sort.</p>
<p>{legend}</p>
{empty}
{tables}
<script>
"use strict";
(function () {{
  document.querySelectorAll("table.board").forEach(function (table) {{
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
  }});
}})();
</script>
</body>
</html>
"""
