"""The backbone object every method generates through."""

from __future__ import annotations

import contextvars
import dataclasses
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from .._config import build_config, check_range
from .._hub import check_revision, is_hub_id, resolved_commit
from ..errors import ConfigError
from .memory import _DTYPE_ALIASES, MemoryOptions, MemoryPlan, free_cuda_memory

#: Prefix of the model id of presets whose weights are built in code (nothing to download).
BUILT_IN = "built-in:"

#: The hub revision of the preset being loaded, read by :meth:`Preset.from_pretrained` (so
#: every preset's ``build`` passes it on without a parameter of its own).
_REVISION: contextvars.ContextVar[str | None] = contextvars.ContextVar("revision", default=None)


@dataclasses.dataclass(frozen=True)
class GenerationSettings:
    """How images are generated (paper settings for FLUX.1-dev by default).

    Attributes:
        height: Image height in pixels.
        width: Image width in pixels.
        num_inference_steps: Denoising steps.
        guidance_scale: FLUX embedded guidance (or CFG scale for SANA).
        max_sequence_length: T5 text length; DeLeaker's masks read it at run time.
        true_cfg_scale: FLUX true CFG (>1 calls the transformer twice per step).
    """

    height: int = 512
    width: int = 512
    num_inference_steps: int = 20
    guidance_scale: float = 3.5
    max_sequence_length: int = 256
    true_cfg_scale: float = 1.0

    def __post_init__(self) -> None:
        for name in ("height", "width", "num_inference_steps", "max_sequence_length"):
            check_range("generation settings", name, getattr(self, name), low=1)
        check_range("generation settings", "guidance_scale", self.guidance_scale, low=0)


def torch_dtype(name: str):
    """Map ``float32``/``float16``/``bfloat16`` (and ``fp32``/``fp16``/``bf16``) to a torch dtype."""
    import torch

    table = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "float16": torch.float16,
        "fp16": torch.float16,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
    }
    if name not in table:
        raise ConfigError(f"Unknown dtype {name!r}.", hint="Use float32, float16 or bfloat16.")
    return table[name]


