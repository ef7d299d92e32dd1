"""Frozen-dataclass configs: build from mappings or ``key=value`` strings, strictly.

Unknown keys are errors with a did-you-mean (a typo must never silently fall back to a
default), and string values from the command line are converted to the field's declared type.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from .errors import ConfigError, did_you_mean

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


def _convert(value: Any, annotation: Any, *, key: str, owner: str) -> Any:
    if not isinstance(value, str):
        if annotation is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if typing.get_origin(annotation) is tuple and isinstance(value, list):
            return tuple(value)
        return value
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
        ConfigError: For an unknown key (with did-you-mean) or a value of the wrong type.
    """
    owner = owner or cls.__name__
    values = dict(values or {})
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    for key in values:
        if key not in fields:
            raise ConfigError(
                f"{owner} has no option {key!r}.{did_you_mean(key, fields)}",
                hint=f"Known options: {', '.join(sorted(fields))}.",
            )
    hints = typing.get_type_hints(cls)
    kwargs = {k: _convert(v, hints[k], key=k, owner=owner) for k, v in values.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{owner}: {exc}") from exc


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-compatible dict of a dataclass config (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def config_hash(*parts: Any) -> str:
    """A short stable hash of JSON-compatible parts (used to detect changed configs)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def check_range(
    owner: str,
    name: str,
    value: float,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
) -> None:
    """Raise :class:`ConfigError` if ``value`` is outside ``[low, high]`` (or ``(low, high]``)."""
    bad = (low is not None and (value <= low if low_open else value < low)) or (
        high is not None and value > high
    )
    if bad:
        lo = "(" if low_open else "["
        rng = f"{lo}{'-inf' if low is None else low}, {'inf' if high is None else high}]"
        raise ConfigError(
            f"{owner}: {name}={value!r} is outside {rng}.", hint=f"Choose {name} in {rng}."
        )
