"""DeLeaker as a registered method: ``slim-eval run --method deleaker``.

One ``prepare`` and one ``generate`` serve every backbone family. What differs between families
lives in one file per family, named in :data:`BACKBONE_FILES`, and every such file has the same
shape (:class:`BackboneFile`):

- its processors: the fast one and the explicit reference one (the oracle of its tests);
- ``install(pipe, entities, *, prompts, config, implementation, **options)``: a context manager
  that installs them on a pipeline and restores the originals, yielding the run state;
- ``entity_spans(backbone, prompt, entities)``: where the entities sit in the text the
  backbone's attention sees;
- ``install_options(backbone)``: the arguments of ``install`` that a loaded backbone fixes;
- ``EXTRA``: facts recorded with every generation on that family.

A new family is one new file of that shape, named in :data:`BACKBONE_FILES`.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from ...errors import ConfigError, EntityNotFoundError
from ...records import Sample
from ..base import Method, MethodOutput
from .config import DeLeakerConfig
from .overlays import PALETTE, mask_overlay

#: Backbone family -> the module that runs DeLeaker on it (imported when first used: they
#: import torch).
BACKBONE_FILES: dict[str, str] = {
    "flux": "slim_leakage.methods.deleaker.flux",
    "sana": "slim_leakage.methods.deleaker.sana",
    "sd3": "slim_leakage.methods.deleaker.sd3",
    "flux2": "slim_leakage.methods.deleaker.flux2",
    "qwenimage": "slim_leakage.methods.deleaker.qwenimage",
    "zimage": "slim_leakage.methods.deleaker.zimage",
}


class BackboneFile(Protocol):
    """The shape of one backbone family's DeLeaker module (``flux.py``, ``sana.py``)."""

    #: Facts recorded in every generation's ``extra`` on this family.
    EXTRA: dict[str, Any]

    def install(
        self, pipe: Any, entities: Any, *, prompts: Any, config: DeLeakerConfig, **options: Any
    ) -> AbstractContextManager[Any]:
        """Install DeLeaker's processors on ``pipe`` for a ``with`` block; yields the state."""
        ...

    def entity_spans(
        self, backbone: Any, prompt: str, entities: Sequence[str]
    ) -> dict[str, list[int]]:
        """Token positions of each entity in the text the backbone's attention sees."""
        ...

    def install_options(self, backbone: Any) -> dict[str, Any]:
        """Keyword arguments of ``install`` that a loaded backbone fixes."""
        ...


def backbone_file(family: str) -> BackboneFile:
    """The DeLeaker module of a backbone family (see :data:`BACKBONE_FILES`)."""
    return importlib.import_module(BACKBONE_FILES[family])  # type: ignore[return-value]


class DeLeaker(Method):
    """DeLeaker (ICLR 2026): entity masks from early attention, then cross-entity image-text
    suppression, self-identity reinforcement and abnormal image-image suppression.

    On FLUX every joint-attention block is edited; on SANA the softmax cross-attention to the
    text (the image-image component is off there: SANA's self-attention is linear).
    """

    name = "deleaker"
    Config = DeLeakerConfig
    needs = ("entities",)
    families = tuple(BACKBONE_FILES)
    description = "DeLeaker: training-free attention reweighting of entity tokens (FLUX, SANA)"

    def __init__(self, config: Any = None, **options: Any) -> None:
        super().__init__(config, **options)
        from .given import resolve_source

        # resolved now, so a misspelt source or a missing folder fails before any weights load
        self.mask_source = resolve_source(self.config.masks)

    def prepare(self, backbone, samples: Sequence[Sample]) -> None:
        """Check that every entity of every sample is found within the text length, and that
        a mask source with a ``check`` accepts the samples."""
        super().prepare(backbone, samples)
        check = getattr(self.mask_source, "check", None)
        if callable(check):
            check(backbone, samples)
        family = backbone_file(backbone.family)
        for sample in samples:
            try:
                family.entity_spans(backbone, sample.prompt, list(sample.entities))
            except EntityNotFoundError as exc:
                raise EntityNotFoundError(
                    f"Sample {sample.id!r}: {exc.message}", hint=exc.hint
                ) from exc

    def generate(self, backbone, samples: Sequence[Sample]) -> list[MethodOutput]:
        """Generate the batch with DeLeaker installed, one entity list per prompt.

        Each output records its entities' final mask sizes, the mask grid and the entity token
        positions in ``extra``, and one overlay per entity (its final mask over the image).
        """
        if not samples:
            return []
        family = backbone_file(backbone.family)
        prompts = [s.prompt for s in samples]
        given = None
        if self.mask_source is not None:
            # before installing: a source may generate with the backbone (the toy oracle's
            # vanilla images)
            given = list(self.mask_source(backbone, samples))
            if len(given) != len(samples):
                raise ConfigError(
                    f"The mask source {self.config.masks!r} returned {len(given)} mask sets for "
                    f"{len(samples)} samples.",
                    hint="A mask source returns one {entity: mask} mapping per sample.",
                )
        with family.install(
            backbone.pipe,
            [list(s.entities) for s in samples],
            prompts=prompts,
            config=self.config,
            masks=given,
            **family.install_options(backbone),
        ) as run:
            images = backbone.generate(prompts, [s.seed for s in samples])
            spans = run.spans or []
        outputs = []
        for b, (sample, image) in enumerate(zip(samples, images)):
            final = run.final_masks(b)
            extra = {
                "mask_tokens": {e: int(m.sum()) for e, m in final.items()},
                "mask_grid": list(run.grid),
                "entity_tokens": {e: list(t) for e, t in spans[b].items()} if spans else {},
                **({"mask_source": self.config.masks} if given is not None else {}),
                **family.EXTRA,
            }
            overlays = {
                e: mask_overlay(image, final[e], PALETTE[i % len(PALETTE)])
                for i, e in enumerate(sample.entities)
                if e in final
            }
            outputs.append(MethodOutput(image=image, extra=extra, overlays=overlays))
        return outputs
