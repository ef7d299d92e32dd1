"""``--backbone diffusers``: any text-to-image pipeline diffusers can load, with its own defaults.

``--backbone diffusers --backbone-arg pretrained=ORG/NAME`` (or a local folder; ``revision=``
and ``variant=`` pick the files; ``--dtype`` and the memory options ``offload=``,
``quantize=``, ``max_memory=``, ``text_dtype=`` apply as for the presets) loads the pipeline
class named in the checkpoint's ``model_index.json`` through ``DiffusionPipeline.from_pretrained``
(diffusers' generic loader; docs: "DiffusionPipeline.from_pretrained ... automatically detects
the pipeline class from the model_index.json file"), and refuses one whose ``__call__`` is not
text-to-image (no ``prompt``, or a required ``image``).

The generation settings are the pipeline's own: the defaults of its ``__call__`` signature
(steps, guidance, text length) and its default size (``default_sample_size`` times
``vae_scale_factor``, as the pipelines compute it when ``height`` is ``None``); a
``--backbone-arg`` overrides one. Only the settings the pipeline's ``__call__`` takes are
passed, and the manifest records the pipeline class, the family, the settings and which of them
were passed.

The family is read from the pipeline class, else from its transformer's class
(:data:`FAMILIES`), so the methods that support a family (DeLeaker on ``flux`` and ``sana``
...) run on any checkpoint of it; an unknown class gets its pipeline name lowercased, which only
family-agnostic methods (``vanilla``, the prompt baselines) accept.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

from .._config import build_config
from ..errors import ConfigError
from .base import Backbone, GenerationSettings, Preset, default_device, torch_dtype
from .memory import MemoryOptions, MemoryPlan

#: diffusers class name -> backbone family (pipelines first, then their transformers).
FAMILIES: dict[str, str] = {
    "FluxPipeline": "flux",
    "FluxTransformer2DModel": "flux",
    "SanaPipeline": "sana",
    "SanaSprintPipeline": "sana",
    "SanaTransformer2DModel": "sana",
    "StableDiffusion3Pipeline": "sd3",
    "SD3Transformer2DModel": "sd3",
    "Flux2Pipeline": "flux2",
    "Flux2KleinPipeline": "flux2",
    "Flux2Transformer2DModel": "flux2",
    "QwenImagePipeline": "qwenimage",
    "QwenImageTransformer2DModel": "qwenimage",
    "ZImagePipeline": "zimage",
    "ZImageTransformer2DModel": "zimage",
}

#: Backbone arguments of this preset besides the generation settings and memory options.
LOAD_ARGS = ("pretrained", "revision", "variant", "ready")
#: Generation settings read from a pipeline's ``__call__`` defaults.
CALL_SETTINGS = ("num_inference_steps", "guidance_scale", "max_sequence_length", "true_cfg_scale")
#: Components a quantisation scheme applies to, where the pipeline has them.
QUANTIZED = ("transformer", "text_encoder", "text_encoder_2", "text_encoder_3")


def detect_family(pipe: Any) -> str:
    """The backbone family of a pipeline: by its class, else its transformer's, else its name."""
    for cls in type(pipe).__mro__:
        if cls.__name__ in FAMILIES:
            return FAMILIES[cls.__name__]
    transformer = getattr(pipe, "transformer", None)
    if transformer is not None and type(transformer).__name__ in FAMILIES:
        return FAMILIES[type(transformer).__name__]
    name = type(pipe).__name__
    return (name[: -len("Pipeline")] if name.endswith("Pipeline") else name).lower() or "unknown"


def _call_parameters(pipe: Any) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(type(pipe).__call__).parameters)


def check_text_to_image(pipe: Any, source: str) -> None:
    """Refuse a pipeline that does not make images from a prompt alone.

    Raises:
        ConfigError: Naming the pipeline class and what its ``__call__`` lacks or requires.
    """
    params = _call_parameters(pipe)
    required = [
        n
        for n, p in params.items()
        if n in ("image", "control_image", "mask_image") and p.default is inspect.Parameter.empty
    ]
    if "prompt" not in params or required:
        why = "takes no prompt" if "prompt" not in params else f"requires {required[0]!r}"
        raise ConfigError(
            f"{source}: the pipeline {type(pipe).__name__} is not text-to-image (its __call__ "
            f"{why}).",
            hint="Give a text-to-image checkpoint (its model_index.json names a pipeline that "
            "generates from a prompt).",
        )


