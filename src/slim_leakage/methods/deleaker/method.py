"""DeLeaker as a registered method: ``slim-eval run --method deleaker``."""

from __future__ import annotations

from collections.abc import Sequence

from ...errors import EntityNotFoundError
from ...records import Sample
from ..base import Method, MethodOutput
from .config import DeLeakerConfig
from .overlays import PALETTE, mask_overlay
from .tokens import find_entity_tokens


class DeLeaker(Method):
    """DeLeaker (ICLR 2026): entity masks from early attention, then cross-entity image-text
    suppression, self-identity reinforcement and abnormal image-image suppression.

    On FLUX every joint-attention block is edited; on SANA the softmax cross-attention to the
    text (the image-image component is off there: SANA's self-attention is linear).
    """

    name = "deleaker"
    Config = DeLeakerConfig
    needs = ("entities",)
    families = ("flux", "sana")
    description = "DeLeaker: training-free attention reweighting of entity tokens (FLUX, SANA)"

    def prepare(self, backbone, samples: Sequence[Sample]) -> None:
        """Check that every entity of every sample is found within the text length."""
        super().prepare(backbone, samples)
        if backbone.family == "sana":
            from .sana import check_samples

            check_samples(backbone, samples)
            return
        tokenizer = backbone.tokenizer
        length = backbone.settings.max_sequence_length
        for sample in samples:
            for entity in sample.entities:
                try:
                    find_entity_tokens(tokenizer, sample.prompt, entity, max_sequence_length=length)
                except EntityNotFoundError as exc:
                    raise EntityNotFoundError(
                        f"Sample {sample.id!r}: {exc.message}", hint=exc.hint
                    ) from exc

    def generate(self, backbone, samples: Sequence[Sample]) -> list[MethodOutput]:
        """Generate the batch with DeLeaker installed, one entity list per prompt."""
        if not samples:
            return []
        if backbone.family == "sana":
            from .sana import generate

            return generate(self, backbone, samples)
        from .flux import install

        prompts = [s.prompt for s in samples]
        with install(
            backbone.pipe,
            [list(s.entities) for s in samples],
            config=self.config,
            prompts=prompts,
            max_sequence_length=backbone.settings.max_sequence_length,
            tokenizer=backbone.tokenizer,
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
            }
            overlays = {
                e: mask_overlay(image, final[e], PALETTE[i % len(PALETTE)])
                for i, e in enumerate(sample.entities)
                if e in final
            }
            outputs.append(MethodOutput(image=image, extra=extra, overlays=overlays))
        return outputs
