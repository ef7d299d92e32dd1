"""Backbones: named presets that load a text-to-image pipeline with the paper's settings.

``tiny-random`` and ``tiny-sana`` (built in code, for tests and smoke runs), ``toy`` (the toy
world's trained model, shipped in the package and registered by :mod:`slim_leakage.toy`),
``flux-dev`` (FLUX.1-dev at 512x512, 20 steps, guidance 3.5, T5 length 256, as the paper),
``flux-schnell`` and ``sana``. Listing presets imports nothing heavy;
``BACKBONES.get(name).describe()`` says what a preset is without loading it.
"""

from __future__ import annotations

from .._registry import Registry
from .base import Backbone, GenerationSettings

BACKBONES: Registry = Registry(
    "backbone",
    group="slim_leakage.backbones",
    builtins={
        "tiny-random": "slim_leakage.backbones.tiny:TinyRandomPreset",
        "flux-dev": "slim_leakage.backbones.flux:FLUX_DEV",
        "flux-schnell": "slim_leakage.backbones.flux:FLUX_SCHNELL",
        "sana": "slim_leakage.backbones.sana:SANA",
        "tiny-sana": "slim_leakage.backbones.sana:TINY_SANA",
        "diffusers": "slim_leakage.backbones.generic:DIFFUSERS",
        "images": "slim_leakage.backbones.folder:FOLDER",
        "sd35-large": "slim_leakage.backbones.sd3:SD35_LARGE",
        "tiny-sd3": "slim_leakage.backbones.sd3:TINY_SD3",
        "flux2-dev": "slim_leakage.backbones.flux2:FLUX2_DEV",
        "flux2-klein": "slim_leakage.backbones.flux2:FLUX2_KLEIN",
        "tiny-flux2": "slim_leakage.backbones.flux2:TINY_FLUX2",
        "qwen-image": "slim_leakage.backbones.qwenimage:QWEN_IMAGE",
        "tiny-qwenimage": "slim_leakage.backbones.qwenimage:TINY_QWENIMAGE",
        "z-image-turbo": "slim_leakage.backbones.zimage:Z_IMAGE_TURBO",
        "tiny-zimage": "slim_leakage.backbones.zimage:TINY_ZIMAGE",
    },
)


def load_backbone(
    name: str,
    *,
    path: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    **overrides,
) -> Backbone:
    """Load the backbone preset ``name``.

    Args:
        name: A registered preset (``slim-eval ls backbones``).
        path: A local folder or hub id overriding the preset's weights.
        device: ``cpu``, ``cuda``, ``cuda:1`` ...; defaults to CUDA when available.
        dtype: ``float32``, ``float16`` or ``bfloat16``; defaults to the preset's.
        **overrides: Generation settings to override (``height``, ``num_inference_steps``, ...).
    """
    from .._quiet import quantizers_for

    quantizers_for(overrides.get("quantize"))  # bitsandbytes/torchao only when asked for
    preset = BACKBONES.get(name)
    return preset.load(path=path, device=device, dtype=dtype, **overrides)


__all__ = ["BACKBONES", "Backbone", "GenerationSettings", "load_backbone"]
