"""Z-Image's part of ``benchmarks/deleaker_overhead.py`` (``--geometry zimage-*``): a
random-weight ``ZImageTransformer2DModel``, its inputs, one forward, and DeLeaker installed on a
``ZImagePipeline`` that holds only that transformer, a scheduler and the tokenizer built in code
(the clock and the entity tokens read them; nothing is encoded).

Z-Image's widths (``transformer/config.json`` of Tongyi-MAI/Z-Image-Turbo, the class defaults):
dim 3840 = 30 heads x 128, caption width 2560 (Qwen3-4B), 16 latent channels in 2x2 patches,
RoPE axes (32, 48, 48). Only main (single-stream) blocks are built: the refiner blocks are stock
in both variants (DeLeaker leaves them alone) and would only dilute the ratio. The text length
is ``max_sequence_length``'s 512, the most the pipeline passes; a prompt passes only its own
tokens (padded to a multiple of 32), so real text is shorter.
"""

from __future__ import annotations

#: Z-Image's widths; blocks and grid are the geometry's.
Z_IMAGE = dict(
    family="zimage",
    num_attention_heads=30,
    attention_head_dim=128,
    joint_attention_dim=2560,
    in_channels=16,
    text_len=512,
)


def build(geometry: dict, device: str, dtype, seed: int = 0, grid=None):
    """The random-weight transformer (in a pipeline shell) and inputs at ``grid``."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, ZImagePipeline, ZImageTransformer2DModel

    from slim_leakage.backbones.qwenimage import make_qwen2_tokenizer
    from slim_leakage.backbones.zimage import QWEN3_CHAT_TEMPLATE

    g = geometry
    head = g["attention_head_dim"]
    axis = 3 * (head // 8)
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = ZImageTransformer2DModel(
                in_channels=g["in_channels"],
                dim=g["num_attention_heads"] * head,
                n_layers=g["num_layers"],
                n_refiner_layers=0,
                n_heads=g["num_attention_heads"],
                n_kv_heads=g["num_attention_heads"],
                cap_feat_dim=g["joint_attention_dim"],
                axes_dims=[head - 2 * axis, axis, axis],
            ).eval()
    finally:
        torch.set_default_dtype(previous)
    pipe = ZImagePipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=None,
        text_encoder=None,
        tokenizer=make_qwen2_tokenizer(chat_template=QWEN3_CHAT_TEMPLATE),
        transformer=model,
    )
    return pipe, build_inputs(geometry, device, dtype, grid or g["grid"])


def build_inputs(geometry: dict, device: str, dtype, grid) -> dict:
    """Random inputs at an image grid of ``grid`` tokens (one image)."""
    import torch

    g = geometry
    rows, cols = grid
    return dict(
        x=[torch.randn(g["in_channels"], 1, 2 * rows, 2 * cols, device=device, dtype=dtype)],
        cap_feats=[
            torch.randn(g["text_len"], g["joint_attention_dim"], device=device, dtype=dtype)
        ],
        return_dict=False,
    )


def forward(pipe, inputs: dict, step: int, steps: int, dtype):
    """One transformer forward at ``step`` of ``steps`` (the timestep the pipeline passes)."""
    import torch

    pipe.scheduler.set_timesteps(steps, device=inputs["x"][0].device)
    t = (1000 - pipe.scheduler.timesteps[step].reshape(1).float()) / 1000
    with torch.inference_mode():
        return pipe.transformer(t=t.to(dtype), **inputs)[0][0]


def context(pipe, variant: str, geometry: dict, prompt: str, entities, **windows):
    """DeLeaker installed on the shell pipeline (``variant``: fast or reference)."""
    from slim_leakage.methods.deleaker.zimage import install

    return install(
        pipe,
        entities,
        prompts=[prompt],
        max_sequence_length=geometry["text_len"],
        implementation=variant,
        smoothing=False,
        **windows,
    )
