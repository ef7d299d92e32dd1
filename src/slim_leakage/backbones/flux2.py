"""FLUX.2 backbones: ``flux2-dev`` and ``flux2-klein`` (real weights), ``tiny-flux2`` (in code).

FLUX.2 keeps FLUX.1's layout (``[text ; image]`` in every block, double-stream blocks then
single-stream ones, RoPE) with new parts methods must know: the text is the hidden states of a
chat model, read from three of its layers and concatenated, over the *whole* chat-templated
sequence, template tokens included (``Flux2Pipeline._get_mistral_3_small_prompt_embeds``: Mistral
Small 3.1 with a system message; ``Flux2KleinPipeline._get_qwen3_prompt_embeds``: Qwen3 with
``enable_thinking=False``), padded to ``max_sequence_length`` (512); the single-stream blocks
fuse the attention and MLP projections (``Flux2ParallelSelfAttnProcessor``); [dev] embeds the
guidance, [klein] base runs CFG as a second transformer call, distilled [klein] has none.

The tiny pipeline is a ``Flux2KleinPipeline`` from the real classes (``Flux2Transformer2DModel``,
``Qwen3ForCausalLM``, ``AutoencoderKLFlux2``) at toy sizes with a byte-level BPE Qwen2 tokenizer
and a Qwen3-style chat template built in code. Its images are noise: it checks mechanics.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from .base import BUILT_IN, Backbone, GenerationSettings, HubPreset
from .memory import MemoryPlan
from .memory_table import COMPONENTS
from .tiny import COMMON_WORDS

FLUX2_QUANTIZED = ("transformer", "text_encoder")
FLUX2_TEXT_ENCODERS = ("text_encoder",)

#: The part of Qwen3's chat template the FLUX.2 [klein] pipeline exercises: one user turn, the
#: assistant header, and the empty thinking block ``enable_thinking=False`` writes (Qwen3's
#: tokenizer_config.json chat_template, reduced to these cases).
QWEN3_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}{%- endif %}"
)


def make_qwen_tokenizer(words: Iterable[str] = (), *, chat_template: str = QWEN3_TEMPLATE):
    """A byte-level BPE ``Qwen2Tokenizer`` (Qwen3's class) over single bytes plus whole-word
    merges (``"Ġword"``, a space before the word as in Qwen's vocabulary), with the chat special
    tokens and a chat template. Every text tokenizes, with exact character offsets.

    Args:
        words: Extra words to give their own token.
        chat_template: The Jinja chat template (default: the Qwen3 template's single-turn part).
    """
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import Qwen2Tokenizer

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
    vocab: dict[str, int] = {s: i for i, s in enumerate(specials)}
    for ch in sorted(ByteLevel.alphabet()):
        vocab.setdefault(ch, len(vocab))
    merges: list[tuple[str, str]] = []
    for word in [*COMMON_WORDS, "user", "assistant", *words]:
        for form in ("\u0120" + word, word, "\u0120" + word.capitalize()):
            current = form[0]
            for ch in form[1:]:
                merged = current + ch
                if merged not in vocab:
                    vocab[merged] = len(vocab)
                    merges.append((current, ch))
                current = merged
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges)
    tokenizer.add_special_tokens({"additional_special_tokens": specials[1:]})
    tokenizer.chat_template = chat_template
    return tokenizer


def build_tiny_flux2_pipeline(
    *,
    seed: int = 0,
    num_layers: int = 1,
    num_single_layers: int = 2,
    num_attention_heads: int = 2,
    attention_head_dim: int = 16,
    words: Iterable[str] = (),
    is_distilled: bool = False,
):
    """Build a random-weight ``Flux2KleinPipeline`` of a few hundred thousand parameters.

    The Qwen3 encoder has 28 layers (narrow) so the pipeline's default
    ``text_encoder_out_layers=(9, 18, 27)`` exist, and the transformer's text width is three of
    its hidden sizes, as on FLUX.2 [klein]. The autoencoder does not downsample and has four
    latent channels, which the pipeline packs 2x2 into 16 transformer channels.

    Args:
        seed: Seed for the weights.
        num_layers: Double-stream blocks.
        num_single_layers: Single-stream blocks.
        num_attention_heads: Heads per attention.
        attention_head_dim: Head width (a multiple of 4: four RoPE axes).
        words: Extra whole-word tokens for the tokenizer.
        is_distilled: As [klein] 4B (no CFG) when true; the base model's CFG otherwise.
    """
    import torch
    from diffusers import (
        AutoencoderKLFlux2,
        FlowMatchEulerDiscreteScheduler,
        Flux2KleinPipeline,
        Flux2Transformer2DModel,
    )
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tokenizer = make_qwen_tokenizer(words)
    hidden = 16
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        text_encoder = Qwen3ForCausalLM(
            Qwen3Config(
                vocab_size=len(tokenizer),
                hidden_size=hidden,
                intermediate_size=32,
                num_hidden_layers=28,
                num_attention_heads=2,
                num_key_value_heads=1,
                head_dim=8,
                max_position_embeddings=1024,
                tie_word_embeddings=True,
            )
        )
        rope = attention_head_dim // 4
        transformer = Flux2Transformer2DModel(
            patch_size=1,
            in_channels=16,
            num_layers=num_layers,
            num_single_layers=num_single_layers,
            attention_head_dim=attention_head_dim,
            num_attention_heads=num_attention_heads,
            joint_attention_dim=3 * hidden,
            timestep_guidance_channels=32,
            mlp_ratio=2.0,
            axes_dims_rope=(rope, rope, rope, attention_head_dim - 3 * rope),
            guidance_embeds=False,
        )
        vae = AutoencoderKLFlux2(
            block_out_channels=(4,),
            down_block_types=("DownEncoderBlock2D",),
            up_block_types=("UpDecoderBlock2D",),
            layers_per_block=1,
            latent_channels=4,
            norm_num_groups=1,
            sample_size=32,
        )
    for module in (text_encoder, transformer, vae):
        module.eval()
    return Flux2KleinPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
        is_distilled=is_distilled,
    )


class Flux2Backbone(Backbone):
    """A FLUX.2 pipeline plus its settings; passes the text length to the pipeline."""

    takes_text_length = True

    @property
    def tokenizer(self):
        """The chat model's tokenizer (a processor on [dev]: its text tokenizer)."""
        tok = self.pipe.tokenizer
        return getattr(tok, "tokenizer", tok)


class Flux2Preset(HubPreset):
    """A FLUX.2 checkpoint in diffusers format (hub id or local folder).

    Attributes:
        pipeline: ``Flux2Pipeline`` ([dev], Mistral Small 3.1) or ``Flux2KleinPipeline``
            ([klein], Qwen3).
    """

    family = "flux2"

    def __init__(
        self,
        name: str,
        model_id: str,
        settings: GenerationSettings,
        dtype: str,
        description: str,
        *,
        pipeline: str,
        components: tuple = (),
    ) -> None:
        super().__init__(name, model_id, settings, dtype, description, components=components)
        self.pipeline = pipeline

    def build(self, *, path: str, device: str, dtype: str, memory: MemoryPlan | None = None):
        """Load the pipeline with ``from_pretrained`` and place it."""
        import diffusers

        pipe = self.from_pretrained(
            getattr(diffusers, self.pipeline),
            path,
            dtype,
            hint=(
                f"Accept the licence of {self.model_id} on the Hugging Face hub and run "
                "`hf auth login`, or download it and pass --backbone-path /local/folder."
            ),
            memory=memory,
            quantized=FLUX2_QUANTIZED,
            text_encoders=FLUX2_TEXT_ENCODERS,
        )
        return self.place(pipe, device, memory)

    def load(self, *, path=None, device=None, dtype=None, **overrides) -> Flux2Backbone:
        """Build the pipeline and wrap it as a :class:`Flux2Backbone`."""
        plain = super().load(path=path, device=device, dtype=dtype, **overrides)
        return self.wrap(
            plain.pipe, plain.settings, plain.device, plain.dtype, plain.model_id, plain.memory
        )

    def wrap(self, pipe, settings, device, dtype, model_id, memory=None) -> Flux2Backbone:
        """A :class:`Flux2Backbone` around an already built pipeline."""
        return Flux2Backbone(
            name=self.name,
            family=self.family,
            pipe=pipe,
            settings=settings,
            device=device,
            dtype=dtype,
            model_id=model_id,
            memory=memory,
        )


# Model card of black-forest-labs/FLUX.2-dev (its diffusers example) and Flux2Pipeline's
# defaults: 1024x1024, 50 steps, embedded guidance 4.0, text length 512, bfloat16.
FLUX2_DEV = Flux2Preset(
    "flux2-dev",
    "black-forest-labs/FLUX.2-dev",
    GenerationSettings(
        height=1024, width=1024, num_inference_steps=50, guidance_scale=4.0, max_sequence_length=512
    ),
    "bfloat16",
    "FLUX.2 [dev] (32B, Mistral Small 3.1 text), 1024x1024, 50 steps, guidance 4, text 512, "
    "bf16 (model card); offload=, quantize=, max_memory= for smaller GPUs",
    pipeline="Flux2Pipeline",
    components=COMPONENTS.get("flux2-dev", ()),
)
# Model card of black-forest-labs/FLUX.2-klein-4B: step-distilled, 4 steps, guidance 1.0
# (ignored by the distilled model), 1024x1024, bfloat16; Flux2KleinPipeline's text length 512.
FLUX2_KLEIN = Flux2Preset(
    "flux2-klein",
    "black-forest-labs/FLUX.2-klein-4B",
    GenerationSettings(
        height=1024, width=1024, num_inference_steps=4, guidance_scale=1.0, max_sequence_length=512
    ),
    "bfloat16",
    "FLUX.2 [klein] 4B (Qwen3 text, step-distilled), 1024x1024, 4 steps, no guidance, text "
    "512, bf16 (model card)",
    pipeline="Flux2KleinPipeline",
    components=COMPONENTS.get("flux2-klein", ()),
)


class TinyFlux2Preset(Flux2Preset):
    """``tiny-flux2``: the tiny FLUX.2 [klein]-shaped pipeline built in code (random weights) at
    32x32, 3 steps, CFG 2.0 (the base [klein]'s second transformer call), text length 64."""

    def __init__(self) -> None:
        super().__init__(
            "tiny-flux2",
            BUILT_IN + "tiny-random-flux2",
            GenerationSettings(
                height=32,
                width=32,
                num_inference_steps=3,
                guidance_scale=2.0,
                max_sequence_length=64,
            ),
            "float32",
            "random-weight FLUX.2 [klein] architecture built in code (32x32, 3 steps): mechanics "
            "only, images are noise",
            pipeline="Flux2KleinPipeline",
        )

    def build(self, *, path: str, device: str, dtype: str, memory: MemoryPlan | None = None):
        """Build the tiny pipeline (``path`` is not read: the weights are built in code)."""
        from diffusers import Flux2KleinPipeline

        pipe = self.built_in(
            build_tiny_flux2_pipeline(),
            Flux2KleinPipeline,
            dtype,
            memory,
            quantized=FLUX2_QUANTIZED,
            text_encoders=FLUX2_TEXT_ENCODERS,
        )
        return self.place(pipe, device, memory)


TINY_FLUX2 = TinyFlux2Preset()


def tiny_flux2_backbone(*, seed: int = 0, **overrides: Any) -> Flux2Backbone:
    """The tiny FLUX.2 pipeline (CPU, float32) with the ``tiny-flux2`` settings."""
    from .._config import build_config

    settings = build_config(
        GenerationSettings,
        {**dataclasses.asdict(TINY_FLUX2.settings), **overrides},
        owner="backbone tiny-flux2",
    )
    return TINY_FLUX2.wrap(
        build_tiny_flux2_pipeline(seed=seed), settings, "cpu", "float32", TINY_FLUX2.model_id
    )
