"""Single-entity reference images: one entity drawn alone, for the judge to compare against.

The run (for the judge's extraction stage) and the SLIM verifier (for ``check_leakage``) draw
them with the same rule: the prompt is the entity with its indefinite article ("an owl") and
the seed is :data:`REFERENCE_SEED`. One image per entity, shared by every sample naming it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

#: The seed of every reference image.
REFERENCE_SEED = 0
#: The rule in words (recorded where images made by an older rule must not be reused).
REFERENCE_RULE = f"'a/an <entity>', seed {REFERENCE_SEED}"


def reference_prompt(entity: str) -> str:
    """The prompt of an entity's reference image: "an owl", "a cow"."""
    article = "an" if entity[:1].lower() in "aeiou" else "a"
    return f"{article} {entity}"


@dataclasses.dataclass(frozen=True)
class ReferenceImage:
    """One generated reference image.

    Attributes:
        entity: The entity drawn alone.
        prompt: Its prompt (:func:`reference_prompt`).
        seed: Its seed (:data:`REFERENCE_SEED`).
        image: The PIL image.
    """

    entity: str
    prompt: str
    seed: int
    image: Any


def generate_references(
    backbone: Any, entities: Sequence[str], *, batch_size: int
) -> Iterator[list[ReferenceImage]]:
    """Draw each entity alone, ``batch_size`` per pipeline call; yields one list per call.

    Args:
        backbone: Anything with ``generate(prompts, seeds) -> list[PIL.Image]``.
        entities: The entities, in the order to draw them.
        batch_size: Images per ``generate`` call.
    """
    for start in range(0, len(entities), batch_size):
        batch = list(entities[start : start + batch_size])
        prompts = [reference_prompt(e) for e in batch]
        images = backbone.generate(prompts, [REFERENCE_SEED] * len(batch))
        yield [
            ReferenceImage(entity=e, prompt=p, seed=REFERENCE_SEED, image=image)
            for e, p, image in zip(batch, prompts, images)
        ]
