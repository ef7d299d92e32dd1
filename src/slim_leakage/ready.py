"""``evaluate()`` with what a caller already holds: a loaded backbone or a diffusers pipeline.

``evaluate(backbone="flux-dev", ...)`` names a preset; ``evaluate(backbone=pipe, ...)`` hands
in a pipeline already built (any text-to-image pipeline diffusers ships, or one of the
caller's), and ``evaluate(backbone=Backbone(...))`` a ready :class:`~slim_leakage.backbones.Backbone`.
A pipeline is wrapped as the ``diffusers`` backbone would wrap it (its family read from its
class, its own generation defaults); the run records it in the manifest like any backbone, under
the name ``diffusers`` (a pipeline) or the Backbone's own name.

Example:
    >>> from slim_leakage import evaluate
    >>> metrics = evaluate(method="deleaker", backbone="flux-dev", judge="gemini",
    ...                    config="pairs", out="runs/deleaker-flux")  # doctest: +SKIP
    >>> from diffusers import DiffusionPipeline  # doctest: +SKIP
    >>> pipe = DiffusionPipeline.from_pretrained("ORG/NAME").to("cuda")  # doctest: +SKIP
    >>> metrics = evaluate(method="vanilla", backbone=pipe, judge="gemini",
    ...                    config="pairs", out="runs/vanilla-mine")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ._api_checks import check_type
from .errors import ConfigError


def as_backbone(obj: Any, overrides: dict | None = None) -> Any:
    """A :class:`~slim_leakage.backbones.Backbone` from a Backbone or a diffusers pipeline.

    Args:
        obj: The backbone or pipeline.
        overrides: Generation settings for a pipeline (a Backbone keeps its own).

    Raises:
        ConfigError: For an object that is neither, naming its type, or settings given with a
            ready Backbone.
    """
    from .backbones import Backbone

    if isinstance(obj, Backbone):
        if overrides:
            raise ConfigError(
                f"backbone_args ({', '.join(sorted(overrides))}) were given with a ready "
                f"Backbone {obj.name!r}, which keeps its own settings.",
                hint="Set them on the Backbone (its settings), or pass the pipeline instead.",
            )
        return obj
    if callable(obj) and hasattr(obj, "components"):
        from .backbones.generic import wrap_pipeline

        return wrap_pipeline(obj, overrides=overrides)
    raise ConfigError(
        f"backbone={type(obj).__name__} is not a preset name, a Backbone or a diffusers pipeline.",
        hint="Pass a preset name (slim-eval ls backbones), a loaded slim_leakage Backbone, or "
        "a diffusers text-to-image pipeline object.",
    )


def ready_run(
    run_cls: Any, config_cls: Any, config: Any, *, judge: Any = None, **options: Any
) -> Any:
    """The :class:`~slim_leakage.run.Run` that ``evaluate(config, judge=..., **options)`` runs.

    Args:
        run_cls: The run class (passed in: the run module calls this one, not the reverse).
        config_cls: The run configuration class.
        config: A ``RunConfig`` or ``None`` (then built from ``options``).
        judge: A ready judge, or ``None``.
        **options: ``RunConfig`` fields; ``backbone`` may be an object (see module doc), whose
            generation settings then come from ``backbone_args`` (a pipeline) or itself.
    """
    if isinstance(config, str):  # evaluate(config="pairs", ...): the SLIM config, by name
        config, options = None, {**options, "config": config}
    if isinstance(judge, str):  # evaluate(judge="gemini"): the judge, by name
        judge, options = None, {**options, "judge": judge}
    check_type(
        config,
        (config_cls, type(None)),
        "evaluate(config=...)",
        "a RunConfig or a SLIM config name",
    )
    obj = options.get("backbone")
    ready = None
    if obj is not None and not isinstance(obj, str):
        args = dict(options.get("backbone_args") or (config.backbone_args if config else {}))
        ready = as_backbone(obj, overrides=args)
        # the run directory records which object ran, under the diffusers preset's checks
        options = {
            **options,
            "backbone": "diffusers",
            "backbone_args": {**args, "ready": ready.name},
        }
    if config is None:
        config = config_cls(**options)
    elif options:
        config = dataclasses.replace(config, **options)
    if ready is None:
        return run_cls(config, judge=judge)
    return run_cls(config, judge=judge, backbone=lambda: ready)
