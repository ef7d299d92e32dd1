"""DeLeaker: inference-time attention reweighting against semantic leakage.

Usage with diffusers::

    from slim_leakage.methods.deleaker import deleaker, save_mask_overlays

    with deleaker(pipe, entities=["cow", "horse"]) as run:
        image = pipe("a cow and a horse in a farm", max_sequence_length=256).images[0]
    save_mask_overlays(run, image, "masks/")

Importing this package loads no torch; the processors are imported when ``deleaker`` is called.
"""

from __future__ import annotations

import contextlib
from typing import Any

from .config import DeLeakerConfig
from .overlays import mask_overlay, save_mask_overlays
from .tokens import find_entity_spans, find_entity_tokens


@contextlib.contextmanager
def deleaker(pipe, entities, **kwargs: Any):
    """Install DeLeaker on a FLUX pipeline for a ``with`` block (see :func:`.flux.deleaker`).

    Args:
        pipe: A diffusers ``FluxPipeline`` or its transformer.
        entities: Entity words, or one list per prompt.
        **kwargs: ``config``, ``prompts``, ``max_sequence_length``, ``tokenizer``,
            ``num_inference_steps``, ``implementation`` or :class:`DeLeakerConfig` fields.

    Yields:
        The run state; ``run.masks`` holds ``{entity: {step: mask}}`` of the first image.
    """
    from .flux import deleaker as _flux_deleaker

    with _flux_deleaker(pipe, entities, **kwargs) as run:
        yield run


__all__ = [
    "DeLeakerConfig",
    "deleaker",
    "find_entity_spans",
    "find_entity_tokens",
    "mask_overlay",
    "save_mask_overlays",
]
