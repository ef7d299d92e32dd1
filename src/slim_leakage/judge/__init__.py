"""The judge: extraction -> typicality -> ranking over pluggable VLM backends."""

from __future__ import annotations

from .._registry import Registry

JUDGES: Registry = Registry(
    "judge backend",
    group="slim_leakage.judges",
    builtins={},
)

__all__ = ["JUDGES"]
