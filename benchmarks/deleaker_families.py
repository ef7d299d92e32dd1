"""The other families' geometries for ``benchmarks/deleaker_overhead.py`` (``--geometry
sd3-width``): their real attention widths in a random-weight transformer of a few blocks.

Each family gives the overhead script three things: the model, the inputs of one forward at an
image grid, and how to run one forward at a step and how to install DeLeaker (``context``). The
geometry keys mirror FLUX's (``num_attention_heads``, ``attention_head_dim``, ``text_len``,
``grids``, ``blobs``) so the script's measurement and report are shared.

- ``sd3-width``: Stable Diffusion 3.5 Large's MMDiT (transformer/config.json: 38 heads x 64,
  caption projection 2432, T5 width 4096, pooled 2048, 16 latent channels, patch 2, qk RMS norm)
  with one joint block, text 77 CLIP + 256 T5 tokens, a 64x64 token grid (1024^2 images).
  A one-block SD3 transformer makes its block ``context_pre_only`` (as the last of the 38: no
  text output projection or text MLP), so the vanilla forward is a little cheaper than a
  middle block's and the measured time ratio a little higher than a full model's.
  DeLeaker is installed on a tiny ``StableDiffusion3Pipeline`` built in code (for its tokenizers
  and scheduler) whose transformer is swapped for the wide one; only the transformer runs.
- ``flux2-width``: FLUX.2 [dev]'s widths (Flux2Transformer2DModel's defaults: 48 heads x 128,
  text width 15360, 128 latent channels, guidance embedded) with one single-stream block (48
  of the 56 blocks are single-stream), text 512 tokens, a 64x64 token grid. DeLeaker is
  installed on the tiny [klein]-shaped pipeline (its tokenizer and scheduler) with the wide
  transformer swapped in; the entities' spans come from its Qwen3 template.
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
#: FLUX.2 [dev]'s widths: Flux2Transformer2DModel's defaults, documented there as FLUX.2's
#: (48 heads x 128, text width 3 x 5120 from Mistral Small 3.1, 128 packed latent channels,
#: embedded guidance), with [dev]'s text length 512.
FLUX2_DEV = dict(
    family="flux2",
    num_attention_heads=48,
    attention_head_dim=128,
    joint_attention_dim=15360,
    in_channels=128,
    text_len=512,
    guidance_embeds=True,
)
GEOMETRIES = {
    # one joint block at the 64x64 grid: a CPU forward of it takes about a minute
    "sd3-width": {**SD35_LARGE, "num_layers": 1, "grid": (64, 64), "blobs": True},
    # the full 38-block SD3.5 Large MMDiT at 1024^2 (benchmarks/gpu_check.sh)
    "sd3-1024": {**SD35_LARGE, "num_layers": 38, "grid": (64, 64)},
    # one single-stream block (48 of FLUX.2 [dev]'s 56 blocks are) at the 64x64 grid
    "flux2-width": {
        **FLUX2_DEV,
        "num_layers": 0,
        "num_single_layers": 1,
        "grid": (64, 64),
        "blobs": True,
    },
    # the full 8 + 48-block FLUX.2 [dev] transformer at 1024^2 (benchmarks/gpu_check.sh)
    "flux2-1024": {**FLUX2_DEV, "num_layers": 8, "num_single_layers": 48, "grid": (64, 64)},
    "flux2-smoke": {
        **FLUX2_DEV,
        "num_attention_heads": 2,
        "attention_head_dim": 32,
        "joint_attention_dim": 48,
        "in_channels": 16,
        "text_len": 64,
        "num_layers": 1,
        "num_single_layers": 1,
        "grid": (16, 16),
        "blobs": True,
    },
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
    if g["family"] == "flux2":
        return _build_flux2(g, device, dtype, seed)
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


def _build_flux2(g: dict, device: str, dtype, seed: int):
    import torch
    from diffusers import Flux2Transformer2DModel

    from slim_leakage.backbones.flux2 import build_tiny_flux2_pipeline

    head = g["attention_head_dim"]
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = Flux2Transformer2DModel(
                in_channels=g["in_channels"],
                num_layers=g["num_layers"],
                num_single_layers=g["num_single_layers"],
                attention_head_dim=head,
                num_attention_heads=g["num_attention_heads"],
                joint_attention_dim=g["joint_attention_dim"],
                axes_dims_rope=(head // 4,) * 4,
                guidance_embeds=g["guidance_embeds"],
            ).eval()
    finally:
        torch.set_default_dtype(previous)
    # the tiny [klein]-shaped pipeline lends its tokenizer and scheduler (entity spans, clock)
    pipe = build_tiny_flux2_pipeline(seed=seed)
    pipe.transformer = model
    model.family_pipe = pipe
    return model


def build_inputs(geometry: dict, device: str, dtype, grid) -> dict:
    """Random inputs of one forward at an image grid of ``grid`` tokens (batch 1, no CFG)."""
    import torch

    g = geometry
    rows, cols = grid
    if g["family"] == "flux2":
        ids = torch.zeros(rows, cols, 4, device=device)
        ids[..., 1] = torch.arange(rows, device=device)[:, None]
        ids[..., 2] = torch.arange(cols, device=device)[None, :]
        txt_ids = torch.zeros(g["text_len"], 4, device=device)
        txt_ids[:, 3] = torch.arange(g["text_len"], device=device)
        inputs = dict(
            hidden_states=torch.randn(1, rows * cols, g["in_channels"], device=device, dtype=dtype),
            encoder_hidden_states=torch.randn(
                1, g["text_len"], g["joint_attention_dim"], device=device, dtype=dtype
            ),
            img_ids=ids.reshape(-1, 4),
            txt_ids=txt_ids,
            return_dict=False,
        )
        if g["guidance_embeds"]:
            inputs["guidance"] = torch.full((1,), 4.0, device=device, dtype=dtype)
        return inputs
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

    from slim_leakage.methods.deleaker import flux2, sd3

    pipe = model.family_pipe
    pipe.scheduler.set_timesteps(steps)
    timesteps = pipe.scheduler.timesteps
    flux2_family = geometry["family"] == "flux2"
    # the FLUX.2 pipelines pass timestep / 1000, SD3's the scheduler's timestep
    unit = 1000.0 if flux2_family else 1.0

    def forward(step: int):
        t = torch.full((1,), float(timesteps[step]) / unit, device=device, dtype=dtype)
        with torch.inference_mode():
            return model(timestep=t, **inputs)[0]

    def context(variant: str):
        if variant == "vanilla":
            return contextlib.nullcontext(None)
        return (flux2 if flux2_family else sd3).install(
            pipe,
            entities,
            prompts=[prompt],
            max_sequence_length=geometry["text_len" if flux2_family else "t5_len"],
            implementation=variant,
            smoothing=False,
            **windows,
        )

    return forward, context
