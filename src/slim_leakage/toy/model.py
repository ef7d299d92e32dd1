"""The toy model: a small FLUX-architecture pipeline built in code over the toy vocabulary.

It is assembled by the same builder as the ``tiny-random`` backbone
(:func:`slim_leakage.backbones.tiny.build_flux_pipeline`) with the toy sizes below, from the real
diffusers/transformers classes (``FluxPipeline``, ``FluxTransformer2DModel``,
``T5EncoderModel``, ``CLIPTextModel``, ``AutoencoderKL``), so every code path that runs on
FLUX.1-dev runs on it. Two choices depart from FLUX.1-dev, because a
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

    def flux_sizes(self):
        """These sizes as the shared FLUX builder's
        :class:`~slim_leakage.backbones.tiny.FluxSizes`."""
        from ..backbones.tiny import FluxSizes

        return FluxSizes(
            num_layers=self.num_layers,
            num_single_layers=self.num_single_layers,
            num_attention_heads=self.num_attention_heads,
            attention_head_dim=self.attention_head_dim,
            axes_dims_rope=tuple(self.axes_dims_rope),
            in_channels=4 * self.latent_channels,
            text_dim=self.text_dim,
            text_layers=self.text_layers,
            text_heads=4,
            text_kv=self.text_dim // 4,
            text_ff=self.text_dim * 2,
            clip_dim=self.clip_dim,
            clip_layers=1,
            clip_heads=2,
            clip_ff=self.clip_dim * 2,
            guidance_embeds=False,
        )


def build_vae(config: ToyModelConfig = ToyModelConfig()):
    """A small ``AutoencoderKL`` without attention for the toy renders."""
    from ..backbones.tiny import flux_autoencoder

    return flux_autoencoder(
        config.vae_channels,
        latent_channels=config.latent_channels,
        norm_num_groups=4,
        layers_per_block=1,
        sample_size=IMAGE_SIZE,
        mid_block_add_attention=False,
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
    from ..backbones.tiny import build_flux_pipeline

    pipe = build_flux_pipeline(
        config.flux_sizes(),
        seed=seed,
        words=VOCABULARY,
        vae=vae if vae is not None else (lambda: build_vae(config)),
    )
    if not config.pooled_text:
        switch_off_pooled_text(pipe.transformer)
    return pipe
