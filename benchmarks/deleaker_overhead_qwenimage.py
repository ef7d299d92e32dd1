"""Qwen-Image's part of ``benchmarks/deleaker_overhead.py`` (``--geometry qwenimage-*``): a
random-weight ``QwenImageTransformer2DModel``, its inputs, one forward, and DeLeaker installed
on a ``QwenImagePipeline`` that holds only that transformer, a scheduler and the tokenizer built
in code (the clock and the entity tokens read them; nothing is encoded).

Qwen-Image's widths (``transformer/config.json`` of Qwen/Qwen-Image, the class defaults): 24
heads x 128, text width 3584 (Qwen2.5-VL-7B), 64 input channels (16 latent channels x 2x2),
RoPE axes (16, 56, 56). The text length is ``max_sequence_length``'s 512, the most the pipeline
passes; a single prompt passes only its own tokens (no padding), so real text is shorter.
"""

from __future__ import annotations

#: Qwen-Image's widths; blocks and grid are the geometry's.
QWEN_IMAGE = dict(
    family="qwenimage",
    num_attention_heads=24,
    attention_head_dim=128,
    joint_attention_dim=3584,
    in_channels=64,
    text_len=512,
)


def build(geometry: dict, device: str, dtype, seed: int = 0, grid=None):
    """The random-weight transformer (in a pipeline shell) and inputs at ``grid``."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, QwenImagePipeline
    from diffusers import QwenImageTransformer2DModel as Model

    from slim_leakage.backbones.qwenimage import make_qwen2_tokenizer

    g = geometry
    head = g["attention_head_dim"]
    rope = head // 8
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = Model(
                patch_size=2,
                in_channels=g["in_channels"],
                out_channels=g["in_channels"] // 4,
                num_layers=g["num_layers"],
                attention_head_dim=head,
                num_attention_heads=g["num_attention_heads"],
                joint_attention_dim=g["joint_attention_dim"],
                axes_dims_rope=(rope, (head - rope) // 2, (head - rope) // 2),
            ).eval()
    finally:
        torch.set_default_dtype(previous)
    scheduler = FlowMatchEulerDiscreteScheduler()
    pipe = QwenImagePipeline(
        scheduler=scheduler,
        vae=None,
        text_encoder=None,
        tokenizer=make_qwen2_tokenizer(),
        transformer=model,
    )
    return pipe, build_inputs(geometry, device, dtype, grid or g["grid"])


def build_inputs(geometry: dict, device: str, dtype, grid) -> dict:
    """Random inputs at an image grid of ``grid`` tokens (one image, no text mask)."""
    import torch

    g = geometry
    rows, cols = grid
    return dict(
        hidden_states=torch.randn(1, rows * cols, g["in_channels"], device=device, dtype=dtype),
        encoder_hidden_states=torch.randn(
            1, g["text_len"], g["joint_attention_dim"], device=device, dtype=dtype
        ),
        img_shapes=[[(1, rows, cols)]],
        return_dict=False,
    )


def forward(pipe, inputs: dict, step: int, steps: int, dtype):
    """One transformer forward at ``step`` of ``steps`` (the timestep the pipeline passes)."""
    import torch

    pipe.scheduler.set_timesteps(steps, device=inputs["hidden_states"].device)
    t = pipe.scheduler.timesteps[step].reshape(1).to(dtype) / 1000
    with torch.inference_mode():
        return pipe.transformer(timestep=t, **inputs)[0]


def context(pipe, variant: str, geometry: dict, prompt: str, entities, **windows):
    """DeLeaker installed on the shell pipeline (``variant``: fast or reference)."""
    from slim_leakage.methods.deleaker.qwenimage import install

    return install(
        pipe,
        entities,
        prompts=[prompt],
        max_sequence_length=geometry["text_len"],
        implementation=variant,
        smoothing=False,
        **windows,
    )
