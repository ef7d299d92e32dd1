"""Extraction: the distinguishing features of each entity, from two sources, merged.

Two questions, asked together: ``extraction-text`` (from the prompt alone) and
``extraction-images`` (from one single-entity reference image per entity; skipped when the item
has none). The prompt-only list captures what the entity names mean, the reference list what
this backbone draws for each entity; they are merged per entity, in order, de-duplicated, at
most :data:`MAX_MERGED_FEATURES` each. The record keeps both lists and the merged one; the
merged features are the stage's value, which the typicality questions list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from ...errors import JudgeParseError
from .base import LOCAL_FEATURE_KINDS, Ask, Asked, Question, Scope, Stage, Unit, sample_fields
from .schema import clean_items, entity_array, extract_json, object_schema, per_entity, validate

#: Features kept per entity after merging the two extraction answers.
MAX_MERGED_FEATURES = 12


class ExtractionQuestion(Question):
    """Features per entity, from the prompt alone or from reference images.

    Args:
        name: ``extraction-text`` or ``extraction-images`` (also the prompt file's stem).
        from_images: Whether the question shows reference images.
    """

    def __init__(self, name: str, *, from_images: bool) -> None:
        self.name = name
        self.from_images = from_images

    def schema(self, entities: Sequence[str]) -> dict:
        """Features per entity: 1 to 12 strings each."""
        features = {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 12}
        return object_schema(
            self.name, {"entities": entity_array(entities, {"features": features}, ["features"])}
        )

    def parse(self, text: str, entities: Sequence[str]) -> dict:
        """``{"features": {entity: [feature, ...]}}``, cleaned and de-duplicated."""
        data = extract_json(text)
        validate(data, self.schema(entities))
        rows = per_entity(data, entities)
        features = {e: clean_items(rows[e]["features"]) for e in entities}
        empty = [e for e, f in features.items() if not f]
        if empty:
            raise JudgeParseError(f"The answer gives no usable feature for {empty[0]!r}.")
        return {"features": features}

    def local_answer(self, asked: Asked) -> dict:
        """Three generic features per entity, marked by where they were read from."""
        source = "reference" if self.from_images else "typical"
        return {
            "entities": [
                {
                    "name": e,
                    "features": [f"{source} {e} {kind}" for kind in LOCAL_FEATURE_KINDS[:3]],
                }
                for e in asked.entities
            ]
        }


EXTRACTION_TEXT = ExtractionQuestion("extraction-text", from_images=False)
EXTRACTION_IMAGES = ExtractionQuestion("extraction-images", from_images=True)


def reference_list(entities: Sequence[str]) -> str:
    """How the prompt lists the reference images: ``reference image 1 shows "cat", ...``."""
    return ", ".join(f'reference image {i} shows "{e}"' for i, e in enumerate(entities, 1))


def merge_features(
    entities: Sequence[str], *answers: Mapping[str, Sequence[str]] | None
) -> dict[str, list[str]]:
    """Merge extraction answers per entity: in order, de-duplicated, at most 12 each."""
    merged = {}
    for e in entities:
        items: list[str] = []
        for answer in answers:
            if answer:
                items.extend(answer.get(e, ()))
        merged[e] = clean_items(items)[:MAX_MERGED_FEATURES]
    return merged


class Extraction(Stage):
    """Features per entity from the prompt and from the reference images, merged."""

    name: ClassVar[str] = "extraction"
    scope: ClassVar[Scope] = "sample"
    questions: ClassVar[tuple[Question, ...]] = (EXTRACTION_TEXT, EXTRACTION_IMAGES)

    def ask(self, unit: Unit, values: Mapping[str, Any]) -> list[Ask]:
        """Always the prompt-only question; the reference question when there are references."""
        fields = sample_fields(unit.sample)
        asks = [Ask(EXTRACTION_TEXT, fields)]
        if unit.references:
            refs = tuple(
                im.with_label(f"Reference image {i} ({im.entity})")
                for i, im in enumerate(unit.references, 1)
            )
            listed = reference_list([str(im.entity) for im in refs])
            asks.append(Ask(EXTRACTION_IMAGES, {**fields, "reference_list": listed}, refs))
        return asks

    def conclude(
        self, unit: Unit, values: Mapping[str, Any], answers: Sequence[dict]
    ) -> tuple[dict, dict]:
        """The merged features; the record keeps both lists too."""
        from_prompt = answers[0]["features"]
        from_images = answers[1]["features"] if len(answers) > 1 else None
        features = merge_features(unit.sample.entities, from_prompt, from_images)
        return features, {
            "from_prompt": from_prompt,
            "from_images": from_images,
            "features": features,
        }


EXTRACTION = Extraction()
