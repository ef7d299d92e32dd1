"""The one check of a run request, before the run directory or any weights are touched.

:meth:`slim_leakage.run.Run.resolve` asks every question here at once (the method and its
options, the backbone and its settings, the device, the output folder, the samples and the
judge) and collects the answers in a :class:`Preflight`, so one attempt shows every problem,
one line each with its fix. Nothing here loads weights; torch is imported only to ask whether
a named accelerator exists.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from .errors import ConfigError, EntityNotFoundError, SlimError, one_error
from .records import Sample

T = TypeVar("T")

#: Device names a run can generate on (``torch.device`` strings).
DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu")
_DEVICE = re.compile(rf"(?P<type>{'|'.join(DEVICE_TYPES)})(?::(?P<index>\d+))?")
#: What may already be in an output folder that has no manifest yet: a run that was stopped
#: between taking the lock and writing its manifest leaves only these.
_RUN_LEFTOVERS = re.compile(r"\.lock(\.rank-\d+)?|shards")


class Preflight:
    """Collects the problems of one request; :meth:`finish` raises them together."""

    def __init__(self) -> None:
        self.problems: list[SlimError] = []

    def attempt(self, check: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        """``check(*args, **kwargs)``; a :class:`SlimError` it raises is kept, and ``None``
        returned, so the checks that do not depend on it still run."""
        try:
            return check(*args, **kwargs)
        except SlimError as exc:
            self.problems.append(exc)
            return None

    def add(self, problems: Sequence[SlimError]) -> None:
        """Keep problems found by a check that returns them."""
        self.problems.extend(problems)

    def finish(self) -> None:
        """Raise the problems found, if any: one as itself, several as one list."""
        if self.problems:
            raise one_error(self.problems, what="in this run request; nothing was started")


# -- the checks ----------------------------------------------------------------------------------
def check_out_dir(out: Path) -> None:
    """Refuse an output folder that is a file, or a folder of other files that is no run.

    A run writes ``metrics.json``, ``report.html`` and ``images/`` into its folder; in a folder
    of someone's own files it could overwrite them.

    Raises:
        ConfigError: Naming the folder and what is in it.
    """
    if out.exists() and not out.is_dir():
        raise ConfigError(
            f"--out {str(out)!r} is a file, not a folder.",
            hint="Give --out a new folder (or the folder of the run to resume).",
        )
    if not out.is_dir() or (out / "manifest.json").exists():
        return
    others = sorted(p.name for p in out.iterdir() if not _RUN_LEFTOVERS.fullmatch(p.name))
    if others:
        shown = ", ".join(repr(n) for n in others[:3]) + (" ..." if len(others) > 3 else "")
        raise ConfigError(
            f"--out {str(out)!r} already holds other files ({shown}) and is not a run "
            "directory (it has no manifest.json).",
            hint="Give --out a new or empty folder: a run there would write beside those files "
            "and could overwrite them.",
        )


def check_device(device: str | None) -> None:
    """Refuse a device name torch would not take, or an accelerator this machine lacks.

    Raises:
        ConfigError: Naming the device, what exists here and the fix.
    """
    if device is None:
        return
    found = _DEVICE.fullmatch(device)
    if found is None:
        raise ConfigError(
            f"--device {device!r} is not a device name.",
            hint=f"Use one of {', '.join(DEVICE_TYPES)}, or cuda:N for the N-th GPU "
            "(or leave --device out: CUDA when available, else the CPU).",
        )
    kind, index = found["type"], int(found["index"] or 0)
    if kind == "cpu":
        return
    import torch

    module = {"cuda": torch.cuda, "xpu": getattr(torch, "xpu", None)}.get(kind)
    if kind == "mps":
        available, count = torch.backends.mps.is_available(), 1
    elif module is not None and module.is_available():
        available, count = True, module.device_count()
    else:
        available, count = False, 0
    if not available:
        raise ConfigError(
            f"--device {device!r}: this machine has no {kind} device.",
            hint="Use --device cpu (or leave --device out to take CUDA when it is there).",
        )
    if index >= count:
        raise ConfigError(
            f"--device {device!r}: this machine has {count} {kind} device(s), numbered "
            f"0 to {count - 1}.",
            hint=f"Use --device {kind}:0 ... {kind}:{count - 1}.",
        )


def check_backbone_path(path: str | None) -> None:
    """Refuse a ``--backbone-path`` that is written as a local path but does not exist.

    A hub id (``org/name``) is left to the loader, which knows the hub cache.

    Raises:
        ConfigError: Naming the path.
    """
    if not path:
        return
    local = path.startswith(("/", "./", "../", "~", "\\")) or re.match(r"^[A-Za-z]:", path)
    if local and not Path(path).expanduser().exists():
        raise ConfigError(
            f"--backbone-path {path!r} does not exist.",
            hint="Give the folder that holds the backbone's weights, or a hub id (org/name).",
        )


def check_backbone(
    name: str, overrides: dict, device: str | None = None, dtype: str | None = None
) -> tuple[Any, Any]:
    """The backbone preset ``name`` and its memory plan, with the generation settings and the
    memory options (offload, quantisation, dtypes, and whether the setting fits) checked;
    nothing loaded.

    Args:
        name: The preset.
        overrides: ``--backbone-arg`` values.
        device: The run's device (``None``: the default).
        dtype: The run's ``--dtype``.

    Returns:
        ``(preset, plan)``: the plan is a
        :class:`~slim_leakage.backbones.memory.MemoryPlan`, or ``None`` for a preset without
        ``check_args``.

    Raises:
        UnknownNameError: For an unknown preset (with a did-you-mean).
        ConfigError: For an unknown or invalid setting, or a setting that cannot fit.
    """
    from ._config import build_config
    from .backbones import BACKBONES, GenerationSettings

    preset = BACKBONES.get(name)
    if hasattr(preset, "check_args"):
        return preset, preset.check_args(dict(overrides), device=device, dtype=dtype)[1]
    defaults = getattr(preset, "settings", None)
    if isinstance(defaults, GenerationSettings):
        build_config(
            GenerationSettings,
            {**dataclasses.asdict(defaults), **overrides},
            owner=f"backbone {name}",
        )
    return preset, None


def sample_checks(samples: Sequence[Sample], config: str) -> list[SlimError]:
    """The problems of a run's samples: file names they would share, and absent entities.

    Args:
        samples: The selected samples.
        config: Where they come from (a config name or a samples file), to point messages at
            the lines to fix.
    """
    from .rundir import sample_problems

    where = None

    def locate(sample_id: str) -> list[str]:
        nonlocal where
        if where is None:
            from .slim.load import sample_locations

            try:
                where = sample_locations(config)
            except SlimError:
                where = {}
        return where.get(sample_id, [])

    return [*sample_problems(samples, locate), *entities_in_prompts(samples, locate)]


def entities_in_prompts(
    samples: Sequence[Sample], where: Callable[[str], list[str]] | None = None
) -> list[SlimError]:
    """One error per sample whose entity is not a whole word of its prompt (any case).

    A typo in a user's samples file ("zebra" for a prompt about a horse) would otherwise be
    generated and judged at full cost before anything noticed it.
    """
    problems: list[SlimError] = []
    for sample in samples:
        lowered = sample.prompt.lower()
        for entity in sample.entities:
            if not re.search(rf"(?<!\w){re.escape(entity.lower())}(?!\w)", lowered):
                place = (where(sample.id) if where else [])[:1]
                prompt = sample.prompt if len(sample.prompt) <= 80 else sample.prompt[:77] + "..."
                problems.append(
                    EntityNotFoundError(
                        "".join(f"{p}: " for p in place)
                        + f"Sample {sample.id!r}: entity {entity!r} does not occur in its "
                        f"prompt {prompt!r}.",
                        hint="Name each entity as it is written in the prompt (whole words), or "
                        "fix the samples file.",
                    )
                )
                break
    return problems


# -- checks that need the method, the preset and the judge together ------------------------------
#: Pixel multiples of each family's pipeline, as its diffusers pipeline checks them: FLUX packs
#: 2x2 latent pixels per token after an 8x autoencoder ("`height` and `width` have to be
#: divisible by vae_scale_factor * 2", FluxPipeline.check_inputs, which otherwise resizes); SANA
#: refuses sizes not divisible by 32 (SanaPipeline.check_inputs). A preset whose autoencoder
#: differs sets ``pixel_multiple`` itself.
FAMILY_PIXEL_MULTIPLE = {"flux": 16, "sana": 32, "sd3": 16, "flux2": 16, "qwenimage": 16}


def pixel_multiple(preset: Any) -> int | None:
    """The multiple the preset's image height and width must be (``None``: not known)."""
    own = getattr(preset, "pixel_multiple", None)
    if isinstance(own, int):
        return own
    return FAMILY_PIXEL_MULTIPLE.get(getattr(preset, "family", ""))


