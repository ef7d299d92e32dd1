"""Render the leaderboard folder as a static page and a Markdown table.

Every entry is validated first (:mod:`.validate`); an invalid entry stops the render, so the
page only ever shows numbers that recompute from their verdicts. An entry is verified only by
its signed verification record (:mod:`.verification`). Only verified entries within the
judge-error limit are ranked, by net mitigation (mitigation share minus degradation share) with
its paired bootstrap interval; entries whose intervals overlap share a rank. The others are
listed below with the reason. Figures nobody re-measured (cost, timings, image metrics the
verification did not recompute, package versions) carry a "self-reported" mark.
"""

from __future__ import annotations

import dataclasses
import html
import json
from pathlib import Path
from typing import Any

from .._io import atomic_write_text
from ..errors import ValidationError
from ..metrics import net_mitigation
from ..records import LABELS
from .pinned import Pinned, load_pinned
from .schema import migrate
from .validate import DatasetResolver, ValidationReport, read_entry, shipped_dataset, validate_file
from .verification import KeyCheck, load_checked_key

#: Colours of the five labels in the stacked bars (mitigation greens ... degradation reds).
COLOURS = dict(zip(LABELS, ("#1a9850", "#91cf60", "#d9d9d9", "#fc8d59", "#d73027")))
README_START = "<!-- leaderboard:start -->"
README_END = "<!-- leaderboard:end -->"
#: Bootstrap of the net-mitigation intervals: the defaults of ``metrics.aggregate``, fixed by
#: the leaderboard (not taken from the entry) so that every entry is ranked alike.
RANK_N_BOOT = 1000
RANK_SEED = 0
#: The mark of a figure the leaderboard did not measure or recompute.
SELF_REPORTED = "self-reported"


@dataclasses.dataclass
class Row:
    """One entry as the page shows it.

    Attributes:
        file: The entry's file name.
        entry: The validated entry (read as version 2).
        report: Its validation report (with the verification's verdict).
        net: Net mitigation (``None`` when nothing was labelled).
        net_interval: Its paired bootstrap 95% interval.
        rank: Its rank (``None``: not ranked, see ``report.unranked``).
        tie: Another ranked entry has the same rank.
    """

    file: str
    entry: dict[str, Any]
    report: ValidationReport
    net: float | None = None
    net_interval: list[float] | None = None
    rank: int | None = None
    tie: bool = False

    @property
    def verified(self) -> bool:
        """A valid signed verification record verifies the entry."""
        return self.report.verified

    def share(self, *labels: str) -> float | None:
        """Summed share of ``labels`` (``None`` when nothing was labelled)."""
        dist = self.entry["metrics"]["distribution"]
        values = [dist.get(label) for label in labels]
        return None if any(v is None for v in values) else round(sum(values), 6)

    @property
    def mitigation(self) -> float | None:
        """Share of mitigation-major plus mitigation-minor."""
        return self.share("mitigation-major", "mitigation-minor")

    @property
    def degradation(self) -> float | None:
        """Share of degradation-minor plus degradation-major."""
        return self.share("degradation-minor", "degradation-major")

    def image_metric(self, field: str) -> tuple[float | None, bool]:
        """``(value, recomputed)``: the verification's recomputation when it made one, else
        the entry's own (self-reported) figure."""
        record = self.report.verification.record if self.report.verification else None
        if self.verified and record is not None:
            figure = record["image_metrics"].get(field)
            if isinstance(figure, dict) and figure.get("recomputed") is not None:
                return figure["recomputed"], True
        return self.entry["metrics"].get(field), False

    def to_dict(self) -> dict[str, Any]:
        """The figures the page's script sorts and draws."""
        e = self.entry
        m = e["metrics"]
        cost = e["cost"].get("method") or {}
        lpips, lpips_recomputed = self.image_metric("lpips")
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
            "net": self.net,
            "net_interval": self.net_interval,
            "mitigation": self.mitigation,
            "no_change": m["distribution"].get("no-change"),
            "degradation": self.degradation,
            "lpips": lpips,
            "lpips_recomputed": lpips_recomputed,
            "seconds_per_image": cost.get("seconds_per_image"),
            "peak_memory_bytes": cost.get("peak_memory_bytes"),
            "judge_cost_usd": (e["cost"].get("judge") or {}).get("cost_usd"),
            "judge_thinking_tokens": (e["cost"].get("judge") or {}).get("thinking_tokens"),
            "package": e["package"]["version"],
            "rank": self.rank,
            "tie": self.tie,
            "status": self.report.status,
            "verified": self.verified,
            "unranked": list(self.report.unranked),
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


