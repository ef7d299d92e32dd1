"""SANA backbones: the ``sana`` preset (real weights) and ``tiny-sana`` (built in code).

SANA differs from FLUX in ways methods must know about: its self-attention is linear (ReLU
kernels, no softmax matrix), text enters through a separate softmax cross-attention to Gemma-2
hidden states, classifier-free guidance is batched as ``[uncond, cond]``, and the pipeline
lowercases the prompt, prepends a long "complex human instruction" and then keeps the first
token plus the last ``max_sequence_length - 1`` tokens. :class:`SanaBackbone` records those
prompt-processing settings so methods can remap entity spans exactly.

The tiny pipeline uses the real diffusers and transformers classes (``SanaPipeline``,
``SanaTransformer2DModel``, ``AutoencoderDC``, ``Gemma2Model``, ``GemmaTokenizer``) at toy
sizes with an in-memory BPE vocabulary, so it runs the same code paths offline in well under a
second. Its images are noise: it checks mechanics, not quality.
"""

from __future__ import annotations

import dataclasses
import string
from collections.abc import Iterable, Sequence
from typing import Any

from ..errors import ConfigError
from .base import BUILT_IN, Backbone, GenerationSettings, Preset
from .memory import MemoryPlan
from .memory_table import COMPONENTS
from .tiny import COMMON_WORDS

#: SANA components a quantisation scheme applies to: the transformer and the Gemma-2 encoder.
SANA_QUANTIZED = ("transformer", "text_encoder")

#: A short instruction for the tiny pipeline: it exercises the same prefix-and-select path as
#: SANA's own (much longer) default instruction without costing sequence length.
TINY_INSTRUCTION: tuple[str, ...] = ("describe the scene:", "keep it short.")

_GEMMA_CHARS = string.ascii_lowercase + string.digits + ",.'-!?:;()&/\"" + string.ascii_uppercase


def make_gemma_tokenizer(words: Iterable[str] = ()):
    """A BPE ``GemmaTokenizer`` over single characters plus whole-word merges.

    Words are merged as ``"▁word"`` pieces (a space before them, as in Gemma's vocabulary);
    anything else is spelt from characters, and bytes outside the vocabulary fall back to
    ``<0xNN>`` tokens, so every text tokenizes with exact character offsets. A ``<bos>`` token
    is prepended, as Gemma-2 does.

    Args:
        words: Extra words to give their own piece (lowercase; SANA lowercases prompts).
    """
    from transformers import GemmaTokenizer

    vocab: dict[str, int] = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<mask>": 4}
    for ch in ["\u2581", "\n", *_GEMMA_CHARS]:
        vocab.setdefault(ch, len(vocab))
    for byte in range(256):
        vocab.setdefault(f"<0x{byte:02X}>", len(vocab))
    merges: list[tuple[str, str]] = []
    for word in [*COMMON_WORDS, *words]:
        for form in ("\u2581" + word.lower(), word.lower()):
            current = form[0]
            for ch in form[1:]:
                merged = current + ch
                if merged not in vocab:
                    vocab[merged] = len(vocab)
                    merges.append((current, ch))
                current = merged
    return GemmaTokenizer(vocab=vocab, merges=merges, add_bos_token=True, add_eos_token=False)


