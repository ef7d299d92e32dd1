"""Sweeps: one run per variant of a method's options, sharing what does not depend on them.

``slim-eval sweep --method deleaker --grid alpha=1.0,1.2 --grid smoothing=true,false`` (or a
sweep file, or ``--preset paper-ablation``) runs every variant as its own run directory under
one sweep folder::

    SWEEP/runs/<variant>/      a complete run directory (manifest, images, verdicts, metrics)
    SWEEP/sweep.json           one entry per variant: its options, metrics and intervals
    SWEEP/sweep.md             the same as a table
    SWEEP/sweep.html           the stacked 5-way bars side by side

The vanilla and reference images do not depend on the method's options: the first variant to
need them generates them, and every other run takes them over through
:meth:`slim_leakage.rundir.RunDir.share_from` (hard links, else copies). One backbone is loaded
for all runs, and one judge judges them all, so its answer cache is shared: the vanilla image's
typicality is asked once for every variant. Each run resumes like any run, so a sweep stopped
half-way resumes where it stopped; ``sweep.json`` is rewritten after every variant.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ._config import parse_kv
from ._io import atomic_write_json, atomic_write_text
from .errors import ConfigError
from .metrics import wilson
from .records import LABELS
from .run import Run, RunConfig
from .rundir import RunDir, slug

#: The version of ``sweep.json``.
SWEEP_SCHEMA = 1

#: The paper's ablation of DeLeaker (its ablation table): each component removed, text-text
#: added, each component alone, and no temporal or spatial smoothing. The first row is the full
#: method.
PAPER_ABLATION: tuple[tuple[str, dict[str, Any]], ...] = (
    ("deleaker", {}),
    ("w/o image-image suppression", {"image_image_suppression": False}),
    ("w/o image-text suppression", {"image_text_suppression": False}),
    ("w/o image-text strengthening", {"self_identity": False}),
    ("with text-text suppression", {"text_text_suppression": True}),
    ("only image-image suppression", {"image_text_suppression": False, "self_identity": False}),
    ("only image-text suppression", {"self_identity": False, "image_image_suppression": False}),
    (
        "only image-text strengthening",
        {"image_text_suppression": False, "image_image_suppression": False},
    ),
    ("no temporal smoothing", {"use_history": False}),
    ("no spatial smoothing", {"smoothing": False}),
)

#: The paper's ablation figures on FLUX.1-dev, as ratios to the full method (its ablation
#: table, as the project page shows it), in
#: label order; the smoothing rows have no published figures.
PAPER_RATIOS: dict[str, tuple[float, ...]] = {
    "deleaker": (1.00, 1.00, 1.00, 1.00, 1.00),
    "w/o image-image suppression": (1.01, 1.04, 1.05, 0.73, 0.97),
    "w/o image-text suppression": (0.93, 0.78, 1.10, 1.04, 1.18),
    "w/o image-text strengthening": (0.54, 0.82, 1.73, 1.20, 1.24),
    "with text-text suppression": (0.91, 0.91, 1.08, 1.20, 1.16),
    "only image-image suppression": (0.26, 0.61, 2.44, 1.35, 0.96),
    "only image-text suppression": (0.54, 0.88, 1.88, 1.00, 0.99),
    "only image-text strengthening": (0.90, 0.99, 1.23, 0.88, 0.96),
}

#: Preset name -> (method it belongs to, its variants).
PRESETS: dict[str, tuple[str, tuple[tuple[str, dict[str, Any]], ...]]] = {
    "paper-ablation": ("deleaker", PAPER_ABLATION),
}


@dataclasses.dataclass(frozen=True)
class Variant:
    """One point of a sweep: a name and the method options it sets over the base run's.

    Attributes:
        name: Shown in the tables; its :func:`~slim_leakage.rundir.slug` names the run folder.
        method_args: Method options, over the base run's ``method_args``.
    """

    name: str
    method_args: dict = dataclasses.field(default_factory=dict)

    @property
    def folder(self) -> str:
        """The run folder's name under ``SWEEP/runs/``."""
        return slug(self.name)


