"""Given masks: DeLeaker's entity masks from outside instead of from its attention maps.

DeLeaker reads each entity's image-token mask from early image->text attention. Masks can come
from elsewhere instead (a segmentation model, a layout, the toy world's oracle), to plug in
better masks or to measure how much better masks would help. The attention edits are the same;
only where they apply changes. Given masks are used as given: no threshold, history or
smoothing.

Two levels take them:

- ``deleaker(pipe, entities, masks=...)`` (diffusers code): ``masks`` is one mapping
  ``{entity: mask}`` per prompt, or a callable ``masks(index, prompt, entities) -> {entity:
  mask}``. A mask is a 2-D array, tensor or PIL image of any size with the image's aspect ratio.
- The registered method's option ``masks`` (``--method-arg masks=...``): ``attention`` (the
  paper's method, the default), a folder of mask images laid out as :data:`FOLDER_LAYOUT`, a
  name registered in :data:`MASK_SOURCES` (``segmenter``, :mod:`.segmenter`; the toy world
  registers ``oracle``, ``oracle-coarse`` and ``oracle-boxes``), optionally followed by its
  options (``segmenter:threshold=0.4,revision=...``), or ``package.module:function``. A source is
  a callable ``source(backbone, samples)`` returning one ``{entity: mask}`` per sample, with an
  optional ``check(backbone, samples)`` run before any image is generated; one that takes
  options has ``with_options(mapping) -> source``.

A pixel is on when it is at least half of full scale (0.5 for floats, 128 for 8-bit images); a
token is on when at least half of the pixels it covers are (area averaging to the token grid).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..._config import parse_kv
from ..._registry import Registry
from ...errors import ConfigError, UnknownNameError, did_you_mean
from ...rundir import slug

#: The option value that keeps the paper's masks (read from attention).
ATTENTION = "attention"

#: Named mask sources for the method's ``masks`` option: name -> ``source(backbone, samples)``.
#: Plug-in packages add theirs through the ``slim_leakage.mask_sources`` group (the toy world's
#: ``oracle`` among them); user code with ``@MASK_SOURCES.register("name")``.
MASK_SOURCES: Registry = Registry(
    "mask source",
    group="slim_leakage.mask_sources",
    builtins={"segmenter": "slim_leakage.methods.deleaker.segmenter:SEGMENTER"},
)

#: Where a folder source looks for the mask of one entity of one sample.
FOLDER_LAYOUT = "<folder>/<sample id>/<entity>.png (ids and entities as file names: lowercase, "
"spaces and punctuation as '-', as in a run's images/masks/ folder)"

#: A mask source of the registered method: one ``{entity: mask}`` per sample.
MaskSource = Callable[[Any, Sequence[Any]], Sequence[Mapping[str, Any]]]


def mask_array(mask: Any, *, what: str) -> np.ndarray:
    """A mask as a 2-D float array in [0, 1] (1 = on), from a PIL image, array or tensor.

    Raises:
        ConfigError: Not 2-D, or not a numeric/boolean image, naming ``what``.
    """
    if hasattr(mask, "convert") and hasattr(mask, "size"):  # a PIL image
        mask = mask.convert("L")
    if hasattr(mask, "detach"):  # a torch tensor
        mask = mask.detach().cpu().numpy()
    arr = np.asarray(mask)
    if arr.ndim != 2 or arr.size == 0:
        raise ConfigError(
            f"The mask of {what} has shape {arr.shape}, not (height, width).",
            hint="Give one 2-D mask per entity: a grayscale image, or a 2-D array of 0/1.",
        )
    if arr.dtype == bool:
        return arr.astype(np.float32)
    if arr.dtype == np.uint8:
        return (arr >= 128).astype(np.float32)
    if not np.issubdtype(arr.dtype, np.number):
        raise ConfigError(f"The mask of {what} holds {arr.dtype} values, not numbers.")
    return (arr.astype(np.float32) >= 0.5).astype(np.float32)


def to_grid(mask: Any, grid: tuple[int, int], *, what: str):
    """A mask of any size with the grid's aspect ratio -> a flat ``(rows * cols,)`` bool tensor.

    Raises:
        ConfigError: If its aspect ratio is not the token grid's, naming ``what`` and both.
    """
    import torch
    import torch.nn.functional as F

    arr = mask_array(mask, what=what)
    rows, cols = grid
    h, w = arr.shape
    if h * cols != w * rows:
        raise ConfigError(
            f"The mask of {what} is {h}x{w} (height x width), which does not have the aspect "
            f"ratio of the {rows}x{cols} token grid.",
            hint="Give masks the generated image's size (or the token grid's, or any size of the "
            "same aspect ratio).",
        )
    pooled = F.adaptive_avg_pool2d(torch.from_numpy(arr)[None, None], (rows, cols))
    return (pooled[0, 0] >= 0.5).reshape(-1)


class GivenMasks:
    """Masks handed to one installation of DeLeaker, resized to the token grid when used.

    Args:
        masks: One ``{entity: mask}`` per prompt, or ``masks(index, prompt, entities)``.
    """

    def __init__(self, masks: Sequence[Mapping[str, Any]] | Callable) -> None:
        if not callable(masks) and (
            isinstance(masks, (str, bytes, Mapping))
            or not isinstance(masks, Sequence)
            or not all(isinstance(m, Mapping) for m in masks)
        ):
            raise ConfigError(
                f"masks={type(masks).__name__} is neither one {{entity: mask}} mapping per "
                "prompt nor a callable.",
                hint="Pass masks=[{'cow': mask, 'horse': mask}] (one mapping per prompt) or "
                "masks=fn with fn(index, prompt, entities) -> {entity: mask}.",
            )
        self.masks = masks

    def for_prompt(
        self, index: int, prompt: str, entities: Sequence[str], grid: tuple[int, int], device
    ) -> dict[str, Any]:
        """Prompt ``index``'s masks on the token grid: ``{entity: (rows * cols,) bool}``.

        Raises:
            ConfigError: If a prompt or an entity has no mask, or a mask is ill-shaped.
        """
        if callable(self.masks):
            given = self.masks(index, prompt, list(entities))
        elif index < len(self.masks):
            given = self.masks[index]
        else:
            raise ConfigError(
                f"masks= holds {len(self.masks)} mapping(s), but prompt {index} ({prompt!r}) "
                "needs one.",
                hint="Give one {entity: mask} mapping per prompt, in prompt order.",
            )
        if not isinstance(given, Mapping):
            raise ConfigError(
                f"The mask source returned {type(given).__name__} for prompt {prompt!r}, not a "
                "mapping of entity to mask."
            )
        missing = [e for e in entities if e not in given]
        if missing:
            raise ConfigError(
                f"No given mask for entity {missing[0]!r} of the prompt {prompt!r} (masks were "
                f"given for: {', '.join(map(repr, given)) or 'none'}).",
                hint="Give a mask for every entity of every prompt; an empty mask leaves the "
                "entity unedited.",
            )
        return {
            e: to_grid(given[e], grid, what=f"{e!r} in {prompt!r}").to(device) for e in entities
        }


class FolderSource:
    """Masks read from ``<folder>/<sample id>/<entity>.png`` (see :data:`FOLDER_LAYOUT`).

    Args:
        folder: The folder of mask images.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise ConfigError(
                f"masks={str(folder)!r}: no such folder.",
                hint=f"Give a folder laid out as {FOLDER_LAYOUT}, a registered mask source "
                f"({', '.join(MASK_SOURCES.names()) or 'none'}), or '{ATTENTION}'.",
            )

    def path(self, sample_id: str, entity: str) -> Path:
        """Where the mask of ``entity`` in sample ``sample_id`` must be."""
        return self.folder / slug(sample_id) / f"{slug(entity)}.png"

    def check(self, backbone, samples: Sequence[Any]) -> None:
        """Before any image: every mask file exists and has the image's aspect ratio.

        Raises:
            ConfigError: Naming the first missing or ill-sized file and the expected layout.
        """
        from PIL import Image

        height, width = backbone.settings.height, backbone.settings.width
        for sample in samples:
            for entity in sample.entities:
                path = self.path(sample.id, entity)
                if not path.is_file():
                    raise ConfigError(
                        f"No mask for entity {entity!r} of sample {sample.id!r}: {path} does "
                        "not exist.",
                        hint=f"Lay the folder out as {FOLDER_LAYOUT}.",
                    )
                with Image.open(path) as im:
                    w, h = im.size
                if h * width != w * height:
                    raise ConfigError(
                        f"Mask {path} is {w}x{h} pixels (width x height), but the images are "
                        f"{width}x{height}: the aspect ratios differ.",
                        hint=f"Save masks at {width}x{height} pixels (or any size of that aspect "
                        "ratio); they are resized to the token grid.",
                    )

    def __call__(self, backbone, samples: Sequence[Any]) -> list[dict[str, Any]]:
        """One ``{entity: PIL image}`` per sample."""
        from PIL import Image

        out = []
        for sample in samples:
            masks = {}
            for entity in sample.entities:
                path = self.path(sample.id, entity)
                try:
                    with Image.open(path) as im:
                        masks[entity] = im.convert("L")
                except OSError as exc:
                    raise ConfigError(
                        f"Cannot read the mask {path} ({exc}).",
                        hint=f"Lay the folder out as {FOLDER_LAYOUT}, with PNG images.",
                    ) from exc
            out.append(masks)
        return out


