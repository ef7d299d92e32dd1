"""Peak memory of the flux-dev preset under its memory settings, with random weights.

A FLUX pipeline of random weights is built in code (no download), saved to a temporary folder
and loaded back through the ``flux-dev`` preset (``--backbone-path``), once per setting
(``offload=`` / ``quantize=``), exactly as a run loads real weights; each setting generates one
image and reports the device's ``max_memory_allocated`` during loading and generation, the
seconds per image, and the estimate the preset's memory table gives for it
(:mod:`slim_leakage.backbones.memory`).

``--size flux-dev`` is FLUX.1-dev's transformer (19 + 38 blocks, 24 x 128 heads, guidance
embedder) with a T5-XXL-sized encoder (24 layers of width 4096; the built-in tokenizer's small
vocabulary and T5's plain ReLU feed-forward, so about 2.9 of the real 4.8 billion parameters),
a CLIP-L-sized text model and a 16-channel FLUX-sized autoencoder; the parameter counts built
are reported beside the peaks. ``--size tiny`` is a few-second CPU check of the same path
(``benchmarks/gpu_check.sh --cpu-smoke``). On the CPU only the settings a CPU run takes
(no offload; ``torchao-int8``) are loaded, and no peak is reported.

Usage:
    python benchmarks/gpu_memory_settings.py --size flux-dev --device cuda --json
    python benchmarks/gpu_memory_settings.py --size tiny --device cpu --json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import tempfile
import time

#: Settings measured on a GPU, cheapest to load first; the CPU takes only those without offload.
SETTINGS = (
    ("sequential", "none"),
    ("model", "none"),
    ("none", "none"),
    ("none", "torchao-int8"),
    ("model", "torchao-int8"),
    ("none", "bnb-nf4"),
)


def sizes(name: str):
    """The :class:`FluxSizes` and autoencoder builder of ``--size``."""
    from slim_leakage.backbones.tiny import FluxSizes, flux_autoencoder

    if name == "tiny":
        return FluxSizes(guidance_embeds=True), None
    full = FluxSizes(
        num_layers=19,
        num_single_layers=38,
        num_attention_heads=24,
        attention_head_dim=128,
        axes_dims_rope=(16, 56, 56),
        in_channels=64,
        text_dim=4096,
        text_layers=24,
        text_heads=64,
        text_kv=64,
        text_ff=10240,
        clip_dim=768,
        clip_layers=12,
        clip_heads=12,
        clip_ff=3072,
        guidance_embeds=True,
    )
    return full, lambda: flux_autoencoder((128, 256, 512, 512), 16, 32)


def build_and_save(size: str, folder: str, device: str) -> dict:
    """Build the random pipeline (on ``device``, in bfloat16 off the CPU) and save it."""
    import torch

    from slim_leakage.backbones.tiny import build_flux_pipeline

    flux_sizes, vae = sizes(size)
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):  # random initialisation on the GPU takes seconds, not minutes
            pipe = build_flux_pipeline(flux_sizes, vae=vae)
    finally:
        torch.set_default_dtype(previous)
    counts = {
        name: sum(p.numel() for p in getattr(pipe, name).parameters())
        for name in ("transformer", "text_encoder_2", "text_encoder", "vae")
    }
    pipe.save_pretrained(folder)
    del pipe
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return counts


def measure(folder: str, device: str, offload: str, quantize: str, height: int) -> dict:
    """Load the saved pipeline with one setting, generate one image, and report its peak."""
    import torch

    from slim_leakage.backbones import BACKBONES

    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    preset = BACKBONES.get("flux-dev")
    args = dict(
        offload=offload,
        quantize=quantize,
        height=height,
        width=height,
        num_inference_steps=2,
        max_sequence_length=256,
    )
    _, plan = preset.check_args(dict(args), device=device)
    start = time.perf_counter()
    backbone = preset.load(path=folder, device=device, **args)
    loaded = time.perf_counter() - start
    start = time.perf_counter()
    image = backbone.generate(["a cow and a horse in a field"], [0])[0]
    seconds = time.perf_counter() - start
    row = {
        "offload": offload,
        "quantize": quantize,
        "dtype": plan.dtype,
        "text_dtype": plan.text_dtype,
        "image_size": list(image.size),
        "load_seconds": round(loaded, 2),
        "generate_seconds": round(seconds, 2),
        "estimated_peak_bytes": plan.estimate.peak_bytes if plan.estimate else None,
        "peak_bytes": int(torch.cuda.max_memory_allocated()) if cuda else None,
    }
    del backbone
    if cuda:
        torch.cuda.empty_cache()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["flux-dev", "tiny"], default="flux-dev")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--height", type=int, default=512, help="image size (square)")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args()

    import torch

    from slim_leakage.backbones.memory import SCHEMES

    on_cpu = args.device == "cpu"
    settings = [
        (o, q)
        for o, q in SETTINGS
        if q == "none"
        or (importlib.util.find_spec(SCHEMES[q].package) and (SCHEMES[q].cpu or not on_cpu))
    ]
    settings = [(o, q) for o, q in settings if not (on_cpu and o != "none")]
    result: dict = {"benchmark": "gpu_memory_settings", "size": args.size, "device": args.device}
    if args.device.startswith("cuda"):
        result["gpu"] = torch.cuda.get_device_name()
        result["gpu_total_bytes"] = torch.cuda.get_device_properties(0).total_memory
    with tempfile.TemporaryDirectory(prefix="slim-gpu-check-") as folder:
        start = time.perf_counter()
        result["params"] = build_and_save(args.size, folder, args.device)
        result["build_seconds"] = round(time.perf_counter() - start, 2)
        rows = []
        for offload, quantize in settings:
            try:
                rows.append(measure(folder, args.device, offload, quantize, args.height))
            except Exception as exc:  # one setting failing must not hide the others' figures
                rows.append({"offload": offload, "quantize": quantize, "error": repr(exc)[:300]})
            if not args.json:
                print(rows[-1], flush=True)
        result["settings"] = rows
    if not args.json:
        for key, value in result.items():
            print(f"{key}: {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
