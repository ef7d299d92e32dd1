"""FLUX pipelines built entirely in code (no download), and the tiny random one for tests.

:func:`build_flux_pipeline` assembles a ``FluxPipeline`` of any size from the real diffusers and
transformers classes (``FluxPipeline``, ``FluxTransformer2DModel``, ``T5EncoderModel``,
``CLIPTextModel``, ``AutoencoderKL``), with tokenizers built from in-memory vocabularies, so
every code path that runs on FLUX.1-dev runs on it too. Two models call it with their sizes:
the ``tiny-random`` preset here (random weights; its images are noise: it checks mechanics, not
quality) and the toy world's model (:mod:`slim_leakage.toy.model`, trained).
"""

from __future__ import annotations

import dataclasses
import string
from collections.abc import Iterable, Sequence
from typing import Any

from .base import BUILT_IN, GenerationSettings, Preset

#: Words given their own SentencePiece piece; anything else is spelt from single characters.
COMMON_WORDS = [
    "a",
    "an",
    "the",
    "and",
    "in",
    "on",
    "of",
    "with",
    "while",
    "are",
    "is",
    "to",
    "at",
    "by",
    "near",
    "each",
    "other",
    "together",
    "its",
    "their",
    "sitting",
    "standing",
    "running",
    "playing",
    "field",
    "farm",
    "forest",
    "river",
    "garden",
    "table",
    "bowl",
    "kitchen",
    "cow",
    "horse",
    "cat",
    "cheetah",
    "dog",
    "fox",
    "bear",
    "lion",
    "tiger",
    "owl",
    "eagle",
    "bat",
]

_CHARS = string.ascii_letters + string.digits + ",.'-!?:;()&/\""


def make_t5_tokenizer(words: Iterable[str] = ()):
    """A SentencePiece (unigram) T5 tokenizer over whole-word pieces plus single characters.

    Any text tokenizes (unknown words are spelt out), and offsets are exact, so entity spans
    can be found as on the real T5 tokenizer.
    """
    from transformers import T5Tokenizer

    pieces: list[tuple[str, float]] = [
        ("<pad>", 0.0),
        ("</s>", 0.0),
        ("<unk>", 0.0),
        ("\u2581", -2.0),
    ]
    seen = {p for p, _ in pieces}
    for word in list(COMMON_WORDS) + [w for w in words]:
        for form in (word, word.capitalize()):
            piece = "\u2581" + form
            if piece not in seen:
                seen.add(piece)
                pieces.append((piece, -1.0))
    for ch in _CHARS:
        for piece, score in (("\u2581" + ch, -3.0), (ch, -4.0)):
            if piece not in seen:
                seen.add(piece)
                pieces.append((piece, score))
    return T5Tokenizer(vocab=pieces, extra_ids=0)


