"""The answer format every stage shares: JSON objects checked against a JSON-schema subset.

Stages build their schemas from :func:`object_schema` and :func:`entity_array` (the schema's
``title`` is the question's name; entity names are an ``enum``), read answers with
:func:`extract_json` (tolerating code fences and text around the object) and check them with
:func:`validate`. Backends whose strict structured-output modes reject some keywords send
:func:`portable_schema`; the parser checks the full schema either way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ...errors import JudgeParseError


def entity_array(entities: Sequence[str], item_properties: dict, required: list[str]) -> dict:
    """An array with one object per entity: ``name`` (one of ``entities``) and the given keys."""
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


def object_schema(title: str, properties: dict) -> dict:
    """A closed object whose every property is required; ``title`` names the question."""
    return {
        "title": title,
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


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


def per_entity(data: dict, entities: Sequence[str]) -> dict[str, dict]:
    """The rows of a validated ``entities`` array by name; each entity exactly once.

    Raises:
        JudgeParseError: If an entity is listed twice or missing.
    """
    out: dict[str, dict] = {}
    for row in data["entities"]:
        if row["name"] in out:
            raise JudgeParseError(f"The entity {row['name']!r} is listed twice.")
        out[row["name"]] = row
    missing = [e for e in entities if e not in out]
    if missing:
        raise JudgeParseError(f"The answer lacks the entity {missing[0]!r}.")
    return out


def clean_items(items: Sequence[str]) -> list[str]:
    """Strings with whitespace collapsed, empty ones dropped, de-duplicated case-insensitively."""
    seen: set[str] = set()
    out = []
    for item in items:
        text = " ".join(item.split())
        if text and text.lower() not in seen:
            seen.add(text.lower())
            out.append(text)
    return out


def entities_in_schema(schema: Mapping[str, Any] | None) -> list[str]:
    """The entity names of a schema built with :func:`entity_array` (``[]`` if it has none)."""
    try:
        return list(schema["properties"]["entities"]["items"]["properties"]["name"]["enum"])
    except (KeyError, TypeError):
        return []
