"""The method contract: turn SLIM samples into images on a backbone.

A method is a class with a frozen-dataclass ``Config``; ``generate`` receives a loaded
:class:`~slim_leakage.backbones.Backbone` and a batch of samples and returns one
:class:`MethodOutput` per sample. Method modules import torch lazily, so that listing methods
stays light.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

from .._config import build_config, config_to_dict
from ..errors import ConfigError
from ..records import Sample


@dataclasses.dataclass(frozen=True)
class NoConfig:
    """A method without options."""


@dataclasses.dataclass
class MethodOutput:
    """What a method produced for one sample.

    Attributes:
        image: The generated PIL image.
        extra: JSON-compatible facts recorded with the generation (mask sizes, final prompt).
        overlays: Named PIL images saved beside it (DeLeaker's entity-mask overlays).
    """

    image: Any
    extra: dict = dataclasses.field(default_factory=dict)
    overlays: dict = dataclasses.field(default_factory=dict)


class Method:
    """Base class of every registered method.

    Class attributes:
        name: The registry name.
        Config: The frozen dataclass of its options (validated; unknown keys are errors).
        needs: Inputs beyond the prompt: ``entities``, ``layout``, ``images``.
        families: Backbone families it supports (``flux``, ``sana``), or ``None`` for any.
        description: One line for ``slim-eval ls methods``.
    """

    name: ClassVar[str] = ""
    Config: ClassVar[type] = NoConfig
    needs: ClassVar[tuple[str, ...]] = ()
    families: ClassVar[tuple[str, ...] | None] = None
    description: ClassVar[str] = ""

    def __init__(self, config: Any = None, **options: Any) -> None:
        if config is not None and options:
            raise ConfigError(f"{self.name}: pass either a config object or options, not both.")
        if config is None:
            config = build_config(self.Config, options, owner=f"method {self.name!r}")
        elif not isinstance(config, self.Config):
            raise ConfigError(
                f"{self.name}: config must be a {self.Config.__name__}, got {type(config).__name__}."
            )
        self.config = config

    def config_dict(self) -> dict:
        """The config as a JSON-compatible dict (for manifests and leaderboard entries)."""
        return config_to_dict(self.config)

    def check_backbone(self, backbone: Any) -> None:
        """Raise a clear error if this method does not support ``backbone``'s family."""
        # "auto": a preset whose family is read from the loaded pipeline (--backbone diffusers);
        # prepare() checks the loaded backbone's own family
        if self.families is not None and backbone.family not in (*self.families, "auto"):
            raise ConfigError(
                f"Method {self.name!r} does not support the {backbone.name!r} backbone "
                f"(family {backbone.family!r}).",
                hint=f"Supported backbone families: {', '.join(self.families)}.",
            )

    def prepare(self, backbone: Any, samples: Sequence[Sample]) -> None:
        """Check inputs before any image is generated (entities present, files exist, ...).

        Called once per run with every sample, so a bad sample fails before hours of work.
        """
        self.check_backbone(backbone)

    def generate(self, backbone: Any, samples: Sequence[Sample]) -> list[MethodOutput]:
        """Generate one image per sample, seeded with ``sample.seed``."""
        raise NotImplementedError(f"method {self.name!r} does not implement generate()")

    @classmethod
    def info(cls) -> dict:
        """Metadata for listings (no heavy imports)."""
        fields = [f.name for f in dataclasses.fields(cls.Config)]
        return {
            "needs": list(cls.needs),
            "backbones": list(cls.families) if cls.families is not None else ["any"],
            "options": fields,
            "description": cls.description,
        }
