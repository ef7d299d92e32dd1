"""The ``segmenter`` mask source: DeLeaker's masks from an open-vocabulary segmentation model.

``--method-arg masks=segmenter`` generates, for each sample, the vanilla image of the same
prompt and seed, asks a text-prompted segmentation model where each entity is in it, and hands
those regions to DeLeaker's second pass as given masks (:mod:`.given`). It works on every
backbone family the method supports, since it needs nothing from the backbone but its images.

The model is CLIPSeg (Lüddecke and Ecker, CVPR 2022) through transformers:
``CLIPSegProcessor`` prepares one (image, entity name) pair per row and
``CLIPSegForImageSegmentation`` returns one logit map per row, ``(rows, 352, 352)`` for the
released checkpoints (transformers ``models/clipseg/modeling_clipseg.py``, the
``CLIPSegForImageSegmentation.forward`` example, and ``processing_clipseg.py``). Options follow
the source name after a colon, comma-separated (:class:`SegmenterOptions`)::

    --method-arg masks=segmenter
    --method-arg masks=segmenter:model=CIDAS/clipseg-rd64-refined,revision=<commit>,threshold=0.4

From logits to masks:

- **Probability.** The model is trained with a binary cross-entropy on its logits
  (``BCEWithLogitsLoss`` in ``CLIPSegForImageSegmentation.forward``), so ``sigmoid(logit)`` is
  its probability that a pixel shows the prompt, and 0.5 its own decision boundary: the default
  ``threshold``.
- **Size.** The processor squeezes every image to the model's square input; the map is resized
  back to the image's height and width (bilinear) before thresholding, which undoes the squeeze.
- **Normalisation** (``normalise``): ``none`` thresholds the probabilities as they are (an
  entity the model does not see gets an empty mask, so it is left unedited); ``minmax``
  rescales each map to [0, 1] first, a common fix for a model that is under-confident on
  generated images, at the price that every entity gets a mask even when it is absent.
- **Assignment** (``assign``): ``argmax`` gives a pixel to the sample's entity with the highest
  probability there, and only if that probability passes the threshold, so the masks never
  overlap; ``independent`` thresholds each map alone. Look-alikes are exactly what an
  open-vocabulary segmenter confuses (both prompts fire on both animals), and a token in two
  masks would get both entities' edits at once, so ``argmax`` is the default.

The model loads once per source and device (``check`` loads it before any image is generated,
so a wrong id fails early). Nothing is downloaded unless the hub allows it: offline, a model
that is not on this machine is a :class:`~slim_leakage.errors.ModelNotFoundError` with the way
to fetch it or to point at a folder.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..._config import build_config, check_range
from ...errors import ConfigError, MissingDependencyError, ModelNotFoundError, require

#: The default model: CLIPSeg with the refined decoder (reduce_dim 64), the checkpoint the
#: transformers documentation uses.
DEFAULT_MODEL = "CIDAS/clipseg-rd64-refined"
NORMALISE = ("none", "minmax")
ASSIGN = ("argmax", "independent")


@dataclasses.dataclass(frozen=True)
class SegmenterOptions:
    """Options of the ``segmenter`` mask source (``masks=segmenter:key=value,...``).

    Attributes:
        model: A hub id or a local folder of a CLIPSeg checkpoint.
        revision: A pinned hub revision (commit, branch or tag); ``None`` takes the default branch.
        threshold: A pixel is in an entity's mask when its probability (after ``normalise``) is
            at least this; in (0, 1).
        normalise: ``none`` or ``minmax`` (rescale each entity's map to [0, 1] first).
        assign: ``argmax`` (each pixel to at most one entity, the most probable) or
            ``independent`` (each entity's map thresholded alone; masks may overlap).
        device: Where the segmenter runs; ``None`` is the backbone's device.
        batch_size: (image, entity) rows per forward pass of the segmenter.
    """

    model: str = DEFAULT_MODEL
    revision: str | None = None
    threshold: float = 0.5
    normalise: str = "none"
    assign: str = "argmax"
    device: str | None = None
    batch_size: int = 16

    def __post_init__(self) -> None:
        owner = "masks=segmenter"
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigError(
                f"{owner}: model={self.model!r} is not a model id or folder.",
                hint=f"Give model=<hub id or local folder>, e.g. model={DEFAULT_MODEL}.",
            )
        check_range(owner, "threshold", self.threshold, low=0.0, high=1.0, low_open=True)
        if self.threshold >= 1.0:
            raise ConfigError(
                f"{owner}: threshold={self.threshold!r} leaves every mask empty.",
                hint="Give a threshold in (0, 1); 0.5 is the model's own decision boundary.",
            )
        for name, allowed in (("normalise", NORMALISE), ("assign", ASSIGN)):
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"{owner}: {name}={getattr(self, name)!r} is not one of {', '.join(allowed)}.",
                    hint=f"Give {name}={allowed[0]} (the default) or {allowed[1]}.",
                )
        check_range(owner, "batch_size", self.batch_size, low=1)


def masks_from_probabilities(
    probabilities: Mapping[str, np.ndarray], *, threshold: float, normalise: str, assign: str
) -> dict[str, np.ndarray]:
    """One image's entity masks from its per-entity probability maps (all of one size).

    Args:
        probabilities: Entity -> ``(H, W)`` probabilities in [0, 1], in the sample's order.
        threshold: On at this value or above (after normalisation).
        normalise: ``none`` or ``minmax`` (see the module's notes).
        assign: ``argmax`` or ``independent`` (see the module's notes).

    Returns:
        Entity -> ``(H, W)`` bool mask.
    """
    names = list(probabilities)
    if not names:
        return {}
    stack = np.stack([np.asarray(probabilities[e], dtype=np.float32) for e in names])
    if normalise == "minmax":
        low = stack.min(axis=(1, 2), keepdims=True)
        span = stack.max(axis=(1, 2), keepdims=True) - low
        stack = np.where(span > 0, (stack - low) / np.where(span > 0, span, 1.0), 0.0)
    on = stack >= threshold
    if assign == "argmax":
        winner = stack.argmax(axis=0)
        on &= winner[None] == np.arange(len(names))[:, None, None]
    return {e: on[i] for i, e in enumerate(names)}


class SegmenterSource:
    """The ``segmenter`` mask source: CLIPSeg masks of each sample's vanilla image.

    Args:
        options: :class:`SegmenterOptions` (defaults when ``None``).
    """

    def __init__(self, options: SegmenterOptions | None = None) -> None:
        self.options = options or SegmenterOptions()
        self._loaded: dict[tuple[str, str | None, str], tuple[Any, Any]] = {}
        self._lock = threading.Lock()

    def with_options(self, values: Mapping[str, Any]) -> SegmenterSource:
        """A source with ``values`` over the defaults (``masks=segmenter:key=value,...``).

        Raises:
            ConfigError: An unknown option or a bad value, naming it and what is allowed.
        """
        return SegmenterSource(build_config(SegmenterOptions, values, owner="masks=segmenter"))

    def device(self, backbone: Any = None) -> str:
        """The segmenter's device: the option, else the backbone's, else the CPU."""
        return str(self.options.device or getattr(backbone, "device", None) or "cpu")

    def load(self, device: str = "cpu") -> tuple[Any, Any]:
        """The ``(processor, model)`` pair, loaded once per model, revision and device.

        Raises:
            MissingDependencyError: Without torch or transformers.
            ModelNotFoundError: A model that is neither a local folder nor on this machine
                (offline) or on the hub, with how to fetch it.
        """
        key = (self.options.model, self.options.revision, device)
        with self._lock:
            if key not in self._loaded:
                self._loaded[key] = self._load(device)
            return self._loaded[key]

    def _load(self, device: str) -> tuple[Any, Any]:
        require("torch", "flux", feature="masks=segmenter")
        transformers = require("transformers", "flux", feature="masks=segmenter")
        model_id, revision = self.options.model, self.options.revision
        try:
            processor = transformers.CLIPSegProcessor.from_pretrained(model_id, revision=revision)
            model = transformers.CLIPSegForImageSegmentation.from_pretrained(
                model_id, revision=revision
            )
        except ImportError as exc:
            raise MissingDependencyError(
                f"masks=segmenter cannot load {model_id!r}: {str(exc).strip().splitlines()[0]}",
                hint="pip install 'slim-leakage[flux]'",
            ) from exc
        except (OSError, ValueError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            # the libraries' messages run on: their first sentence names what failed
            first = first.split(". ")[0].rstrip(".")[:200]
            pinned = f" --revision {revision}" if revision else ""
            hint = (
                f"Download it while online (`hf download {model_id}{pinned}`), then run again "
                "(offline runs read the hub cache), or give masks=segmenter:model=<local folder "
                "of a CLIPSeg checkpoint>."
            )
            if model_id.startswith((".", "/", "~")) or "\\" in model_id:
                hint = (
                    "Give masks=segmenter:model=<folder> with a CLIPSeg checkpoint and its "
                    "processor (as save_pretrained writes them), or a hub id."
                )
            raise ModelNotFoundError(
                f"masks=segmenter cannot load the CLIPSeg model {model_id!r} ({first}).",
                hint=hint,
            ) from exc
        return processor, model.to(device).eval()

    def check(self, backbone: Any, samples: Sequence[Any]) -> None:
        """Before any image is generated: load the model, so a wrong id fails now."""
        self.load(self.device(backbone))

    def probabilities(
        self, images: Sequence[Any], entities: Sequence[Sequence[str]], *, device: str = "cpu"
    ) -> list[dict[str, np.ndarray]]:
        """Per image, entity -> ``(H, W)`` probability map at the image's size.

        All (image, entity) rows go through the model ``batch_size`` at a time.

        Args:
            images: PIL images.
            entities: Each image's entity names (the text prompts).
            device: Where to run the model.
        """
        import torch
        import torch.nn.functional as F

        processor, model = self.load(device)
        rows = [(i, e) for i, names in enumerate(entities) for e in names]
        maps: dict[tuple[int, str], np.ndarray] = {}
        size = self.options.batch_size
        for start in range(0, len(rows), size):
            chunk = rows[start : start + size]
            inputs = processor(
                text=[e for _, e in chunk],
                images=[images[i].convert("RGB") for i, _ in chunk],
                padding=True,
                return_tensors="pt",
            ).to(device)
            with torch.inference_mode():
                logits = model(**inputs).logits
            logits = logits.reshape(len(chunk), 1, *logits.shape[-2:]).float()
            for j, (i, entity) in enumerate(chunk):
                height, width = images[i].height, images[i].width
                resized = F.interpolate(
                    logits[j : j + 1], size=(height, width), mode="bilinear", align_corners=False
                )
                maps[i, entity] = torch.sigmoid(resized)[0, 0].cpu().numpy()
        return [{e: maps[i, e] for e in names} for i, names in enumerate(entities)]

    def masks(
        self, images: Sequence[Any], entities: Sequence[Sequence[str]], *, device: str = "cpu"
    ) -> list[dict[str, np.ndarray]]:
        """Per image, entity -> ``(H, W)`` bool mask (:func:`masks_from_probabilities`).

        Usable in diffusers code too, e.g. ``deleaker(pipe, ents, masks=source.masks(...))``.
        """
        opts = self.options
        return [
            masks_from_probabilities(
                maps, threshold=opts.threshold, normalise=opts.normalise, assign=opts.assign
            )
            for maps in self.probabilities(images, entities, device=device)
        ]

    def __call__(self, backbone: Any, samples: Sequence[Any]) -> list[dict[str, np.ndarray]]:
        """One ``{entity: (H, W) bool}`` per sample, from its vanilla image (same prompt, seed)."""
        images = backbone.generate([s.prompt for s in samples], [s.seed for s in samples])
        return self.masks(images, [list(s.entities) for s in samples], device=self.device(backbone))


#: The registered ``segmenter`` source with the default options.
SEGMENTER = SegmenterSource()
