"""Memory options of the diffusers presets: CPU offload, quantisation, dtype, and a fit check.

``--backbone-arg offload=none|model|group|sequential`` uses diffusers' own CPU offload
(``DiffusionPipeline.enable_model_cpu_offload``, ``enable_group_offload`` at block level with one
block per group, ``enable_sequential_cpu_offload``); ``cast=float8`` stores the transformer's
weights in float8, computing in the run's dtype (``ModelMixin.enable_layerwise_casting``);
``quantize=<scheme>`` loads the transformer and the large text encoder through diffusers' ``PipelineQuantizationConfig`` with one backend's config class (see
:data:`SCHEMES`); ``--backbone-arg max_memory=24GB`` (or ``auto``: the free memory of the CUDA
device) picks the cheapest setting that fits from :func:`estimate`. Everything here is decided
before any weights load: :meth:`MemoryOptions.plan` needs only the preset's component table.

Component sizes (``memory_table.COMPONENTS``): parameter counts of the published configurations
(recounted by ``tests/backbones/test_memory.py``) times the bytes per parameter. Activation
allowances are estimates; ``benchmarks/gpu_check.sh`` measures real peaks on a GPU.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .._quiet import allow_quantizers
from ..errors import ConfigError, MissingDependencyError
from .memory_table import DTYPE_BYTES, Component, activation_bytes

OFFLOAD_MODES = ("none", "model", "group", "sequential")
#: Layerwise casting of the transformer's weights (storage dtype; compute stays ``dtype``).
CAST_MODES = ("none", "float8")
#: The backbone arguments that :class:`MemoryOptions` reads (the others are generation settings).
MEMORY_KEYS = ("offload", "quantize", "max_memory", "dtype", "text_dtype", "cast")

_DTYPE_ALIASES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
GB = 10**9
_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_UNITS |= {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
#: CUDA context, allocator fragmentation and library workspaces: free memory a run cannot use.
CONTEXT_BYTES = int(1.5 * GB)


# -- quantisation schemes -------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Scheme:
    """One quantisation scheme, as diffusers and transformers configure it.

    Attributes:
        name: The ``quantize=`` value.
        package: The backend's import name (and its ``slim-leakage[...]`` extra).
        weight_bytes: Stored bytes per weight of a quantised linear layer (scales included).
        cpu: Whether the backend quantises and runs on the CPU.
        description: One line for the docs and errors.
    """

    name: str
    package: str
    weight_bytes: float
    cpu: bool
    description: str

    def configs(self, compute_dtype: str) -> tuple[Any, Any]:
        """``(diffusers config, transformers config)`` for this scheme.

        Args:
            compute_dtype: The dtype the quantised layers compute in (4-bit schemes need it).
        """
        import diffusers
        import transformers

        if self.package == "torchao":
            # diffusers' TorchAoConfig takes a torchao AOBaseConfig instance (diffusers 0.42
            # quantizers/quantization_config.py); transformers' TorchAoConfig takes the same.
            from torchao.quantization import Int8WeightOnlyConfig

            return (
                diffusers.TorchAoConfig(Int8WeightOnlyConfig()),
                transformers.TorchAoConfig(Int8WeightOnlyConfig()),
            )
        import torch

        if self.name == "bnb-int8":
            kwargs: dict[str, Any] = {"load_in_8bit": True}
        else:
            kwargs = {
                "load_in_4bit": True,
                "bnb_4bit_quant_type": "nf4",
                "bnb_4bit_compute_dtype": getattr(torch, _dtype(compute_dtype, "dtype")),
            }
        return diffusers.BitsAndBytesConfig(**kwargs), transformers.BitsAndBytesConfig(**kwargs)


SCHEMES: dict[str, Scheme] = {
    s.name: s
    for s in (
        # int8 weights with one float scale per output row: 1 byte per weight.
        Scheme("torchao-int8", "torchao", 1.0, True, "torchao int8 weight-only (CPU and GPU)"),
        # LLM.int8: int8 weights plus per-row statistics; bitsandbytes quantises on a GPU only.
        Scheme("bnb-int8", "bitsandbytes", 1.0, False, "bitsandbytes LLM.int8 (GPU)"),
        # NF4: 4-bit weights plus one scale per 64-weight block (0.5 + 4/64 bytes per weight).
        Scheme("bnb-nf4", "bitsandbytes", 0.5625, False, "bitsandbytes 4-bit NF4 (GPU)"),
    )
}
#: The scheme ``max_memory=`` tries when quantisation is needed and none was named.
DEFAULT_SCHEME = "torchao-int8"


# -- options and plan -----------------------------------------------------------------------------
def parse_bytes(value: str, *, key: str = "max_memory") -> int:
    """``"24GB"`` -> ``24_000_000_000``; ``GiB``/``MiB`` units are powers of two.

    Raises:
        ConfigError: Naming the value and the accepted forms.
    """
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]+)\s*", str(value))
    if not m or m.group(2).lower() not in _UNITS:
        raise ConfigError(
            f"{key}={value!r} is not a size.",
            hint=f"Give a number with a unit, e.g. {key}=24GB (or 22.5GiB, 16000MB), "
            f"or {key}=auto for the free memory of the CUDA device.",
        )
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def _gb(n: float) -> str:
    return f"{n / GB:.1f} GB"


def _dtype(value: str, key: str) -> str:
    name = _DTYPE_ALIASES.get(str(value).lower(), str(value).lower())
    if name not in DTYPE_BYTES:
        raise ConfigError(
            f"{key}={value!r} is not a dtype.", hint=f"Use one of {', '.join(DTYPE_BYTES)}."
        )
    return name


@dataclasses.dataclass(frozen=True)
class Setting:
    """One offload/quantisation/casting/text-dtype combination and its estimated peak."""

    offload: str
    quantize: str
    peak_bytes: int
    parts: tuple[tuple[str, int], ...]
    cast: str = "none"
    text_dtype: str | None = None

    def name(self) -> str:
        """``offload=model, quantize=none`` (and ``cast=``/``text_dtype=`` when they step)."""
        out = f"offload={self.offload}, quantize={self.quantize}"
        if self.cast != "none":
            out += f", cast={self.cast}"
        if self.text_dtype is not None:
            out += f", text_dtype={self.text_dtype}"
        return out

    def describe(self) -> str:
        """``offload=model, quantize=none: about 27.3 GB (transformer 23.8 GB fp16 + ...)``."""
        parts = " + ".join(f"{name} {_gb(b)}" for name, b in self.parts)
        return f"{self.name()}: about {_gb(self.peak_bytes)} ({parts})"


@dataclasses.dataclass(frozen=True)
class MemoryPlan:
    """The memory options a backbone loads with, resolved before any weights load.

    Attributes:
        offload: ``none``, ``model`` or ``sequential``.
        quantize: ``none`` or a :data:`SCHEMES` name.
        dtype: The denoiser's (and VAE's) dtype.
        text_dtype: The text encoders' dtype (their embeddings are cast to ``dtype``).
        budget_bytes: The memory the setting must fit in (``None``: not checked).
        budget_source: Where the budget comes from (``max_memory=24GB``, ``free on cuda:0`` ...).
        estimate: The chosen setting's estimate (``None`` without a component table).
        chosen: Whether ``max_memory`` picked the offload/quantize values.
        cast: ``none`` or ``float8`` (layerwise casting of the transformer's weights).
    """

    offload: str = "none"
    quantize: str = "none"
    dtype: str = "float32"
    text_dtype: str = "float32"
    budget_bytes: int | None = None
    budget_source: str | None = None
    estimate: Setting | None = None
    chosen: bool = False
    cast: str = "none"

    @property
    def scheme(self) -> Scheme | None:
        """The quantisation scheme, or ``None``."""
        return SCHEMES.get(self.quantize)

    def summary(self, name: str) -> str:
        """One line saying what the backbone loads with (printed first by a run)."""
        how = "chosen for" if self.chosen else "checked against"
        line = (
            f"backbone {name}: offload={self.offload}, quantize={self.quantize}, "
            + (f"cast={self.cast}, " if self.cast != "none" else "")
            + f"dtype={self.dtype}, text encoders {self.text_dtype}"
        )
        if self.estimate is not None:
            line += f"; needs about {_gb(self.estimate.peak_bytes)}"
        if self.budget_bytes is not None:
            line += f", {how} {_gb(self.budget_bytes)} ({self.budget_source})"
        return line

    def describe(self) -> dict:
        """The plan as recorded in the manifest."""
        out: dict[str, Any] = {
            "offload": self.offload,
            "quantize": self.quantize,
            "dtype": self.dtype,
            "text_dtype": self.text_dtype,
            "cast": self.cast,
            "chosen_by_max_memory": self.chosen,
        }
        if self.scheme is not None:
            out["quantize_backend"] = self.scheme.package
        if self.budget_bytes is not None:
            out["budget_bytes"] = self.budget_bytes
            out["budget_source"] = self.budget_source
        if self.estimate is not None:
            out["estimated_peak_bytes"] = self.estimate.peak_bytes
        return out


def estimate(
    components: Sequence[Component],
    *,
    family: str,
    offload: str,
    quantize: str,
    dtype: str,
    text_dtype: str,
    height: int,
    width: int,
    text_len: int,
    cast: str = "none",
    text_step: bool = False,
) -> Setting:
    """The estimated peak device memory of one setting.

    - ``none``: every model's weights plus the larger of the denoising and decoding activations.
    - ``model``: one model on the device at a time (diffusers' model offload moves each to the
      device when it runs): the largest of (a model's weights + its phase's activations).
    - ``group``: one group of each model at a time (diffusers' block-level group offloading,
      one block per group): the largest of (a model's group + its phase's activations), where
      a group is the model's :attr:`~.memory_table.Component.group_params` share of its weights.
    - ``sequential``: one tensor at a time (accelerate's hooks load each submodule's weights for
      its forward only): the largest tensor plus the larger activation allowance.

    ``cast="float8"`` stores the transformer's castable weights in one byte; ``text_step``
    marks a setting whose text dtype is a step of the ladder (shown in its name). A context
    allowance (:data:`CONTEXT_BYTES`) is added to every setting.
    """
    scheme = SCHEMES.get(quantize)
    act = activation_bytes(family, height, width, text_len, dtype)
    weights = {c.name: c.weight_bytes(dtype, text_dtype, scheme, cast=cast) for c in components}
    phase = {c.name: (act["decode"] if c.name == "vae" else 0) for c in components}
    phase["transformer"] = act["denoise"]
    if offload == "none":
        peak_act = max(act.values())
        parts = [*weights.items(), ("activations", peak_act)]
    elif offload == "model":
        name = max(weights, key=lambda n: weights[n] + phase.get(n, 0))
        parts = [(name, weights[name]), ("activations", phase.get(name, 0))]
    elif offload == "group":
        group = {
            c.name: weights[c.name] * (c.group_params or c.params) // c.params for c in components
        }
        name = max(group, key=lambda n: group[n] + phase.get(n, 0))
        parts = [(f"{name} group", group[name]), ("activations", phase.get(name, 0))]
    else:
        largest = max(components, key=lambda c: c.largest_tensor)
        unit = DTYPE_BYTES[text_dtype if largest.text else dtype]
        parts = [
            ("largest tensor", largest.largest_tensor * unit),
            ("activations", max(act.values())),
        ]
    parts.append(("context", CONTEXT_BYTES))
    step = text_dtype if text_step else None
    return Setting(offload, quantize, sum(b for _, b in parts), tuple(parts), cast, step)


#: One rung of the ladder: (offload, quantize, cast, text step). The text step is ``True`` on
#: the rung that loads the text encoders in bfloat16 instead of their default dtype.
Rung = tuple[str, str, str, bool]


def candidates(
    device: str,
    offload: str | None,
    quantize: str | None,
    cast: str | None = None,
    *,
    text_step: bool = False,
) -> list[Rung]:
    """Settings in order of cost, fixed values kept: exact weights before changed ones, fewer
    transfers before more. The text encoders in bfloat16 (when their dtype was not given:
    ``text_step``) come first, as the smallest change; then model offload (exact, one transfer
    per model and image); int8 weights, float8 storage of the transformer (layerwise casting,
    no extra package), int8 with model offload; group offload (exact, a transfer per block and
    step); and sequential offload, exact but by far the slowest, last."""
    ladder: list[Rung] = [
        ("none", "none", "none", False),
        ("none", "none", "none", True),
        ("model", "none", "none", False),
        ("none", DEFAULT_SCHEME, "none", False),
        ("none", "none", "float8", False),
        ("model", DEFAULT_SCHEME, "none", False),
        ("group", "none", "none", False),
        ("sequential", "none", "none", False),
    ]
    if quantize not in (None, "none"):
        ladder = [(o, quantize, "none", False) for o in ("none", "model")]
    out = [
        r
        for r in ladder
        if offload in (None, r[0])
        and quantize in (None, r[1])
        and cast in (None, r[2])
        and (text_step or not r[3])
    ]
    if device == "cpu":
        out = [r for r in out if r[0] == "none"]
    return out


@dataclasses.dataclass(frozen=True)
class MemoryOptions:
    """The memory-related backbone arguments as given (unset values are ``None``).

    Attributes:
        offload: ``none``, ``model`` or ``sequential``.
        quantize: ``none`` or a scheme of :data:`SCHEMES`.
        max_memory: A size (``24GB``) or ``auto`` (the free memory of the CUDA device).
        dtype: The denoiser's dtype.
        text_dtype: The text encoders' dtype.
        cast: ``none`` or ``float8`` (layerwise casting of the transformer's weights).
    """

    offload: str | None = None
    quantize: str | None = None
    max_memory: str | None = None
    dtype: str | None = None
    text_dtype: str | None = None
    cast: str | None = None

    @classmethod
    def split(cls, overrides: Mapping[str, Any]) -> tuple[MemoryOptions, dict]:
        """Separate the memory arguments from the generation settings in ``overrides``."""
        mine = {k: overrides[k] for k in MEMORY_KEYS if overrides.get(k) is not None}
        rest = {k: v for k, v in overrides.items() if k not in MEMORY_KEYS}
        return cls(**{k: str(v) for k, v in mine.items()}), rest

    def check(self) -> None:
        """Refuse unknown values, naming what is allowed."""
        if self.offload is not None and self.offload not in OFFLOAD_MODES:
            raise ConfigError(
                f"offload={self.offload!r} is not an offload mode.",
                hint=f"Use offload={'|'.join(OFFLOAD_MODES)}.",
            )
        if self.quantize is not None and self.quantize != "none" and self.quantize not in SCHEMES:
            listed = ", ".join(f"{s.name} ({s.description})" for s in SCHEMES.values())
            raise ConfigError(
                f"quantize={self.quantize!r} is not a quantisation scheme.",
                hint=f"Use quantize=none or one of: {listed}.",
            )
        if self.cast is not None and self.cast not in CAST_MODES:
            raise ConfigError(
                f"cast={self.cast!r} is not a layerwise casting mode.",
                hint=f"Use cast={'|'.join(CAST_MODES)} (float8: the transformer's weights are "
                "stored in float8 and computed in the run's dtype).",
            )
        if self.cast == "float8" and self.quantize not in (None, "none"):
            raise ConfigError(
                f"cast=float8 and quantize={self.quantize} both store the transformer's weights "
                "in fewer bytes; they do not combine.",
                hint="Give one of them.",
            )
        if self.max_memory is not None and self.max_memory != "auto":
            parse_bytes(self.max_memory)
        for key in ("dtype", "text_dtype"):
            if getattr(self, key) is not None:
                _dtype(getattr(self, key), key)

    @property
    def given(self) -> bool:
        """Whether any offload/quantize/max_memory option was given."""
        return any(v is not None for v in (self.offload, self.quantize, self.max_memory, self.cast))

    def plan(
        self,
        *,
        name: str,
        family: str,
        components: Sequence[Component],
        device: str,
        dtype: str,
        height: int,
        width: int,
        text_len: int,
        free_bytes: int | None = None,
        free_source: str | None = None,
        default_text: str | None = None,
    ) -> MemoryPlan:
        """Resolve the options into a plan, or refuse a setting that cannot fit.

        Args:
            name: The preset (for messages).
            family: ``flux`` or ``sana``.
            components: The preset's component table (empty: sizes unknown, nothing checked).
            device: The device the run generates on.
            dtype: The resolved denoiser dtype.
            height: Image height (activations).
            width: Image width.
            text_len: Text tokens.
            free_bytes: Free memory of the device when detected (``max_memory=auto``, or the
                check of an explicit setting on CUDA).
            free_source: Where ``free_bytes`` was read.
            default_text: The preset's text-encoder dtype when none is given (``None``: the
                family's rule below).

        Raises:
            ConfigError: A setting that cannot fit, with the numbers; ``max_memory=auto``
                without a CUDA device; offload on the CPU.
            MissingDependencyError: The scheme's backend is not installed.
        """
        self.check()
        dtype = _dtype(self.dtype or dtype, "dtype")
        # diffusers' FLUX docs ("Running FP16 inference", docs/source/en/api/pipelines/flux.md):
        # in fp16 some text-encoder activations must be clipped, which changes the image; running
        # the text encoders in FP32 removes the difference.
        if default_text is None:
            default_text = "float32" if (family == "flux" and dtype == "float16") else dtype
        text_dtype = _dtype(self.text_dtype or default_text, "text_dtype")
        # the bfloat16 text step: only when the text dtype is the default and bfloat16 is smaller
        text_step = (
            self.text_dtype is None
            and device != "cpu"
            and (text_dtype == "float32" or (text_dtype == "float16" and family == "flux"))
        )
        on_cpu = device == "cpu"
        if on_cpu and self.offload not in (None, "none"):
            raise ConfigError(
                f"offload={self.offload} on the CPU moves weights from the CPU to the CPU.",
                hint="Offload is for a GPU run (--device cuda); leave it out on the CPU.",
            )
        scheme = SCHEMES.get(self.quantize or "")
        if scheme is not None:
            if on_cpu and not scheme.cpu:
                cpu_ones = ", ".join(s.name for s in SCHEMES.values() if s.cpu)
                raise ConfigError(
                    f"quantize={scheme.name} needs a GPU ({scheme.description}).",
                    hint=f"On the CPU use quantize={cpu_ones}.",
                )
            _require_backend(scheme)
        budget, source = None, None
        if self.max_memory == "auto":
            if free_bytes is None:
                raise ConfigError(
                    f"max_memory=auto reads the free memory of a CUDA device, but the run is on "
                    f"{device}.",
                    hint="Give the budget as a size (max_memory=24GB), or run with --device cuda.",
                )
            budget, source = free_bytes, free_source
        elif self.max_memory is not None:
            budget, source = parse_bytes(self.max_memory), f"max_memory={self.max_memory}"
        elif free_bytes is not None:
            budget, source = free_bytes, free_source
        if not components:
            return MemoryPlan(
                offload=self.offload or "none",
                quantize=self.quantize or "none",
                dtype=dtype,
                text_dtype=text_dtype,
                cast=self.cast or "none",
            )

        def cost(o: str, q: str, c: str = "none", step: bool = False) -> Setting:
            return estimate(
                components,
                family=family,
                offload=o,
                quantize=q,
                dtype=dtype,
                text_dtype="bfloat16" if step else text_dtype,
                height=height,
                width=width,
                text_len=text_len,
                cast=c,
                text_step=step,
            )

        def plan_of(setting: Setting, chosen: bool) -> MemoryPlan:
            return MemoryPlan(
                offload=setting.offload,
                quantize=setting.quantize,
                dtype=dtype,
                text_dtype=setting.text_dtype or text_dtype,
                budget_bytes=budget,
                budget_source=source,
                estimate=setting,
                chosen=chosen,
                cast=setting.cast,
            )

        pick = self.max_memory is not None and (
            self.offload is None or self.quantize is None or self.cast is None
        )
        options = candidates(device, self.offload, self.quantize, self.cast, text_step=text_step)
        if pick:
            for rung in options:
                if rung[1] != "none" and importlib.util.find_spec(SCHEMES[rung[1]].package) is None:
                    continue  # its backend is not installed: the next rung (float8 casting) fits
                setting = cost(*rung)
                if setting.peak_bytes <= budget:  # type: ignore[operator]
                    return plan_of(setting, True)
            tried = "\n  ".join(cost(*rung).describe() for rung in options)
            raise ConfigError(
                f"No memory setting of {name} fits {_gb(budget)} ({source}) at "  # type: ignore[arg-type]
                f"{width}x{height} with dtype={dtype}; estimates:\n  {tried}",
                hint="Free memory on the device, give a larger max_memory, lower the resolution "
                "(--backbone-arg height=512 width=512), or try quantize=bnb-nf4.",
            )
        setting = cost(self.offload or "none", self.quantize or "none", self.cast or "none")
        if budget is not None and setting.peak_bytes > budget:
            better = next(
                (
                    cost(*rung)
                    for rung in candidates(device, None, None, text_step=text_step)
                    if cost(*rung).peak_bytes <= budget
                ),
                None,
            )
            fix = (
                f"--backbone-arg max_memory={self.max_memory or 'auto'} picks the cheapest "
                f"setting that fits (here {better.name()})"
                if better is not None
                else "no setting of the table fits: lower the resolution or free memory"
            )
            raise ConfigError(
                f"{name} with {setting.describe()} does not fit {_gb(budget)} ({source}).",
                hint=f"{fix}; or set offload=/quantize= yourself (docs/run.md, memory table).",
            )
        return plan_of(setting, False)


def _require_backend(scheme: Scheme) -> None:
    allow_quantizers()  # a quantisation is asked for or chosen: its library may load now
    if importlib.util.find_spec(scheme.package) is None:
        raise MissingDependencyError(
            f"quantize={scheme.name} needs the package {scheme.package!r}, which is not installed.",
            hint=f"pip install 'slim-leakage[{scheme.package}]'",
        )


def free_cuda_memory(device: str) -> tuple[int, str] | None:
    """``(free bytes, "free on cuda:N")`` of a CUDA device, or ``None`` elsewhere."""
    if not device.startswith("cuda"):
        return None
    import torch

    if not torch.cuda.is_available():
        return None
    index = torch.device(device).index
    free, _ = torch.cuda.mem_get_info(0 if index is None else index)
    return int(free), f"free on {device if index is not None else 'cuda:0'}"
