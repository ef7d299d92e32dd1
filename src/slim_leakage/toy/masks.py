"""The ``oracle`` mask source: DeLeaker's masks from the oracle's segmentation of the vanilla image.

``--method-arg masks=oracle`` hands DeLeaker, for each sample, the regions the oracle judge
finds for its entities (:func:`slim_leakage.toy.reading.read_image`) in the vanilla image of the
same prompt and seed. They are the best masks this world can give, read by the very rule that
judges the result, so a run with them bounds what better masks could do for DeLeaker here. An
entity the oracle does not find gets an empty mask (its image tokens are left unedited).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError


def oracle_masks(backbone, samples: Sequence[Any]) -> list[dict[str, np.ndarray]]:
    """One ``{entity: (H, W) bool}`` per sample, from its vanilla image (same prompt and seed).

    Args:
        backbone: The loaded toy backbone, with no method installed.
        samples: The samples; their entities must be toy nouns.

    Raises:
        ConfigError: A sample whose entities are not toy nouns.
    """
    from .reading import read_image
    from .world import ENTITY_TYPES

    for sample in samples:
        unknown = [e for e in sample.entities if e not in ENTITY_TYPES]
        if unknown:
            raise ConfigError(
                f"masks=oracle reads toy images only; sample {sample.id!r} names {unknown[0]!r}, "
                "which is not a toy entity.",
                hint="Use masks=oracle with --backbone toy and a toy config (toy-pairs, ...).",
            )
    images = backbone.generate([s.prompt for s in samples], [s.seed for s in samples])
    out = []
    for sample, image in zip(samples, images):
        size = (image.height, image.width)
        readings = read_image(image, list(sample.entities))
        out.append(
            {r.noun: r.mask if r.mask is not None else np.zeros(size, dtype=bool) for r in readings}
        )
    return out
