"""Ranking: from two typicality reports, which image leaks less, and by how much.

The ranking reads the two reports, not the images (language models compare structured text
better than two pictures). The runner asks it in both presentation orders, vanilla first
(``ab``) and method first (``ba``). Each answer gives a five-way label from the method image's
point of view; orders that disagree on the direction are an order flip and give ``no-change``,
orders that agree on the direction but not the magnitude give the smaller one. This stage
decides each verdict.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from ...errors import JudgeParseError
from .base import Ask, Asked, Question, Scope, Stage, Unit, sample_fields
from .schema import extract_json, object_schema, validate

#: Mean-typicality differences the local answer counts as no change, and as major.
LOCAL_NO_CHANGE, LOCAL_MAJOR = 0.25, 1.5

_REPORT = re.compile(r'<report image="(\d)">\s*(.*?)\s*</report>', re.S)


def report_text(report: Mapping[str, Any]) -> str:
    """A typicality report as the ranking prompt shows it (compact JSON, one entity a line)."""
    lines = []
    for name, row in report["entities"].items():
        lines.append(json.dumps({"name": name, **row}, ensure_ascii=False, sort_keys=False))
    return "\n".join(lines)


def ranking_label(ranking: Mapping[str, str], order: str) -> str:
    """The five-way label of one ranking answer, from the method image's point of view.

    Args:
        ranking: A parsed ranking answer.
        order: ``ab`` (Image 1 is vanilla, Image 2 the method) or ``ba`` (the reverse).
    """
    if ranking["less_leaky"] == "neither":
        return "no-change"
    method_image = "image2" if order == "ab" else "image1"
    direction = "mitigation" if ranking["less_leaky"] == method_image else "degradation"
    return f"{direction}-{ranking['magnitude']}"


def combine_orders(label_ab: str, label_ba: str) -> tuple[str, bool]:
    """Resolve the two presentation orders into one label and an order-flip flag.

    Orders that disagree on the direction (one says the method image leaks less, the other says
    more or no change) are an order flip and resolve to ``no-change``. Orders that agree on the
    direction but not on the magnitude give the smaller magnitude (``minor``), not a flip.
    """
    if label_ab == label_ba:
        return label_ab, False
    dir_ab, dir_ba = label_ab.split("-")[0], label_ba.split("-")[0]
    if dir_ab == dir_ba:
        return f"{dir_ab}-minor", False
    return "no-change", True


def _mean_typicality(report: Mapping[str, Any] | None) -> float:
    rows = list((report or {}).get("entities", {}).values())
    return sum(r.get("typicality", 0) for r in rows) / len(rows) if rows else 0.0


class RankingQuestion(Question):
    """Which of two reported images leaks less: ``image1``, ``image2`` or ``neither``."""

    name = "ranking"

    def schema(self, entities: Sequence[str]) -> dict:
        """``less_leaky``, ``magnitude`` and a ``reason``."""
        return object_schema(
            self.name,
            {
                "less_leaky": {"type": "string", "enum": ["image1", "image2", "neither"]},
                "magnitude": {"type": "string", "enum": ["major", "minor", "none"]},
                "reason": {"type": "string"},
            },
        )

    def parse(self, text: str, entities: Sequence[str]) -> dict:
        """The answer; ``neither`` goes with ``none`` and an image with a magnitude."""
        data = extract_json(text)
        validate(data, self.schema(entities))
        if (data["less_leaky"] == "neither") != (data["magnitude"] == "none"):
            raise JudgeParseError(
                f"less_leaky={data['less_leaky']!r} does not fit magnitude={data['magnitude']!r}: "
                "'neither' goes with 'none', and image1/image2 with 'minor' or 'major'."
            )
        return {
            "less_leaky": data["less_leaky"],
            "magnitude": data["magnitude"],
            "reason": " ".join(data["reason"].split()),
        }

    def read(self, text: str) -> dict:
        """The two reports the prompt shows, as ``{"image1": report, "image2": report}``."""
        out = {}
        for number, block in _REPORT.findall(text):
            rows = [json.loads(line) for line in block.splitlines() if line.strip().startswith("{")]
            out[f"image{number}"] = {
                "entities": {str(row.pop("name", i)): row for i, row in enumerate(rows)}
            }
        return out

    def local_answer(self, asked: Asked) -> dict:
        """The image whose report has the higher mean typicality leaks less."""
        diff = _mean_typicality(asked.inputs.get("image2")) - _mean_typicality(
            asked.inputs.get("image1")
        )
        if abs(diff) < LOCAL_NO_CHANGE:
            return {"less_leaky": "neither", "magnitude": "none", "reason": "similar reports"}
        return {
            "less_leaky": "image2" if diff > 0 else "image1",
            "magnitude": "major" if abs(diff) >= LOCAL_MAJOR else "minor",
            "reason": f"mean typicality differs by {abs(diff):.2f}",
        }


RANKING_QUESTION = RankingQuestion()


class Ranking(Stage):
    """One ranking per presentation order, from the two typicality reports."""

    name: ClassVar[str] = "ranking"
    scope: ClassVar[Scope] = "pair"
    questions: ClassVar[tuple[Question, ...]] = (RANKING_QUESTION,)

    def ask(self, unit: Unit, values: Mapping[str, Any]) -> list[Ask]:
        """The two reports, in the unit's order; the images are named, not sent."""
        first, second = unit.images
        reports = values["typicality"]
        report_1, report_2 = reports[first.role], reports[second.role]
        fields = {
            **sample_fields(unit.sample),
            "report_1": report_text(report_1),
            "report_2": report_text(report_2),
        }
        about = (first.with_label("Image 1"), second.with_label("Image 2"))
        inputs = {"image1": report_1, "image2": report_2}
        return [Ask(RANKING_QUESTION, fields, (), inputs, about)]

    def conclude(
        self, unit: Unit, values: Mapping[str, Any], answers: Sequence[dict]
    ) -> tuple[dict, dict]:
        """The answer with the label it implies in this order."""
        (answer,) = answers
        assert unit.order is not None
        output = {**answer, "label": ranking_label(answer, unit.order)}
        return output, output

    def scores(self, value: Mapping[str, dict]) -> dict:
        """Each order's label."""
        return {"orders": {order: ranking["label"] for order, ranking in value.items()}}

    def decide(self, value: Mapping[str, dict]) -> tuple[str, bool, str]:
        """The two orders combined; the rationale is the first order's reason, or the flip."""
        ab, ba = value["ab"], value["ba"]
        label, flip = combine_orders(ab["label"], ba["label"])
        if not flip:
            return label, False, ab["reason"]
        return (
            label,
            True,
            f"orders disagree: {ab['label']} (vanilla first) vs {ba['label']} (method first)",
        )


RANKING = Ranking()