def build_tiny_sana_pipeline(
    *,
    seed: int = 0,
    num_layers: int = 2,
    num_attention_heads: int = 2,
    attention_head_dim: int = 8,
    num_cross_attention_heads: int = 2,
    cross_attention_head_dim: int = 8,
    words: Iterable[str] = (),
):
    """Build a random-weight ``SanaPipeline`` of about a hundred thousand parameters.

    The VAE compresses by 2 (two DC-AE stages), so an ``SxS`` image has ``(S/2)^2`` image
    tokens; the flow-matching scheduler keeps a few steps cheap.

    Args:
        seed: Seed for the weights (the same seed gives the same pipeline).
        num_layers: Transformer blocks (each has linear self-attention ``attn1`` and softmax
            cross-attention ``attn2``).
        num_attention_heads: Heads of the linear self-attention.
        attention_head_dim: Head dimension of the self-attention.
        num_cross_attention_heads: Heads of the cross-attention to text.
        cross_attention_head_dim: Head dimension of the cross-attention.
        words: Extra whole-word pieces for the Gemma tokenizer.
    """
    import torch
    from diffusers import (
        AutoencoderDC,
        FlowMatchEulerDiscreteScheduler,
        SanaPipeline,
        SanaTransformer2DModel,
    )
    from transformers import Gemma2Config, Gemma2Model

    tokenizer = make_gemma_tokenizer(words)
    inner = num_attention_heads * attention_head_dim
    if num_cross_attention_heads * cross_attention_head_dim != inner:
        raise ConfigError(
            f"Tiny SANA: cross-attention width {num_cross_attention_heads}x"
            f"{cross_attention_head_dim} must equal the self-attention width {inner}.",
            hint="Choose heads and head dimensions with equal products.",
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        text_encoder = Gemma2Model(
            Gemma2Config(
                vocab_size=len(tokenizer),
                hidden_size=32,
                intermediate_size=37,
                num_hidden_layers=2,
                num_attention_heads=2,
                num_key_value_heads=1,
                head_dim=16,
                max_position_embeddings=1024,
                pad_token_id=0,
                bos_token_id=2,
                eos_token_id=1,
            )
        )
        transformer = SanaTransformer2DModel(
            in_channels=4,
            out_channels=4,
            num_attention_heads=num_attention_heads,
            attention_head_dim=attention_head_dim,
            num_layers=num_layers,
            num_cross_attention_heads=num_cross_attention_heads,
            cross_attention_head_dim=cross_attention_head_dim,
            cross_attention_dim=inner,
            caption_channels=32,
            sample_size=16,
            patch_size=1,
        )
        vae = AutoencoderDC(
            in_channels=3,
            latent_channels=4,
            attention_head_dim=2,
            encoder_block_types=("ResBlock", "ResBlock"),
            decoder_block_types=("ResBlock", "ResBlock"),
            encoder_block_out_channels=(8, 8),
            decoder_block_out_channels=(8, 8),
            encoder_layers_per_block=(1, 1),
            decoder_layers_per_block=(1, 1),
            encoder_qkv_multiscales=((), ()),
            decoder_qkv_multiscales=((), ()),
            decoder_norm_types="rms_norm",
            decoder_act_fns="silu",
            scaling_factor=1.0,
        )
    for module in (text_encoder, transformer, vae):
        module.eval()
    return SanaPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=vae,
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
    )


