"""Stable Diffusion 3.5 backbones: ``sd35-large`` (real weights) and ``tiny-sd3`` (built in code).

SD3's MMDiT differs from FLUX in what methods must know: its joint attention puts the image
tokens *first* (``[image ; text]``, diffusers' ``JointAttnProcessor2_0``), the text sequence is
the 77 CLIP tokens (CLIP-L and CLIP-G hidden states side by side, zero-padded to T5's width)
followed by ``max_sequence_length`` T5 tokens (``StableDiffusion3Pipeline.encode_prompt``), and
classifier-free guidance is batched as ``[uncond, cond]``. :class:`SD3Backbone` passes the T5
length to the pipeline and names the tokenizers of both parts.

The tiny pipeline uses the real classes (``StableDiffusion3Pipeline``,
``SD3Transformer2DModel``, two ``CLIPTextModelWithProjection``, ``T5EncoderModel``,
``AutoencoderKL``) at toy sizes with tokenizers built from in-memory vocabularies, so every code
path of SD3.5 runs offline. Its images are noise: it checks mechanics, not quality.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from .base import BUILT_IN, Backbone, GenerationSettings, HubPreset
from .memory import MemoryPlan
from .memory_table import COMPONENTS

#: SD3 components a quantisation scheme applies to: the MMDiT and T5 (the two CLIPs and the
#: VAE are about 1.7 GB together in bfloat16).
SD3_QUANTIZED = ("transformer", "text_encoder_3")
SD3_TEXT_ENCODERS = ("text_encoder", "text_encoder_2", "text_encoder_3")
#: CLIP's context length: the first part of SD3's text sequence, whatever the T5 length.
CLIP_TOKENS = 77


def build_tiny_sd3_pipeline(
    *,
    seed: int = 0,
    num_layers: int = 2,
    num_attention_heads: int = 2,
    attention_head_dim: int = 16,
    dual_attention_layers: tuple[int, ...] = (0,),
    words: Iterable[str] = (),
):
    """Build a random-weight ``StableDiffusion3Pipeline`` of a few hundred thousand parameters.

    Widths follow the pipeline's constraints: the two CLIP widths side by side fit inside T5's
    width (``encode_prompt`` zero-pads them to it), their projections together are the pooled
    projection, the caption projection equals the attention width, and ``pos_embed_max_size``
    covers the latent grid of images up to 64 pixels (the VAE does not downsample). The first
    block has the SD3.5 Medium image-only second attention (``dual_attention_layers``), so the
    code path that leaves those alone is exercised.

    Args:
        seed: Seed for the weights (the same seed gives the same pipeline).
        num_layers: Joint (MMDiT) blocks.
        num_attention_heads: Heads per attention.
        attention_head_dim: Head width.
        dual_attention_layers: Blocks with an extra image-only attention (SD3.5 Medium).
        words: Extra whole-word pieces for the T5 tokenizer.
    """
    import torch
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        SD3Transformer2DModel,
        StableDiffusion3Pipeline,
    )
    from transformers import (
        CLIPTextConfig,
        CLIPTextModelWithProjection,
        T5Config,
        T5EncoderModel,
    )

    from .tiny import flux_autoencoder, make_clip_tokenizer, make_t5_tokenizer

    clip_tok, clip_tok_2, t5_tok = (
        make_clip_tokenizer(),
        make_clip_tokenizer(),
        make_t5_tokenizer(words),
    )
    clip_dim, t5_dim = 16, 32
    inner = num_attention_heads * attention_head_dim

    def clip():
        return CLIPTextModelWithProjection(
            CLIPTextConfig(
                hidden_size=clip_dim,
                intermediate_size=37,
                num_attention_heads=2,
                num_hidden_layers=2,
                vocab_size=len(clip_tok),
                projection_dim=clip_dim,
                max_position_embeddings=CLIP_TOKENS,
                bos_token_id=0,
                eos_token_id=1,
                pad_token_id=1,
            )
        )

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = SD3Transformer2DModel(
            sample_size=32,
            patch_size=2,
            in_channels=4,
            num_layers=num_layers,
            attention_head_dim=attention_head_dim,
            num_attention_heads=num_attention_heads,
            joint_attention_dim=t5_dim,
            caption_projection_dim=inner,
            pooled_projection_dim=2 * clip_dim,
            out_channels=4,
            pos_embed_max_size=32,
            dual_attention_layers=tuple(dual_attention_layers),
            qk_norm="rms_norm",
        )
        clip_l, clip_g = clip(), clip()
        t5 = T5EncoderModel(
            T5Config(
                d_model=t5_dim,
                d_kv=8,
                d_ff=37,
                num_layers=2,
                num_heads=4,
                relative_attention_num_buckets=8,
                vocab_size=len(t5_tok),
                dropout_rate=0.0,
            )
        )
        vae = flux_autoencoder((4,), latent_channels=4, norm_num_groups=1)
    for module in (transformer, clip_l, clip_g, t5, vae):
        module.eval()
    return StableDiffusion3Pipeline(
        transformer=transformer,
        # SD3.5's scheduler_config.json: FlowMatchEulerDiscreteScheduler, shift 3.0
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=vae,
        text_encoder=clip_l,
        tokenizer=clip_tok,
        text_encoder_2=clip_g,
        tokenizer_2=clip_tok_2,
        text_encoder_3=t5,
        tokenizer_3=t5_tok,
    )


class SD3Backbone(Backbone):
    """A ``StableDiffusion3Pipeline`` plus its settings; passes the T5 length to the pipeline."""

    takes_text_length = True

    @property
    def tokenizer(self):
        """The T5 tokenizer (the longer, second part of the text sequence); the CLIP part is
        tokenised by ``pipe.tokenizer`` (see :attr:`clip_tokenizer`)."""
        return self.pipe.tokenizer_3

    @property
    def clip_tokenizer(self):
        """The CLIP-L tokenizer: positions of the first 77 text tokens (CLIP-G's are the same)."""
        return self.pipe.tokenizer


class SD3Preset(HubPreset):
    """A Stable Diffusion 3.5 checkpoint in diffusers format (hub id or local folder)."""

    family = "sd3"

    def build(self, *, path: str, device: str, dtype: str, memory: MemoryPlan | None = None):
        """Load the pipeline with ``StableDiffusion3Pipeline.from_pretrained`` and place it."""
        from diffusers import StableDiffusion3Pipeline

        pipe = self.from_pretrained(
            StableDiffusion3Pipeline,
            path,
            dtype,
            hint=(
                f"Accept the licence of {self.model_id} on the Hugging Face hub and run "
                "`hf auth login`, or download it and pass --backbone-path /local/folder."
            ),
            memory=memory,
            quantized=SD3_QUANTIZED,
            text_encoders=SD3_TEXT_ENCODERS,
        )
        return self.place(pipe, device, memory)

    def load(self, *, path=None, device=None, dtype=None, **overrides) -> SD3Backbone:
        """Build the pipeline and wrap it as an :class:`SD3Backbone`."""
        plain = super().load(path=path, device=device, dtype=dtype, **overrides)
        return self.wrap(
            plain.pipe,
            plain.settings,
            plain.device,
            plain.dtype,
            plain.model_id,
            memory=plain.memory,
        )

    def wrap(self, pipe, settings, device, dtype, model_id, *, memory=None) -> SD3Backbone:
        """An :class:`SD3Backbone` around an already built pipeline."""
        return SD3Backbone(
            name=self.name,
            family=self.family,
            pipe=pipe,
            settings=settings,
            device=device,
            dtype=dtype,
            model_id=model_id,
            memory=memory,
        )


# The model card of stabilityai/stable-diffusion-3.5-large (its diffusers example): 1024x1024,
# num_inference_steps=28, guidance_scale=3.5, bfloat16; T5 "context length 77/256 tokens at
# different stages of training", and StableDiffusion3Pipeline's default max_sequence_length 256.
SD35_LARGE = SD3Preset(
    "sd35-large",
    "stabilityai/stable-diffusion-3.5-large",
    GenerationSettings(
        height=1024,
        width=1024,
        num_inference_steps=28,
        guidance_scale=3.5,
        max_sequence_length=256,
    ),
    "bfloat16",
    "Stable Diffusion 3.5 Large (MMDiT, 8.1B), 1024x1024, 28 steps, CFG 3.5, CLIP 77 + T5 "
    "length 256, bf16 (model card); offload=, quantize=, max_memory= for smaller GPUs",
    components=COMPONENTS["sd35-large"],
)


class TinySD3Preset(SD3Preset):
    """``tiny-sd3``: the tiny SD3 pipeline built in code (random weights, no download) at 32x32,
    3 steps, CFG 3.5 (batched guidance, as SD3.5), T5 length 32."""

    def __init__(self) -> None:
        super().__init__(
            "tiny-sd3",
            BUILT_IN + "tiny-random-sd3",
            GenerationSettings(
                height=32,
                width=32,
                num_inference_steps=3,
                guidance_scale=3.5,
                max_sequence_length=32,
            ),
            "float32",
            "random-weight SD3 (MMDiT) architecture built in code (32x32, 3 steps): mechanics "
            "only, images are noise",
        )

    def build(self, *, path: str, device: str, dtype: str, memory: MemoryPlan | None = None):
        """Build the tiny pipeline (``path`` is not read: the weights are built in code)."""
        from diffusers import StableDiffusion3Pipeline

        pipe = self.built_in(
            build_tiny_sd3_pipeline(),
            StableDiffusion3Pipeline,
            dtype,
            memory,
            quantized=SD3_QUANTIZED,
            text_encoders=SD3_TEXT_ENCODERS,
        )
        return self.place(pipe, device, memory)


TINY_SD3 = TinySD3Preset()


def tiny_sd3_backbone(*, seed: int = 0, **overrides: Any) -> SD3Backbone:
    """The tiny SD3 pipeline (CPU, float32) wrapped with the ``tiny-sd3`` settings.

    Args:
        seed: Weight seed of the tiny pipeline.
        **overrides: Generation settings (``height``, ``num_inference_steps`` ...).
    """
    from .._config import build_config

    settings = build_config(
        GenerationSettings,
        {**dataclasses.asdict(TINY_SD3.settings), **overrides},
        owner="backbone tiny-sd3",
    )
    return TINY_SD3.wrap(
        build_tiny_sd3_pipeline(seed=seed), settings, "cpu", "float32", TINY_SD3.model_id
    )