def check_image_size(preset: Any, overrides: dict) -> list[SlimError]:
    """Refuse a height or width the model cannot draw (it would be resized, and recorded
    wrong), naming the nearest sizes it can."""
    multiple = pixel_multiple(preset)
    settings = getattr(preset, "settings", None)
    if multiple is None or settings is None:
        return []
    problems: list[SlimError] = []
    for name in ("height", "width"):
        value = overrides.get(name, getattr(settings, name, None))
        if isinstance(value, str) and value.strip().isdigit():  # --backbone-arg gives text
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            continue  # the settings check names it
        if value % multiple:
            low = max(multiple, value - value % multiple)
            problems.append(
                ConfigError(
                    f"--backbone-arg {name}={value}: {getattr(preset, 'name', 'the backbone')} "
                    f"draws images whose {name} is a multiple of {multiple}.",
                    hint=f"Use {name}={low} or {name}={low + multiple}.",
                )
            )
    return problems


def entity_count_checks(samples: Sequence[Sample]) -> list[SlimError]:
    """Refuse samples with fewer than two entities: leakage is between entities."""
    from .errors import DatasetError

    lonely = [s for s in samples if len(s.entities) < 2]
    if not lonely:
        return []
    shown = ", ".join(f"{s.id!r} ({len(s.entities)})" for s in lonely[:5])
    more = f" and {len(lonely) - 5} more" if len(lonely) > 5 else ""
    return [
        DatasetError(
            f"{len(lonely)} sample(s) have fewer than two entities: {shown}{more}; leakage is "
            "measured between the entities of a prompt.",
            hint="Give each sample two or more entities (as SLIM's pairs and triplets), or "
            "leave those samples out.",
        )
    ]


