"""Z-Image backbones: the ``z-image-turbo`` preset (real weights) and ``tiny-zimage`` (built in
code).

Z-Image (``ZImagePipeline``, diffusers 0.42.1) is a single-stream DiT: a few refiner blocks run
over the image tokens alone and over the text tokens alone, then 30 main blocks attend over one
sequence ``[image ; text]`` (image first), each part padded to a multiple of 32 tokens with a
learnt pad token. The text is the prompt in Qwen3's chat format
(``tokenizer.apply_chat_template`` with ``add_generation_prompt=True, enable_thinking=True``:
``<|im_start|>user\\n{prompt}<|im_end|>\\n<|im_start|>assistant\\n``), encoded by Qwen3-4B (its
second-to-last hidden layer), every non-padding token kept: nothing of the template is dropped.
Classifier-free guidance runs only for ``guidance_scale > 0`` (batched, conditional half first);
Z-Image-Turbo is distilled and uses 0.

The tiny pipeline uses the real classes (``ZImagePipeline``, ``ZImageTransformer2DModel``,
``AutoencoderKL``, ``Qwen3Model``, ``Qwen2Tokenizer`` with a chat template) at toy sizes. Its
images are noise: it checks mechanics.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from .base import BUILT_IN, Backbone, GenerationSettings, HubPreset
from .memory import MemoryPlan
from .memory_table import COMPONENTS
from .qwenimage import make_qwen2_tokenizer

#: Components a quantisation scheme applies to: the 6B transformer and the Qwen3-4B encoder.
ZIMAGE_QUANTIZED = ("transformer", "text_encoder")

#: A chat template in Qwen3's format for user and assistant turns (Qwen3's
#: tokenizer_config.json: turns as ``<|im_start|>{role}\n{content}<|im_end|>\n``, the generation
#: prompt ``<|im_start|>assistant\n``, and an empty think block only when thinking is off).
QWEN3_CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}{%- endif %}"
)


def zimage_text(tokenizer, prompt: str) -> str:
    """The text Z-Image encodes for ``prompt``, as ``ZImagePipeline._encode_prompt`` builds it."""
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}],
        tokenize=False,
        add_generation_prompt=True,
        enable_thinking=True,
    )


def build_tiny_zimage_pipeline(
    *,
    seed: int = 0,
    n_layers: int = 2,
    n_heads: int = 2,
    head_dim: int = 32,
    words: Iterable[str] = (),
):
    """Build a random-weight ``ZImagePipeline`` of a few hundred thousand parameters.

    The autoencoder does not downsample and the transformer patches 2x2 latent pixels per
    token, so an ``SxS`` image has ``(S/2)^2`` image tokens (a multiple of 32 for ``S`` a
    multiple of 16: no image padding).

    Args:
        seed: Seed for the weights.
        n_layers: Main (single-stream) blocks; one noise and one context refiner block each.
        n_heads: Heads per attention.
        head_dim: Head width (RoPE axes 1:1.5:1.5 of it, as Z-Image's 32/48/48).
        words: Extra whole-word pieces for the tokenizer.
    """
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, ZImagePipeline, ZImageTransformer2DModel
    from transformers import Qwen3Config, Qwen3Model

    from .tiny import flux_autoencoder

    tokenizer = make_qwen2_tokenizer(words, chat_template=QWEN3_CHAT_TEMPLATE)
    text_dim, latent = 16, 4
    axis = head_dim // 4
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = ZImageTransformer2DModel(
            all_patch_size=(2,),
            all_f_patch_size=(1,),
            in_channels=latent,
            dim=n_heads * head_dim,
            n_layers=n_layers,
            n_refiner_layers=1,
            n_heads=n_heads,
            n_kv_heads=n_heads,
            cap_feat_dim=text_dim,
            axes_dims=[head_dim - 2 * (3 * axis // 2), 3 * axis // 2, 3 * axis // 2],
            axes_lens=[1024, 64, 64],
        )
        text_encoder = Qwen3Model(
            Qwen3Config(
                vocab_size=len(tokenizer),
                hidden_size=text_dim,
                intermediate_size=24,
                num_hidden_layers=2,
                num_attention_heads=2,
                num_key_value_heads=1,
                head_dim=8,
                max_position_embeddings=1024,
                bos_token_id=0,
                eos_token_id=0,
                pad_token_id=0,
            )
        )
        vae = flux_autoencoder((8,), latent_channels=latent, norm_num_groups=4)
    for module in (transformer, text_encoder, vae):
        module.eval()
    return ZImagePipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
    )


class ZImageBackbone(Backbone):
    """A Z-Image pipeline: CFG scale as ``guidance_scale`` (0: no second half), and the text
    length."""

    takes_text_length = True

    @property
    def tokenizer(self):
        """The Qwen tokenizer (its chat-formatted tokens are the text of every main block)."""
        return self.pipe.tokenizer


class ZImagePreset(HubPreset):
    """A Z-Image checkpoint in diffusers format from the hub or a local folder."""

    family = "zimage"

    def build(self, *, path: str, device: str, dtype: str, memory: MemoryPlan | None = None):
        """Load with ``ZImagePipeline.from_pretrained`` and place it."""
        from diffusers import ZImagePipeline

        pipe = self.from_pretrained(
            ZImagePipeline,
            path,
            dtype,
            hint=(
                f"Download {self.model_id} (diffusers format) and pass "
                "--backbone-path /local/folder, or check the hub id."
            ),
            memory=memory,
            quantized=ZIMAGE_QUANTIZED,
            text_encoders=("text_encoder",),
        )
        return self.place(pipe, device, memory)

    def load(self, *, path=None, device=None, dtype=None, **overrides) -> ZImageBackbone:
        """Build the pipeline and wrap it as a :class:`ZImageBackbone`."""
        plain = super().load(path=path, device=device, dtype=dtype, **overrides)
        return ZImageBackbone(
            name=plain.name,
            family=plain.family,
            pipe=plain.pipe,
            settings=plain.settings,
            device=plain.device,
            dtype=plain.dtype,
            model_id=plain.model_id,
            memory=plain.memory,
        )


# Settings from the Z-Image-Turbo model card (huggingface.co/Tongyi-MAI/Z-Image-Turbo, the
# diffusers example): 1024x1024, num_inference_steps=9 (8 transformer forwards),
# guidance_scale=0.0 ("guidance should be 0 for the Turbo models"), bfloat16; the text length is
# ZImagePipeline's default max_sequence_length (512).
Z_IMAGE_TURBO = ZImagePreset(
    "z-image-turbo",
    "Tongyi-MAI/Z-Image-Turbo",
    GenerationSettings(
        height=1024, width=1024, num_inference_steps=9, guidance_scale=0.0, max_sequence_length=512
    ),
    "bfloat16",
    "Z-Image-Turbo 6B single-stream DiT, 1024x1024, 9 steps, no CFG, Qwen3 text length 512, "
    "bf16 (model card)",
    components=COMPONENTS["z-image-turbo"],
)


class TinyZImagePreset(ZImagePreset):
    """``tiny-zimage``: the tiny pipeline built in code (random weights, no download) at 32x32
    (a 16x16 token grid), 3 steps, no CFG as Turbo, text length 64."""

    def __init__(self) -> None:
        super().__init__(
            "tiny-zimage",
            BUILT_IN + "tiny-random-zimage",
            GenerationSettings(
                height=32,
                width=32,
                num_inference_steps=3,
                guidance_scale=0.0,
                max_sequence_length=64,
            ),
            "float32",
            "random-weight Z-Image architecture built in code (32x32, 3 steps, no CFG): "
            "mechanics only, images are noise",
        )

    def build(self, *, path: str, device: str, dtype: str, memory: MemoryPlan | None = None):
        """Build the tiny pipeline (``path`` is not read: the weights are built in code)."""
        from diffusers import ZImagePipeline

        pipe = self.built_in(
            build_tiny_zimage_pipeline(),
            ZImagePipeline,
            dtype,
            memory,
            quantized=ZIMAGE_QUANTIZED,
            text_encoders=("text_encoder",),
        )
        return self.place(pipe, device, memory)


TINY_ZIMAGE = TinyZImagePreset()


def tiny_zimage_backbone(*, seed: int = 0, **overrides) -> ZImageBackbone:
    """The tiny pipeline (CPU, float32) wrapped with the ``tiny-zimage`` settings."""
    from .._config import build_config

    settings = build_config(
        GenerationSettings,
        {**dataclasses.asdict(TINY_ZIMAGE.settings), **overrides},
        owner="backbone tiny-zimage",
    )
    return ZImageBackbone(
        name=TINY_ZIMAGE.name,
        family="zimage",
        pipe=build_tiny_zimage_pipeline(seed=seed),
        settings=settings,
        device="cpu",
        dtype="float32",
        model_id=TINY_ZIMAGE.model_id,
    )
