"""The judge's stages as pure definitions: name, version, prompt, schema and parser.

Four questions make up the protocol (``docs/judge.md`` explains the reasoning):

- ``extraction-text``: distinguishing features of each entity from the prompt alone;
- ``extraction-images``: the same from one single-entity reference image per entity;
- ``typicality``: for one image, how typical each entity looks (1-5) and which features of the
  other entities it shows;
- ``ranking``: from two typicality reports, which image leaks less, and by how much.

Prompts are versioned files ``prompts/<stage>.<version>.txt``; changing one means a new version
(the version is part of every cache key and of every manifest). Parsers accept an answer only if
it is one JSON object matching the stage's schema and naming each entity exactly once.
"""

from __future__ import annotations

import dataclasses
import json
import re
import string
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Any

from ..errors import ConfigError, JudgeParseError

#: The 1-5 typicality scale (stated in the typicality prompt).
TYPICALITY_MIN, TYPICALITY_MAX = 1, 5
#: Features kept per entity after merging the two extraction answers.
MAX_MERGED_FEATURES = 12


@cache
def load_prompt(stage: str, version: str) -> str:
    """The prompt template text of ``stage`` at ``version`` (packaged file).

    Raises:
        ConfigError: If no such prompt file exists.
    """
    name = f"{stage}.{version}.txt"
    try:
        return resources.files("slim_leakage.judge").joinpath("prompts", name).read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"No judge prompt {name!r}.",
            hint="Prompt files live in slim_leakage/judge/prompts/<stage>.<version>.txt.",
        ) from None


def render(stage: str, version: str, **fields: str) -> str:
    """Fill the ``$field`` placeholders of a prompt template (all must be given)."""
    try:
        return string.Template(load_prompt(stage, version)).substitute(fields)
    except KeyError as exc:
        raise ConfigError(f"Prompt {stage}.{version} needs the field {exc.args[0]!r}.") from None


def entity_list(entities: Sequence[str]) -> str:
    """``"cat", "cheetah"`` as the prompts quote entity names."""
    return ", ".join(f'"{e}"' for e in entities)


# -- schemas ------------------------------------------------------------------------------------


def _entity_array(entities: Sequence[str], item_properties: dict, required: list[str]) -> dict:
    return {
        "type": "array",
        "minItems": len(entities),
        "maxItems": len(entities),
        "items": {
            "type": "object",
            "properties": {"name": {"type": "string", "enum": list(entities)}, **item_properties},
            "required": ["name", *required],
            "additionalProperties": False,
        },
    }


def _object(title: str, properties: dict) -> dict:
    return {
        "title": title,
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def extraction_schema(stage: str, entities: Sequence[str]) -> dict:
    """Schema of both extraction answers: features per entity."""
    features = {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 12}
    return _object(
        stage, {"entities": _entity_array(entities, {"features": features}, ["features"])}
    )


def typicality_schema(entities: Sequence[str]) -> dict:
    """Schema of a typicality answer: one rating per entity."""
    props = {
        "present": {"type": "boolean"},
        "typicality": {"type": "integer", "minimum": TYPICALITY_MIN, "maximum": TYPICALITY_MAX},
        "borrowed_features": {"type": "array", "items": {"type": "string"}},
        "evidence": {"type": "string"},
    }
    return _object("typicality", {"entities": _entity_array(entities, props, list(props))})


def ranking_schema() -> dict:
    """Schema of a ranking answer."""
    return _object(
        "ranking",
        {
            "less_leaky": {"type": "string", "enum": ["image1", "image2", "neither"]},
            "magnitude": {"type": "string", "enum": ["major", "minor", "none"]},
            "reason": {"type": "string"},
        },
    )


#: Keywords some structured-output APIs reject in strict mode; the local parser still checks them.
NON_PORTABLE_KEYWORDS = frozenset({"title", "minimum", "maximum", "minItems", "maxItems"})


def portable_schema(schema: Any) -> Any:
    """``schema`` without numeric and length bounds or titles (the subset strict modes accept).

    The bounds stay enforced by :func:`validate` when the answer is parsed.
    """
    if isinstance(schema, dict):
        return {k: portable_schema(v) for k, v in schema.items() if k not in NON_PORTABLE_KEYWORDS}
    if isinstance(schema, list):
        return [portable_schema(v) for v in schema]
    return schema


# -- parsing ------------------------------------------------------------------------------------

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.S)


def extract_json(text: str) -> Any:
    """The one JSON object in an answer, tolerating code fences and text around it.

    Raises:
        JudgeParseError: If no complete JSON object can be read.
    """
    if not isinstance(text, str) or not text.strip():
        raise JudgeParseError("The answer is empty.")
    candidates = [text.strip()]
    candidates += [m.group(1).strip() for m in _FENCE.finditer(text)]
    start = text.find("{")
    if start >= 0:
        candidates.append(text[start : text.rfind("}") + 1])
    last_error = None
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except json.JSONDecodeError as exc:
            last_error = exc
            continue
        if isinstance(value, dict):
            return value
    detail = f" ({last_error.msg} at character {last_error.pos})" if last_error else ""
    raise JudgeParseError(f"The answer is not a JSON object{detail}: {text[:200]!r}.")


_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
}


