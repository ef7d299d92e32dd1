"""The toy world's mask sources: DeLeaker's masks from the oracle's segmentation of the vanilla
image, exact or degraded the way a real segmenter degrades it.

``--method-arg masks=oracle`` hands DeLeaker, for each sample, the regions the oracle judge
finds for its entities (:func:`slim_leakage.toy.reading.read_image`) in the vanilla image of the
same prompt and seed. They are the best masks this world can give, read by the very rule that
judges the result, so a run with them bounds what better masks could do for DeLeaker here. An
entity the oracle does not find gets an empty mask (its image tokens are left unedited).

The oracle stands in for the ``segmenter`` source (CLIPSeg on real images), which is neither
exact nor sharp. Two degraded versions of the oracle's regions stand for it:

- ``oracle-coarse``: the region as a low-resolution segmenter sees it. CLIPSeg reads a 352x352
  input through ViT-B/16, a 22x22 patch grid over the whole image, and its decoder upsamples
  that; on FLUX.1-dev at 1024x1024 (a 64x64 token grid) one of its patches spans about three
  tokens a side. The toy image has a 16x16 token grid, so the same ratio is a grid of
  :data:`COARSE_CELLS` cells a side: the region is area-averaged onto it, upsampled bilinearly
  and thresholded at one half, which rounds corners, fills notches and moves borders by up to
  half a cell, into the neighbour when two entities touch.
- ``oracle-boxes``: the region's bounding box, what an open-vocabulary detector (Grounding DINO)
  gives before a segmenter refines it: every token of the box, background and overlapping
  neighbours included.

Both keep the oracle's recognition (which blob is which entity); neither models a segmenter that
confuses the look-alikes themselves, so they bound from above what a real one would do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError

#: Cells a side of the ``oracle-coarse`` grid: CLIPSeg's 22 patches a side over FLUX.1-dev's 64
#: tokens a side, scaled to the toy model's 16 tokens a side (16 * 22 / 64 = 5.5).
COARSE_CELLS = 6


def coarse_mask(mask: np.ndarray, cells: int = COARSE_CELLS) -> np.ndarray:
    """``mask`` as a segmenter with ``cells`` x ``cells`` resolution outlines it.

    Area-average onto the coarse grid, bilinear upsampling to the mask's size, on at one half.
    """
    from PIL import Image

    h, w = mask.shape
    image = Image.fromarray(mask.astype(np.float32), mode="F")
    low = image.resize((cells, cells), Image.Resampling.BOX)
    high = np.asarray(low.resize((w, h), Image.Resampling.BILINEAR))
    return high >= 0.5


def box_mask(mask: np.ndarray) -> np.ndarray:
    """The bounding box of ``mask`` (all of it on), empty for an empty mask."""
    out = np.zeros_like(mask, dtype=bool)
    ys, xs = np.nonzero(mask)
    if ys.size:
        out[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] = True
    return out


def oracle_coarse_masks(backbone, samples: Sequence[Any]) -> list[dict[str, np.ndarray]]:
    """The ``oracle-coarse`` source: :func:`oracle_masks` through :func:`coarse_mask`."""
    return [{e: coarse_mask(m) for e, m in d.items()} for d in oracle_masks(backbone, samples)]


def oracle_box_masks(backbone, samples: Sequence[Any]) -> list[dict[str, np.ndarray]]:
    """The ``oracle-boxes`` source: :func:`oracle_masks` through :func:`box_mask`."""
    return [{e: box_mask(m) for e, m in d.items()} for d in oracle_masks(backbone, samples)]


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
