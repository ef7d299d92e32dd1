"""The leaderboard entry format (versions 1 and 2) and its structural check.

An entry is one JSON object (``leaderboard/entries/<name>.json``). The structure is declared
here once, as data (:data:`ENTRY_V3`, :data:`ENTRY_V2`, :data:`ENTRY_V1`); :func:`check_structure` walks an entry
against it and returns every problem with the path of the offending field
(``verdicts[3].label``), and ``docs/leaderboard.md`` documents the same fields. Unknown fields
are errors at every level except inside the free-form objects (a method's config, a backbone's
description), so a typo or a field from a newer version is never silently ignored.

Version 3 adds the required ``submitter`` (who answers for the entry and owns its display
name). Version 2 drops the submitter's ``unverified`` flag: whether an entry is verified is decided by
a signed verification record (:mod:`.verification`), never by the entry. It requires
``dataset.sample_ids_sha256`` and may carry ``judge.served_model_id``. Version 1 entries are
still read: :func:`migrate` turns one into its version 2 form.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

#: The value of an entry's ``schema`` field.
SCHEMA_NAME = "slim-leakage/leaderboard-entry"
#: Schema versions this version of the package can validate.
KNOWN_VERSIONS: tuple[int, ...] = (1, 2, 3)
#: The version ``slim-eval submit`` writes.
CURRENT_VERSION = 3


@dataclasses.dataclass(frozen=True)
class T:
    """A type in the schema.

    Attributes:
        kind: ``str``, ``int``, ``float`` (ints accepted), ``bool``, ``list``, ``map``
            (string keys, values of one type), ``object`` (fixed fields) or ``any`` (any JSON
            object, not inspected).
        nullable: ``null`` is allowed.
        item: Element type of a ``list`` or value type of a ``map``.
        fields: For ``object``: field name -> (type, required).
        doc: One line for the documentation.
    """

    kind: str
    nullable: bool = False
    item: T | None = None
    fields: Mapping[str, tuple[T, bool]] | None = None
    doc: str = ""


def obj(doc: str = "", nullable: bool = False, **fields: tuple[T, bool]) -> T:
    """An object type with fixed ``fields`` (name -> (type, required))."""
    return T("object", nullable=nullable, fields=fields, doc=doc)


STR = T("str")
INT = T("int")
FLOAT = T("float")
BOOL = T("bool")
OPT_STR = T("str", nullable=True)
OPT_INT = T("int", nullable=True)
OPT_FLOAT = T("float", nullable=True)
ANY = T("any")

_BREAKDOWN = T(
    "map",
    item=obj(
        n=(INT, True),
        n_labelled=(INT, True),
        counts=(T("map", item=INT), True),
        distribution=(T("map", item=OPT_FLOAT), True),
    ),
)
_COST = obj(
    nullable=True,
    seconds_per_image=(OPT_FLOAT, True),
    peak_memory_bytes=(OPT_INT, True),
    images_timed=(OPT_INT, False),
)
#: The judge's calls, tokens and list-price cost for the run (``metrics.judge_usage``), as the
#: submitter's run measured them.
_JUDGE_COST = obj(
    "the judge's calls, tokens and cost (USD at list price) for the run, self-reported",
    nullable=True,
    calls=(INT, True),
    input_tokens=(INT, True),
    output_tokens=(INT, True),
    thinking_tokens=(INT, True),
    cost_usd=(FLOAT, True),
)

#: The run's absolute leakage rates (``metrics.json``'s ``leakage``: ``slim_leakage.leakage``),
#: optional: entries made before it and runs without a judge have none.
_LEAKAGE = obj(
    "the leakage rates of the vanilla and method images and their paired difference",
    nullable=True,
    vanilla=(T("any", nullable=True), True),
    method=(T("any", nullable=True), True),
    difference=(T("any", nullable=True), True),
    bootstrap=(ANY, False),
    judge=(OPT_STR, False),
    judge_usage=(ANY, False),
)

#: The entry format, version 1.
ENTRY_V1 = obj(
    schema=(STR, True),
    schema_version=(INT, True),
    name=(STR, True),
    submitted=(STR, True),
    unverified=(BOOL, True),
    notes=(STR, False),
    method=(obj(name=(STR, True), config=(ANY, True)), True),
    backbone=(obj(preset=(STR, True), description=(ANY, True)), True),
    dataset=(
        obj(
            config=(STR, True),
            fingerprint=(OPT_STR, True),
            n_samples=(INT, True),
            sample_ids_sha256=(OPT_STR, False),
        ),
        True,
    ),
    judge=(
        obj(
            backend=(STR, True),
            model_id=(OPT_STR, True),
            prompt_versions=(T("map", item=STR), True),
        ),
        True,
    ),
    package=(obj(version=(STR, True), git_commit=(OPT_STR, True)), True),
    metrics=(
        obj(
            method=(STR, True),
            n_samples=(INT, True),
            n_labelled=(INT, True),
            judge_errors=(INT, True),
            counts=(T("map", item=INT), True),
            distribution=(T("map", item=OPT_FLOAT), True),
            intervals=(T("map", item=T("list", nullable=True, item=FLOAT)), True),
            order_flip_rate=(OPT_FLOAT, True),
            per_subset=(_BREAKDOWN, True),
            per_family=(_BREAKDOWN, True),
            lpips=(OPT_FLOAT, True),
            kid=(OPT_FLOAT, True),
            kid_std=(OPT_FLOAT, True),
            vqascore=(OPT_FLOAT, True),
            extra=(ANY, True),
        ),
        True,
    ),
    cost=(obj(vanilla=(_COST, True), method=(_COST, True)), True),
    verdicts=(
        T(
            "list",
            item=obj(
                sample_id=(STR, True),
                subset=(STR, True),
                family=(STR, True),
                label=(OPT_STR, True),
                error=(OPT_STR, True),
                order_flip=(BOOL, True),
                vanilla_sha256=(OPT_STR, True),
                method_sha256=(OPT_STR, True),
            ),
        ),
        True,
    ),
)


def _with_fields(t: T, drop: tuple[str, ...] = (), **changes: tuple[T, bool]) -> T:
    """``t`` (an object type) without the fields ``drop`` and with ``changes`` set."""
    assert t.fields is not None
    fields = {k: v for k, v in t.fields.items() if k not in drop}
    fields.update(changes)
    return dataclasses.replace(t, fields=fields)


_V1_FIELDS = ENTRY_V1.fields or {}

#: The entry format, version 2: no ``unverified`` flag (verification is a signed record), the
#: sample-id digest required, the judge's served model id optional.
ENTRY_V2 = _with_fields(
    ENTRY_V1,
    drop=("unverified",),
    dataset=(
        _with_fields(_V1_FIELDS["dataset"][0], sample_ids_sha256=(STR, True)),
        True,
    ),
    judge=(
        _with_fields(_V1_FIELDS["judge"][0], served_model_id=(OPT_STR, False)),
        True,
    ),
    cost=(_with_fields(_V1_FIELDS["cost"][0], judge=(_JUDGE_COST, False)), True),
    metrics=(_with_fields(_V1_FIELDS["metrics"][0], leakage=(_LEAKAGE, False)), True),
    verdicts=(
        T(
            "list",
            item=_with_fields(
                (_V1_FIELDS["verdicts"][0].item),  # type: ignore[arg-type]
                vanilla_leaks=(T("bool", nullable=True), False),
                method_leaks=(T("bool", nullable=True), False),
            ),
        ),
        True,
    ),
)

#: The entry format, version 3: the entry names its submitter (who answers for it and owns
#: its display name); everything else as version 2.
ENTRY_V3 = _with_fields(ENTRY_V2, submitter=(STR, True))

SCHEMAS: dict[int, T] = {1: ENTRY_V1, 2: ENTRY_V2, 3: ENTRY_V3}


def migrate(entry: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The version 2 form of a structurally valid entry, and notes on what changed.

    A version 1 entry loses its ``unverified`` flag (informational since version 2: the
    verification record decides) and keeps every other field; a version 2 entry is returned
    unchanged. The entry file itself is never rewritten, so a verification record's hash of it
    still applies.
    """
    if entry.get("schema_version") != 1:
        return entry, []
    out = {k: v for k, v in entry.items() if k != "unverified"}
    out["schema_version"] = 2
    notes = [
        f'schema version 1, read as version 2: its "unverified": '
        f"{json.dumps(entry.get('unverified'))} is informational (a verification record decides)"
    ]
    return out, notes


