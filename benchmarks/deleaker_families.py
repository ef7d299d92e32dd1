"""The other families' geometries for ``benchmarks/deleaker_overhead.py`` (``--geometry
sd3-width``): their real attention widths in a random-weight transformer of a few blocks.

Each family gives the overhead script three things: the model, the inputs of one forward at an
image grid, and how to run one forward at a step and how to install DeLeaker (``context``). The
geometry keys mirror FLUX's (``num_attention_heads``, ``attention_head_dim``, ``text_len``,
``grids``, ``blobs``) so the script's measurement and report are shared.

- ``sd3-width``: Stable Diffusion 3.5 Large's MMDiT (transformer/config.json: 38 heads x 64,
  caption projection 2432, T5 width 4096, pooled 2048, 16 latent channels, patch 2, qk RMS norm)
  with two joint blocks (the second is ``context_pre_only``, as the last of the 38), text
  77 CLIP + 256 T5 tokens, image grids of 32x32 and 64x64 tokens (512^2 and 1024^2 images).
  DeLeaker is installed on a tiny ``StableDiffusion3Pipeline`` built in code (for its tokenizers
  and scheduler) whose transformer is swapped for the wide one; only the transformer runs.
"""

from __future__ import annotations

import contextlib

#: Stable Diffusion 3.5 Large's widths (transformer/config.json of stable-diffusion-3.5-large).
SD35_LARGE = dict(
    family="sd3",
    num_attention_heads=38,
    attention_head_dim=64,
    joint_attention_dim=4096,
    pooled_projection_dim=2048,
    in_channels=16,
    clip_len=77,
    t5_len=256,
    text_len=77 + 256,
)
GEOMETRIES = {
    "sd3-width": {
        **SD35_LARGE,
        "num_layers": 2,
        "grid": (64, 64),
        "grids": ((32, 32), (64, 64)),
        "blobs": True,
    },
    # the full 38-block SD3.5 Large MMDiT at 1024^2 (benchmarks/gpu_check.sh)
    "sd3-1024": {**SD35_LARGE, "num_layers": 38, "grid": (64, 64)},
    # a few seconds on a CPU: the SD3 path end to end (benchmarks/gpu_check.sh --cpu-smoke)
    "sd3-smoke": {
        **SD35_LARGE,
        "num_attention_heads": 2,
        "attention_head_dim": 32,
        "joint_attention_dim": 64,
        "pooled_projection_dim": 32,
        "t5_len": 32,
        "text_len": 77 + 32,
        "num_layers": 2,
        "grid": (16, 16),
        "blobs": True,
    },
}


def build(geometry: dict, device: str, dtype, seed: int = 0):
    """The random-weight transformer of ``geometry`` (its ``family_pipe``: the pipeline DeLeaker
    installs on)."""
    import torch

    g = geometry
    if g["family"] != "sd3":
        raise ValueError(f"unknown family {g['family']!r}")
    from diffusers import SD3Transformer2DModel

    from slim_leakage.backbones.sd3 import build_tiny_sd3_pipeline

    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = SD3Transformer2DModel(
                sample_size=128,
                patch_size=2,
                in_channels=g["in_channels"],
                num_layers=g["num_layers"],
                attention_head_dim=g["attention_head_dim"],
                num_attention_heads=g["num_attention_heads"],
                joint_attention_dim=g["joint_attention_dim"],
                caption_projection_dim=g["num_attention_heads"] * g["attention_head_dim"],
                pooled_projection_dim=g["pooled_projection_dim"],
                out_channels=g["in_channels"],
                pos_embed_max_size=192,
                qk_norm="rms_norm",
            ).eval()
    finally:
        torch.set_default_dtype(previous)
    pipe = build_tiny_sd3_pipeline(seed=seed)
    pipe.transformer = model
    model.family_pipe = pipe  # what DeLeaker installs on (runner)
    return model


def build_inputs(geometry: dict, device: str, dtype, grid) -> dict:
    """Random inputs of one forward at an image grid of ``grid`` tokens (batch 1, no CFG)."""
    import torch

    g = geometry
    rows, cols = grid
    return dict(
        hidden_states=torch.randn(
            1, g["in_channels"], 2 * rows, 2 * cols, device=device, dtype=dtype
        ),
        encoder_hidden_states=torch.randn(
            1, g["text_len"], g["joint_attention_dim"], device=device, dtype=dtype
        ),
        pooled_projections=torch.randn(1, g["pooled_projection_dim"], device=device, dtype=dtype),
        return_dict=False,
    )


def runner(
    geometry: dict,
    model,
    inputs: dict,
    *,
    steps: int,
    prompt: str,
    entities,
    device: str,
    dtype,
    windows: dict,
):
    """``(forward(step), context(variant))`` for the overhead script's measurement loop."""
    import torch

    from slim_leakage.methods.deleaker import sd3

    pipe = model.family_pipe
    pipe.scheduler.set_timesteps(steps)
    timesteps = pipe.scheduler.timesteps

    def forward(step: int):
        t = torch.full((1,), float(timesteps[step]), device=device, dtype=dtype)
        with torch.inference_mode():
            return model(timestep=t, **inputs)[0]

    def context(variant: str):
        if variant == "vanilla":
            return contextlib.nullcontext(None)
        return sd3.install(
            pipe,
            entities,
            prompts=[prompt],
            max_sequence_length=geometry["t5_len"],
            implementation=variant,
            smoothing=False,
            **windows,
        )

    return forward, context