def rank_rows(rows: list[Row]) -> list[Row]:
    """Rank the rows in place and return them in page order.

    Ranked are the verified rows within the judge-error limit (``report.unranked`` empty).
    A ranked row's rank is 1 + the number of ranked rows whose whole net-mitigation interval
    lies above its own; rows sharing a rank are ties. Page order: ranked rows by rank, then
    net mitigation (best first), then name; then the unranked rows by net mitigation.
    """
    for row in rows:
        labels = [r["label"] for r in row.entry["verdicts"] if r["label"] is not None]
        row.net, row.net_interval = net_mitigation(labels, n_boot=RANK_N_BOOT, seed=RANK_SEED)
    ranked = [r for r in rows if not r.report.unranked and r.net_interval is not None]
    for row in ranked:
        row.rank = 1 + sum(1 for o in ranked if o.net_interval[0] > row.net_interval[1])
    for row in ranked:
        row.tie = sum(1 for o in ranked if o.rank == row.rank) > 1

    def net_key(r: Row) -> tuple:
        return (-(r.net if r.net is not None else -2.0), r.entry["name"], r.file)

    unranked = [r for r in rows if r.rank is None]
    ranked.sort(key=lambda r: (r.rank, *net_key(r)))
    unranked.sort(key=net_key)
    return ranked + unranked


