"""Cost of the attention baselines, measured side by side in one process on tiny models.

* ``regional-prompting`` against vanilla on the tiny FLUX, fast path (fused attention plus a
  closed-form removal of blocked sub-prompt keys) against the reference (a dense boolean mask
  handed to SDPA);
* DeLeaker on SANA, fast processor against the reference one and against vanilla SANA, with the
  bytes each keeps as mask history and the largest pixel difference between the two.

Variants are timed in rounds (each once per round) and ratios are medians of per-round ratios,
so load that drifts during the run hits every variant alike. Absolute times on a CPU mean
little; the ratios are what this script is for.

Usage: python benchmarks/baselines_cost.py [--size 64] [--steps 4] [--repeats 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path


def _rounds(variants: dict, repeats: int) -> dict[str, list[float]]:
    """Time every variant once per round, round after round (so load drifts hit all alike)."""
    for fn in variants.values():
        fn()  # warm-up (first call allocates)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def _ratio(times: dict, num: str, den: str) -> float:
    """Median over rounds of the per-round ratio ``num / den``."""
    return round(statistics.median(a / b for a, b in zip(times[num], times[den])), 3)


def _median(times: dict, name: str) -> float:
    return round(statistics.median(times[name]), 4)


def _history_bytes(run) -> int:
    total = 0
    for entry in run.history.values():
        values = entry.values() if isinstance(entry, dict) else [entry]
        for mean, _ in values:
            total += mean.numel() * mean.element_size()
    return total


def measure(size: int, steps: int, repeats: int) -> dict:
    import numpy as np
    import torch

    from slim_leakage.backbones import load_backbone
    from slim_leakage.backbones.sana import tiny_sana_backbone
    from slim_leakage.methods import get_method
    from slim_leakage.methods.deleaker import sana as S
    from slim_leakage.methods.layouts import plan_layouts, write_layouts
    from slim_leakage.records import Sample

    torch.set_num_threads(1)
    pair = Sample(id="b1", prompt="a cow and a horse in a field", entities=("cow", "horse"), seed=1)
    out: dict = {"size": size, "steps": steps, "repeats": repeats}

    flux = load_backbone(
        "tiny-random", device="cpu", height=size, width=size, num_inference_steps=steps
    )
    with tempfile.TemporaryDirectory() as tmp:
        layouts = Path(tmp) / "layouts.jsonl"
        write_layouts(layouts, plan_layouts([pair]))
        regional = get_method("regional-prompting", layouts=str(layouts))
        dense = get_method("regional-prompting", layouts=str(layouts), implementation="reference")
        times = _rounds(
            {
                "vanilla": lambda: flux.generate([pair.prompt], [pair.seed]),
                "regional": lambda: regional.generate(flux, [pair]),
                "dense": lambda: dense.generate(flux, [pair]),
            },
            repeats,
        )
        fast_img = regional.generate(flux, [pair])[0].image
        dense_img = dense.generate(flux, [pair])[0].image
    out["flux_vanilla_seconds"] = _median(times, "vanilla")
    out["flux_regional_seconds"] = _median(times, "regional")
    out["flux_regional_reference_seconds"] = _median(times, "dense")
    out["regional_over_vanilla"] = _ratio(times, "regional", "vanilla")
    out["regional_reference_over_fast"] = _ratio(times, "dense", "regional")
    out["regional_fast_vs_reference_max_pixel_diff"] = int(
        np.abs(np.asarray(fast_img, dtype=int) - np.asarray(dense_img, dtype=int)).max()
    )

    sana = tiny_sana_backbone(height=size, width=size, num_inference_steps=steps)
    options = {"smoothing": False, "beta1": 0.0}  # random weights: keep the masks non-empty
    runs: dict = {}
    images: dict = {}

    def deleaker(impl):
        def go():
            with S.install(
                sana.pipe,
                [list(pair.entities)],
                [pair.prompt],
                instruction=sana.instruction,
                max_sequence_length=sana.settings.max_sequence_length,
                implementation=impl,
                **options,
            ) as run:
                images[impl] = sana.generate([pair.prompt], [pair.seed])[0]
            runs[impl] = run

        return go

    times = _rounds(
        {
            "vanilla": lambda: sana.generate([pair.prompt], [pair.seed]),
            "fast": deleaker("fast"),
            "reference": deleaker("reference"),
        },
        repeats,
    )
    diff = np.abs(
        np.asarray(images["fast"], dtype=int) - np.asarray(images["reference"], dtype=int)
    ).max()
    out.update(
        sana_vanilla_seconds=_median(times, "vanilla"),
        sana_deleaker_fast_seconds=_median(times, "fast"),
        sana_deleaker_reference_seconds=_median(times, "reference"),
        sana_fast_over_vanilla=_ratio(times, "fast", "vanilla"),
        sana_reference_over_fast=_ratio(times, "reference", "fast"),
        sana_history_bytes_fast=_history_bytes(runs["fast"]),
        sana_history_bytes_reference=_history_bytes(runs["reference"]),
        sana_fast_vs_reference_max_pixel_diff=int(diff),
        sana_mask_tokens={e: int(m.sum()) for e, m in runs["fast"].final_masks(0).items()},
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--steps", type=int, default=4, help="denoising steps")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args()
    result = measure(args.size, args.steps, args.repeats)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
