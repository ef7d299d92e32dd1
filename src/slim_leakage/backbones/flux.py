"""FLUX.1 presets loading real weights with ``from_pretrained``."""

from __future__ import annotations

from .base import GenerationSettings, Preset


class FluxPreset(Preset):
    """A FLUX.1 checkpoint from the hub (needs access) or a local folder (``--backbone-path``)."""

    family = "flux"

    def __init__(
        self, name: str, model_id: str, settings: GenerationSettings, dtype: str, description: str
    ):
        self.name = name
        self.model_id = model_id
        self.settings = settings
        self.dtype = dtype
        self.description = description

    def build(self, *, path: str, device: str, dtype: str):
        from diffusers import FluxPipeline

        pipe = self.from_pretrained(
            FluxPipeline,
            path,
            dtype,
            hint=(
                f"Accept the licence of {self.model_id} on the Hugging Face hub and run "
                "`huggingface-cli login`, or download it and pass --backbone-path /local/folder."
            ),
        )
        return pipe.to(device)


FLUX_DEV = FluxPreset(
    "flux-dev",
    "black-forest-labs/FLUX.1-dev",
    GenerationSettings(
        height=512, width=512, num_inference_steps=20, guidance_scale=3.5, max_sequence_length=256
    ),
    "float16",
    "FLUX.1-dev, 512x512, 20 steps, guidance 3.5, T5 length 256, fp16 (the paper's setting)",
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
