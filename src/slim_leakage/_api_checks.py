"""Type checks of the public Python API's arguments, raising the project's errors with the fix.

A wrong type passed from Python (``load_slim(123)``, ``load_samples(ids="pair-1")``) would
otherwise surface as an ``AttributeError`` deep inside, or be taken apart character by
character; these name the argument, what it got and what it takes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from .errors import ConfigError


def _got(value: Any) -> str:
    shown = repr(value)
    return f"{shown[:60]}{'...' if len(shown) > 60 else ''} ({type(value).__name__})"


def check_type(value: Any, types: type | tuple, what: str, takes: str) -> Any:
    """``value`` if it is of ``types``, else a :class:`ConfigError` naming what it takes."""
    if not isinstance(value, types):
        raise ConfigError(
            f"{what} takes {takes}, got {_got(value)}.",
            hint="Pass the options by name, e.g. evaluate(method='deleaker', config='toy-pairs').",
        )
    return value


def check_config(config: Any, *, what: str = "config") -> str:
    """``config`` as a string: a config name or a path (``str`` or ``os.PathLike``)."""
    if isinstance(config, os.PathLike):
        config = os.fspath(config)
    if not isinstance(config, str) or not config.strip():
        raise ConfigError(
            f"{what} must be a config name or a path to a samples file, got {_got(config)}.",
            hint="Pass e.g. 'pairs' or 'toy-pairs' (slim-eval ls configs), or a path to a "
            ".parquet/.jsonl file.",
        )
    return config


def check_limit(limit: Any, *, what: str = "limit") -> int | None:
    """``limit``: ``None`` (all samples) or a whole number >= 1, the same rule everywhere."""
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise ConfigError(
            f"{what} must be a whole number >= 1 or None, got {_got(limit)}.",
            hint=f"Pass {what}=N for the first N samples, or leave it out for all of them.",
        )
    if limit < 1:
        raise ConfigError(
            f"{what}={limit} selects no samples; it must be >= 1.",
            hint=f"Pass {what}=N (N >= 1) for the first N samples, or leave it out for all.",
        )
    return limit


def check_ids(ids: Any, *, what: str = "ids") -> list[str] | None:
    """``ids``: ``None`` or a list of sample-id strings (a single string is refused, not split)."""
    if ids is None:
        return None
    if isinstance(ids, (str, bytes)):
        raise ConfigError(
            f"{what} must be a list of sample ids, got one string {_got(ids)}.",
            hint=f"Pass {what}=[{ids!r}] for one sample.",
        )
    if not isinstance(ids, Sequence) and not hasattr(ids, "__iter__"):
        raise ConfigError(
            f"{what} must be a list of sample ids, got {_got(ids)}.",
            hint=f"Pass {what}=['pair-...', ...].",
        )
    ids = list(ids)
    bad = [i for i in ids if not isinstance(i, str)]
    if bad:
        raise ConfigError(
            f"{what} must hold sample-id strings, got {_got(bad[0])}.",
            hint=f"Pass {what}=['pair-...', ...] (strings).",
        )
    return ids
