"""Qwen-Image backbones: the ``qwen-image`` preset (real weights) and ``tiny-qwenimage`` (built in
code).

Qwen-Image (``QwenImagePipeline``) is a dual-stream MMDiT: 60 blocks, each attending over
``[text ; image]`` in one softmax, text from the last hidden layer of Qwen2.5-VL-7B-Instruct.
The pipeline wraps the prompt in a chat template (``pipe.prompt_template_encode``: a system
line asking to describe the image, then the prompt as the user turn, then the assistant
header), encodes it, and drops the first ``pipe.prompt_template_encode_start_idx`` tokens (34:
the system turn and ``<|im_start|>user\\n``) before the transformer sees them; the assistant
header after the prompt stays. Classifier-free guidance is "true CFG": a second transformer call
with a negative prompt, only when ``true_cfg_scale > 1`` *and* a negative prompt is given, so
:class:`QwenImageBackbone` passes the model card's ``negative_prompt=" "``.

The tiny pipeline uses the real classes (``QwenImagePipeline``, ``QwenImageTransformer2DModel``,
``AutoencoderKLQwenImage``, ``Qwen2_5_VLForConditionalGeneration``, ``Qwen2Tokenizer``) at toy
sizes, with a byte-level BPE vocabulary built in memory whose merges make the template's system
turn exactly 34 tokens, as on the real tokenizer. Its images are noise: it checks mechanics.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from .base import BUILT_IN, Backbone, GenerationSettings, HubPreset
from .memory import MemoryPlan
from .memory_table import COMPONENTS
from .tiny import COMMON_WORDS

#: Components a quantisation scheme applies to: the 20B transformer and the 7B text encoder.
QWEN_QUANTIZED = ("transformer", "text_encoder")

#: The words of ``QwenImagePipeline.prompt_template_encode`` (diffusers 0.42.1), given whole
#: pieces in the tiny vocabulary so the dropped prefix has the real tokenizer's 34 tokens.
TEMPLATE_WORDS = (
    (
        "Describe the image by detailing the color, shape, size, texture, quantity, text, spatial "
        "relationships of the objects and background: system user assistant"
    )
    .replace(",", "")
    .replace(":", "")
)

#: Special tokens of the Qwen2 chat format (Qwen2.5-VL's tokenizer_config.json).
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


def byte_level_alphabet() -> dict[int, str]:
    """The byte -> printable character table of byte-level BPE (GPT-2's scheme, which Qwen2
    uses): printable Latin-1 bytes stand for themselves, the others are shifted past 255."""
    keep = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("\u00a1"), ord("\u00ac") + 1))
        + list(range(ord("\u00ae"), ord("\u00ff") + 1))
    )
    table = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def make_qwen2_tokenizer(words: Iterable[str] = (), *, chat_template: str | None = None):
    """A byte-level BPE ``Qwen2Tokenizer`` from an in-memory vocabulary.

    Every byte has a token (so any text tokenizes, with exact character offsets); the template
    words, :data:`~slim_leakage.backbones.tiny.COMMON_WORDS` and ``words`` get whole-word pieces,
    both with a leading space (``Ġword``, ranked first) and without.

    Args:
        words: Extra words to give their own piece.
        chat_template: A Jinja chat template to attach (Z-Image applies one).
    """
    from transformers import AddedToken, Qwen2Tokenizer

    alphabet = byte_level_alphabet()
    vocab: dict[str, int] = {}
    for tok in SPECIAL_TOKENS:
        vocab[tok] = len(vocab)
    for b in range(256):
        vocab.setdefault(alphabet[b], len(vocab))
    space = alphabet[ord(" ")]
    merges: list[tuple[str, str]] = []
    every = list(dict.fromkeys([*TEMPLATE_WORDS.split(), *COMMON_WORDS, *words]))

    def chain(form: str) -> None:
        current = form[0]
        for ch in form[1:]:
            merged = current + ch
            if merged not in vocab:
                vocab[merged] = len(vocab)
                merges.append((current, ch))
            current = merged

    # spaced forms first: their merges all start with Ġ, so they win over the plain chains
    for word in every:
        chain(space + word)
    # then the chat-format words (unspaced after a newline), before any other plain chain
    for word in ["system", "user", "assistant", *every]:
        chain(word)
    tok = Qwen2Tokenizer(vocab=vocab, merges=merges)
    tok.add_special_tokens(
        {"additional_special_tokens": [AddedToken(t, special=True) for t in SPECIAL_TOKENS[1:]]}
    )
    if chat_template is not None:
        tok.chat_template = chat_template
    return tok


def build_tiny_qwenimage_pipeline(
    *,
    seed: int = 0,
    num_layers: int = 2,
    num_attention_heads: int = 2,
    attention_head_dim: int = 16,
    words: Iterable[str] = (),
):
    """Build a random-weight ``QwenImagePipeline`` of a few hundred thousand parameters.

    The autoencoder does not downsample (``vae_scale_factor`` 1) and the transformer packs 2x2
    latent pixels per token, so an ``SxS`` image has ``(S/2)^2`` image tokens.

    Args:
        seed: Seed for the weights (the same seed gives the same pipeline).
        num_layers: Dual-stream blocks.
        num_attention_heads: Heads per attention.
        attention_head_dim: Head width, split over the RoPE axes (frame, row, column) as
            ``(d - 2 * (d // 4), d // 4, d // 4)``.
        words: Extra whole-word pieces for the tokenizer.
    """
    import torch
    from diffusers import (
        AutoencoderKLQwenImage,
        FlowMatchEulerDiscreteScheduler,
        QwenImagePipeline,
        QwenImageTransformer2DModel,
    )
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    tokenizer = make_qwen2_tokenizer(words)
    text_dim, z_dim = 16, 4
    rope = attention_head_dim // 4
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = QwenImageTransformer2DModel(
            patch_size=2,
            in_channels=4 * z_dim,
            out_channels=z_dim,
            num_layers=num_layers,
            attention_head_dim=attention_head_dim,
            num_attention_heads=num_attention_heads,
            joint_attention_dim=text_dim,
            axes_dims_rope=(attention_head_dim - 2 * rope, rope, rope),
        )
        # ids of the vision tokens must lie inside the vocabulary; text never uses them
        n = len(tokenizer)
        text_encoder = Qwen2_5_VLForConditionalGeneration(
            Qwen2_5_VLConfig(
                text_config={
                    "hidden_size": text_dim,
                    "intermediate_size": 24,
                    "num_hidden_layers": 2,
                    "num_attention_heads": 2,
                    "num_key_value_heads": 1,
                    "vocab_size": n + 3,
                    "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default"},
                    "rope_theta": 1000000.0,
                    "bos_token_id": 0,
                    "eos_token_id": 0,
                    "pad_token_id": 0,
                },
                vision_config={
                    "depth": 1,
                    "hidden_size": 16,
                    "intermediate_size": 16,
                    "num_heads": 2,
                    "out_hidden_size": text_dim,
                },
                vocab_size=n + 3,
                bos_token_id=0,
                eos_token_id=0,
                vision_start_token_id=n,
                vision_end_token_id=n + 1,
                vision_token_id=n + 2,
                image_token_id=n + 2,
                video_token_id=n + 2,
            )
        )
        vae = AutoencoderKLQwenImage(
            base_dim=8,
            z_dim=z_dim,
            dim_mult=[1],
            num_res_blocks=1,
            temperal_downsample=[],
            latents_mean=[0.0] * z_dim,
            latents_std=[1.0] * z_dim,
        )
    for module in (transformer, text_encoder, vae):
        module.eval()
    return QwenImagePipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
    )


class QwenImageBackbone(Backbone):
    """A Qwen-Image pipeline with the model card's call: true CFG with a negative prompt.

    Args:
        negative_prompt: The negative prompt of the unconditional pass (``" "``, the model
            card's; true CFG runs only when one is given).
        **kwargs: As :class:`~slim_leakage.backbones.base.Backbone`.
    """

    def __init__(self, *, negative_prompt: str = " ", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.negative_prompt = negative_prompt

    @property
    def tokenizer(self):
        """The Qwen2 tokenizer (its tokens, past the dropped template prefix, are the text
        part of every joint attention)."""
        return self.pipe.tokenizer

    def describe(self) -> dict:
        """Provenance, including the negative prompt of true CFG."""
        out = super().describe()
        out["negative_prompt"] = self.negative_prompt
        return out

    def pipe_kwargs(self, **overrides) -> dict:
        """Pipeline keyword arguments: ``true_cfg_scale`` and the negative prompt instead of
        ``guidance_scale`` (Qwen-Image is not guidance-distilled: the pipeline ignores it)."""
        s = self.settings
        kwargs: dict[str, Any] = {
            "height": s.height,
            "width": s.width,
            "num_inference_steps": s.num_inference_steps,
            "max_sequence_length": s.max_sequence_length,
            "true_cfg_scale": s.true_cfg_scale,
        }
        if s.true_cfg_scale > 1:
            kwargs["negative_prompt"] = self.negative_prompt
        kwargs.update(overrides)
        return kwargs

    def generate(self, prompts, seeds, **overrides) -> list:
        """As :meth:`Backbone.generate`; one negative prompt per prompt under true CFG."""
        if "negative_prompt" not in overrides and self.settings.true_cfg_scale > 1:
            overrides["negative_prompt"] = [self.negative_prompt] * len(prompts)
        return super().generate(prompts, seeds, **overrides)


class QwenImagePreset(HubPreset):
    """A Qwen-Image checkpoint in diffusers format from the hub or a local folder."""

    family = "qwenimage"

    def build(self, *, path: str, device: str, dtype: str, memory: MemoryPlan | None = None):
        """Load with ``QwenImagePipeline.from_pretrained`` and place it."""
        from diffusers import QwenImagePipeline

        pipe = self.from_pretrained(
            QwenImagePipeline,
            path,
            dtype,
            hint=(
                f"Download {self.model_id} (diffusers format) and pass "
                "--backbone-path /local/folder, or check the hub id."
            ),
            memory=memory,
            quantized=QWEN_QUANTIZED,
            text_encoders=("text_encoder",),
        )
        return self.place(pipe, device, memory)

    def load(self, *, path=None, device=None, dtype=None, **overrides) -> QwenImageBackbone:
        """Build the pipeline and wrap it as a :class:`QwenImageBackbone`."""
        plain = super().load(path=path, device=device, dtype=dtype, **overrides)
        return QwenImageBackbone(**_fields(plain))


def _fields(plain: Backbone) -> dict:
    return {
        "name": plain.name,
        "family": plain.family,
        "pipe": plain.pipe,
        "settings": plain.settings,
        "device": plain.device,
        "dtype": plain.dtype,
        "model_id": plain.model_id,
        "memory": plain.memory,
    }


# Settings from the Qwen-Image model card (huggingface.co/Qwen/Qwen-Image, "Quick Start"):
# 1328x1328 for 1:1, num_inference_steps=50, true_cfg_scale=4.0, negative_prompt=" ", bfloat16;
# the text length is QwenImagePipeline's default max_sequence_length (512).
QWEN_IMAGE = QwenImagePreset(
    "qwen-image",
    "Qwen/Qwen-Image",
    GenerationSettings(
        height=1328,
        width=1328,
        num_inference_steps=50,
        guidance_scale=0.0,
        max_sequence_length=512,
        true_cfg_scale=4.0,
    ),
    "bfloat16",
    "Qwen-Image 20B MMDiT, 1328x1328, 50 steps, true CFG 4.0 (negative prompt ' '), "
    "Qwen2.5-VL text length 512, bf16 (model card)",
    components=COMPONENTS["qwen-image"],
)


class TinyQwenImagePreset(QwenImagePreset):
    """``tiny-qwenimage``: the tiny pipeline built in code (random weights, no download) at
    32x32 (a 16x16 token grid, see :func:`build_tiny_qwenimage_pipeline`), 3 steps, true CFG
    4.0 as the real preset, text length 64."""

    def __init__(self) -> None:
        super().__init__(
            "tiny-qwenimage",
            BUILT_IN + "tiny-random-qwenimage",
            GenerationSettings(
                height=32,
                width=32,
                num_inference_steps=3,
                guidance_scale=0.0,
                max_sequence_length=64,
                true_cfg_scale=4.0,
            ),
            "float32",
            "random-weight Qwen-Image architecture built in code (32x32, 3 steps, true CFG): "
            "mechanics only, images are noise",
        )

    def build(self, *, path: str, device: str, dtype: str, memory: MemoryPlan | None = None):
        """Build the tiny pipeline (``path`` is not read: the weights are built in code)."""
        from diffusers import QwenImagePipeline

        pipe = self.built_in(
            build_tiny_qwenimage_pipeline(),
            QwenImagePipeline,
            dtype,
            memory,
            quantized=QWEN_QUANTIZED,
            text_encoders=("text_encoder",),
        )
        return self.place(pipe, device, memory)


TINY_QWENIMAGE = TinyQwenImagePreset()


def tiny_qwenimage_backbone(*, seed: int = 0, **overrides) -> QwenImageBackbone:
    """The tiny pipeline (CPU, float32) wrapped with the ``tiny-qwenimage`` settings.

    Args:
        seed: Weight seed.
        **overrides: Generation settings (``height``, ``true_cfg_scale`` ...).
    """
    from .._config import build_config

    settings = build_config(
        GenerationSettings,
        {**dataclasses.asdict(TINY_QWENIMAGE.settings), **overrides},
        owner="backbone tiny-qwenimage",
    )
    return QwenImageBackbone(
        name=TINY_QWENIMAGE.name,
        family="qwenimage",
        pipe=build_tiny_qwenimage_pipeline(seed=seed),
        settings=settings,
        device="cpu",
        dtype="float32",
        model_id=TINY_QWENIMAGE.model_id,
    )
