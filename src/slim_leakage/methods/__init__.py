"""The methods registry: DeLeaker beside prompt, layout and image-folder baselines.

``get_method("deleaker", alpha=1.2)`` builds a configured method; user code registers its own
with ``@METHODS.register("my-method")`` and third-party packages through the entry-point group
``slim_leakage.methods``.
"""

from __future__ import annotations

from typing import Any

from .._registry import Registry
from .base import Method, MethodOutput, NoConfig

METHODS: Registry = Registry(
    "method",
    group="slim_leakage.methods",
    builtins={
        "vanilla": "slim_leakage.methods.vanilla:Vanilla",
        "deleaker": "slim_leakage.methods.deleaker.method:DeLeaker",
        "instruction-prompt": "slim_leakage.methods.prompts:InstructionPrompt",
        "entity-description": "slim_leakage.methods.prompts:EntityDescription",
        "deleaker+description": "slim_leakage.methods.prompts:DeLeakerDescription",
        "regional-prompting": "slim_leakage.methods.regional:RegionalPrompting",
        "images": "slim_leakage.methods.images:Images",
    },
)


def get_method(name: str, **options: Any) -> Method:
    """Build the registered method ``name`` with ``options`` (validated against its config)."""
    cls = METHODS.get(name)
    method = cls(**options)
    if not method.name:
        method.name = name
    return method


__all__ = ["METHODS", "Method", "MethodOutput", "NoConfig", "get_method"]
