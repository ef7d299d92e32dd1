"""DeLeaker: inference-time attention reweighting against semantic leakage.

Usage with diffusers::

    from slim_leakage.methods.deleaker import deleaker, save_mask_overlays

    with deleaker(pipe, entities=["cow", "horse"]) as run:
        image = pipe("a cow and a horse in a farm", max_sequence_length=256).images[0]
    save_mask_overlays(run, image, "masks/")

``deleaker_sana`` does the same on a ``SanaPipeline``. One module per backbone family holds its
processors, its reference processor and its ``install(...)``: ``flux.py``, ``sana.py``.
Importing this package loads no torch; a family's module is imported when it is installed.
"""

from __future__ import annotations

from typing import Any

from .config import DeLeakerConfig
from .overlays import mask_overlay, save_mask_overlays
from .tokens import find_entity_spans, find_entity_tokens


def deleaker(pipe, entities, **kwargs: Any):
    """Install DeLeaker on a FLUX pipeline for a ``with`` block (see :func:`.flux.install`).

    Args:
        pipe: A diffusers ``FluxPipeline`` or its transformer.
        entities: Entity words, or one list per prompt.
        **kwargs: ``config``, ``prompts``, ``max_sequence_length``, ``tokenizer``,
            ``num_inference_steps``, ``implementation`` or :class:`DeLeakerConfig` fields.

    Returns:
        A context manager yielding the run state; ``run.masks`` holds
        ``{entity: {step: mask}}`` of the first image.
    """
    from ...errors import ConfigError
    from .flux import install
    from .state import normalise_entities

    # checked now, not when the `with` block starts, so the error points at this call
    if not (hasattr(pipe, "transformer") or hasattr(pipe, "attn_processors")):
        raise ConfigError(
            f"deleaker(pipe={type(pipe).__name__}): pipe must be a diffusers FluxPipeline or "
            "its transformer.",
            hint="Pass the pipeline, e.g. build_tiny_flux_pipeline() or "
            "FluxPipeline.from_pretrained(...).",
        )
    normalise_entities(entities)
    return install(pipe, entities, **kwargs)


def deleaker_sana(pipe, entities, prompts, **kwargs: Any):
    """Install DeLeaker on a SANA pipeline for a ``with`` block (see :func:`.sana.install`).

    Args:
        pipe: A diffusers ``SanaPipeline``.
        entities: Entity words, or one list per prompt.
        prompts: The prompt(s) the pipeline will be called with.
        **kwargs: ``config``, ``instruction``, ``max_sequence_length``, ``implementation`` or
            :class:`DeLeakerConfig` fields.

    Returns:
        A context manager yielding the run state; ``run.final_masks(i)`` gives image ``i``'s
        last masks.
    """
    from .sana import install

    return install(pipe, entities, prompts, **kwargs)


__all__ = [
    "DeLeakerConfig",
    "deleaker",
    "deleaker_sana",
    "find_entity_spans",
    "find_entity_tokens",
    "mask_overlay",
    "save_mask_overlays",
]