def validate(value: Any, schema: Mapping[str, Any], path: str = "$") -> None:
    """Check ``value`` against the subset of JSON Schema the stages use.

    Supports ``type``, ``properties``, ``required``, ``additionalProperties: false``, ``items``,
    ``minItems``/``maxItems``, ``enum`` and ``minimum``/``maximum``.

    Raises:
        JudgeParseError: Naming the first offending path.
    """
    kind = schema.get("type")
    if kind is not None and not _TYPES[kind](value):
        raise JudgeParseError(f"{path} must be a {kind}, got {json.dumps(value)[:80]}.")
    if "enum" in schema and value not in schema["enum"]:
        raise JudgeParseError(
            f"{path} is {json.dumps(value)[:80]}; allowed: {', '.join(map(json.dumps, schema['enum']))}."
        )
    if kind in ("integer", "number"):
        if "minimum" in schema and value < schema["minimum"]:
            raise JudgeParseError(f"{path} is {value}, below the minimum {schema['minimum']}.")
        if "maximum" in schema and value > schema["maximum"]:
            raise JudgeParseError(f"{path} is {value}, above the maximum {schema['maximum']}.")
    if kind == "object":
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                raise JudgeParseError(f"{path} lacks the key {key!r}.")
        if schema.get("additionalProperties") is False:
            extra = sorted(set(value) - set(props))
            if extra:
                raise JudgeParseError(
                    f"{path} has unexpected key(s) {', '.join(map(repr, extra))}."
                )
        for key, sub in props.items():
            if key in value:
                validate(value[key], sub, f"{path}.{key}")
    if kind == "array":
        if "minItems" in schema and len(value) < schema["minItems"]:
            raise JudgeParseError(
                f"{path} has {len(value)} items; at least {schema['minItems']} needed."
            )
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise JudgeParseError(
                f"{path} has {len(value)} items; at most {schema['maxItems']} allowed."
            )
        for i, item in enumerate(value):
            validate(item, schema.get("items", {}), f"{path}[{i}]")


def _per_entity(data: dict, entities: Sequence[str]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for row in data["entities"]:
        if row["name"] in out:
            raise JudgeParseError(f"The entity {row['name']!r} is listed twice.")
        out[row["name"]] = row
    missing = [e for e in entities if e not in out]
    if missing:
        raise JudgeParseError(f"The answer lacks the entity {missing[0]!r}.")
    return out


def _clean(items: Sequence[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for item in items:
        text = " ".join(item.split())
        if text and text.lower() not in seen:
            seen.add(text.lower())
            out.append(text)
    return out


def parse_extraction(text: str, entities: Sequence[str], stage: str = "extraction-text") -> dict:
    """Parse an extraction answer into ``{"features": {entity: [feature, ...]}}``."""
    data = extract_json(text)
    validate(data, extraction_schema(stage, entities))
    rows = _per_entity(data, entities)
    features = {e: _clean(rows[e]["features"]) for e in entities}
    empty = [e for e, f in features.items() if not f]
    if empty:
        raise JudgeParseError(f"The answer gives no usable feature for {empty[0]!r}.")
    return {"features": features}


def parse_typicality(text: str, entities: Sequence[str]) -> dict:
    """Parse a typicality answer into ``{"entities": {entity: {present, typicality, ...}}}``."""
    data = extract_json(text)
    validate(data, typicality_schema(entities))
    rows = _per_entity(data, entities)
    out = {}
    for e in entities:
        row = rows[e]
        out[e] = {
            "present": row["present"],
            "typicality": row["typicality"] if row["present"] else TYPICALITY_MIN,
            "borrowed_features": _clean(row["borrowed_features"]),
            "evidence": " ".join(row["evidence"].split()),
        }
    return {"entities": out}


def parse_ranking(text: str) -> dict:
    """Parse a ranking answer; ``neither`` goes with ``none`` and an image with a magnitude."""
    data = extract_json(text)
    validate(data, ranking_schema())
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


# -- pure combinators ---------------------------------------------------------------------------


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
        merged[e] = _clean(items)[:MAX_MERGED_FEATURES]
    return merged


def feature_block(features: Mapping[str, Sequence[str]]) -> str:
    """Features as the typicality prompt lists them."""
    return "\n".join(f"- {e}: {'; '.join(fs)}" for e, fs in features.items())


def report_text(report: Mapping[str, Any]) -> str:
    """A typicality report as the ranking prompt shows it (compact JSON, one entity a line)."""
    lines = []
    for name, row in report["entities"].items():
        lines.append(json.dumps({"name": name, **row}, ensure_ascii=False, sort_keys=False))
    return "\n".join(lines)


def is_leaky(report: Mapping[str, Any]) -> bool:
    """A single image leaks when some entity shows a feature borrowed from another entity."""
    return any(row["borrowed_features"] for row in report["entities"].values())


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


@dataclasses.dataclass(frozen=True)
class StageSpec:
    """One stage of the protocol: its name, prompt version and parser."""

    name: str
    version: str

    def parse(self, text: str, entities: Sequence[str]) -> dict:
        """Parse an answer of this stage (raises :class:`JudgeParseError`)."""
        if self.name.startswith("extraction"):
            return parse_extraction(text, entities, self.name)
        if self.name == "typicality":
            return parse_typicality(text, entities)
        if self.name == "ranking":
            return parse_ranking(text)
        raise ConfigError(f"Unknown judge stage {self.name!r}.")


#: The stages and their current prompt versions.
STAGES: dict[str, StageSpec] = {
    name: StageSpec(name, "v1")
    for name in ("extraction-text", "extraction-images", "typicality", "ranking")
}
#: Version of the repair prompt.
REPAIR_VERSION = "v1"


def prompt_versions() -> dict[str, str]:
    """Stage name -> prompt version (recorded in manifests)."""
    return {**{n: s.version for n, s in STAGES.items()}, "repair": REPAIR_VERSION}
