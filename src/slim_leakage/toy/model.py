"""The toy model: a small FLUX-architecture pipeline built in code over the toy vocabulary.

The parts are the real diffusers/transformers classes (``FluxPipeline``,
``FluxTransformer2DModel``, ``T5EncoderModel``, ``CLIPTextModel``, ``AutoencoderKL``), so every
code path that runs on FLUX.1-dev runs on it. Two choices depart from FLUX.1-dev, because a
model this small trained for minutes does not otherwise bind text to image regions through
attention (measured; see ``docs/toy-world.md``):

- the pooled-text path is switched off: the transformer's pooled-text projection has zero
  output weights, frozen, so the CLIP encoder is present but has no effect;
- the T5 encoder has no transformer layers (token embeddings plus the final norm), so each text
  token carries its own word only.

Torch and diffusers are imported inside functions.
"""

from __future__ import annotations

import dataclasses

from .world import IMAGE_SIZE, VOCABULARY


@dataclasses.dataclass(frozen=True)
class ToyModelConfig:
    """Sizes of the toy pipeline.

    Attributes:
        num_layers: Double-stream blocks.
        num_single_layers: Single-stream blocks.
        num_attention_heads: Attention heads.
        attention_head_dim: Head width (sum of the RoPE axes).
        axes_dims_rope: RoPE axes (text/batch, row, column).
        text_dim: T5 width (the transformer's joint attention dim).
        text_layers: T5 transformer layers (0: embeddings and norm only).
        clip_dim: CLIP width (the pooled-text dim; the pooled path is switched off).
        vae_channels: Widths of the autoencoder's blocks; it downsamples by 2 per extra block.
            With two blocks a 64x64 image gives a 32x32 latent and the transformer packs 2x2
            latent pixels into one token: a 16x16 token grid (fine enough for DeLeaker's 3x3
            mask morphology) in which every token covers 4x4 pixels, exactly one period of
            every pattern, so all tokens of an entity carry the same content.
        latent_channels: Latent channels.
        pooled_text: Keep FLUX's pooled-text path (False switches it off as described above).
    """

    num_layers: int = 2
    num_single_layers: int = 2
    num_attention_heads: int = 4
    attention_head_dim: int = 32
    axes_dims_rope: tuple[int, int, int] = (8, 12, 12)
    text_dim: int = 64
    text_layers: int = 0
    clip_dim: int = 32
    vae_channels: tuple[int, ...] = (16, 32)
    latent_channels: int = 8
    pooled_text: bool = False


def make_tokenizers():
    """The T5 tokenizer (every toy word is one piece) and the character-level CLIP tokenizer."""
    from ..backbones.tiny import make_clip_tokenizer, make_t5_tokenizer

    return make_t5_tokenizer(VOCABULARY), make_clip_tokenizer()


def build_vae(config: ToyModelConfig = ToyModelConfig()):
    """A small ``AutoencoderKL`` without attention for the toy renders."""
    from diffusers import AutoencoderKL

    n = len(config.vae_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=tuple(config.vae_channels),
        layers_per_block=1,
        latent_channels=config.latent_channels,
        norm_num_groups=4,
        sample_size=IMAGE_SIZE,
        mid_block_add_attention=False,
        use_quant_conv=False,
        use_post_quant_conv=False,
        shift_factor=0.0,
        scaling_factor=1.0,
    )


def switch_off_pooled_text(transformer) -> None:
    """Zero and freeze the output layer of the pooled-text projection (its output is then 0)."""
    import torch

    proj = transformer.time_text_embed.text_embedder
    with torch.no_grad():
        proj.linear_2.weight.zero_()
        proj.linear_2.bias.zero_()
    for p in proj.parameters():
        p.requires_grad_(False)


def build_toy_pipeline(config: ToyModelConfig = ToyModelConfig(), *, seed: int = 0, vae=None):
    """Build an untrained toy ``FluxPipeline`` (deterministic for a seed).

    Args:
        config: Model sizes.
        seed: Weight-initialisation seed.
        vae: An already trained autoencoder to use instead of a fresh one.
    """
    import torch
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        FluxPipeline,
        FluxTransformer2DModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    t5_tok, clip_tok = make_tokenizers()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = FluxTransformer2DModel(
            patch_size=1,
            in_channels=4 * config.latent_channels,
            num_layers=config.num_layers,
            num_single_layers=config.num_single_layers,
            attention_head_dim=config.attention_head_dim,
            num_attention_heads=config.num_attention_heads,
            joint_attention_dim=config.text_dim,
            pooled_projection_dim=config.clip_dim,
            axes_dims_rope=list(config.axes_dims_rope),
            guidance_embeds=False,
        )
        clip = CLIPTextModel(
            CLIPTextConfig(
                hidden_size=config.clip_dim,
                intermediate_size=config.clip_dim * 2,
                num_attention_heads=2,
                num_hidden_layers=1,
                vocab_size=len(clip_tok),
                projection_dim=config.clip_dim,
                max_position_embeddings=77,
                bos_token_id=0,
                eos_token_id=1,
                pad_token_id=1,
            )
        )
        t5 = T5EncoderModel(
            T5Config(
                d_model=config.text_dim,
                d_kv=config.text_dim // 4,
                d_ff=config.text_dim * 2,
                num_layers=config.text_layers,
                num_heads=4,
                relative_attention_num_buckets=8,
                vocab_size=len(t5_tok),
                dropout_rate=0.0,
            )
        )
        if vae is None:
            vae = build_vae(config)
    if not config.pooled_text:
        switch_off_pooled_text(transformer)
    for module in (transformer, clip, t5, vae):
        module.eval()
    return FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=clip,
        tokenizer=clip_tok,
        text_encoder_2=t5,
        tokenizer_2=t5_tok,
        transformer=transformer,
    )
