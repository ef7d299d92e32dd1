"""FLUX.1 presets loading real weights with ``from_pretrained``.

Both take the memory options of :mod:`slim_leakage.backbones.memory` (offload, quantisation of
the transformer and T5, dtype, text-encoder dtype). In float16 the text encoders run in float32
by default and their embeddings are cast to float16, as diffusers' FLUX documentation
recommends ("Running FP16 inference"); ``text_dtype=float16`` loads everything in float16 as the
official DeLeaker code does.
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
        self, name: str, model_id: str, settings: GenerationSettings, dtype: str, description: str
    ):
        self.name = name
        self.model_id = model_id
        self.settings = settings
        self.dtype = dtype
        self.description = description
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
    "FLUX.1-dev, 512x512, 20 steps, guidance 3.5, T5 length 256, fp16 (the paper's setting); "
    "offload=, quantize=, max_memory= for smaller GPUs",
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
