"""Entity-mask overlays as PIL images and PNG files (no torch needed)."""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..._io import atomic_write_bytes
from ...errors import ConfigError

#: One colour per entity, in entity order (red, blue, green, orange, purple, cyan).
PALETTE = (
    (230, 40, 40),
    (40, 90, 230),
    (40, 180, 70),
    (240, 150, 20),
    (150, 60, 200),
    (20, 190, 200),
)


def mask_overlay(image, mask: Any, color: tuple[int, int, int] = PALETTE[0], opacity: float = 0.5):
    """Tint ``image`` where ``mask`` is on; the mask grid is scaled up to the image size.

    Args:
        image: A PIL image.
        mask: ``(rows, cols)`` boolean array or tensor (image-token grid).
        color: RGB tint.
        opacity: Tint strength in [0, 1].

    Returns:
        A new RGB PIL image.
    """
    from PIL import Image

    grid = np.asarray(mask).astype(bool)
    if grid.ndim != 2:
        raise ConfigError(f"A mask must be 2-D (rows, cols), got shape {grid.shape}.")
    base = image.convert("RGB")
    up = Image.fromarray(grid.astype(np.uint8) * 255).resize(base.size, Image.NEAREST)
    on = np.asarray(up) > 127
    pixels = np.asarray(base).astype(np.float32)
    tint = np.asarray(color, dtype=np.float32)
    pixels[on] = (1 - opacity) * pixels[on] + opacity * tint
    return Image.fromarray(pixels.round().clip(0, 255).astype(np.uint8))


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "entity"


def save_mask_overlays(
    masks: Any, image, out_dir: str | Path, *, prefix: str = "", step: int | None = None
) -> dict[str, Path]:
    """Save one PNG per entity: its mask tinted over ``image``.

    Args:
        masks: A DeLeaker run (its first image's masks are used), ``{entity: {step: mask}}`` or
            ``{entity: mask}``.
        image: The generated PIL image.
        out_dir: Folder to write into (created).
        prefix: Prepended to each file name.
        step: Which step's mask to draw (default: the last recorded).

    Returns:
        ``{entity: path}`` of the files written (atomically).
    """
    if hasattr(masks, "masks") and not isinstance(masks, Mapping):
        masks = masks.masks
    if not isinstance(masks, Mapping):
        raise ConfigError(f"masks must be a DeLeaker run or a dict, got {type(masks).__name__}.")
    out: dict[str, Path] = {}
    for index, (entity, value) in enumerate(masks.items()):
        if isinstance(value, Mapping):
            if not value:
                continue
            key = max(value) if step is None else step
            if key not in value:
                raise ConfigError(
                    f"No mask of {entity!r} at step {step}.",
                    hint=f"Recorded steps: {sorted(value)}.",
                )
            value = value[key]
        overlay = mask_overlay(image, value, PALETTE[index % len(PALETTE)])
        buf = io.BytesIO()
        overlay.save(buf, format="PNG")
        path = Path(out_dir) / f"{prefix}{_safe(entity)}.png"
        atomic_write_bytes(path, buf.getvalue())
        out[entity] = path
    return out