class SanaBackbone(Backbone):
    """A SANA pipeline plus the prompt-processing settings its methods must reproduce.

    Args:
        complex_human_instruction: The instruction lines SANA prepends to every prompt
            (``None``: the pipeline's own default; ``()``: no instruction).
        use_resolution_binning: Whether SANA snaps the size to its aspect-ratio bins.
        **kwargs: As :class:`~slim_leakage.backbones.base.Backbone`.
    """

    takes_text_length = True

    def __init__(
        self,
        *,
        complex_human_instruction: Sequence[str] | None = None,
        use_resolution_binning: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.complex_human_instruction = (
            None if complex_human_instruction is None else tuple(complex_human_instruction)
        )
        self.use_resolution_binning = use_resolution_binning

    @property
    def tokenizer(self):
        """The Gemma tokenizer (its tokens are the keys of every cross-attention)."""
        return self.pipe.tokenizer

    @property
    def instruction(self) -> tuple[str, ...]:
        """The instruction lines actually prepended (resolving the pipeline default)."""
        if self.complex_human_instruction is not None:
            return self.complex_human_instruction
        import inspect

        default = inspect.signature(type(self.pipe).__call__).parameters.get(
            "complex_human_instruction"
        )
        value = None if default is None else default.default
        return tuple(value or ())

    def describe(self) -> dict:
        """Provenance, including the prompt-processing settings."""
        out = super().describe()
        out["complex_human_instruction"] = list(self.instruction)
        out["use_resolution_binning"] = self.use_resolution_binning
        return out

    def pipe_kwargs(self, **overrides) -> dict:
        """Pipeline keyword arguments: settings plus text length, instruction and binning."""
        kwargs = super().pipe_kwargs()
        kwargs["complex_human_instruction"] = list(self.instruction) or None
        kwargs["use_resolution_binning"] = self.use_resolution_binning
        kwargs.update(overrides)
        return kwargs


class SanaPreset(Preset):
    """A SANA checkpoint in diffusers format from the hub or a local folder.

    Attributes:
        complex_human_instruction: ``None`` keeps the pipeline's default instruction.
        use_resolution_binning: Passed to the pipeline.
    """

    family = "sana"
    memory_options = True

    def __init__(
        self,
        name: str,
        model_id: str,
        settings: GenerationSettings,
        dtype: str,
        description: str,
        *,
        complex_human_instruction: Sequence[str] | None = None,
        use_resolution_binning: bool = True,
        components: tuple = (),
    ) -> None:
        self.name = name
        self.model_id = model_id
        self.settings = settings
        self.dtype = dtype
        self.description = description
        self.components = components
        self.complex_human_instruction = complex_human_instruction
        self.use_resolution_binning = use_resolution_binning

    def build(self, *, path: str, device: str, dtype: str, memory: MemoryPlan | None = None):
        """Load the pipeline with ``SanaPipeline.from_pretrained`` and place it."""
        from diffusers import SanaPipeline

        pipe = self.from_pretrained(
            SanaPipeline,
            path,
            dtype,
            hint=(
                f"Download {self.model_id} (diffusers format) and pass "
                "--backbone-path /local/folder, or check the hub id."
            ),
            memory=memory,
            quantized=SANA_QUANTIZED,
            text_encoders=("text_encoder",),
        )
        return self.place(pipe, device, memory)

    def load(self, *, path=None, device=None, dtype=None, **overrides) -> SanaBackbone:
        """Build the pipeline and wrap it as a :class:`SanaBackbone`."""
        plain = super().load(path=path, device=device, dtype=dtype, **overrides)
        backbone = self._wrap(plain.pipe, plain.settings, plain.device, plain.dtype, plain.model_id)
        backbone.memory = plain.memory
        backbone.revision, backbone.commit = plain.revision, plain.commit
        return backbone

    def from_pipeline(
        self, pipe, *, device: str = "cpu", dtype: str = "float32", model_id: str = "", **overrides
    ) -> SanaBackbone:
        """Wrap an already built ``SanaPipeline`` (your own, or the tiny one) with this preset.

        Args:
            pipe: A ``SanaPipeline``.
            device: Where it lives.
            dtype: Its dtype name.
            model_id: What to record as the weights.
            **overrides: Generation settings to override (``height``, ``num_inference_steps``,
                ...), plus ``complex_human_instruction`` and ``use_resolution_binning``.
        """
        from .._config import build_config

        instruction = overrides.pop("complex_human_instruction", self.complex_human_instruction)
        binning = overrides.pop("use_resolution_binning", self.use_resolution_binning)
        settings = build_config(
            GenerationSettings,
            {**dataclasses.asdict(self.settings), **overrides},
            owner=f"backbone {self.name}",
        )
        return self._wrap(
            pipe,
            settings,
            device,
            dtype,
            model_id or self.model_id,
            instruction=instruction,
            binning=binning,
        )

    def _wrap(self, pipe, settings, device, dtype, model_id, *, instruction=..., binning=...):
        return SanaBackbone(
            name=self.name,
            family=self.family,
            pipe=pipe,
            settings=settings,
            device=device,
            dtype=dtype,
            model_id=model_id,
            complex_human_instruction=(
                self.complex_human_instruction if instruction is ... else instruction
            ),
            use_resolution_binning=self.use_resolution_binning if binning is ... else binning,
        )


SANA = SanaPreset(
    "sana",
    "Efficient-Large-Model/Sana_1600M_1024px_diffusers",
    GenerationSettings(
        height=1024, width=1024, num_inference_steps=20, guidance_scale=4.5, max_sequence_length=300
    ),
    "float16",
    "SANA 1.6B at 1024x1024, 20 steps, CFG 4.5, Gemma-2 text length 300, fp16",
    components=COMPONENTS["sana"],
)


class TinySanaPreset(SanaPreset):
    """The ``tiny-sana`` preset: the tiny SANA pipeline built in code (random weights, no
    download) at 32x32, 3 steps, with a short instruction and no resolution binning."""

    def __init__(self) -> None:
        super().__init__(
            "tiny-sana",
            BUILT_IN + "tiny-random-sana",
            GenerationSettings(
                height=32,
                width=32,
                num_inference_steps=3,
                guidance_scale=4.5,
                max_sequence_length=24,
            ),
            "float32",
            "random-weight SANA architecture built in code (32x32, 3 steps): mechanics only, "
            "images are noise",
            complex_human_instruction=TINY_INSTRUCTION,
            use_resolution_binning=False,
        )

    def build(self, *, path: str, device: str, dtype: str, memory: MemoryPlan | None = None):
        """Build the tiny pipeline (``path`` is not read: the weights are built in code)."""
        from diffusers import SanaPipeline

        pipe = self.built_in(
            build_tiny_sana_pipeline(),
            SanaPipeline,
            dtype,
            memory,
            quantized=SANA_QUANTIZED,
            text_encoders=("text_encoder",),
        )
        return self.place(pipe, device, memory)


TINY_SANA = TinySanaPreset()


def tiny_sana_backbone(*, seed: int = 0, **overrides) -> SanaBackbone:
    """The tiny SANA pipeline wrapped through the ``sana`` preset (CPU, float32), with the
    ``tiny-sana`` preset's settings, instruction and binning.

    Args:
        seed: Weight seed of the tiny pipeline.
        **overrides: Generation settings (``height`` ...), ``complex_human_instruction``.
    """
    pipe = build_tiny_sana_pipeline(seed=seed)
    values = {
        **dataclasses.asdict(TINY_SANA.settings),
        "complex_human_instruction": TINY_SANA.complex_human_instruction,
        "use_resolution_binning": TINY_SANA.use_resolution_binning,
        **overrides,
    }
    return SANA.from_pipeline(pipe, model_id=TINY_SANA.model_id, **values)
