"""The unmodified backbone: the reference every other method is judged against."""

from __future__ import annotations

from collections.abc import Sequence

from ..records import Sample
from .base import Method, MethodOutput


class Vanilla(Method):
    """Generate with the stock backbone, the sample's prompt and seed."""

    name = "vanilla"
    description = "the unmodified backbone (the reference image of every comparison)"

    def generate(self, backbone, samples: Sequence[Sample]) -> list[MethodOutput]:
        images = backbone.generate([s.prompt for s in samples], [s.seed for s in samples])
        return [MethodOutput(image=img) for img in images]
