"""Typicality: each image rated on its own, blind to which image it is.

For one image and the merged features, each entity gets ``present``, a 1-5 ``typicality``, the
``borrowed_features`` of other entities it shows, and one sentence of ``evidence``. The model
is never told whether the image is the vanilla or the method image, so the vanilla image's
rating is one request (and one cache entry) shared by every method judged against it. A
missing entity is rated :data:`TYPICALITY_MIN` whatever the answer says. This stage answers
single-image leakage checks: an image leaks when some entity shows a borrowed feature.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from .base import LOCAL_FEATURE_KINDS, Ask, Asked, Question, Scope, Stage, Unit, sample_fields
from .schema import clean_items, entity_array, extract_json, object_schema, per_entity, validate

#: The 1-5 typicality scale (stated in the typicality prompt).
TYPICALITY_MIN, TYPICALITY_MAX = 1, 5


def feature_block(features: Mapping[str, Sequence[str]]) -> str:
    """Features as the typicality prompt lists them."""
    return "\n".join(f"- {e}: {'; '.join(fs)}" for e, fs in features.items())


def is_leaky(report: Mapping[str, Any]) -> bool:
    """A single image leaks when some entity shows a feature borrowed from another entity."""
    return any(row["borrowed_features"] for row in report["entities"].values())


def typicality_of(image_sha256: str, entity: str) -> int:
    """The local answer's typicality (1-5) of ``entity`` in the image with that SHA-256."""
    digest = hashlib.sha256(f"{image_sha256}|{entity}".encode()).hexdigest()
    return 1 + int(digest[:8], 16) % 5


class TypicalityQuestion(Question):
    """How typical each entity looks in one image, and what it borrows from the others."""

    name = "typicality"

    def schema(self, entities: Sequence[str]) -> dict:
        """One rating per entity."""
        props = {
            "present": {"type": "boolean"},
            "typicality": {
                "type": "integer",
                "minimum": TYPICALITY_MIN,
                "maximum": TYPICALITY_MAX,
            },
            "borrowed_features": {"type": "array", "items": {"type": "string"}},
            "evidence": {"type": "string"},
        }
        return object_schema(self.name, {"entities": entity_array(entities, props, list(props))})

    def parse(self, text: str, entities: Sequence[str]) -> dict:
        """``{"entities": {entity: {present, typicality, borrowed_features, evidence}}}``."""
        data = extract_json(text)
        validate(data, self.schema(entities))
        rows = per_entity(data, entities)
        out = {}
        for e in entities:
            row = rows[e]
            out[e] = {
                "present": row["present"],
                "typicality": row["typicality"] if row["present"] else TYPICALITY_MIN,
                "borrowed_features": clean_items(row["borrowed_features"]),
                "evidence": " ".join(row["evidence"].split()),
            }
        return {"entities": out}

    def local_answer(self, asked: Asked) -> dict:
        """Typicality from the image's SHA-256; an entity rated 3 or less borrows a feature."""
        image = asked.images[0] if asked.images else ""
        rows = []
        for e in asked.entities:
            score = typicality_of(image, e)
            others = [o for o in asked.entities if o != e]
            borrowed = (
                [f"{others[0]} {LOCAL_FEATURE_KINDS[score % 5]}"] if score <= 3 and others else []
            )
            rows.append(
                {
                    "name": e,
                    "present": True,
                    "typicality": score,
                    "borrowed_features": borrowed,
                    "evidence": f"the {e} looks {'typical' if score >= 4 else 'mixed'}",
                }
            )
        return {"entities": rows}


TYPICALITY_QUESTION = TypicalityQuestion()


class Typicality(Stage):
    """One typicality report per image, given the merged features."""

    name: ClassVar[str] = "typicality"
    scope: ClassVar[Scope] = "image"
    questions: ClassVar[tuple[Question, ...]] = (TYPICALITY_QUESTION,)

    def ask(self, unit: Unit, values: Mapping[str, Any]) -> list[Ask]:
        """The image, captioned ``Image``, with the features of every entity."""
        features = values["extraction"]
        image = unit.image.with_label("Image")
        fields = {**sample_fields(unit.sample), "feature_block": feature_block(features)}
        return [Ask(TYPICALITY_QUESTION, fields, (image,), {"features": features})]

    def conclude(
        self, unit: Unit, values: Mapping[str, Any], answers: Sequence[dict]
    ) -> tuple[dict, dict]:
        """The report; the record also names the image's role."""
        (report,) = answers
        return report, {"image": unit.image.role, **report}

    def scores(self, value: Mapping[str, dict]) -> dict:
        """Typicality and the number of borrowed features, per image and entity."""
        return {
            "typicality": {
                role: {e: r["typicality"] for e, r in report["entities"].items()}
                for role, report in value.items()
            },
            "borrowed": {
                role: {e: len(r["borrowed_features"]) for e, r in report["entities"].items()}
                for role, report in value.items()
            },
        }

    def leaks(self, value: Mapping[str, dict]) -> tuple[bool, dict]:
        """Leaky when some entity borrows a feature; typicality, borrowings and presence."""
        (report,) = value.values()
        rows = report["entities"]
        return is_leaky(report), {
            "typicality": {e: r["typicality"] for e, r in rows.items()},
            "borrowed_features": {e: r["borrowed_features"] for e, r in rows.items()},
            "present": {e: r["present"] for e, r in rows.items()},
        }


TYPICALITY = Typicality()