def resolve_source(spec: str) -> MaskSource | None:
    """The mask source the option ``masks=spec`` names (``None``: masks from attention).

    Raises:
        ConfigError: A folder that does not exist, or a ``module:function`` that cannot be
            imported.
        UnknownNameError: A name that is neither registered nor a folder.
    """
    if spec == ATTENTION:
        return None
    names = MASK_SOURCES.names()
    if spec in names:
        return MASK_SOURCES.get(spec)
    name, _, options = spec.partition(":")
    if name in names and "=" in options:
        return _with_options(name, MASK_SOURCES.get(name), options)
    path = Path(spec)
    looks_like_path = "/" in spec or "\\" in spec or spec.startswith(".") or path.exists()
    if ":" in spec and not looks_like_path:
        module, _, attr = spec.partition(":")
        try:
            source = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(
                f"masks={spec!r}: cannot import {attr!r} from {module!r} ({exc}).",
                hint="Give masks=package.module:function with a function(backbone, samples).",
            ) from exc
        if not callable(source):
            raise ConfigError(f"masks={spec!r} names a {type(source).__name__}, not a function.")
        return source
    if looks_like_path:
        return FolderSource(path)
    raise UnknownNameError(
        f"Unknown mask source {spec!r}.{did_you_mean(spec, [*names, ATTENTION])}",
        hint=f"Use '{ATTENTION}' (the default), a registered source "
        f"({', '.join(names) or 'none'}), a folder laid out as {FOLDER_LAYOUT}, or "
        "package.module:function.",
    )


def _with_options(name: str, source: Any, text: str) -> MaskSource:
    """The registered source ``name`` with the options ``key=value,...`` of ``masks=name:...``.

    Raises:
        ConfigError: A source that takes no options, or a malformed or unknown option.
    """
    configure = getattr(source, "with_options", None)
    if not callable(configure):
        raise ConfigError(
            f"masks={name}:{text}: the mask source {name!r} takes no options.",
            hint=f"Give masks={name} alone.",
        )
    options = parse_kv([part for part in text.split(",") if part.strip()], option=f"masks={name}:")
    return configure(options)
