"""What DeLeaker costs on one FLUX transformer forward: stock vs fast vs reference.

One forward through all blocks at a step inside both the history and the edit windows (step 5 of
20: history still accumulating, edits active), with random weights in FLUX's token layout
(``[T5 text ; image]``). Three variants are measured side by side in one process:

- ``vanilla``: the stock diffusers processor (SDPA);
- ``fast``: :class:`FluxDeLeakerProcessor` (fused attention + closed-form row corrections);
- ``reference``: the explicit processor that materialises every ``heads x L x L`` attention and
  keeps the full history, as the official code does.

Random attention gives speckled masks that the 3x3 smoothing would erase (and then nothing is
edited), so smoothing is off here: the masks stay at their thresholded size (reported as
``mask_tokens``), which keeps every edit on the timed path.

Each of ``--rounds`` rounds runs every variant back to back (order rotating; a first round only
warms up); time ratios are the medians of the per-round ratios, with the ratios of the best
times beside them (``*_best``). Peak memory is the high-water mark during the timed forward above the memory held
before any variant ran (model and inputs), so DeLeaker's persistent state (history) counts; the
smallest over the rounds is kept. On CUDA it is ``torch.cuda.max_memory_allocated``; on Linux
CPUs the process's peak resident set (reset via ``/proc/self/clear_refs``, after ``malloc_trim``
returns freed memory), which is coarser: compare ratios, not bytes.

``--geometry flux-dev-width`` measures FLUX.1-dev's attention shape (24 heads x 128, 512 text
tokens) at two image grids, 32x32 and 64x64 (512^2 and 1024^2 images), with one double- and one
single-stream block (the full model's 19 + 38 blocks do not fit a CPU run; every block costs the
same there). Its masks are planted: two solid elliptic blobs drawn on the grid, one per entity,
covering 40% and 30% of the image, as large animals do in real images, so the image-image
statistics and their correction run at the size real entities give them (random weights give
speckle). Every block sits in both the history and the edit window (as at steps 1-11 of a
20-step run, the costliest ones), and step 0 is timed: no earlier forwards are needed. With
``--json`` the top-level ``fast_over_vanilla_time`` and ``fast_over_vanilla_peak_mem`` are the
last (64x64) grid's; ``grids`` holds each grid's figures.

``--geometry sd3-width`` and ``flux2-width`` measure Stable Diffusion 3.5 Large's and FLUX.2
[dev]'s attention shapes the same way (``benchmarks/deleaker_families.py``).

Usage:
    python benchmarks/deleaker_overhead.py [--json]
    python benchmarks/deleaker_overhead.py --geometry flux-dev-width --threads 1 --rounds 2 --json
    python benchmarks/deleaker_overhead.py --geometry flux-dev-1024 --device cuda --dtype bfloat16
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import importlib
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import deleaker_families  # noqa: E402  (beside this script: the other families' geometries)

#: FLUX.1-dev's widths (blocks and grid are the geometry's).
FLUX_DEV = dict(
    num_attention_heads=24,
    attention_head_dim=128,
    joint_attention_dim=4096,
    pooled_projection_dim=768,
    in_channels=64,
    text_len=512,
    guidance_embeds=True,
)
GEOMETRIES = {
    # CPU-sized, FLUX token layout: 512 text + 32x32 = 1024 image tokens
    "cpu-small": dict(
        num_layers=2,
        num_single_layers=4,
        num_attention_heads=4,
        attention_head_dim=64,
        joint_attention_dim=256,
        pooled_projection_dim=64,
        in_channels=16,
        text_len=512,
        grid=(32, 32),
        guidance_embeds=False,
    ),
    # FLUX.1-dev shapes at 1024x1024: 19 double + 38 single blocks, 24 x 128 heads, 4096 image
    # tokens, 512 text tokens
    "flux-dev-1024": {**FLUX_DEV, "num_layers": 19, "num_single_layers": 38, "grid": (64, 64)},
    # the same at 512x512 (32x32 latent tokens): where the explicit reference still fits a GPU
    "flux-dev-512": {**FLUX_DEV, "num_layers": 19, "num_single_layers": 38, "grid": (32, 32)},
    # a few seconds on a CPU: checks the script end to end (benchmarks/gpu_check.sh --cpu-smoke)
    "smoke": dict(
        num_layers=1,
        num_single_layers=1,
        num_attention_heads=2,
        attention_head_dim=32,
        joint_attention_dim=64,
        pooled_projection_dim=32,
        in_channels=16,
        text_len=64,
        grid=(16, 16),
        guidance_embeds=True,
    ),
    # FLUX.1-dev's attention shape with fewer blocks and planted blob masks, at two grids
    "flux-dev-width": {
        **FLUX_DEV,
        "num_layers": 1,
        "num_single_layers": 1,
        "grid": (64, 64),
        "grids": ((32, 32), (64, 64)),
        "blobs": True,
    },
}
GEOMETRIES.update(deleaker_families.GEOMETRIES)
# Other families (``"family"`` names the ``deleaker_overhead_<family>.py`` beside this script
# that builds, runs and installs on that transformer); the same grids and planted masks.
GEOMETRIES["qwenimage-width"] = {
    **importlib.import_module("deleaker_overhead_qwenimage").QWEN_IMAGE,
    "num_layers": 2,
    "grid": (64, 64),
    "grids": ((32, 32), (64, 64)),
    "blobs": True,
}
GEOMETRIES["qwenimage-smoke"] = {
    "family": "qwenimage",
    "num_attention_heads": 2,
    "attention_head_dim": 32,
    "joint_attention_dim": 64,
    "in_channels": 16,
    "text_len": 64,
    "num_layers": 2,
    "grid": (16, 16),
}
GEOMETRIES["zimage-width"] = {
    **importlib.import_module("deleaker_overhead_zimage").Z_IMAGE,
    "num_layers": 2,
    "grid": (64, 64),
    "grids": ((32, 32), (64, 64)),
    "blobs": True,
}
GEOMETRIES["zimage-smoke"] = {
    "family": "zimage",
    "num_attention_heads": 2,
    "attention_head_dim": 32,
    "joint_attention_dim": 64,
    "in_channels": 16,
    "text_len": 64,
    "num_layers": 2,
    "grid": (16, 16),
}
PROMPT = "a cow and a horse in a field"
ENTITIES = ["cow", "horse"]
STEPS, TIMED_STEP = 20, 5
#: Planted entity blobs: (centre row, centre col, semi-axis rows, semi-axis cols) as fractions of
#: the grid; the ellipses cover about 40% and 30% of the image and do not overlap.
BLOBS = {"cow": (0.5, 0.29, 0.46, 0.28), "horse": (0.5, 0.76, 0.46, 0.21)}


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


class PeakMemory:
    """Peak memory of a region above a fixed baseline (CUDA allocator or process RSS)."""

    def __init__(self, device: str) -> None:
        import torch

        self.torch = torch
        self.cuda = device.startswith("cuda")
        self.libc = None
        if not self.cuda and platform.system() == "Linux":
            with contextlib.suppress(OSError):
                self.libc = ctypes.CDLL("libc.so.6")
        self.available = self.cuda or os.path.exists("/proc/self/clear_refs")
        self.baseline = self._current()

    def _trim(self) -> None:
        if self.libc is not None:
            self.libc.malloc_trim(0)

    def _current(self) -> int:
        if self.cuda:
            self.torch.cuda.synchronize()
            return self.torch.cuda.memory_allocated()
        if not self.available:
            return 0
        self._trim()
        return _rss_kib("VmRSS") * 1024

    def start(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()
            self.torch.cuda.reset_peak_memory_stats()
        elif self.available:
            self._trim()
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")  # resets the peak resident set (VmHWM)

    def stop(self) -> int | None:
        if self.cuda:
            self.torch.cuda.synchronize()
            return self.torch.cuda.max_memory_allocated() - self.baseline
        if not self.available:
            return None
        return _rss_kib("VmHWM") * 1024 - self.baseline


def blob_masks(grid: tuple[int, int], device: str) -> dict:
    """The planted masks: ``{entity: (rows * cols,) bool}``, solid ellipses of :data:`BLOBS`."""
    import torch

    rows, cols = grid
    y = (torch.arange(rows, dtype=torch.float32)[:, None] + 0.5) / rows
    x = (torch.arange(cols, dtype=torch.float32)[None, :] + 0.5) / cols
    return {
        e: (((y - cy) / ay) ** 2 + ((x - cx) / ax) ** 2 <= 1).flatten().to(device)
        for e, (cy, cx, ay, ax) in BLOBS.items()
    }


@contextlib.contextmanager
def planted(masks: dict | None):
    """Make every DeLeaker processor use ``masks`` (their scores are still computed)."""
    if masks is None:
        yield
        return
    from slim_leakage.methods.deleaker.state import BlockProcessor

    original = BlockProcessor.masks_from
    BlockProcessor.masks_from = lambda self, scores: {e: masks[e] for e in scores}
    try:
        yield
    finally:
        BlockProcessor.masks_from = original


def family(geometry: dict):
    """The module of a geometry's family script (``deleaker_overhead_<family>.py``), or None.

    Qwen-Image and Z-Image have such a script; SD3 and FLUX.2 are built and run by
    ``deleaker_families.py``; FLUX.1 by this script.
    """
    name = geometry.get("family")
    if name is None or not Path(__file__).with_name(f"deleaker_overhead_{name}.py").exists():
        return None
    return importlib.import_module(f"deleaker_overhead_{name}")


def build(geometry: dict, device: str, dtype, seed: int = 0, grid=None):
    """A random-weight FluxTransformer2DModel and inputs of ``geometry`` (at ``grid``)."""
    if family(geometry) is not None:
        return family(geometry).build(geometry, device, dtype, seed, grid)
    import torch

    if "family" in geometry:
        model = deleaker_families.build(geometry, device, dtype, seed)
        return model, build_inputs(geometry, device, dtype, grid or geometry["grid"])
    from diffusers import FluxTransformer2DModel

    g = geometry
    head = g["attention_head_dim"]
    # FLUX splits a 128-dim head as (16, 56, 56) over (index, row, col)
    rope = [head // 8, (head - head // 8) // 2, (head - head // 8) // 2]
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = FluxTransformer2DModel(
                patch_size=1,
                in_channels=g["in_channels"],
                num_layers=g["num_layers"],
                num_single_layers=g["num_single_layers"],
                attention_head_dim=head,
                num_attention_heads=g["num_attention_heads"],
                joint_attention_dim=g["joint_attention_dim"],
                pooled_projection_dim=g["pooled_projection_dim"],
                guidance_embeds=g["guidance_embeds"],
                axes_dims_rope=rope,
            ).eval()
    finally:
        torch.set_default_dtype(previous)
    return model, build_inputs(geometry, device, dtype, grid or g["grid"])


def build_inputs(geometry: dict, device: str, dtype, grid) -> dict:
    """Random inputs of ``geometry`` at an image grid of ``grid`` latent tokens."""
    if family(geometry) is not None:
        return family(geometry).build_inputs(geometry, device, dtype, grid)
    import torch

    if "family" in geometry:
        return deleaker_families.build_inputs(geometry, device, dtype, grid)

    g = geometry
    rows, cols = grid
    n_img, text_len = rows * cols, g["text_len"]
    img_ids = torch.zeros(rows, cols, 3, device=device)
    img_ids[..., 1] = torch.arange(rows, device=device)[:, None]
    img_ids[..., 2] = torch.arange(cols, device=device)[None, :]
    inputs = dict(
        hidden_states=torch.randn(1, n_img, g["in_channels"], device=device, dtype=dtype),
        encoder_hidden_states=torch.randn(
            1, text_len, g["joint_attention_dim"], device=device, dtype=dtype
        ),
        pooled_projections=torch.randn(1, g["pooled_projection_dim"], device=device, dtype=dtype),
        img_ids=img_ids.reshape(-1, 3).to(dtype),
        txt_ids=torch.zeros(text_len, 3, device=device, dtype=dtype),
        return_dict=False,
    )
    if g["guidance_embeds"]:
        inputs["guidance"] = torch.full((1,), 3.5, device=device, dtype=dtype)
    return inputs


def measure(model, inputs, geometry: dict, grid, args, dtype) -> dict:
    """Time and peak memory of vanilla, fast and reference at one grid, side by side."""
    import torch

    from slim_leakage.backbones.tiny import make_t5_tokenizer
    from slim_leakage.methods.deleaker import deleaker
    from slim_leakage.methods.deleaker.flux import FluxDeLeakerProcessor

    blobs = blob_masks(grid, args.device) if geometry.get("blobs") else None
    # planted masks: every block in both windows, and step 0 timed (module docstring)
    timed_step = 0 if blobs else TIMED_STEP
    windows = {"history_start": (0.0, 0.0), "edit_start": (0.0, 0.0)} if blobs else {}
    tokenizer = make_t5_tokenizer()
    timesteps = torch.linspace(1.0, 0.0, STEPS + 1)[:-1]
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    memory = PeakMemory(args.device)
    recomputed: list[int] = []
    rows_recomputed = 0
    original_recompute = FluxDeLeakerProcessor._recompute

    def counting_recompute(*a, **k):
        recomputed.append(int(a[8].numel()))  # the rows that lost over half their mass
        return original_recompute(*a, **k)

    other = family(geometry)

    def forward(step: int):
        if other is not None:
            return other.forward(model, inputs, step, STEPS, dtype)
        t = torch.full((1,), float(timesteps[step]), device=args.device, dtype=dtype)
        with torch.inference_mode():
            return model(timestep=t, **inputs)[0]

    def context(variant: str):
        if variant == "vanilla":
            return contextlib.nullcontext(None)
        if other is not None:
            return other.context(model, variant, geometry, PROMPT, ENTITIES, **windows)
        return deleaker(
            model,
            ENTITIES,
            prompts=[PROMPT],
            tokenizer=tokenizer,
            max_sequence_length=geometry["text_len"],
            num_inference_steps=STEPS,
            implementation=variant,
            smoothing=False,
            **windows,
        )

    if other is None and "family" in geometry:  # SD3, FLUX.2: their own clock and installation
        forward, context = deleaker_families.runner(
            geometry, model, inputs, steps=STEPS, prompt=PROMPT, entities=ENTITIES,
            device=args.device, dtype=dtype, windows=windows,
        )  # fmt: skip
    variants = ["vanilla", "fast"] + ([] if args.skip_reference else ["reference"])
    times: dict[str, list[float]] = {v: [] for v in variants}
    peaks_all: dict[str, list[int]] = {v: [] for v in variants}
    outputs: dict[str, torch.Tensor] = {}
    masks: dict[str, int] = {}
    FluxDeLeakerProcessor._recompute = staticmethod(counting_recompute)
    try:
        for round_ in range(args.rounds + 1):  # round 0 only warms up kernels and caches
            # rotate the order so no variant always runs right after another one
            order = variants[round_ % len(variants) :] + variants[: round_ % len(variants)]
            for variant in order:
                with planted(blobs), context(variant) as run:
                    for step in range(timed_step):  # the history of the earlier steps
                        forward(step)
                    sync()
                    recomputed.clear()
                    memory.start()
                    start = time.perf_counter()
                    out = forward(timed_step)
                    sync()
                    elapsed = time.perf_counter() - start
                    peak = memory.stop()
                    if round_ == 0:
                        outputs[variant] = out.float().cpu()
                        if run is not None and variant == "fast":
                            masks = {e: int(m.sum()) for e, m in run.final_masks(0).items()}
                            rows_recomputed = sum(recomputed)
                        continue
                    times[variant].append(elapsed)
                    if peak is not None:
                        peaks_all[variant].append(peak)
                    del out
    finally:
        FluxDeLeakerProcessor._recompute = original_recompute
    # the smallest peak is the least disturbed by allocator caching and other processes
    peaks = {v: (min(p) if p else None) for v, p in peaks_all.items()}
    best = {v: min(ts) for v, ts in times.items()}
    n_img = grid[0] * grid[1]
    result = {
        "grid": list(grid),
        "image_tokens": n_img,
        "step": f"{timed_step}/{STEPS}",
        "masks": "planted blobs" if blobs else "thresholded attention (random weights)",
        "mask_tokens": masks,
        "mask_share": {e: round(n / n_img, 4) for e, n in masks.items()},
        "fast_rows_recomputed_exactly": rows_recomputed,
        "seconds": {v: round(t, 5) for v, t in best.items()},
        "seconds_median": {v: round(statistics.median(ts), 5) for v, ts in times.items()},
        "peak_mem_bytes": peaks,
        # headline ratios are medians of per-round ratios: a round runs every variant back to
        # back, so its ratio shares one load level; best-time ratios mix different moments
        "fast_over_vanilla_time": round(
            statistics.median(f / v for f, v in zip(times["fast"], times["vanilla"])), 4
        ),
        "fast_over_vanilla_time_best": round(best["fast"] / best["vanilla"], 4),
        "fast_changes_output": bool((outputs["fast"] - outputs["vanilla"]).abs().max() > 0),
    }
    if peaks.get("vanilla"):
        result["fast_over_vanilla_peak_mem"] = round(peaks["fast"] / peaks["vanilla"], 4)
    if "reference" in best:
        ref_scale = outputs["vanilla"].abs().max().item()
        result["reference_over_fast_time"] = round(
            statistics.median(r / f for r, f in zip(times["reference"], times["fast"])), 4
        )
        result["reference_over_fast_time_best"] = round(best["reference"] / best["fast"], 4)
        diff = (outputs["fast"] - outputs["reference"]).abs().max().item()
        result["fast_vs_reference_max_abs_diff_rel"] = diff / ref_scale
        if peaks.get("vanilla"):
            result["reference_over_vanilla_peak_mem"] = round(
                peaks["reference"] / peaks["vanilla"], 4
            )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--geometry", choices=sorted(GEOMETRIES), default="cpu-small")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (best is kept)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--skip-reference", action="store_true", help="time vanilla and fast only")
    parser.add_argument(
        "--planted-masks", action="store_true", help="blob masks, as --geometry flux-dev-width"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args()

    import diffusers
    import torch

    from slim_leakage.backbones.base import torch_dtype
    from slim_leakage.methods.deleaker import ops

    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = torch_dtype(args.dtype)
    geometry = GEOMETRIES[args.geometry]
    if args.planted_masks:
        geometry = {**geometry, "blobs": True}
    grids = geometry.get("grids", (geometry["grid"],))
    model, inputs = build(geometry, args.device, dtype, grid=grids[0])
    per_grid = {}
    for grid in grids:
        if grid != grids[0]:
            del inputs
            inputs = build_inputs(geometry, args.device, dtype, grid)
        per_grid[f"{grid[0]}x{grid[1]}"] = measure(model, inputs, geometry, grid, args, dtype)
    last = per_grid[f"{grids[-1][0]}x{grids[-1][1]}"]
    headline = {k: v for k, v in last.items() if k not in ("grid", "image_tokens")}
    result = {
        "benchmark": "deleaker_overhead",
        "geometry": args.geometry,
        **{k: v for k, v in geometry.items() if k not in ("grid", "grids")},
        "image_tokens": last["image_tokens"],
        "grid": last["grid"],
        "device": args.device,
        "dtype": args.dtype,
        "threads": torch.get_num_threads(),
        "rounds": args.rounds,
        "working_set_bytes": ops.WORKING_SET_BYTES,
        **headline,
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
        "date": datetime.date.today().isoformat(),
    }
    if len(per_grid) > 1:
        result["grids"] = per_grid
    on_gpu = args.device.startswith("cuda")
    if on_gpu:
        targets = {"fast_over_vanilla_time": 1.15, "fast_over_vanilla_peak_mem": 1.05}
    elif geometry.get("blobs"):
        targets = {"fast_over_vanilla_time": 1.25, "fast_over_vanilla_peak_mem": 1.10}
    else:
        targets = {"fast_over_vanilla_time": 1.5, "fast_over_vanilla_peak_mem": 1.25}
    result["targets"] = targets
    result["meets_targets"] = all(
        result.get(k) is not None and result[k] <= v for k, v in targets.items()
    )
    if not args.json:
        for key, value in result.items():
            print(f"{key}: {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