_JSON_TYPE = {"str": "a string", "int": "an integer", "float": "a number", "bool": "true/false"}


def _type_name(t: T) -> str:
    base = {
        "list": "a list",
        "map": "an object",
        "object": "an object",
        "any": "an object",
    }.get(t.kind, _JSON_TYPE.get(t.kind, t.kind))
    return base + (" or null" if t.nullable else "")


def _got(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def check_structure(
    value: Any, t: T | None = None, path: str = "", *, root: str = "entry"
) -> list[str]:
    """Every structural problem of ``value`` against ``t``, each naming its field path.

    ``root`` names the whole document in a problem about the document itself; ``t``
    defaults to the current entry format.
    """
    t = ENTRY_V3 if t is None else t
    where = path or root
    if value is None:
        return [] if t.nullable else [f"{where}: expected {_type_name(t)}, got null"]
    ok = {
        "str": isinstance(value, str),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "list": isinstance(value, list),
        "map": isinstance(value, dict),
        "object": isinstance(value, dict),
        "any": isinstance(value, dict),
    }[t.kind]
    if not ok:
        return [f"{where}: expected {_type_name(t)}, got {_got(value)}"]
    problems: list[str] = []
    if t.kind == "list" and t.item is not None:
        for i, item in enumerate(value):
            problems += check_structure(item, t.item, f"{path}[{i}]")
    elif t.kind == "map" and t.item is not None:
        for key, item in value.items():
            problems += check_structure(item, t.item, f"{path}.{key}" if path else key)
    elif t.kind == "object" and t.fields is not None:
        for key in value:
            if key not in t.fields:
                problems.append(
                    f"{path + '.' if path else ''}{key}: unknown field "
                    f"(known: {', '.join(t.fields)})"
                )
        for key, (sub, required) in t.fields.items():
            sub_path = f"{path}.{key}" if path else key
            if key not in value:
                if required:
                    problems.append(f"{sub_path}: missing required field")
                continue
            problems += check_structure(value[key], sub, sub_path)
    return problems


def describe_fields(t: T | None = None, path: str = "") -> list[tuple[str, str, bool]]:
    """``(field path, type, required)`` rows of a schema, for documentation and tests."""
    rows: list[tuple[str, str, bool]] = []
    t = ENTRY_V3 if t is None else t
    if t.kind == "object" and t.fields is not None:
        for key, (sub, required) in t.fields.items():
            sub_path = f"{path}.{key}" if path else key
            rows.append((sub_path, _type_name(sub), required))
            rows += describe_fields(sub, sub_path)
    elif t.kind in ("list", "map") and t.item is not None:
        rows += describe_fields(t.item, path + ("[]" if t.kind == "list" else ".*"))
    return rows


def to_json_schema(
    t: T | None = None,
    *,
    version: int = CURRENT_VERSION,
    name: str = SCHEMA_NAME,
    title: str = "leaderboard entry",
) -> dict[str, Any]:
    """The schema as a JSON Schema (draft 2020-12) document, for tools outside Python.

    It states the same structure as :func:`check_structure` (types, required and unknown
    fields); the semantic checks of ``slim-eval validate`` are not expressible in it.

    Args:
        t: The document type (its ``schema`` and ``schema_version`` fields become constants).
        version: The schema version.
        name: The value of the document's ``schema`` field.
        title: What the document is, for the schema's title.
    """
    t = ENTRY_V3 if t is None else t

    def convert(t: T) -> dict[str, Any]:
        if t.kind == "object" and t.fields is not None:
            out: dict[str, Any] = {
                "type": "object",
                "properties": {k: convert(sub) for k, (sub, _) in t.fields.items()},
                "required": [k for k, (_, req) in t.fields.items() if req],
                "additionalProperties": False,
            }
        elif t.kind == "map":
            out = {"type": "object"}
            if t.item is not None:
                out["additionalProperties"] = convert(t.item)
        elif t.kind == "list":
            out = {"type": "array"}
            if t.item is not None:
                out["items"] = convert(t.item)
        elif t.kind == "any":
            out = {"type": "object"}
        else:
            out = {
                "type": {"str": "string", "int": "integer", "float": "number"}.get(
                    t.kind, "boolean"
                )
            }
        if t.nullable:
            out["type"] = [out["type"], "null"]
        return out

    doc = convert(t)
    doc["properties"]["schema"]["const"] = name
    doc["properties"]["schema_version"]["const"] = version
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{name}/v{version}",
        "title": f"slim-leakage {title}, schema version {version}",
        **doc,
    }