# -- choosing the variants ------------------------------------------------------------------------
def grid_variants(grid: Sequence[str]) -> list[Variant]:
    """Every combination of ``--grid key=v1,v2`` options, the first values first.

    Raises:
        ConfigError: A malformed or repeated key, or a key with no value.
    """
    if not grid:
        return []
    axes = parse_kv(grid, option="--grid")
    values = {}
    for key, text in axes.items():
        items = [v.strip() for v in text.split(",") if v.strip()]
        if not items:
            raise ConfigError(
                f"--grid {key}= lists no value.", hint=f"Write --grid {key}=a,b (comma-separated)."
            )
        values[key] = items
    return [
        Variant(" ".join(f"{k}={v}" for k, v in zip(values, combo)), dict(zip(values, combo)))
        for combo in itertools.product(*values.values())
    ]


def file_variants(path: str | Path) -> list[Variant]:
    """The variants of a sweep file: JSON with ``variants`` (a list of ``{"name", "method_args"}``)
    and/or ``grid`` (``{option: [values]}``, every combination).

    Raises:
        ConfigError: An unreadable file or another shape, naming what is wrong.
    """
    path = Path(path)
    shape = (
        'Write {"variants": [{"name": "alpha 1.5", "method_args": {"alpha": 1.5}}]} and/or '
        '{"grid": {"alpha": [1.0, 1.5]}}.'
    )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"Cannot read the sweep file {path}: {exc}.", hint=shape) from exc
    if not isinstance(data, dict) or not set(data) <= {"variants", "grid"} or not data:
        raise ConfigError(
            f"The sweep file {path} must be a JSON object with 'variants' and/or 'grid'.",
            hint=shape,
        )
    out = []
    for i, item in enumerate(data.get("variants", [])):
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("name"), str)
            or not isinstance(item.get("method_args", {}), dict)
            or not set(item) <= {"name", "method_args"}
        ):
            raise ConfigError(f"{path}: variants[{i}] is not {{name, method_args}}.", hint=shape)
        out.append(Variant(item["name"], dict(item.get("method_args", {}))))
    grid = data.get("grid", {})
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise ConfigError(f"{path}: 'grid' must map each option to a list of values.", hint=shape)
    for combo in itertools.product(*grid.values()) if grid else ():
        args = dict(zip(grid, combo))
        out.append(Variant(" ".join(f"{k}={json.dumps(v)}" for k, v in args.items()), args))
    return out


def preset_variants(name: str, method: str) -> list[Variant]:
    """The variants of a preset (``paper-ablation``) for ``method``.

    Raises:
        ConfigError: An unknown preset, or a preset of another method.
    """
    if name not in PRESETS:
        raise ConfigError(
            f"Unknown sweep preset {name!r}.", hint=f"Presets: {', '.join(sorted(PRESETS))}."
        )
    owner, rows = PRESETS[name]
    if method != owner:
        raise ConfigError(
            f"The preset {name!r} varies the {owner!r} method, but the sweep runs {method!r}.",
            hint=f"Add --method {owner}, or leave the preset out.",
        )
    return [Variant(n, dict(args)) for n, args in rows]


def check_variants(variants: Sequence[Variant]) -> None:
    """Refuse an empty sweep, or two variants that would share a name or a run folder."""
    if not variants:
        raise ConfigError(
            "The sweep has no variant.",
            hint="Give --grid KEY=V1,V2, --sweep-file FILE or --preset paper-ablation.",
        )
    seen: dict[str, str] = {}
    for v in variants:
        if not v.name.strip() or not v.folder:
            raise ConfigError(
                f"Variant name {v.name!r} gives no folder name.",
                hint="Name every variant with letters or digits.",
            )
        if v.folder in seen:
            raise ConfigError(
                f"Variants {seen[v.folder]!r} and {v.name!r} would share the run folder "
                f"runs/{v.folder}.",
                hint="Give every variant a distinct name.",
            )
        seen[v.folder] = v.name


# -- running ------------------------------------------------------------------------------------
def sweep_dir(base: RunConfig) -> Path:
    """The sweep folder: ``base.out``, else ``runs/sweep-<method>-<backbone>-<config>``."""
    if base.out:
        return Path(base.out)
    return Path("runs") / f"sweep-{base.out_dir.name}"


