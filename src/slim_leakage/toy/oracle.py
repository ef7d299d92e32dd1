"""The ``oracle`` judge backend: exact measurements instead of a language model, for toy images.

It answers each question of the judge's protocol from the facts the question reads off the
request (entities, image bytes, stage inputs), using the toy world's ground truth and
:mod:`slim_leakage.toy.reading`, never the rendered prompt:

- **extraction** (both kinds): each entity's distinguishing features are its pattern, colour
  and shape as the toy world defines them;
- **typicality**: the image is segmented, each entity's pattern is read cell by cell, and the
  answer reports whether it is present, a 1-5 rating from its exact typicality
  (own share - other share), the other entities' patterns it shows (``borrowed_features``, set
  when an entity leaks) and the exact figures in ``evidence``;
- **ranking**: the two reports' exact mean typicalities are compared; a difference below
  :data:`NO_CHANGE` is ``neither``, below :data:`MAJOR` ``minor``, else ``major``. Both
  presentation orders give the same answer, so the oracle never flips.

Thresholds are fixed constants, set before any method was judged. Numpy and Pillow only.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from ..errors import JudgeError
from ..judge.backends.base import Backend, BackendRequest, BackendResponse
from ..judge.stages import (
    EXTRACTION_IMAGES,
    EXTRACTION_TEXT,
    PROTOCOL,
    RANKING_QUESTION,
    TYPICALITY_QUESTION,
    Asked,
)

#: Mean-typicality differences (in [-2, 2]) below this are "no change".
NO_CHANGE = 0.125
#: Differences at or above this are "major".
MAJOR = 0.5

_EVIDENCE = re.compile(r"typicality (?P<t>[+-]?\d+(?:\.\d+)?)")


def rating(typicality: float, found: bool) -> int:
    """The 1-5 rating of an exact typicality in [-1, 1] (1 when the entity is missing)."""
    if not found:
        return 1
    for floor, score in ((0.8, 5), (0.4, 4), (0.0, 3), (-0.4, 2)):
        if typicality >= floor:
            return score
    return 1


def _nouns(entities: Sequence[str]) -> list[str]:
    from .world import ENTITY_TYPES

    unknown = [e for e in entities if e not in ENTITY_TYPES]
    if not entities or unknown:
        raise JudgeError(
            f"The oracle judges only toy-world prompts; {unknown[0] if unknown else 'no entity'!r} "
            "is not a toy entity.",
            hint=f"Use toy entities ({', '.join(ENTITY_TYPES)}) with --backbone toy, or a VLM judge.",
        )
    return list(entities)


def extraction_answer(entities: Sequence[str]) -> dict:
    """Each entity's defining features, from the toy world."""
    from .world import entity_type

    rows = []
    for e in entities:
        et = entity_type(e)
        rows.append(
            {
                "name": e,
                "features": [
                    f"{et.pattern} white pattern",
                    f"{et.family} colour",
                    f"{et.shape} shape",
                ],
            }
        )
    return {"entities": rows}


def typicality_answer(image_bytes: bytes, entities: Sequence[str]) -> dict:
    """Read one image exactly; the answer follows the typicality schema."""
    from PIL import Image

    from .reading import read_image
    from .world import entity_type

    try:
        image = Image.open(io.BytesIO(image_bytes)).convert("RGB")
    except Exception as exc:  # noqa: BLE001 - any undecodable image is the same error
        raise JudgeError(f"The oracle could not decode an image ({exc}).") from exc
    rows = []
    for r in read_image(image, entities):
        borrowed = []
        if r.leaks:
            own = entity_type(r.noun).pattern
            borrowed = sorted(
                {
                    f"{entity_type(o).pattern} pattern of the {o}"
                    for o in entities
                    if o != r.noun and entity_type(o).pattern != own
                }
            )
        rows.append(
            {
                "name": r.noun,
                "present": r.found,
                "typicality": rating(r.typicality, r.found),
                "borrowed_features": borrowed,
                "evidence": (
                    f"oracle: own {r.own:.3f}, other {r.other:.3f}, control {r.control:.3f}, "
                    f"typicality {r.typicality:+.3f}"
                    if r.found
                    else "oracle: not found, typicality -1.000"
                ),
            }
        )
    return {"entities": rows}


def exact_typicality(report: dict) -> float:
    """Mean exact typicality of a typicality report written by the oracle."""
    values = []
    for name, row in report["entities"].items():
        m = _EVIDENCE.search(row.get("evidence", ""))
        if not m:
            raise JudgeError(
                f"The typicality report for {name!r} was not written by the oracle "
                f"(evidence {row.get('evidence', '')!r}).",
                hint="Judge with the oracle end to end, or clear the judge cache.",
            )
        values.append(float(m.group("t")))
    return sum(values) / len(values) if values else 0.0