def default_device() -> str:
    """``cuda`` when a GPU is visible, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class Backbone:
    """A loaded pipeline plus the settings every method generates with.

    Args:
        name: The preset name (``flux-dev``).
        family: The architecture family (``flux`` or ``sana``); methods check it.
        pipe: The diffusers pipeline.
        settings: Generation settings.
        device: Torch device string.
        dtype: Dtype name.
        model_id: The weights used (hub id or path), recorded in the manifest.
        weights_sha256: Digest of the weight files, where a preset can afford to compute it
            (recorded in the manifest, so results name the exact weights).
        memory: The memory options it was loaded with (offload, quantisation, text dtype).
        revision: The hub revision asked for (``--backbone-arg revision=``, or the preset's).
        commit: The hub commit the weights came from, when the local hub cache says.
    """

    #: Whether the pipeline takes the text length (``max_sequence_length``) from the settings
    #: (FLUX.1's base class reads its family instead: it is this class itself).
    takes_text_length: ClassVar[bool] = False

    def __init__(
        self,
        *,
        name: str,
        family: str,
        pipe: Any,
        settings: GenerationSettings,
        device: str,
        dtype: str,
        model_id: str,
        weights_sha256: str | None = None,
        memory: MemoryPlan | None = None,
        revision: str | None = None,
        commit: str | None = None,
    ) -> None:
        self.name = name
        self.family = family
        self.pipe = pipe
        self.settings = settings
        self.device = device
        self.dtype = dtype
        self.model_id = model_id
        self.weights_sha256 = weights_sha256
        self.memory = memory
        self.revision = revision
        self.commit = commit

    def describe(self) -> dict:
        """Provenance of this backbone for the run manifest."""
        out = {
            "name": self.name,
            "family": self.family,
            "model_id": self.model_id,
            "device": self.device,
            "dtype": self.dtype,
            "settings": dataclasses.asdict(self.settings),
        }
        if self.weights_sha256 is not None:
            out["weights_sha256"] = self.weights_sha256
        if self.memory is not None:
            out["memory"] = self.memory.describe()
        if self.revision is not None or self.commit is not None:
            out["revision"], out["commit"] = self.revision, self.commit
        return out

    @property
    def tokenizer(self):
        """The tokenizer whose tokens form the text part of the attention sequence."""
        return getattr(self.pipe, "tokenizer_2", None) or self.pipe.tokenizer

    def generators(self, seeds: Sequence[int]):
        """One ``torch.Generator`` per image, so batched and single runs give the same noise."""
        import torch

        gen_device = "cpu" if self.device.startswith("mps") else self.device
        return [torch.Generator(device=gen_device).manual_seed(int(s)) for s in seeds]

    def pipe_kwargs(self, **overrides) -> dict:
        """The keyword arguments passed to the pipeline for these settings."""
        s = self.settings
        kwargs = {
            "height": s.height,
            "width": s.width,
            "num_inference_steps": s.num_inference_steps,
            "guidance_scale": s.guidance_scale,
        }
        if self.takes_text_length or self.family == "flux":
            kwargs["max_sequence_length"] = s.max_sequence_length
        if self.family == "flux" and s.true_cfg_scale > 1:
            kwargs["true_cfg_scale"] = s.true_cfg_scale
        kwargs.update(overrides)
        return kwargs

    def generate(self, prompts: Sequence[str], seeds: Sequence[int], **overrides) -> list:
        """Generate one PIL image per prompt with its own seed.

        Args:
            prompts: Text prompts.
            seeds: One seed per prompt.
            **overrides: Pipeline keyword arguments overriding the settings
                (``negative_prompt`` for true CFG, ``joint_attention_kwargs`` ...).
        """
        if len(prompts) != len(seeds):
            raise ConfigError(f"Got {len(prompts)} prompts but {len(seeds)} seeds.")
        if not prompts:
            return []
        out = self.pipe(
            prompt=list(prompts),
            generator=self.generators(seeds),
            output_type="pil",
            **self.pipe_kwargs(**overrides),
        )
        return list(out.images)


class Preset:
    """A named backbone recipe; subclasses implement :meth:`build`.

    Attributes:
        name: Preset name.
        family: Architecture family.
        model_id: Default hub id or path.
        dtype: Default dtype name.
        settings: Default generation settings.
        description: One line for ``slim-eval ls backbones``.
        memory_options: Whether it takes ``offload``/``quantize``/``max_memory``/``text_dtype``
            (presets that build through :meth:`from_pretrained` and :meth:`place`).
        components: Its models' sizes (:data:`~slim_leakage.backbones.memory.COMPONENTS`), for
            the fit check; empty when not tabulated (nothing is checked).
        revision: The hub revision loaded by default (``None``: the hub's ``main``);
            ``--backbone-arg revision=COMMIT`` overrides it.
        text_dtype: The text encoders' dtype when none is given and the run is in the preset's
            ``dtype`` (``None``, or another dtype: the family's rule,
            :meth:`~slim_leakage.backbones.memory.MemoryOptions.plan`).
    """

    name: str = ""
    family: str = "flux"
    model_id: str = ""
    dtype: str = "float32"
    settings: GenerationSettings = GenerationSettings()
    description: str = ""
    memory_options: bool = False
    components: tuple = ()
    revision: str | None = None
    text_dtype: str | None = None

    @property
    def offline(self) -> bool:
        """Whether the default weights need no download: built in code (a ``built-in:`` id) or
        a folder on this machine (weights shipped in the package)."""
        return self.model_id.startswith(BUILT_IN) or Path(self.model_id).is_dir()

    def describe(self) -> dict:
        """What the preset is, without loading anything (JSON-compatible)."""
        return {
            "name": self.name,
            "family": self.family,
            "model_id": self.model_id,
            "dtype": self.dtype,
            "settings": dataclasses.asdict(self.settings),
            "description": self.description,
            "offline": self.offline,
        }

    def build(self, *, path: str, device: str, dtype: str) -> Any:  # pragma: no cover - abstract
        """Build the pipeline. Presets with ``memory_options`` also receive ``memory=`` (a
        :class:`~slim_leakage.backbones.memory.MemoryPlan`) and place it with :meth:`place`."""
        raise NotImplementedError

    def check_args(
        self, overrides: dict, *, device: str | None = None, dtype: str | None = None
    ) -> tuple[GenerationSettings, MemoryPlan]:
        """Validate backbone arguments without loading weights: the generation settings and
        the memory options (offload, quantisation, dtypes, and whether the setting fits).

        Args:
            overrides: ``--backbone-arg`` values (generation settings and memory options).
            device: The run's device (``None``: CUDA when available).
            dtype: The run's ``--dtype`` (``None``: the preset's on a GPU, float32 on the CPU).

        Returns:
            The generation settings and the memory plan.

        Raises:
            ConfigError: An unknown or invalid argument, a conflicting dtype, or a setting that
                does not fit, with the numbers.
        """
        rest = dict(overrides)
        check_revision(rest.pop("revision", None), owner=f"backbone {self.name}")
        memory, rest = MemoryOptions.split(rest)
        settings = build_config(
            GenerationSettings,
            {**dataclasses.asdict(self.settings), **rest},
            owner=f"backbone {self.name}",
        )
        memory.check()
        if memory.dtype and dtype and torch_dtype(memory.dtype) != torch_dtype(dtype):
            raise ConfigError(
                f"--dtype {dtype} and --backbone-arg dtype={memory.dtype} disagree.",
                hint="Give the dtype once.",
            )
        if not self.memory_options and (memory.given or memory.text_dtype):
            raise ConfigError(
                f"The backbone {self.name} does not take offload/quantize/max_memory/text_dtype.",
                hint="They apply to the diffusers presets (flux-dev, flux-schnell, sana, "
                "tiny-random, tiny-sana).",
            )
        if device is None and (memory.given or self.components):
            device = default_device()
        device = device or "cpu"
        dtype = memory.dtype or dtype or (self.dtype if device != "cpu" else "float32")
        free = free_cuda_memory(device) if self.components or memory.max_memory else None
        plan = memory.plan(
            name=self.name,
            family=self.family,
            components=self.components,
            device=device,
            dtype=dtype,
            height=settings.height,
            width=settings.width,
            text_len=settings.max_sequence_length,
            free_bytes=None if free is None else free[0],
            free_source=None if free is None else free[1],
            # the preset's text dtype goes with its own dtype (another dtype: the family's rule)
            default_text=self.text_dtype
            if _DTYPE_ALIASES.get(dtype, dtype) == self.dtype
            else None,
        )
        return settings, plan

    def from_pretrained(
        self,
        pipeline_cls: Any,
        path: str,
        dtype: str,
        *,
        hint: str,
        memory: MemoryPlan | None = None,
        quantized: Sequence[str] = (),
        text_encoders: Sequence[str] = (),
    ) -> Any:
        """``pipeline_cls.from_pretrained(path)``, or one clear error saying how to get it.

        Args:
            pipeline_cls: The diffusers pipeline class to load.
            path: Hub id or local folder.
            dtype: Dtype name.
            hint: How to obtain the weights (printed with the error).
            memory: The memory plan: its quantisation (through diffusers'
                ``PipelineQuantizationConfig``) and the text encoders' dtype.
            quantized: The pipeline components a quantisation scheme applies to
                (``transformer`` is a diffusers model, the others transformers models).
            text_encoders: The components loaded at ``memory.text_dtype``.
        """
        from ..errors import ModelNotFoundError

        kwargs: dict[str, Any] = {"torch_dtype": torch_dtype(dtype)}
        if _REVISION.get() is not None and is_hub_id(path):
            kwargs["revision"] = _REVISION.get()
        if memory is not None and memory.text_dtype != dtype and text_encoders:
            # diffusers takes one dtype per component, with "default" for the rest
            # (DiffusionPipeline.from_pretrained, pipeline_loading_utils.py)
            kwargs["torch_dtype"] = {
                "default": torch_dtype(dtype),
                **{name: torch_dtype(memory.text_dtype) for name in text_encoders},
            }
        if memory is not None and memory.scheme is not None and quantized:
            from diffusers import PipelineQuantizationConfig

            for_diffusers, for_transformers = memory.scheme.configs(dtype)
            kwargs["quantization_config"] = PipelineQuantizationConfig(
                quant_mapping={
                    name: for_diffusers if name == "transformer" else for_transformers
                    for name in quantized
                }
            )
        try:
            with warnings.catch_warnings():
                # Newer diffusers renamed the argument to ``dtype`` and warn on the old name, which
                # older releases (still supported) require.
                warnings.filterwarnings(
                    "ignore", message=".*torch_dtype.*deprecated", category=FutureWarning
                )
                pipe = pipeline_cls.from_pretrained(path, **kwargs)
        except (OSError, ValueError) as exc:
            raise ModelNotFoundError(
                f"Could not load the {self.name} weights from {path!r}: {str(exc).splitlines()[0]}",
                hint=hint,
            ) from exc
        if memory is not None and memory.text_dtype != dtype and text_encoders:
            cast_prompt_embeddings(pipe, torch_dtype(dtype))
        return pipe

    def built_in(
        self,
        pipe: Any,
        pipeline_cls: Any,
        dtype: str,
        memory: MemoryPlan | None,
        *,
        quantized: Sequence[str],
        text_encoders: Sequence[str],
    ) -> Any:
        """A pipeline built in code, in ``dtype``, with the memory plan's quantisation and text
        dtype applied through the same loader as downloaded weights: it is saved to a temporary
        folder and loaded back with :meth:`from_pretrained` (quantisers act while loading)."""
        if memory is None or (memory.scheme is None and memory.text_dtype == dtype):
            return pipe.to(dtype=torch_dtype(dtype))
        import tempfile

        with tempfile.TemporaryDirectory(prefix="slim-built-in-") as folder:
            pipe.save_pretrained(folder)
            loaded = self.from_pretrained(
                pipeline_cls,
                folder,
                dtype,
                hint="The pipeline built in code could not be loaded back.",
                memory=memory,
                quantized=quantized,
                text_encoders=text_encoders,
            )
            # from_pretrained reads lazily only what it needs: read everything before the folder
            # goes away
            for component in loaded.components.values():
                if hasattr(component, "eval"):
                    component.eval()
            return loaded

    def place(self, pipe: Any, device: str, memory: MemoryPlan | None) -> Any:
        """Put the pipeline on ``device``, or install diffusers' CPU offload for ``device``;
        with ``cast=float8`` the transformer stores its weights in float8 first."""
        offload = memory.offload if memory is not None else "none"
        if memory is not None and memory.cast == "float8":
            import torch

            # diffusers ModelMixin.enable_layerwise_casting: float8 storage, upcast per layer
            pipe.transformer.enable_layerwise_casting(
                storage_dtype=torch.float8_e4m3fn, compute_dtype=torch_dtype(memory.dtype)
            )
        if offload == "model":
            pipe.enable_model_cpu_offload(device=device)
        elif offload == "group":
            import torch

            # DiffusionPipeline.enable_group_offload: every model's top-level blocks, one group
            # each, moved to the device as they run (docs: "Group offloading")
            pipe.enable_group_offload(
                onload_device=torch.device(device),
                offload_device=torch.device("cpu"),
                offload_type="block_level",
                num_blocks_per_group=1,
            )
        elif offload == "sequential":
            pipe.enable_sequential_cpu_offload(device=device)
        else:
            pipe = pipe.to(device)
        return pipe

    def load(self, *, path=None, device=None, dtype=None, **overrides) -> Backbone:
        """Build the pipeline and wrap it as a :class:`Backbone`."""
        from ..errors import require

        require("torch", "flux", feature=f"The {self.name} backbone")
        require("diffusers", "flux", feature=f"The {self.name} backbone")
        device = device or default_device()
        settings, memory = self.check_args(overrides, device=device, dtype=dtype)
        revision = overrides.get("revision") or self.revision
        dtype = memory.dtype
        torch_dtype(dtype)  # validate early
        extra = {"memory": memory} if self.memory_options else {}
        token = _REVISION.set(revision)
        try:
            pipe = self.build(path=path or self.model_id, device=device, dtype=dtype, **extra)
        finally:
            _REVISION.reset(token)
        return Backbone(
            name=self.name,
            family=self.family,
            pipe=pipe,
            settings=settings,
            device=device,
            dtype=dtype,
            model_id=path or self.model_id,
            memory=memory if self.memory_options else None,
            revision=revision,
            commit=resolved_commit(path or self.model_id, revision),
        )


def cast_prompt_embeddings(pipe: Any, dtype: Any) -> None:
    """Make ``pipe.encode_prompt`` return its tensors in ``dtype`` (the denoiser's).

    Text encoders loaded in a higher precision return their embeddings in it, and FluxPipeline
    builds its latents in the prompt embeddings' dtype; casting here keeps the denoiser in its
    own dtype. The wrapper is an instance attribute, so methods that patch ``encode_prompt``
    wrap and restore it like the original.
    """
    import torch

    original = pipe.encode_prompt

    def encode_prompt(*args, **kwargs):
        out = original(*args, **kwargs)
        return tuple(
            t.to(dtype) if isinstance(t, torch.Tensor) and t.is_floating_point() else t for t in out
        )

    pipe.encode_prompt = encode_prompt


class HubPreset(Preset):
    """A checkpoint in diffusers format, from the hub or a local folder (``--backbone-path``),
    with the memory options; subclasses name the family and implement :meth:`build`."""

    memory_options = True

    def __init__(
        self,
        name: str,
        model_id: str,
        settings: GenerationSettings,
        dtype: str,
        description: str,
        *,
        components: tuple = (),
    ) -> None:
        self.name = name
        self.model_id = model_id
        self.settings = settings
        self.dtype = dtype
        self.description = description
        self.components = components
