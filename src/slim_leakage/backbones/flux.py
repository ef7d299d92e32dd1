"""FLUX.1 presets loading real weights with ``from_pretrained``.

Both take the memory options of :mod:`slim_leakage.backbones.memory` (offload, quantisation of
the transformer and T5, layerwise casting, dtype, text-encoder dtype). ``flux-dev``, the paper's
preset, loads every component in float16 by default, as the official DeLeaker code does
(``torch_dtype=torch.float16`` for the whole pipeline; the SLIM images were made that way).
``text_dtype=float32`` runs the text encoders in float32 with their embeddings cast to float16,
as diffusers' FLUX documentation recommends ("Running FP16 inference": some T5 activations are
clipped in float16).
"""

from __future__ import annotations

from .base import GenerationSettings, Preset
from .memory import MemoryPlan
from .memory_table import COMPONENTS

#: FLUX components a quantisation scheme applies to: the transformer and T5 (CLIP and the VAE
#: are small, about 0.4 GB together in float16).
FLUX_QUANTIZED = ("transformer", "text_encoder_2")
FLUX_TEXT_ENCODERS = ("text_encoder", "text_encoder_2")


class FluxPreset(Preset):
    """A FLUX.1 checkpoint from the hub (needs access) or a local folder (``--backbone-path``)."""

    family = "flux"
    memory_options = True

    def __init__(
        self,
        name: str,
        model_id: str,
        settings: GenerationSettings,
        dtype: str,
        description: str,
        text_dtype: str | None = None,
    ):
        self.name = name
        self.model_id = model_id
        self.settings = settings
        self.dtype = dtype
        self.description = description
        self.text_dtype = text_dtype
        self.components = COMPONENTS[name]

    def build(self, *, path: str, device: str, dtype: str, memory: MemoryPlan | None = None):
        from diffusers import FluxPipeline

        pipe = self.from_pretrained(
            FluxPipeline,
            path,
            dtype,
            hint=(
                f"Accept the licence of {self.model_id} on the Hugging Face hub and run "
                "`hf auth login`, or download it and pass --backbone-path /local/folder."
            ),
            memory=memory,
            quantized=FLUX_QUANTIZED,
            text_encoders=FLUX_TEXT_ENCODERS,
        )
        return self.place(pipe, device, memory)


FLUX_DEV = FluxPreset(
    "flux-dev",
    "black-forest-labs/FLUX.1-dev",
    GenerationSettings(
        height=512, width=512, num_inference_steps=20, guidance_scale=3.5, max_sequence_length=256
    ),
    "float16",
    "FLUX.1-dev, 512x512, 20 steps, guidance 3.5, T5 length 256, every component fp16 (the "
    "paper's setting); text_dtype=float32, offload=, quantize=, cast=, max_memory= for others",
    text_dtype="float16",
)
FLUX_SCHNELL = FluxPreset(
    "flux-schnell",
    "black-forest-labs/FLUX.1-schnell",
    GenerationSettings(
        height=512, width=512, num_inference_steps=4, guidance_scale=0.0, max_sequence_length=256
    ),
    "bfloat16",
    "FLUX.1-schnell, 512x512, 4 steps, no guidance, T5 length 256, bf16",
)
