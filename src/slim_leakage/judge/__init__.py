"""The judge: extraction -> typicality -> ranking over pluggable VLM backends.

``get_judge(name, **options)`` builds a :class:`Judge` (the runner of the stage pipeline in
:mod:`.stages`) around a backend from :data:`JUDGES`. Every judge keeps the :class:`JudgeLike`
contract; :func:`operational_options` names the options a run may change when it resumes.
Listing backends imports no SDK; a backend's SDK is imported when it first answers.
"""

from __future__ import annotations

from typing import Any

from .._registry import Registry
from ..errors import ConfigError, TransientBackendError, did_you_mean
from .backends.base import Backend, BackendRequest, BackendResponse, Decoding, ImageInput
from .config import JUDGE_OPTIONS, JudgeConfig, operational_options
from .protocol import JudgeItem, JudgeLike, JudgeStats, LeakageCheck
from .runner import Judge
from .stages import PROTOCOL, Pipeline, Question, Stage

JUDGES: Registry = Registry(
    "judge backend",
    group="slim_leakage.judges",
    builtins={
        "gemini": "slim_leakage.judge.backends.gemini:GeminiBackend",
        "openai": "slim_leakage.judge.backends.openai_backend:OpenAIBackend",
        "openai-compatible": "slim_leakage.judge.backends.openai_backend:OpenAICompatibleBackend",
        "hf-local": "slim_leakage.judge.backends.hf_local:HFLocalBackend",
    },
)


def get_judge(name: str, **options: Any) -> Judge:
    """Build the judge ``name`` from :data:`JUDGES`.

    Args:
        name: A registered backend (``gemini``, ``openai``, ``openai-compatible``, ``hf-local``,
            or a plug-in such as ``oracle``).
        **options: Judge options (:class:`JudgeConfig`: ``cache_dir``, ``concurrency``, ``rpm``,
            ``tpm``, ``timeout``, ...) and backend options (``model``, ``base_url``,
            ``api_key``, ...). Strings from the command line are converted.

    Raises:
        UnknownNameError: If ``name`` is not registered (with a did-you-mean).
        ConfigError: For an unknown or invalid option.
    """
    factory = JUDGES.get(name)
    judge_opts = {k: v for k, v in options.items() if k in JUDGE_OPTIONS}
    backend_opts = {k: v for k, v in options.items() if k not in JUDGE_OPTIONS}
    if isinstance(factory, type) and issubclass(factory, Backend):
        accepted = factory.options
    else:
        accepted = {}
    if isinstance(factory, type) and issubclass(factory, Backend):
        known = sorted({"model", *accepted, *JUDGE_OPTIONS})
        for key in sorted(backend_opts):
            if key != "model" and key not in accepted:
                raise ConfigError(
                    f"The judge {name!r} has no option {key!r}.{did_you_mean(key, known)}",
                    hint=f"Known options: {', '.join(known)}.",
                )
        fixed = not factory.model_choice
        if fixed and backend_opts.get("model") not in (None, factory.default_model):
            options_left = sorted({*accepted, *JUDGE_OPTIONS})
            raise ConfigError(
                f"The judge {name!r} has no model choice: it is {factory.default_model!r} only, "
                f"not {backend_opts['model']!r}.",
                hint=f"Leave out the model option; the options of {name!r} are: "
                f"{', '.join(options_left)}.",
            )
    if "timeout" in accepted and "timeout" in judge_opts:
        backend_opts["timeout"] = judge_opts["timeout"]
    backend = factory(**backend_opts)
    if not isinstance(backend, Backend):
        raise ConfigError(
            f"The judge backend {name!r} built a {type(backend).__name__}, not a Backend.",
            hint="Register a subclass of slim_leakage.judge.backends.base.Backend.",
        )
    return Judge(backend, **judge_opts)


__all__ = [
    "JUDGES",
    "JUDGE_OPTIONS",
    "PROTOCOL",
    "Backend",
    "BackendRequest",
    "BackendResponse",
    "Decoding",
    "ImageInput",
    "Judge",
    "JudgeConfig",
    "JudgeItem",
    "JudgeLike",
    "JudgeStats",
    "LeakageCheck",
    "Pipeline",
    "Question",
    "Stage",
    "TransientBackendError",
    "get_judge",
    "operational_options",
]