def judge_checks(judge: Any, samples: Sequence[Sample], backbone: str | None) -> list[SlimError]:
    """What the judge says it cannot judge in this request (words, backbone), if it says."""
    backend = getattr(judge, "backend", judge)
    check = getattr(backend, "check_request", None)
    return list(check(samples, backbone)) if callable(check) else []


def method_sample_checks(method: Any, samples: Sequence[Sample], preset: Any) -> list[SlimError]:
    """The method's own check of the samples before any backbone loads (``images``: every
    sample's file, readable and of the preset's size), if it has one."""
    check = getattr(method, "check_samples", None)
    if not callable(check):
        return []
    return list(check(samples, getattr(preset, "settings", None)))


#: Methods that find each entity's tokens in the prompt as given (the others rewrite it).
TOKEN_METHODS = frozenset({"deleaker", "regional-prompting"})


def request_checks(
    method: Any, preset: Any, config: Any, judge: Any, samples: Sequence[Sample]
) -> list[SlimError]:
    """Every check of a run request that needs the method, the preset, the judge and the
    samples together, before anything is written or loaded: image sizes, entity counts, what
    the judge can judge, the method's own files, and entities within the text length."""
    overrides = dict(getattr(config, "backbone_args", {}) or {})
    problems: list[SlimError] = []
    if preset is not None:
        problems += check_image_size(preset, overrides)
    if samples:
        problems += entity_count_checks(samples)
        if judge is not None:
            problems += judge_checks(judge, samples, getattr(config, "backbone", None))
        if method is not None:
            problems += method_sample_checks(method, samples, preset)
            if preset is not None:
                path = getattr(config, "backbone_path", None)
                problems += text_length_checks(method, preset, path, overrides, samples)
    return problems


def _text_tokenizer(preset: Any, path: str | None):
    """The tokenizer whose tokens a FLUX preset attends over, read without any weights:
    the in-code one of ``tiny-random``, or ``tokenizer_2`` of a local pipeline folder."""
    if getattr(preset, "family", None) != "flux":
        return None
    if getattr(preset, "name", None) == "tiny-random" and not path:
        from .backbones.tiny import make_t5_tokenizer

        return make_t5_tokenizer()
    folder = Path(path or getattr(preset, "model_id", "") or "").expanduser()
    if not (folder / "tokenizer_2").is_dir():
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder / "tokenizer_2"), local_files_only=True)


def text_length_checks(
    method: Any, preset: Any, path: str | None, overrides: dict, samples: Sequence[Sample]
) -> list[SlimError]:
    """Refuse samples whose entity falls past the text length the model reads, for methods
    that find entity tokens (DeLeaker, regional prompting), with the preset's own tokenizer."""
    if getattr(method, "name", None) not in TOKEN_METHODS:
        return []
    settings = getattr(preset, "settings", None)
    length = overrides.get("max_sequence_length", getattr(settings, "max_sequence_length", None))
    if isinstance(length, str) and length.strip().isdigit():
        length = int(length)
    if not isinstance(length, int) or isinstance(length, bool):
        return []
    try:
        tokenizer = _text_tokenizer(preset, path)
    except Exception:  # noqa: BLE001 - no tokenizer here: the loaded backbone checks it later
        return []
    if tokenizer is None:
        return []
    from .methods.deleaker.tokens import find_entity_spans

    problems: list[SlimError] = []
    for sample in samples:
        try:
            find_entity_spans(tokenizer, sample.prompt, sample.entities, max_sequence_length=length)
        except EntityNotFoundError as exc:
            problems.append(
                EntityNotFoundError(
                    f"Sample {sample.id!r}: {exc.message}",
                    hint=exc.hint
                    or f"Shorten the prompt, or raise --backbone-arg max_sequence_length={length}.",
                )
            )
        except SlimError as exc:
            problems.append(exc)
        if len(problems) >= 20:
            break
    return problems
