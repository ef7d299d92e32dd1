"""``report.html``: the page of one run (no network).

The stacked 5-way bar, the metrics table, and one row per sample with the vanilla and method
images side by side (entity-mask overlays when the method made them), the judge's label and
rationale. Rows can be filtered by label and sorted by any column.

Images come one of two ways (``images=``): ``embed`` puts every image into the page as a data
URI (one file that can be mailed; fine for a few dozen samples, but a ``pairs`` run at 512x512
would make a page of about a gigabyte), ``thumbnails`` writes small JPEG copies under
``DIR/thumbs/`` and links each to its full image in the run folder, so the page of 1,338
samples stays a few megabytes and opens at once. ``auto`` (the default) embeds up to
:data:`EMBED_MAX_SAMPLES` samples and uses thumbnails above.
"""

from __future__ import annotations

import base64
import html
import io
import os
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ._io import atomic_write_bytes, atomic_write_text
from .errors import ConfigError, RunError
from .leakage import leakage_rows
from .records import LABELS, Generation
from .rundir import RunDir, inside_run, load_run, thumbnail_file

#: How the report shows images (see the module docstring).
IMAGE_MODES = ("auto", "embed", "thumbnails")
#: ``auto`` embeds the images of runs with at most this many samples.
EMBED_MAX_SAMPLES = 50
#: Thumbnails: longest side in pixels of a sample image's and a mask's (their CSS widths on
#: the page), and the JPEG quality.
THUMB_SIZE = 128
MASK_THUMB_SIZE = 64
THUMB_QUALITY = 75

#: The colour of each label in every stacked bar (the report, the sweep page).
COLOURS = {
    "mitigation-major": "#1a9850",
    "mitigation-minor": "#91cf60",
    "no-change": "#bdbdbd",
    "degradation-minor": "#fc8d59",
    "degradation-major": "#d73027",
}


