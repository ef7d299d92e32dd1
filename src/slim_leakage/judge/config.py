"""Judge options that do not depend on the backend, and which of them are operational.

An *operational* option changes how answers are fetched, never which answers: where the cache
lives, whether it is used, how many requests are in flight, the rate budgets, timeouts and
retries. A run resumes with other values of these (a lower concurrency after rate limits, the
cache on another disk); every other option is part of what a run is. The field metadata
``operational`` is the one record of which is which (:func:`operational_options`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .._config import check_range


def _option(default: Any, *, operational: bool) -> Any:
    return dataclasses.field(default=default, metadata={"operational": operational})


@dataclasses.dataclass(frozen=True)
class JudgeConfig:
    """Judge options that do not depend on the backend.

    Attributes:
        cache_dir: Folder of the answer cache (default ``$SLIM_CACHE_DIR`` or
            ``~/.cache/slim-leakage``). Operational.
        cache: Use the cache (off only for measurements). Operational.
        concurrency: Requests in flight at once. Operational.
        rpm: Requests-per-minute budget (``None``: unlimited). Operational.
        tpm: Tokens-per-minute budget (``None``: unlimited). Operational.
        timeout: Seconds one request may take before it is retried. Operational.
        max_retries: Retries of a transient failure (429, 5xx, timeout, dropped connection).
            Operational.
        backoff_base: First backoff delay in seconds (doubles per retry, with jitter).
            Operational.
        backoff_cap: Longest backoff delay in seconds. Operational.
        batch: Send requests through the provider's batch interface (Gemini Batch Mode, the
            OpenAI Batch API): about half the price, answers within hours. Operational.
        batch_poll: Seconds between two looks at a submitted batch. Operational.
        temperature: Sampling temperature (0: greedy where the API allows it).
        max_output_tokens: Answer token limit.
        seed: Sampling seed passed to APIs that accept one.
    """

    cache_dir: str | None = _option(None, operational=True)
    cache: bool = _option(True, operational=True)
    concurrency: int = _option(8, operational=True)
    rpm: float | None = _option(None, operational=True)
    tpm: float | None = _option(None, operational=True)
    timeout: float = _option(120.0, operational=True)
    max_retries: int = _option(5, operational=True)
    backoff_base: float = _option(1.0, operational=True)
    backoff_cap: float = _option(60.0, operational=True)
    batch: bool = _option(False, operational=True)
    batch_poll: float = _option(30.0, operational=True)
    temperature: float = _option(0.0, operational=False)
    max_output_tokens: int = _option(1024, operational=False)
    seed: int | None = _option(0, operational=False)

    def __post_init__(self) -> None:
        check_range("judge", "concurrency", self.concurrency, low=1, high=1024)
        check_range("judge", "timeout", self.timeout, low=0, low_open=True)
        check_range("judge", "max_retries", self.max_retries, low=0, high=100)
        check_range("judge", "backoff_base", self.backoff_base, low=0)
        check_range("judge", "backoff_cap", self.backoff_cap, low=0)
        check_range("judge", "batch_poll", self.batch_poll, low=0, low_open=True)
        check_range("judge", "temperature", self.temperature, low=0, high=2)
        check_range("judge", "max_output_tokens", self.max_output_tokens, low=1)
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None:
                check_range("judge", name, value, low=0, low_open=True)


#: Every judge option (the :class:`JudgeConfig` fields); other options go to the backend.
JUDGE_OPTIONS = frozenset(f.name for f in dataclasses.fields(JudgeConfig))


def operational_options() -> frozenset[str]:
    """The judge options that change how answers are fetched, never which answers.

    A run may resume with other values of these; any other judge or backend option that
    differs makes it a different run.
    """
    return frozenset(f.name for f in dataclasses.fields(JudgeConfig) if f.metadata["operational"])
