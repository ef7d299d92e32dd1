"""What a judge takes and gives, and the contract every judge keeps.

:class:`JudgeLike` is the typed contract the run and the SLIM verifier call: ``check`` before
any work, ``describe`` for manifests, ``judge`` over :class:`JudgeItem` comparisons (one
:class:`~slim_leakage.records.Verdict` each), ``check_leakage`` over single images (one
:class:`LeakageCheck` each). :class:`~slim_leakage.judge.runner.Judge`, which every registered
backend is run by, keeps it; so can any other object.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..errors import ConfigError
from ..records import Sample, StageResult, Verdict


@dataclasses.dataclass(frozen=True)
class JudgeItem:
    """One comparison to judge.

    Attributes:
        sample: The SLIM sample (prompt and entities).
        method: The method that made ``method_image``.
        vanilla_image: The vanilla image of the same prompt and seed.
        method_image: The method's image.
        reference_images: Entity -> single-entity reference image (may be partial or empty;
            extraction then relies on the prompt alone for the missing entities).
    """

    sample: Sample
    method: str
    vanilla_image: Path
    method_image: Path
    reference_images: dict[str, Path] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class LeakageCheck:
    """Whether one image leaks (used by the SLIM verifier).

    Attributes:
        sample_id: The sample checked.
        leaky: ``True`` when an entity shows another entity's features, ``None`` on error.
        error: Why no answer could be given, else ``None``.
        scores: Typicality and borrowed features per entity.
    """

    sample_id: str
    leaky: bool | None
    error: str | None = None
    scores: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class JudgeStats:
    """Counters of one judge (cumulative over its ``judge``/``check_leakage`` calls).

    Attributes:
        calls: Backend calls made (retries and repairs included).
        cache_hits: Requests answered from the cache.
        shared: Requests answered by an identical request already in flight.
        retries: Transient failures retried.
        repairs: Malformed answers sent back once with a repair prompt.
        failed_requests: Requests that failed for good.
        judged: Items judged (verdicts returned).
        errors: Items whose verdict is a judge error.
        order_flips: Items whose two ranking orders disagreed.
        input_tokens: Input tokens reported (or estimated) for the calls made.
        output_tokens: Answer tokens reported (or estimated), thinking excluded.
        thinking_tokens: Thinking (reasoning) tokens reported; billed as output.
        cost_usd: Price of those tokens from the model table.
        priced: Whether the model has a price in the model table.
        waited_s: Seconds the request queue was held for rate budgets, ``Retry-After`` or a
            ``RetryInfo`` delay.
        output_limit_retries: Answers that hit the output-token limit with no text and were
            asked once more with a larger budget.
        by_stage: Question name -> ``calls``, ``input_tokens``, ``output_tokens``,
            ``thinking_tokens`` and ``cost_usd`` of the calls made for it (repairs and
            retries included).
        served_models: Model named by the API as the one that answered -> answers, for the
            calls made.
    """

    calls: int = 0
    cache_hits: int = 0
    shared: int = 0
    retries: int = 0
    repairs: int = 0
    failed_requests: int = 0
    judged: int = 0
    errors: int = 0
    order_flips: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0
    cost_usd: float = 0.0
    priced: bool = True
    waited_s: float = 0.0
    output_limit_retries: int = 0
    by_stage: dict = dataclasses.field(default_factory=dict)
    served_models: dict = dataclasses.field(default_factory=dict)

    @property
    def order_flip_rate(self) -> float | None:
        """Order flips per labelled item (``None`` before any label)."""
        labelled = self.judged - self.errors
        return None if labelled <= 0 else self.order_flips / labelled

    def to_dict(self) -> dict[str, Any]:
        """The counters as a JSON-compatible dict (with ``order_flip_rate``)."""
        out = dataclasses.asdict(self)
        out["order_flip_rate"] = self.order_flip_rate
        out["cost_usd"] = round(self.cost_usd, 6)
        out["waited_s"] = round(self.waited_s, 3)
        out["by_stage"] = {
            stage: {**row, "cost_usd": round(row["cost_usd"], 6)}
            for stage, row in self.by_stage.items()
        }
        return out

    def _stage(self, stage: str) -> dict:
        return self.by_stage.setdefault(
            stage,
            {
                "calls": 0,
                "input_tokens": 0,
                "output_tokens": 0,
                "thinking_tokens": 0,
                "cost_usd": 0.0,
            },
        )

    def count_call(self, stage: str) -> None:
        """Count one backend call for the question ``stage`` (answered or not)."""
        self.calls += 1
        self._stage(stage)["calls"] += 1

    def add_usage(
        self,
        stage: str,
        *,
        input_tokens: int,
        output_tokens: int,
        thinking_tokens: int,
        cost_usd: float,
        served_model: str | None,
    ) -> None:
        """Count one answered call's tokens, cost and served model, in total and per question."""
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        self.thinking_tokens += thinking_tokens
        self.cost_usd += cost_usd
        if served_model:
            self.served_models[served_model] = self.served_models.get(served_model, 0) + 1
        row = self._stage(stage)
        row["input_tokens"] += input_tokens
        row["output_tokens"] += output_tokens
        row["thinking_tokens"] += thinking_tokens
        row["cost_usd"] += cost_usd


@runtime_checkable
class JudgeLike(Protocol):
    """The judge contract: what the run and the SLIM verifier call.

    ``isinstance(obj, JudgeLike)`` checks that the methods exist; their signatures are these.
    """

    @property
    def name(self) -> str:
        """``backend/model-id``, recorded in every verdict."""
        ...

    def check(self) -> None:
        """Fail now, before any image is generated, if the judge cannot answer.

        Raises:
            SlimError: A missing SDK, API key or model, with the fix.
        """
        ...

    def describe(self) -> dict[str, Any]:
        """Backend, model id, prompt versions and decoding parameters (JSON, no secrets)."""
        ...

    def judge(
        self,
        items: Iterable[JudgeItem],
        *,
        on_stage: Callable[[StageResult], None] | None = None,
        progress: bool = True,
        on_verdict: Callable[[Verdict], None] | None = None,
    ) -> list[Verdict]:
        """One verdict per item, in order; ``on_stage``/``on_verdict`` called as each exists."""
        ...

    def check_leakage(
        self,
        items: Sequence[tuple[Sample, Path, Mapping[str, Path]]],
        progress: bool = False,
    ) -> list[LeakageCheck]:
        """One leakage check per ``(sample, image, reference_images)``, in order."""
        ...


def require_judge(judge: Any) -> JudgeLike:
    """``judge`` if it keeps the judge contract, else a clear error before any work starts."""
    if not isinstance(judge, JudgeLike):
        missing = [
            name
            for name in ("name", "check", "describe", "judge", "check_leakage")
            if not hasattr(judge, name)
        ]
        raise ConfigError(
            f"The judge object {type(judge).__name__} does not keep the judge contract "
            f"(missing: {', '.join(missing)}).",
            hint="Pass a judge from slim_leakage.get_judge(...), or implement "
            "slim_leakage.judge.JudgeLike.",
        )
    return judge