def run_sweep(
    base: RunConfig,
    variants: Sequence[Variant],
    *,
    preset: str | None = None,
    judge: Any = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Run every variant (resumably) and write ``sweep.json``, ``sweep.md`` and ``sweep.html``.

    Every variant is resolved first, so a bad option fails before any image is generated.

    Args:
        base: The run options every variant shares; ``base.out`` is the sweep folder.
        variants: The variants, the reference (for the ratios) first.
        preset: The preset the variants came from, if any (recorded, and the paper's ratios are
            shown beside its rows).
        judge: A ready judge object (default: built once from ``base.judge``).
        log: Where progress lines go.

    Returns:
        The content of ``sweep.json``.
    """
    import sys

    from .rundir import Shard

    check_variants(variants)
    if Shard.from_env().world > 1:
        # The sweep loads one backbone for all its variants and writes one summary; under a
        # launcher every process would do both, each on the device its runs would not pick.
        raise ConfigError(
            f"A sweep runs in one process, not under a launcher (WORLD_SIZE="
            f"{Shard.from_env().world}).",
            hint="Run `slim-eval sweep` without accelerate/torchrun; for several GPUs start one "
            "sweep per GPU (--device cuda:N) with its own variants and --out, or launch each "
            "variant as a `slim-eval run` with `accelerate launch`.",
        )
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    root = sweep_dir(base)
    if judge is None and base.judge != "none":
        from .judge import get_judge

        judge = get_judge(base.judge, **base.judge_args)
    shared: dict[str, Any] = {}

    def load_backbone():
        if "backbone" not in shared:
            from .backbones import load_backbone as load

            log(f"loading backbone {base.backbone} (once for the sweep)")
            shared["backbone"] = load(
                base.backbone,
                path=base.backbone_path,
                device=base.device,
                dtype=base.dtype,
                **base.backbone_args,
            )
        return shared["backbone"]

    kept = earlier_variants(root, variants)
    if kept:
        log(
            f"sweep: {root} holds {len(kept)} earlier variant(s) not in this grid "
            f"({', '.join(v.name for v in kept[:5])}{' ...' if len(kept) > 5 else ''}); "
            "they stay in the summary, marked earlier"
        )
    notes_seen: set[str] = set()

    def run_log(msg: str) -> None:
        # the same "not computed" note of every variant is said once per sweep
        if ": not computed (" in msg:
            if msg in notes_seen:
                return
            notes_seen.add(msg)
        log(msg)

    runs = []
    for v in variants:
        config = dataclasses.replace(
            base,
            out=str(root / "runs" / v.folder),
            method_args={**base.method_args, **v.method_args},
        )
        run = Run(config, judge=judge, log=run_log, backbone=load_backbone)
        run.resolve()
        runs.append(run)
    stats = getattr(judge, "stats", None)
    before = _judge_counts(stats)
    started = time.perf_counter()
    shared_images = 0
    for i, (v, run) in enumerate(zip(variants, runs)):
        source = _source_of_shared_images(runs[:i], run)
        if source is not None:
            shared_images += run.dir.share_from(source)
        log(f"sweep: variant {i + 1}/{len(variants)} {v.name!r} -> {run.dir.root}")
        run.execute()
        summary = summarise(root, base, [*variants[: i + 1], *kept], preset=preset)
        for entry in summary["variants"][i + 1 :]:
            entry["earlier"] = True
        after = _judge_counts(stats)
        summary["saved"] = {
            "images": shared_images,
            "judge_requests": (after["cache_hits"] - before["cache_hits"])
            + (after["shared"] - before["shared"]),
        }
        summary["judge_calls"] = after["calls"] - before["calls"]
        summary["seconds"] = round(time.perf_counter() - started, 1)
        write_sweep(root, summary)
    return summary


def earlier_variants(root: Path, variants: Sequence[Variant]) -> list[Variant]:
    """The variants an earlier sweep into ``root`` summarised that this one does not run, whose
    run folders still exist: kept in the summary, so another grid never drops their rows."""
    import json

    try:
        old = json.loads((root / "sweep.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    names = {v.name for v in variants}
    kept = []
    for entry in old.get("variants") or []:
        if not isinstance(entry, dict) or entry.get("name") in names:
            continue
        variant = Variant(str(entry.get("name")), dict(entry.get("method_args") or {}))
        if (root / "runs" / variant.folder / "manifest.json").is_file():
            kept.append(variant)
            names.add(variant.name)
    return kept


def _judge_counts(stats: Any) -> dict[str, int]:
    return {k: int(getattr(stats, k, 0) or 0) for k in ("calls", "cache_hits", "shared")}


def _source_of_shared_images(done: Sequence[Run], run: Run) -> RunDir | None:
    """A finished earlier run whose vanilla and reference images ``run`` can take over."""
    for other in done:
        if other.dir.finished_generations():
            return other.dir
    return None


# -- the tables -----------------------------------------------------------------------------------
IMPROVED = ("mitigation-major", "mitigation-minor")
DEGRADED = ("degradation-minor", "degradation-major")


def variant_entry(root: Path, variant: Variant, reference: dict | None, preset: str | None) -> dict:
    """The ``sweep.json`` entry of one finished variant (``metrics`` is null if unfinished)."""
    run = RunDir(root / "runs" / variant.folder)
    metrics = run.read_metrics()
    manifest = run.read_manifest() or {}
    entry: dict[str, Any] = {
        "name": variant.name,
        "method_args": variant.method_args,
        "options": ((manifest.get("method") or {}).get("config")),
        "run": f"runs/{variant.folder}",
        "metrics": None,
    }
    if metrics is None:
        return entry
    counts, n = metrics.counts or {}, metrics.n_labelled
    improved = sum(counts.get(k, 0) for k in IMPROVED)
    degraded = sum(counts.get(k, 0) for k in DEGRADED)
    entry["metrics"] = {
        "n_samples": metrics.n_samples,
        "n_labelled": n,
        "judge_errors": metrics.judge_errors,
        "counts": counts,
        "distribution": metrics.distribution,
        "intervals": metrics.intervals,
        "improved": {"share": _share(improved, n), "k": improved, "ci95": wilson(improved, n)},
        "degraded": {"share": _share(degraded, n), "k": degraded, "ci95": wilson(degraded, n)},
        "lpips": metrics.lpips,
        "kid": metrics.kid,
        "seconds_per_image": ((metrics.extra.get("cost") or {}).get("method") or {}).get(
            "seconds_per_image"
        ),
    }
    if reference is not None:
        ref = reference.get("distribution") or {}
        entry["ratio_to_first"] = {
            label: (
                round(metrics.distribution[label] / ref[label], 3)
                if ref.get(label) and metrics.distribution.get(label) is not None
                else None
            )
            for label in LABELS
        }
    if preset == "paper-ablation" and variant.name in PAPER_RATIOS:
        entry["paper_ratio_to_first"] = dict(zip(LABELS, PAPER_RATIOS[variant.name]))
    return entry


def _share(k: int, n: int) -> float | None:
    return round(k / n, 4) if n else None


def summarise(
    root: Path, base: RunConfig, variants: Sequence[Variant], *, preset: str | None = None
) -> dict:
    """The ``sweep.json`` content from the variants' run directories."""
    first = variant_entry(root, variants[0], None, preset) if variants else None
    reference = (first or {}).get("metrics")
    entries = [first] + [variant_entry(root, v, reference, preset) for v in variants[1:]]
    return {
        "schema": SWEEP_SCHEMA,
        "preset": preset,
        "base": {
            "method": base.method,
            "method_args": base.method_args,
            "backbone": base.backbone,
            "backbone_args": base.backbone_args,
            "judge": base.judge,
            "config": base.config,
            "limit": base.limit,
            "ids": list(base.ids) if base.ids is not None else None,
        },
        "variants": entries,
    }


def write_sweep(root: Path, summary: Mapping[str, Any]) -> None:
    """Write ``sweep.json``, ``sweep.md`` and ``sweep.html`` atomically."""
    from .sweep_page import render_markdown, render_page

    atomic_write_json(root / "sweep.json", dict(summary))
    atomic_write_text(root / "sweep.md", render_markdown(summary))
    atomic_write_text(root / "sweep.html", render_page(summary))
