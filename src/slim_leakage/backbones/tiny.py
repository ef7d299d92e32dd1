"""A tiny random FLUX pipeline built entirely in code (no download), for tests and smoke runs.

It uses the real diffusers and transformers classes (``FluxPipeline``,
``FluxTransformer2DModel``, ``T5EncoderModel``, ``CLIPTextModel``, ``AutoencoderKL``) at toy
sizes, with tokenizers built from in-memory vocabularies, so every code path that runs on
FLUX.1-dev runs here too. Its images are noise: it checks mechanics, not quality.
"""

from __future__ import annotations

import string
from collections.abc import Iterable

from .base import GenerationSettings, Preset

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
    import torch
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        FluxPipeline,
        FluxTransformer2DModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    t5_tok = make_t5_tokenizer(words)
    clip_tok = make_clip_tokenizer()
    rope = attention_head_dim // 4
    axes = [rope, rope, attention_head_dim - 2 * rope]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = FluxTransformer2DModel(
            patch_size=1,
            in_channels=4,
            num_layers=num_layers,
            num_single_layers=num_single_layers,
            attention_head_dim=attention_head_dim,
            num_attention_heads=num_attention_heads,
            joint_attention_dim=32,
            pooled_projection_dim=32,
            axes_dims_rope=axes,
            guidance_embeds=guidance_embeds,
        )
        clip = CLIPTextModel(
            CLIPTextConfig(
                hidden_size=32,
                intermediate_size=37,
                num_attention_heads=4,
                num_hidden_layers=2,
                vocab_size=len(clip_tok),
                projection_dim=32,
                max_position_embeddings=77,
                bos_token_id=0,
                eos_token_id=1,
                pad_token_id=1,
            )
        )
        t5 = T5EncoderModel(
            T5Config(
                d_model=32,
                d_kv=8,
                d_ff=37,
                num_layers=2,
                num_heads=4,
                relative_attention_num_buckets=8,
                vocab_size=len(t5_tok),
                dropout_rate=0.0,
            )
        )
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",),
            up_block_types=("UpDecoderBlock2D",),
            block_out_channels=(4,),
            latent_channels=1,
            norm_num_groups=1,
            use_quant_conv=False,
            use_post_quant_conv=False,
            shift_factor=0.0,
            scaling_factor=1.0,
        )
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


class _TinyRandomPreset(Preset):
    name = "tiny-random"
    family = "flux"
    model_id = "built-in:tiny-random-flux"
    dtype = "float32"
    settings = GenerationSettings(
        height=32, width=32, num_inference_steps=4, guidance_scale=3.5, max_sequence_length=256
    )
    description = "random-weight FLUX architecture built in code (32x32, 4 steps): mechanics only, images are noise"

    def build(self, *, path: str, device: str, dtype: str):
        from .base import torch_dtype

        pipe = build_tiny_flux_pipeline(num_layers=2, num_single_layers=2)
        return pipe.to(device=device, dtype=torch_dtype(dtype))


TinyRandomPreset = _TinyRandomPreset()
