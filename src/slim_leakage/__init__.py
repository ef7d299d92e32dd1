"""slim-leakage: measure and fix semantic leakage in text-to-image diffusion transformers.

The public API is small and imported lazily (``import slim_leakage`` loads no torch)::

    from slim_leakage import load_slim, get_method, get_judge, evaluate
"""

from __future__ import annotations

from typing import Any

from ._version import __version__

_LAZY = {
    "load_slim": ("slim_leakage.slim", "load_slim"),
    "load_samples": ("slim_leakage.slim", "load_samples"),
    "get_method": ("slim_leakage.methods", "get_method"),
    "get_judge": ("slim_leakage.judge", "get_judge"),
    "load_backbone": ("slim_leakage.backbones", "load_backbone"),
    "evaluate": ("slim_leakage.run", "evaluate"),
    "deleaker": ("slim_leakage.methods.deleaker", "deleaker"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'slim_leakage' has no attribute {name!r}")