def ranking_answer(report_1: dict, report_2: dict) -> dict:
    """Which of two oracle reports leaks less, and by how much."""
    t1, t2 = exact_typicality(report_1), exact_typicality(report_2)
    diff = t1 - t2
    if abs(diff) < NO_CHANGE:
        return {
            "less_leaky": "neither",
            "magnitude": "none",
            "reason": f"mean typicality {t1:+.3f} vs {t2:+.3f}",
        }
    return {
        "less_leaky": "image1" if diff > 0 else "image2",
        "magnitude": "major" if abs(diff) >= MAJOR else "minor",
        "reason": f"mean typicality {t1:+.3f} vs {t2:+.3f}",
    }


def _typicality(asked: Asked, entities: list[str]) -> dict:
    if len(asked.data) != 1:
        raise JudgeError(f"A typicality request needs one image, got {len(asked.data)}.")
    return typicality_answer(asked.data[0], entities)


def _ranking(asked: Asked, entities: list[str]) -> dict:
    if "image1" not in asked.inputs or "image2" not in asked.inputs:
        raise JudgeError("A ranking request lacks the two typicality reports in its context.")
    return ranking_answer(asked.inputs["image1"], asked.inputs["image2"])


#: The oracle's exact answer to each question of the judging protocol.
_ANSWERS: dict[str, Callable[[Asked, list[str]], dict]] = {
    EXTRACTION_TEXT.name: lambda asked, entities: extraction_answer(entities),
    EXTRACTION_IMAGES.name: lambda asked, entities: extraction_answer(entities),
    TYPICALITY_QUESTION.name: _typicality,
    RANKING_QUESTION.name: _ranking,
}


#: Backbones whose images the oracle can read: the toy model, and images brought from a folder.
TOY_BACKBONES = frozenset({"toy", "images"})


class OracleBackend(Backend):
    """Exact leakage measurement on toy-world images (no model, no network, deterministic)."""

    name: ClassVar[str] = "oracle"
    description: ClassVar[str] = (
        "exact pattern measurement on toy-world images (ground truth for --backbone toy)"
    )
    default_model: ClassVar[str] = "toy-oracle-v1"
    pricing_key: ClassVar[str] = ""
    options: ClassVar[dict[str, Any]] = {}
    model_choice: ClassVar[bool] = False

    def check_request(self, samples: Sequence, backbone: str | None) -> list:
        """What makes a run's request unjudgeable by the oracle, found before any work.

        The oracle reads the toy world's drawn patterns: it cannot judge words outside the
        toy world, nor images from a backbone that does not draw it (``tiny-random`` draws
        noise, which the oracle would read as "no change").

        Args:
            samples: The run's samples.
            backbone: The backbone preset's name (``None``: not known).
        """
        from ..errors import ConfigError
        from .world import ENTITY_TYPES

        problems: list[ConfigError] = []
        if backbone is not None and backbone not in TOY_BACKBONES:
            problems.append(
                ConfigError(
                    f"--judge oracle cannot judge images of --backbone {backbone}: the oracle "
                    "reads the toy world's patterns, which only the toy model draws.",
                    hint="Use --backbone toy with --judge oracle, or a VLM judge (gemini, "
                    "openai, openai-compatible, hf-local) for other backbones.",
                )
            )
        unknown = sorted({e for s in samples for e in s.entities if e not in ENTITY_TYPES})
        if unknown:
            shown = ", ".join(map(repr, unknown[:5])) + (" ..." if len(unknown) > 5 else "")
            problems.append(
                ConfigError(
                    f"--judge oracle judges only toy-world entities; {len(unknown)} entit"
                    f"{'y is' if len(unknown) == 1 else 'ies are'} not: {shown}.",
                    hint=f"Use a toy config (toy-pairs, toy-triplets, toy-controls) or toy "
                    f"entities ({', '.join(ENTITY_TYPES)}), or a VLM judge.",
                )
            )
        return problems

    def answer(self, request: BackendRequest) -> dict:
        """The answer object for one request (see the module docstring)."""
        question = PROTOCOL.question(request.stage)
        if question is None:
            raise JudgeError(f"The oracle does not know the stage {request.stage!r}.")
        asked = question.asked_in(request)
        return _ANSWERS[question.name](asked, _nouns(asked.entities))

    async def complete(self, requests: Sequence[BackendRequest]) -> list[BackendResponse]:
        """Answer every request exactly (JSON text matching its schema)."""
        return [
            BackendResponse(text=json.dumps(self.answer(r)), model=self.model) for r in requests
        ]
