"""Frozen-dataclass configs: build from mappings or ``key=value`` strings, strictly.

Unknown keys are errors with a did-you-mean (a typo must never silently fall back to a
default), and string values from the command line are converted to the field's declared type.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from .errors import ConfigError, SlimError, did_you_mean, one_error

C = TypeVar("C")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_kv(pairs: Iterable[str], *, option: str = "--method-arg") -> dict[str, str]:
    """Parse ``["k=v", ...]`` into a dict, rejecting malformed or repeated keys."""
    out: dict[str, str] = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ConfigError(
                f"{option} {item!r} is not of the form key=value.",
                hint=f"Write for example {option} alpha=1.2",
            )
        if key in out:
            raise ConfigError(f"{option} sets {key!r} twice.", hint="Give each key once.")
        out[key] = value.strip()
    return out


def _kind(annotation: Any) -> str:
    """How a message names what a field takes ("an integer", "a list of texts", ...)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        kinds = [_kind(a) for a in args if a is not type(None)]
        return " or ".join(kinds + (["null"] if type(None) in args else []))
    if origin is typing.Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(annotation)))
    if annotation is tuple or origin is tuple:
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        inner = _kind(args[0]) if args else "a value"
        return f"a list of {inner.split(' ', 1)[-1]}s" if inner.startswith("a") else "a list"
    return {
        bool: "true or false",
        int: "an integer",
        float: "a number",
        str: "a text",
        dict: "a mapping (a JSON object)",
        list: "a list",
    }.get(origin or annotation, getattr(annotation, "__name__", str(annotation)))


def value_kind(value: Any) -> str:
    """How a message names what a value is (its JSON type)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number with a fraction" if math.isfinite(value) else "not a finite number"
    if isinstance(value, str):
        return "a text"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__}"


class WrongType(Exception):
    """A value does not fit a field's type; its text says what the field takes."""


def typed_value(value: Any, annotation: Any) -> Any:
    """``value`` (a Python or JSON value, never parsed from text) checked against ``annotation``.

    Integers stay integers (a boolean or a number with a fraction is not one), a number field
    takes an integer as a float, a tuple field takes a list, a mapping field takes a mapping.
    Annotations this does not know are left to the config's own validation.

    Raises:
        WrongType: With what the field takes, when the value does not fit.
    """
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return typed_value(value, arg)
            except WrongType:
                continue
        raise WrongType(_kind(annotation))
    if origin is typing.Literal:
        if value in typing.get_args(annotation) and not isinstance(value, bool):
            return value
        raise WrongType(_kind(annotation))
    if annotation is bool:
        if isinstance(value, bool):
            return value
    elif annotation is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(value)
    elif annotation is float:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return float(value)
    elif annotation is str:
        if isinstance(value, str):
            return value
    elif annotation is dict or origin is dict:
        if isinstance(value, Mapping):
            return dict(value)
    elif annotation is tuple or origin is tuple:
        if isinstance(value, (list, tuple)):
            args = typing.get_args(annotation)
            if len(args) == 2 and args[1] is Ellipsis:
                args = (args[0],) * len(value)
            elif args and len(args) != len(value):
                raise WrongType(f"a list of {len(args)} values")
            if not args:
                return tuple(value)
            out = []
            for number, (item, inner) in enumerate(zip(value, args), 1):
                try:
                    out.append(typed_value(item, inner))
                except WrongType:
                    raise WrongType(
                        f"{_kind(annotation)} (item {number} is {value_kind(item)})"
                    ) from None
            return tuple(out)
    else:
        return value
    raise WrongType(_kind(annotation))


def _wrong_type(owner: str, key: str, value: Any, expected: str) -> ConfigError:
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    return ConfigError(
        f"{owner}: {key}={shown} is {value_kind(value)}, but {key} takes {expected}.",
        hint=f"Give {key} as {expected}.",
    )