def _data_uri(path: Path) -> str:
    if not path.is_file():
        return ""
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def make_thumbnail(source: Path, target: Path, size: int = THUMB_SIZE) -> tuple[int, int]:
    """Write a JPEG of ``source`` at most ``size`` pixels on its longest side; returns its size.

    A thumbnail newer than its source is kept (a rewritten report costs no image work).
    """
    from PIL import Image

    if target.is_file() and target.stat().st_mtime >= source.stat().st_mtime:
        with Image.open(target) as done:
            return done.size
    with Image.open(source) as image:
        small = image.convert("RGB")
        small.thumbnail((size, size), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    small.save(buffer, "JPEG", quality=THUMB_QUALITY, optimize=True)
    atomic_write_bytes(target, buffer.getvalue())
    return small.size


class _Images:
    """The ``<img>`` markup of a run's images, embedded or as linked thumbnails."""

    def __init__(self, root: Path, mode: str, base: str) -> None:
        self.root, self.mode, self.base = root, mode, base
        self.sizes: dict[str, tuple[int, int]] = {}

    def prepare(self, rels: dict[str, int]) -> None:
        """Make every thumbnail the page needs (image -> its size), several at a time (PIL's
        codecs release the GIL)."""
        if self.mode != "thumbnails":
            return
        # never read a file from outside the run, whatever an edited record or a link says
        jobs = [(r, inside_run(self.root, r), size) for r, size in rels.items()]
        jobs = [job for job in jobs if job[1].is_file()]

        def one(job: tuple[str, Path, int]) -> tuple[str, tuple[int, int]]:
            rel, path, size = job
            return rel, make_thumbnail(path, self.root / thumbnail_file(rel), size)

        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            self.sizes.update(pool.map(one, jobs))

    def _url(self, rel: str) -> str:
        return html.escape(self.base + urllib.parse.quote(Path(rel).as_posix()))

    def tag(self, rel: str, alt: str) -> str:
        text = html.escape(alt)
        if self.mode == "embed":
            uri = _data_uri(inside_run(self.root, rel))
            if uri:
                return f'<img src="{uri}" alt="{text}" title="{text}">'
        elif rel in self.sizes:
            w, h = self.sizes[rel]
            return (
                f'<a href="{self._url(rel)}"><img src="{self._url(thumbnail_file(rel))}" '
                f'width="{w}" height="{h}" loading="lazy" alt="{text}" title="{text}"></a>'
            )
        return f'<span class="missing">missing: {text}</span>'


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return html.escape(str(value))


def stacked_bar(distribution: dict | None) -> str:
    """The 5-way stacked bar as HTML segments (``<div class="seg">``), in label order.

    A share is null when nothing was labelled; it is drawn as 0 (the legend says n/a).
    """
    dist = {k: (v or 0.0) for k, v in (distribution or {}).items()}
    return "".join(
        f'<div class="seg" data-label="{label}" style="width:{100 * float(dist.get(label, 0)):.2f}%;'
        f'background:{COLOURS[label]}" '
        f'title="{label}: {100 * float(dist.get(label, 0)):.1f}%"></div>'
        for label in LABELS
    )


def bar_legend(distribution: dict | None, intervals: dict | None) -> str:
    """One coloured key per label with its share and interval, as HTML."""
    dist = {k: (v or 0.0) for k, v in (distribution or {}).items()}
    ci = {k: v for k, v in (intervals or {}).items() if v and None not in v}
    return "".join(
        f'<span class="key"><i style="background:{COLOURS[label]}"></i>{label} '
        f"{100 * float(dist.get(label, 0)):.1f}%"
        + (f" [{100 * ci[label][0]:.1f}, {100 * ci[label][1]:.1f}]" if label in ci else "")
        + "</span>"
        for label in LABELS
    )


def render_report(run_dir: str | Path, *, images: str = "auto", base: str = "") -> str:
    """The HTML text of the report of ``run_dir``.

    Args:
        run_dir: The run directory.
        images: ``auto``, ``embed`` or ``thumbnails`` (see the module docstring); thumbnails
            are written into the run folder.
        base: The run folder as seen from the page's folder (``""`` when the page is in it),
            the prefix of the thumbnails' and full images' links.

    Raises:
        ConfigError: For an unknown ``images`` mode.
        RunError: If the run has no ``metrics.json``.
    """
    if images not in IMAGE_MODES:
        raise ConfigError(
            f"images={images!r} is not one of {', '.join(IMAGE_MODES)}.",
            hint="Use embed (one self-contained file), thumbnails (small page, images linked "
            "from the run folder) or auto.",
        )
    root = Path(run_dir)
    metrics = RunDir(root).read_metrics()
    if metrics is None:
        raise RunError(
            f"{root} has no metrics.json.",
            hint="Finish the run first (`slim-eval run --out DIR` resumes it).",
        )
    run = load_run(root)
    manifest, samples = run.manifest, run.samples
    gens: dict[tuple, Generation] = {(g.role, g.sample_id): g for g in run.generations}
    verdicts = {v.sample_id: v for v in run.verdicts}
    method = metrics.method
    if images == "auto":
        images = "embed" if len(samples) <= EMBED_MAX_SAMPLES else "thumbnails"
    pictures = _Images(root, images, base)
    wanted = {g.path: THUMB_SIZE for g in gens.values() if g.role in ("vanilla", "method")}
    for g in gens.values():
        wanted.update(dict.fromkeys((g.extra.get("overlays") or {}).values(), MASK_THUMB_SIZE))
    pictures.prepare(wanted)

    bar = stacked_bar(metrics.distribution)
    legend = bar_legend(metrics.distribution, metrics.intervals)
    cost = metrics.cost or manifest.get("cost") or {}
    judging = cost.get("judge") or {}
    rows_metrics = [
        ("method", method),
        ("samples", metrics.n_samples),
        ("labelled", metrics.n_labelled),
        ("judge errors", metrics.judge_errors),
        ("order-flip rate", metrics.order_flip_rate),
        ("LPIPS (vs vanilla)", metrics.lpips),
        ("KID (vs vanilla)", metrics.kid),
        ("VQAScore", metrics.vqascore),
        ("s/image vanilla", (cost.get("vanilla") or {}).get("seconds_per_image")),
        ("s/image method", (cost.get("method") or {}).get("seconds_per_image")),
        ("judge calls", judging.get("calls")),
        (
            "judge tokens in / out / thinking",
            " / ".join(
                str(judging.get(k, "-"))
                for k in ("input_tokens", "output_tokens", "thinking_tokens")
            )
            if judging
            else None,
        ),
        ("judge cost (USD, list price)", judging.get("cost_usd")),
        ("backbone", (manifest.get("backbone") or {}).get("name")),
        (
            "judge",
            (manifest.get("judge") or {}).get("model_id") if manifest.get("judge") else "none",
        ),
        ("dataset", (manifest.get("dataset") or {}).get("config")),
    ]
    rows_metrics += leakage_rows(metrics.leakage)
    table = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{_fmt(v)}</td></tr>" for k, v in rows_metrics
    )
    notes = metrics.image_metrics_notes
    notes_html = "".join(f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in notes.items())

    sample_rows = []
    for s in samples:
        v = verdicts.get(s.id)
        label = v.label if v and v.label else ("judge-error" if v else "unjudged")
        van = gens.get(("vanilla", s.id))
        met = gens.get(("method", s.id))
        masks = ""
        if met and met.extra.get("overlays"):
            masks = "".join(
                f"<figure>{pictures.tag(p, f'mask {e}')}<figcaption>{html.escape(e)}</figcaption></figure>"
                for e, p in met.extra["overlays"].items()
            )
        rationale = (v.rationale or v.error or "") if v else ""
        sample_rows.append(
            f'<tr data-label="{html.escape(label)}">'
            f"<td>{html.escape(s.id)}</td>"
            f"<td>{html.escape(s.prompt)}</td>"
            f"<td>{html.escape(', '.join(s.entities))}</td>"
            f"<td>{html.escape(s.subset)}</td>"
            f'<td class="label" style="color:{COLOURS.get(label, "#555")}">{html.escape(label)}</td>'
            f"<td>{pictures.tag(van.path, 'vanilla') if van else ''}</td>"
            f"<td>{pictures.tag(met.path, method) if met else ''}</td>"
            f'<td class="masks">{masks}</td>'
            f"<td>{html.escape(rationale)}</td></tr>"
        )
    options = "".join(
        f'<option value="{label}">{label}</option>'
        for label in (*LABELS, "judge-error", "unjudged")
    )
    return _PAGE.format(
        title=html.escape(f"slim-leakage report: {method}"),
        bar=bar,
        legend=legend,
        table=table,
        notes=f"<ul class='notes'>{notes_html}</ul>" if notes_html else "",
        options=options,
        rows="\n".join(sample_rows),
        n=len(samples),
    )