def collect(
    folder: str | Path,
    *,
    pinned: Pinned | None = None,
    dataset: DatasetResolver = shipped_dataset,
    key: KeyCheck | None = None,
) -> list[Row]:
    """Load, validate and verify every entry; rows in page order (:func:`rank_rows`).

    Args:
        folder: The leaderboard folder (``entries/``, ``verifications/``, the public key).
        pinned: The pinned configuration (default: the shipped one).
        dataset: Dataset reference resolver.
        key: The public key (default: the pinned key file in ``folder``).

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

    files = entry_files(folder)
    pinned = pinned or load_pinned()
    key = key or load_checked_key(Path(folder) / pinned.key_file, pinned)
    rows, problems = [], []
    for path in files:
        report = validate_file(
            path,
            pinned=pinned,
            dataset=cached,
            records=Path(folder) / "verifications",
            key=key,
        )
        if not report.ok:
            problems += [f"{path.name}: {p}" for p in report.problems]
            continue
        rows.append(Row(path.name, migrate(read_entry(path)[1])[0], report))
    if problems:
        raise ValidationError(
            f"{len(problems)} problem(s) in the leaderboard entries:\n  " + "\n  ".join(problems),
            hint="Fix or remove the invalid entries (`slim-eval validate` lists the same).",
        )
    return rank_rows(rows)


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
    if d["rank"] is not None:
        return d["status"]
    return f"{d['status']}; not ranked: " + "; ".join(d["unranked"])


def figure_texts(d: dict[str, Any]) -> dict[str, str]:
    """The texts of the figures that may be self-reported (``lpips``, ``cost``, ``judge_cost``,
    ``package``),
    each ending in "(self-reported)" unless the leaderboard measured it; ``d`` is
    :meth:`Row.to_dict`."""
    lpips = "n/a" if d["lpips"] is None else f"{d['lpips']:.3g}"
    if d["lpips"] is not None and not d["lpips_recomputed"]:
        lpips += f" ({SELF_REPORTED})"
    cost = _secs(d["seconds_per_image"])
    if d["seconds_per_image"] is not None:
        cost += f" ({SELF_REPORTED})"
    judge_cost = (
        "n/a" if d["judge_cost_usd"] is None else f"${d['judge_cost_usd']:.4g} ({SELF_REPORTED})"
    )
    return {
        "lpips": lpips,
        "cost": cost,
        "judge_cost": judge_cost,
        "package": f"{d['package']} ({SELF_REPORTED})",
    }


def markdown_table(rows: list[Row]) -> str:
    """The README table: one line per entry, in page order."""
    if not rows:
        return "_No entries yet._\n"
    lines = [
        "| Rank | Method | Backbone | Data | Net mitigation [95% CI] | Mitigation | No change | "
        "Degradation | Judge errors | LPIPS | s / image | Judge cost | Package | Status |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        d = row.to_dict()
        f = figure_texts(d)
        cells = [
            _rank_text(d),
            d["name"],
            d["backbone"],
            f"{d['dataset']} ({d['n']})",
            _net_text(d),
            _pct(d["mitigation"]),
            _pct(d["no_change"]),
            _pct(d["degradation"]),
            str(d["judge_errors"]),
            f["lpips"],
            f["cost"],
            f["judge_cost"],
            f["package"],
            _status_text(d),
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
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


def _mark(text: str) -> str:
    """HTML of a figure text, with its "(self-reported)" suffix as a visible tag."""
    suffix = f" ({SELF_REPORTED})"
    if not text.endswith(suffix):
        return html.escape(text)
    return (
        f'{html.escape(text[: -len(suffix)])} <span class="self-reported" '
        f'title="reported by the submitter, not measured by the leaderboard">{SELF_REPORTED}</span>'
    )


def html_page(rows: list[Row]) -> str:
    """A self-contained page (inline CSS and script, no network) with a sortable table."""
    body = []
    for row in rows:
        d = row.to_dict()
        f = figure_texts(d)
        badge = f'<span class="badge {d["status"]}">{d["status"]}</span>'
        if d["rank"] is None:
            badge += f'<div class="why">not ranked: {html.escape("; ".join(d["unranked"]))}</div>'
        cost = _mark(f["cost"]) + (
            f", peak {_bytes(d['peak_memory_bytes'])}" if d["peak_memory_bytes"] else ""
        )
        rank_html = html.escape(_rank_text(d)).replace(
            " (tie)", ' <span class="tie" title="its interval overlaps">tie</span>'
        )
        cells = [
            (rank_html, d["rank"]),
            (html.escape(d["name"]), d["name"]),
            (html.escape(d["backbone"]), d["backbone"]),
            (f"{html.escape(d['dataset'])} ({d['n']})", d["dataset"]),
            (html.escape(_net_text(d)), d["net"]),
            (_pct(d["mitigation"]), d["mitigation"]),
            (_pct(d["no_change"]), d["no_change"]),
            (_pct(d["degradation"]), d["degradation"]),
            (_bar(d), d["mitigation"]),
            (str(d["judge_errors"]), d["judge_errors"]),
            (_mark(f["lpips"]), d["lpips"]),
            (cost, d["seconds_per_image"]),
            (_mark(f["judge_cost"]), d["judge_cost_usd"]),
            (_mark(f["package"]), d["package"]),
            (badge, {"verified": 2, "rejected": 0}.get(d["status"], 1)),
        ]
        tds = "".join(
            f"<td data-value='{html.escape(json.dumps(value), quote=True)}'>{text}</td>"
            for text, value in cells
        )
        body.append(f'<tr data-file="{html.escape(d["file"])}">{tds}</tr>')
    heads = [
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
  .rejected {{ background: #f8d0d0; color: #8b1a1a; }}
  .why {{ font-size: .8rem; color: #555; white-space: normal; max-width: 24rem; }}
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
re-judged its images with the pinned judge and signed the record; only verified entries with
at most 5% judge errors are ranked, by net mitigation (mitigation minus degradation, with its
paired bootstrap 95% interval); entries whose intervals overlap share a rank (tie). Figures
marked <span class="self-reported">self-reported</span> were not measured by the leaderboard.
Cost is the method's seconds per image and peak accelerator memory. Click a column to
sort.</p>
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
    pinned: Pinned | None = None,
    dataset: DatasetResolver = shipped_dataset,
    readme: str | Path | None = None,
    key: KeyCheck | None = None,
) -> list[Row]:
    """Validate the entries of ``folder`` and write ``out/index.html`` and ``out/leaderboard.md``
    (and the models table, ``out/models.md`` and ``out/models.html``).

    Args:
        folder: The leaderboard folder (entries in ``folder/entries/*.json``).
        out: Output folder for the page.
        pinned: The pinned configuration (default: shipped).
        dataset: Dataset reference resolver (default: the shipped SLIM).
        readme: A README whose marked table is replaced, if given.
        key: The public key (default: the pinned key file in ``folder``).

    Returns:
        The rows, in page order.
    """
    rows = collect(folder, pinned=pinned, dataset=dataset, key=key)
    out = Path(out)
    table = markdown_table(rows)
    atomic_write_text(out / "index.html", html_page(rows))
    atomic_write_text(out / "leaderboard.md", table)
    from .models_table import model_rows, models_html, models_markdown

    models = model_rows(rows)  # the second table: which backbone leaks (models.md, models.html)
    atomic_write_text(out / "models.md", models_markdown(models))
    atomic_write_text(out / "models.html", models_html(models))
    if readme is not None:
        update_readme(readme, table)
    return rows