def _convert(value: Any, annotation: Any, *, key: str, owner: str) -> Any:
    if not isinstance(value, str):
        try:
            return typed_value(value, annotation)
        except WrongType as exc:
            raise _wrong_type(owner, key, value, str(exc)) from None
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value.lower() in {"none", "null"} and type(None) in typing.get_args(annotation):
            return None
        last: Exception | None = None
        for arg in args:
            try:
                return _convert(value, arg, key=key, owner=owner)
            except ConfigError as exc:
                last = exc
        raise last or ConfigError(f"{owner}: cannot read {key}={value!r}.")
    try:
        if annotation is bool:
            low = value.lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError(value)
        if annotation is int:
            return int(value)
        if annotation is float:
            return float(value)
        if annotation is str or annotation is Any:
            return value
        if origin is tuple:
            inner = (typing.get_args(annotation) or (str,))[0]
            parts = [p.strip() for p in value.split(",") if p.strip()]
            return tuple(_convert(p, inner, key=key, owner=owner) for p in parts)
        if typing.get_origin(annotation) is typing.Literal:
            allowed = typing.get_args(annotation)
            if value not in allowed:
                raise ValueError(value)
            return value
        if annotation is dict or origin is dict:
            raise _wrong_type(owner, key, value, _kind(annotation))
    except ValueError:
        kind = getattr(annotation, "__name__", str(annotation))
        raise ConfigError(
            f"{owner}: {key}={value!r} is not a valid {kind}.",
            hint=f"Give {key} as a {kind}" + (" (true/false)" if annotation is bool else "") + ".",
        ) from None
    return value


def build_config(
    cls: type[C], values: Mapping[str, Any] | None = None, *, owner: str | None = None
) -> C:
    """Build the frozen dataclass ``cls`` from ``values`` over its defaults.

    Args:
        cls: A dataclass type whose ``__post_init__`` validates ranges.
        values: Overrides; strings are converted to the field types.
        owner: Name used in messages (defaults to the class name).

    Raises:
        ConfigError: For an unknown key (with did-you-mean) or a value of the wrong type (a
            boolean or a number with a fraction for an integer, a text for a mapping ...);
            several such problems are reported together (:class:`~slim_leakage.errors.Problems`).
    """
    owner = owner or cls.__name__
    values = dict(values or {})
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    problems: list[SlimError] = []
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            problems.append(
                ConfigError(
                    f"{owner} has no option {key!r}.{did_you_mean(key, fields)}",
                    hint=f"Known options: {', '.join(sorted(fields))}."
                    if fields
                    else f"{owner} takes no options; leave them out.",
                )
            )
            continue
        try:
            kwargs[key] = _convert(value, hints[key], key=key, owner=owner)
        except ConfigError as exc:
            problems.append(exc)
    if problems:
        raise one_error(problems, what=f"in the options of {owner}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{owner}: {exc}") from exc


def typed_fields(config: Any, *, owner: str) -> dict[str, Any]:
    """Every field of the dataclass instance ``config``, checked against its type.

    For ``__post_init__`` of configs built directly in code (``RunConfig(limit=True)``), which
    :func:`build_config`'s checks do not see.

    Returns:
        Field name -> its value in the declared form (a list given for a tuple comes back a
        tuple, an integer for a float a float).

    Raises:
        ConfigError: For a value of the wrong type (several: :class:`Problems`).
    """
    hints = typing.get_type_hints(type(config))
    out, problems = {}, []
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        try:
            out[field.name] = typed_value(value, hints[field.name])
        except WrongType as exc:
            problems.append(_wrong_type(owner, field.name, value, str(exc)))
    if problems:
        raise one_error(problems, what=f"in the options of {owner}")
    return out


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-compatible dict of a dataclass config (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def config_hash(*parts: Any) -> str:
    """A short stable hash of JSON-compatible parts (used to detect changed configs)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _number(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def range_text(low: float | None, high: float | None, *, low_open: bool = False) -> str:
    """A range in words: ``>= 1``, ``> 0``, ``from 0 to 2``, ``> 0 and <= 0.99``."""
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {_number(low)}")
    if high is not None:
        parts.append(f"<= {_number(high)}")
    if low is not None and high is not None and not low_open:
        return f"from {_number(low)} to {_number(high)}"
    return " and ".join(parts) or "any number"


def check_range(
    owner: str,
    name: str,
    value: float,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
) -> None:
    """Raise :class:`ConfigError` unless ``value`` is a finite number in ``[low, high]``.

    ``low_open`` makes the lower bound exclusive. NaN and infinities are refused too: no bound
    of a setting here is meant to be infinite.
    """
    rule = range_text(low, high, low_open=low_open)
    if isinstance(value, numbers.Real) and not math.isfinite(value):
        raise ConfigError(
            f"{owner}: {name}={value!r} is not a finite number.",
            hint=f"Choose {name} {rule}.",
        )
    bad = (low is not None and (value <= low if low_open else value < low)) or (
        high is not None and value > high
    )
    if bad:
        raise ConfigError(
            f"{owner}: {name}={value!r} is out of range: it must be {rule}.",
            hint=f"Choose {name} {rule}.",
        )