def make_clip_tokenizer():
    """A character-level CLIP BPE tokenizer (77 tokens, as FLUX's CLIP)."""
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in _CHARS.lower():
        for form in (ch, ch + "</w>"):
            vocab.setdefault(form, len(vocab))
    return CLIPTokenizer(
        vocab=vocab,
        merges=[],
        model_max_length=77,
        bos_token="<|startoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )


@dataclasses.dataclass(frozen=True)
class FluxSizes:
    """Sizes of a FLUX pipeline built in code; the defaults are the tiny-random pipeline's.

    Attributes:
        num_layers: Double-stream blocks.
        num_single_layers: Single-stream blocks.
        num_attention_heads: Attention heads.
        attention_head_dim: Head width.
        axes_dims_rope: RoPE axes (text/batch, row, column), summing to the head width;
            ``None`` gives ``(d // 4, d // 4, d - 2 * (d // 4))``.
        in_channels: Transformer input channels: 4 x the autoencoder's latent channels, since
            FLUX packs 2x2 latent pixels into one token.
        text_dim: T5 width, which is the transformer's joint attention dim.
        text_layers: T5 transformer layers (0: token embeddings and the final norm only).
        text_heads: T5 attention heads.
        text_kv: T5 key/value width per head.
        text_ff: T5 feed-forward width.
        clip_dim: CLIP width and projection, which is the transformer's pooled projection dim.
        clip_layers: CLIP transformer layers.
        clip_heads: CLIP attention heads.
        clip_ff: CLIP feed-forward width.
        guidance_embeds: Whether the transformer embeds the guidance scale (as FLUX.1-dev).
    """

    num_layers: int = 1
    num_single_layers: int = 1
    num_attention_heads: int = 2
    attention_head_dim: int = 16
    axes_dims_rope: tuple[int, int, int] | None = None
    in_channels: int = 4
    text_dim: int = 32
    text_layers: int = 2
    text_heads: int = 4
    text_kv: int = 8
    text_ff: int = 37
    clip_dim: int = 32
    clip_layers: int = 2
    clip_heads: int = 4
    clip_ff: int = 37
    guidance_embeds: bool = False

    def rope_axes(self) -> list[int]:
        """The RoPE axes given to the transformer."""
        if self.axes_dims_rope is not None:
            return list(self.axes_dims_rope)
        rope = self.attention_head_dim // 4
        return [rope, rope, self.attention_head_dim - 2 * rope]


def flux_autoencoder(
    block_out_channels: Sequence[int], latent_channels: int, norm_num_groups: int, **options
):
    """An ``AutoencoderKL`` as FLUX pipelines built in code use it: RGB in and out, one down and
    one up block per width (each extra block halves the latent size), no quantisation convs,
    latents neither shifted nor scaled.

    Args:
        block_out_channels: Width of each block.
        latent_channels: Latent channels.
        norm_num_groups: Group-norm groups.
        **options: Further ``AutoencoderKL`` arguments (``sample_size``, ...).
    """
    from diffusers import AutoencoderKL

    n = len(block_out_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=tuple(block_out_channels),
        latent_channels=latent_channels,
        norm_num_groups=norm_num_groups,
        use_quant_conv=False,
        use_post_quant_conv=False,
        shift_factor=0.0,
        scaling_factor=1.0,
        **options,
    )


def build_flux_pipeline(
    sizes: FluxSizes = FluxSizes(),
    *,
    seed: int = 0,
    words: Iterable[str] = (),
    vae: Any = None,
):
    """Build a ``FluxPipeline`` of the given sizes from the real diffusers and transformers
    classes, with random weights and in-memory tokenizers (no download).

    The weights depend only on ``seed`` and ``sizes``: the modules are built in a fixed order
    (transformer, CLIP, T5, then the autoencoder) under a forked, seeded torch generator, so the
    caller's random state is untouched. Every module is put in eval mode.

    Args:
        sizes: Model sizes.
        seed: Seed for the weights.
        words: Extra whole-word pieces for the T5 tokenizer.
        vae: The autoencoder: a module to use as it is, a zero-argument callable that builds
            one (called under the seed, last), or ``None`` for the tiny one-block autoencoder
            with one latent channel.
    """
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    t5_tok = make_t5_tokenizer(words)
    clip_tok = make_clip_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = FluxTransformer2DModel(
            patch_size=1,
            in_channels=sizes.in_channels,
            num_layers=sizes.num_layers,
            num_single_layers=sizes.num_single_layers,
            attention_head_dim=sizes.attention_head_dim,
            num_attention_heads=sizes.num_attention_heads,
            joint_attention_dim=sizes.text_dim,
            pooled_projection_dim=sizes.clip_dim,
            axes_dims_rope=sizes.rope_axes(),
            guidance_embeds=sizes.guidance_embeds,
        )
        clip = CLIPTextModel(
            CLIPTextConfig(
                hidden_size=sizes.clip_dim,
                intermediate_size=sizes.clip_ff,
                num_attention_heads=sizes.clip_heads,
                num_hidden_layers=sizes.clip_layers,
                vocab_size=len(clip_tok),
                projection_dim=sizes.clip_dim,
                max_position_embeddings=77,
                bos_token_id=0,
                eos_token_id=1,
                pad_token_id=1,
            )
        )
        t5 = T5EncoderModel(
            T5Config(
                d_model=sizes.text_dim,
                d_kv=sizes.text_kv,
                d_ff=sizes.text_ff,
                num_layers=sizes.text_layers,
                num_heads=sizes.text_heads,
                relative_attention_num_buckets=8,
                vocab_size=len(t5_tok),
                dropout_rate=0.0,
            )
        )
        if vae is None:
            vae = flux_autoencoder((4,), latent_channels=1, norm_num_groups=1)
        elif callable(vae) and not isinstance(vae, torch.nn.Module):
            vae = vae()
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


def build_tiny_flux_pipeline(
    *,
    seed: int = 0,
    num_layers: int = 1,
    num_single_layers: int = 1,
    num_attention_heads: int = 2,
    attention_head_dim: int = 16,
    words: Iterable[str] = (),
    guidance_embeds: bool = False,
):
    """Build a random-weight ``FluxPipeline`` of a few hundred thousand parameters.

    Args:
        seed: Seed for the weights (the same seed gives the same pipeline).
        num_layers: Double-stream blocks.
        num_single_layers: Single-stream blocks.
        num_attention_heads: Heads per attention.
        attention_head_dim: Head dimension (must be divisible by 4 for the RoPE axes).
        words: Extra whole-word pieces for the T5 tokenizer.
        guidance_embeds: Whether the transformer embeds the guidance scale (as FLUX.1-dev).
    """
    sizes = FluxSizes(
        num_layers=num_layers,
        num_single_layers=num_single_layers,
        num_attention_heads=num_attention_heads,
        attention_head_dim=attention_head_dim,
        guidance_embeds=guidance_embeds,
    )
    return build_flux_pipeline(sizes, seed=seed, words=words)


class _TinyRandomPreset(Preset):
    name = "tiny-random"
    family = "flux"
    #: FluxPipeline needs sizes divisible by 2 x its autoencoder's scale (1 here: one block)
    pixel_multiple = 2
    memory_options = True
    model_id = BUILT_IN + "tiny-random-flux"
    dtype = "float32"
    settings = GenerationSettings(
        height=32, width=32, num_inference_steps=4, guidance_scale=3.5, max_sequence_length=256
    )
    description = "random-weight FLUX architecture built in code (32x32, 4 steps): mechanics only, images are noise"

    def build(self, *, path: str, device: str, dtype: str, memory=None):
        from diffusers import FluxPipeline

        from .flux import FLUX_QUANTIZED, FLUX_TEXT_ENCODERS

        pipe = self.built_in(
            build_tiny_flux_pipeline(num_layers=2, num_single_layers=2),
            FluxPipeline,
            dtype,
            memory,
            quantized=FLUX_QUANTIZED,
            text_encoders=FLUX_TEXT_ENCODERS,
        )
        return self.place(pipe, device, memory)


TinyRandomPreset = _TinyRandomPreset()
