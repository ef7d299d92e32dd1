"""The tables of a sweep: ``sweep.md`` and the self-contained page ``sweep.html``.

Both are drawn from the content of ``sweep.json`` (:func:`slim_leakage.sweep.summarise`). The
page shows every variant's stacked 5-way bar, one under the other on the same scale, with its
shares, bootstrap intervals and the improved and degraded totals (Wilson intervals); rows can be
sorted by name, improved or degraded share (also from the address: ``#sort=improved``).
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from typing import Any

from .records import LABELS
from .report import bar_legend, stacked_bar


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def _ci(ci: Any) -> str:
    if not ci or None in ci:
        return ""
    return f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def _args(args: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in args.items()) or "(base options)"


def _ratios(ratios: Mapping[str, Any] | None) -> str:
    if not ratios:
        return ""
    return " / ".join("-" if ratios.get(k) is None else f"{ratios[k]:.2f}" for k in LABELS)


def render_markdown(summary: Mapping[str, Any]) -> str:
    """``sweep.md``: one row per variant, shares in % with their 95% intervals."""
    base = summary.get("base", {})
    lines = [
        f"# Sweep: {base.get('method')} on {base.get('backbone')}, {base.get('config')}",
        "",
        f"Judge {base.get('judge')}; preset {summary.get('preset') or 'none'}. Shares of the "
        "labelled samples in %, with bootstrap 95% intervals; improved and degraded are the two "
        "mitigation and the two degradation labels together, with Wilson 95% intervals. Ratios "
        "are to the first variant, in label order (major, minor mitigation, no change, minor, "
        "major degradation).",
        "",
        "| variant | options | n | "
        + " | ".join(LABELS)
        + " | improved | degraded | ratio to first | paper's ratio |",
        "|---|---|---|" + "---|" * len(LABELS) + "---|---|---|---|",
    ]
    for v in summary.get("variants", []):
        m = v.get("metrics")
        if m is None:
            lines.append(f"| {v['name']} | {_args(v['method_args'])} | unfinished |")
            continue
        dist, ci = m.get("distribution") or {}, m.get("intervals") or {}
        cells = [f"{_pct(dist.get(k))}{_ci(ci.get(k))}" for k in LABELS]
        lines.append(
            f"| {v['name']} | {_args(v['method_args'])} | {m['n_labelled']} | "
            + " | ".join(cells)
            + f" | {_pct(m['improved']['share'])}{_ci(m['improved']['ci95'])}"
            + f" | {_pct(m['degraded']['share'])}{_ci(m['degraded']['ci95'])}"
            + f" | {_ratios(v.get('ratio_to_first'))} | {_ratios(v.get('paper_ratio_to_first'))} |"
        )
    saved = summary.get("saved")
    if saved:
        lines += [
            "",
            f"Shared instead of generated: {saved['images']} images. Judge requests answered "
            f"from the shared cache or an identical request in flight: {saved['judge_requests']}"
            f" (backend calls made: {summary.get('judge_calls', 0)}). Wall clock "
            f"{summary.get('seconds', 0)} s.",
        ]
    return "\n".join(lines) + "\n"


def render_page(summary: Mapping[str, Any]) -> str:
    """``sweep.html``: the stacked bars side by side (no network, one small script)."""
    base = summary.get("base", {})
    rows = []
    for i, v in enumerate(summary.get("variants", [])):
        m = v.get("metrics")
        if m is None:
            bar, legend, improved, degraded = "", "unfinished", "", ""
        else:
            bar = stacked_bar(m.get("distribution"))
            legend = bar_legend(m.get("distribution"), m.get("intervals"))
            improved = f"{m['improved']['share'] or 0:.4f}"
            degraded = f"{m['degraded']['share'] or 0:.4f}"
        rows.append(
            f'<tr data-order="{i}" data-improved="{improved}" data-degraded="{degraded}">'
            f'<th class="name">{html.escape(v["name"])}<br><small>'
            f"{html.escape(_args(v['method_args']))}</small></th>"
            f'<td><div class="bar">{bar}</div><div class="legend">{legend}</div></td>'
            f"<td>{_pct(m['improved']['share']) if m else ''}"
            f"{_ci(m['improved']['ci95']) if m else ''}</td>"
            f"<td>{_pct(m['degraded']['share']) if m else ''}"
            f"{_ci(m['degraded']['ci95']) if m else ''}</td>"
            f"<td>{html.escape(_ratios(v.get('paper_ratio_to_first')))}</td></tr>"
        )
    title = (
        f"slim-leakage sweep: {base.get('method')} on {base.get('backbone')}, {base.get('config')}"
    )
    return _PAGE.format(
        title=html.escape(title),
        rows="\n".join(rows),
        n=len(rows),
        saved=html.escape(render_markdown(summary).rstrip().rsplit("\n", 1)[-1])
        if summary.get("saved")
        else "",
    )


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}}
table{{border-collapse:collapse}} th,td{{border:1px solid #ddd;padding:.35rem .5rem;text-align:left;vertical-align:top}}
th.name{{font-weight:600;min-width:12rem}} small{{font-weight:400;color:#555}}
.bar{{display:flex;height:22px;width:560px;border:1px solid #999}} .seg{{height:100%}}
.legend{{font-size:.75rem;max-width:560px}}
.key{{margin-right:.6rem;white-space:nowrap}}
.key i{{display:inline-block;width:.7rem;height:.7rem;margin-right:.25rem;vertical-align:middle}}
</style></head><body>
<h1>{title}</h1>
<p><label>Sort by <select id="sort"><option value="order">sweep order</option>
<option value="improved">improved</option><option value="degraded">degraded</option></select></label>
<span id="count"></span></p>
<table id="variants"><thead><tr><th>variant</th><th>5-way distribution</th>
<th>improved %</th><th>degraded %</th><th>paper's ratio to full</th></tr></thead>
<tbody>
{rows}
</tbody></table>
<p>{saved}</p>
<script>
(function(){{
  var body=document.querySelector('#variants tbody'), sel=document.getElementById('sort');
  function apply(){{
    var key=sel.value, rows=Array.prototype.slice.call(body.rows);
    rows.sort(function(a,b){{
      if(key==='order')return a.dataset.order-b.dataset.order;
      return (parseFloat(b.dataset[key])||0)-(parseFloat(a.dataset[key])||0)||a.dataset.order-b.dataset.order;
    }});
    rows.forEach(function(r){{body.appendChild(r);}});
    document.getElementById('count').textContent='{n} variants, sorted by '+key;
  }}
  sel.addEventListener('change',apply);
  var m=/^#sort=([a-z]+)$/.exec(location.hash);
  if(m){{sel.value=m[1];}}
  apply();
}})();
</script>
</body></html>
"""
