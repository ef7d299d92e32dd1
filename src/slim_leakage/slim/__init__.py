"""SLIM (Semantic Leakage in IMages): the data set, its builder and loaders."""

from __future__ import annotations


def describe_configs() -> list[dict]:
    """One row per shipped dataset config (name, rows, description)."""
    return []