def write_report(
    run_dir: str | Path, out: str | Path | None = None, *, images: str = "auto"
) -> Path:
    """Write the report (default ``run_dir/report.html``) atomically; returns its path.

    Args:
        run_dir: The run directory.
        out: Where to write the page; with thumbnails its links lead back to ``run_dir``
            (relative links: keep the page and the run folder where they are, or embed).
        images: ``auto``, ``embed`` or ``thumbnails`` (see the module docstring).
    """
    root = Path(run_dir)
    target = Path(out) if out else root / "report.html"
    base = Path(os.path.relpath(root.resolve(), target.resolve().parent)).as_posix()
    base = "" if base == "." else base + "/"
    atomic_write_text(target, render_report(root, images=images, base=base))
    return target


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}}
.bar{{display:flex;height:28px;border:1px solid #999;max-width:900px}}
.seg{{height:100%}}
.key{{margin-right:1rem;font-size:.9rem;white-space:nowrap}}
.key i{{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:middle}}
table{{border-collapse:collapse;margin:1rem 0}}
th,td{{border:1px solid #ddd;padding:.3rem .5rem;vertical-align:top;text-align:left}}
#samples th{{cursor:pointer;background:#f4f4f4}}
img{{width:128px;height:auto;image-rendering:pixelated}}
.masks img{{width:64px;height:auto}} figure{{display:inline-block;margin:0 .2rem}}
figcaption{{font-size:.7rem;text-align:center}}
.label{{font-weight:600}} .missing{{color:#a00}}
</style></head><body>
<h1>{title}</h1>
<div class="bar" id="distribution">{bar}</div>
<p>{legend}</p>
<table id="metrics">{table}</table>
{notes}
<p><label>Filter by label <select id="filter"><option value="">all</option>{options}</select></label>
<span id="shown"></span></p>
<table id="samples"><thead><tr><th>id</th><th>prompt</th><th>entities</th><th>subset</th>
<th>label</th><th>vanilla</th><th>method</th><th>masks</th><th>rationale</th></tr></thead>
<tbody>
{rows}
</tbody></table>
<script>
(function(){{
  var body=document.querySelector('#samples tbody');
  var filter=document.getElementById('filter');
  function apply(){{
    var want=filter.value, shown=0;
    Array.prototype.forEach.call(body.rows,function(r){{
      var ok=!want||r.dataset.label===want; r.style.display=ok?'':'none'; if(ok)shown++;}});
    document.getElementById('shown').textContent=shown+' of {n} samples shown';
  }}
  filter.addEventListener('change',apply);
  var m=/^#label=([a-z-]+)$/.exec(location.hash);
  if(m){{filter.value=m[1];}}
  var heads=document.querySelectorAll('#samples th'), dir=1;
  Array.prototype.forEach.call(heads,function(th,i){{
    th.addEventListener('click',function(){{
      var rows=Array.prototype.slice.call(body.rows); dir=-dir;
      rows.sort(function(a,b){{return dir*a.cells[i].textContent.localeCompare(b.cells[i].textContent);}});
      rows.forEach(function(r){{body.appendChild(r);}});
    }});
  }});
  apply();
  window.addEventListener('load',function(){{
    var imgs=document.querySelectorAll('#samples img'), bad=0;
    Array.prototype.forEach.call(imgs,function(i){{if(i.complete&&!i.naturalWidth)bad++;}});
    document.body.dataset.imagesBroken=bad;
  }});
}})();
</script>
</body></html>
"""