def pipeline_defaults(pipe: Any) -> dict[str, Any]:
    """The generation settings a pipeline uses when none is given (read, not assumed)."""
    params = _call_parameters(pipe)
    out: dict[str, Any] = {}
    for name in CALL_SETTINGS:
        p = params.get(name)
        if (
            p is not None
            and isinstance(p.default, (int, float))
            and not isinstance(p.default, bool)
        ):
            out[name] = p.default
    sample = getattr(pipe, "default_sample_size", None)
    if sample is None:
        config = getattr(getattr(pipe, "transformer", None), "config", None)
        sample = getattr(config, "sample_size", None)
    scale = getattr(pipe, "vae_scale_factor", None)
    for name in ("height", "width"):
        p = params.get(name)
        if p is not None and isinstance(p.default, int):
            out[name] = p.default
        elif isinstance(sample, int) and isinstance(scale, int):
            out[name] = sample * scale
    return out


class PipelineBackbone(Backbone):
    """A backbone around any diffusers pipeline: passes only what its ``__call__`` takes.

    Args:
        passed: The setting names given to the pipeline (its defaults or overrides).
        pipeline_class: The pipeline class name, for the manifest.
        source: Where it was loaded from (``pretrained``, ``revision``, ``variant``).
        **kwargs: As :class:`~slim_leakage.backbones.base.Backbone`.
    """

    def __init__(
        self,
        *,
        passed: tuple[str, ...],
        pipeline_class: str,
        source: dict | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.passed = passed
        self.pipeline_class = pipeline_class
        self.source = dict(source or {})

    def describe(self) -> dict:
        """Provenance: the pipeline class, where it came from and the settings passed."""
        out = super().describe()
        out["pipeline_class"] = self.pipeline_class
        out["settings_passed"] = list(self.passed)
        out.update({k: v for k, v in self.source.items() if v is not None})
        return out

    def pipe_kwargs(self, **overrides) -> dict:
        """The settings the pipeline takes, then ``overrides``."""
        values = dataclasses.asdict(self.settings)
        kwargs = {name: values[name] for name in self.passed}
        kwargs.update(overrides)
        return kwargs


def wrap_pipeline(
    pipe: Any,
    *,
    name: str = "diffusers",
    device: str | None = None,
    dtype: str | None = None,
    model_id: str | None = None,
    source: dict | None = None,
    overrides: dict | None = None,
    memory: MemoryPlan | None = None,
) -> Backbone:
    """Wrap a loaded text-to-image pipeline as a backbone with its own default settings.

    Args:
        pipe: The diffusers pipeline.
        name: The backbone name recorded in the manifest.
        device: Where it runs (default: where its first model's parameters are).
        dtype: Its dtype name (default: read from its first model's parameters).
        model_id: What to record as the weights (default: the pipeline's ``name_or_path``).
        source: ``pretrained``/``revision``/``variant`` for the manifest.
        overrides: Generation settings to override.
        memory: The memory plan it was loaded with.

    Raises:
        ConfigError: A pipeline that is not text-to-image, or an unknown setting.
    """
    check_text_to_image(pipe, f"backbone {name}")
    overrides = dict(overrides or {})
    defaults = pipeline_defaults(pipe)
    params = _call_parameters(pipe)
    settings = build_config(
        GenerationSettings,
        {**dataclasses.asdict(GenerationSettings()), **defaults, **overrides},
        owner=f"backbone {name}",
    )
    passed = tuple(
        n
        for n in dataclasses.asdict(settings)
        if n in params and (n in defaults or n in overrides or n in ("height", "width"))
    )
    model = next((m for m in pipe.components.values() if hasattr(m, "parameters")), None)
    first = next(model.parameters(), None) if model is not None else None
    if device is None:
        device = str(first.device) if first is not None else "cpu"
    if dtype is None:
        dtype = str(first.dtype).replace("torch.", "") if first is not None else "float32"
    family = detect_family(pipe)
    model_id = model_id or str(getattr(pipe, "name_or_path", "") or type(pipe).__name__)
    if family == "sana":
        from .sana import SanaBackbone

        backbone: Backbone = SanaBackbone(
            name=name,
            family=family,
            pipe=pipe,
            settings=settings,
            device=device,
            dtype=dtype,
            model_id=model_id,
            memory=memory,
        )
        backbone.source = dict(source or {})  # type: ignore[attr-defined]
        return backbone
    return PipelineBackbone(
        passed=passed,
        pipeline_class=type(pipe).__name__,
        source=source,
        name=name,
        family=family,
        pipe=pipe,
        settings=settings,
        device=device,
        dtype=dtype,
        model_id=model_id,
        memory=memory,
    )


class _Loader:
    """``DiffusionPipeline.from_pretrained`` with the file choice (revision, variant) bound."""

    def __init__(self, **choice: Any) -> None:
        self.choice = {k: v for k, v in choice.items() if v is not None}

    def from_pretrained(self, path: str, **kwargs: Any) -> Any:
        from diffusers import DiffusionPipeline

        return DiffusionPipeline.from_pretrained(path, **kwargs, **self.choice)


class DiffusersPreset(Preset):
    """``--backbone diffusers``: the checkpoint ``pretrained=`` names, at its own defaults."""

    name = "diffusers"
    model_id = "pretrained=ORG/NAME (any diffusers text-to-image checkpoint)"
    dtype = "bfloat16"
    memory_options = True
    description = (
        "any diffusers text-to-image pipeline: --backbone-arg pretrained=ORG/NAME or a folder "
        "(revision=, variant=, offload=, quantize=, max_memory=); its own default settings, "
        "family read from its class"
    )

    #: Unknown until the pipeline is loaded: methods accept ``auto`` before loading and check
    #: the loaded backbone's own family in ``prepare``, before any image.
    family = "auto"

    def describe(self) -> dict:
        """What the preset is (family: read from the pipeline class at load time)."""
        return {
            "name": self.name,
            "family": "auto (read from the pipeline class when loaded)",
            "model_id": self.model_id,
            "dtype": self.dtype,
            "settings": dataclasses.asdict(self.settings),
            "description": self.description,
            "offline": self.offline,
        }

    def check_args(
        self, overrides: dict, *, device: str | None = None, dtype: str | None = None
    ) -> tuple[GenerationSettings, MemoryPlan]:
        """Validate the arguments without loading: load arguments, settings, memory options.

        Raises:
            ConfigError: An unknown or invalid argument, or no ``pretrained=`` (nor a path).
        """
        rest = {k: v for k, v in overrides.items() if k not in LOAD_ARGS}
        memory, settings_args = MemoryOptions.split(rest)
        settings = build_config(
            GenerationSettings,
            {**dataclasses.asdict(GenerationSettings()), **settings_args},
            owner=f"backbone {self.name}",
        )
        memory.check()
        if memory.dtype and dtype and torch_dtype(memory.dtype) != torch_dtype(dtype):
            raise ConfigError(
                f"--dtype {dtype} and --backbone-arg dtype={memory.dtype} disagree.",
                hint="Give the dtype once.",
            )
        for key in ("pretrained", "revision", "variant", "ready"):
            value = overrides.get(key)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigError(
                    f"backbone diffusers: {key}={value!r} must be a non-empty text.",
                    hint=f"Give --backbone-arg {key}=VALUE.",
                )
        if device is None and memory.given:
            device = default_device()
        device = device or "cpu"
        dtype = memory.dtype or dtype or (self.dtype if device != "cpu" else "float32")
        plan = memory.plan(
            name=self.name,
            family="unknown",
            components=(),
            device=device,
            dtype=dtype,
            height=settings.height,
            width=settings.width,
            text_len=settings.max_sequence_length,
            free_bytes=None,
            free_source=None,
        )
        return settings, plan

    def load(self, *, path=None, device=None, dtype=None, **overrides) -> Backbone:
        """Load ``pretrained=`` (or ``path``) with ``DiffusionPipeline`` and wrap it."""
        from ..errors import require

        require("torch", "flux", feature="The diffusers backbone")
        require("diffusers", "flux", feature="The diffusers backbone")
        device = device or default_device()
        _, memory = self.check_args(overrides, device=device, dtype=dtype)
        if overrides.get("ready"):
            raise ConfigError(
                "backbone diffusers: ready= names a pipeline handed to evaluate(); it cannot be "
                "loaded by name.",
                hint="Pass the pipeline object to evaluate(backbone=pipe), or give pretrained=.",
            )
        source = path or overrides.get("pretrained")
        if not source:
            raise ConfigError(
                "The diffusers backbone needs the checkpoint to load.",
                hint="Give --backbone-arg pretrained=ORG/NAME (or a local folder).",
            )
        choice = {k: overrides.get(k) for k in ("revision", "variant")}
        pipe = self.from_pretrained(
            _Loader(**choice),
            source,
            memory.dtype,
            hint="Check the hub id (and revision=), accept the model's licence and log in, or "
            "download it and give the local folder as pretrained=.",
            memory=memory,
            quantized=QUANTIZED if memory.scheme is not None else (),
        )
        pipe = self.place(pipe, device, memory)
        given = {k: v for k, v in overrides.items() if k not in LOAD_ARGS}
        _, settings_args = MemoryOptions.split(given)
        return wrap_pipeline(
            pipe,
            name=self.name,
            device=device,
            dtype=memory.dtype,
            model_id=source,
            source={"pretrained": source, **choice},
            overrides=settings_args,
            memory=memory,
        )


DIFFUSERS = DiffusersPreset()
