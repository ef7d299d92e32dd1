"""What judging will cost, before any money is spent: calls, tokens and dollars per stage.

The estimate renders the real v1 prompts for every sample (so prompt length is exact) and adds
image tokens by the vendor's formula for the given image size. Feature lists and typicality
reports do not exist before the judge runs; they are stood in for by text of the length the v1
answers typically have (:data:`FEATURE_CHARS`, :data:`REPORT_CHARS`). Thinking tokens, billed
as output, are estimated per call from the model's thinking setting in the model table
(:data:`THINKING_TOKENS`). Repairs and retries are not counted: they are rare, and the run's
stats report them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ConfigError, did_you_mean
from ..records import Sample
from . import models, pricing
from .config import JUDGE_OPTIONS
from .stages import (
    EXTRACTION_IMAGES,
    EXTRACTION_TEXT,
    PROTOCOL,
    RANKING_QUESTION,
    TYPICALITY_QUESTION,
    feature_block,
    sample_fields,
)
from .stages.extraction import reference_list

#: Characters of one merged feature, and features per entity, assumed before extraction.
FEATURE_CHARS, FEATURES_PER_ENTITY = 24, 8
#: Characters of one entity's row in a typicality report shown to the ranking.
REPORT_CHARS = 200

#: Thinking tokens assumed per call for a thinking level or reasoning effort. An assumption,
#: not a measurement of ours: the order of a public measurement of Gemini 3.6 Flash on a short
#: prompt (0 / 403 / 487 / 837 for minimal / low / medium / high,
#: docs.apiyi.com/api-capabilities/gemini-3-6-flash/overview, 2026-07-22). A thinking budget
#: is assumed used in full.
THINKING_TOKENS = {"none": 0, "minimal": 0, "low": 400, "medium": 500, "high": 850}


def thinking_per_call(spec) -> int:
    """Thinking tokens assumed per call for a model-table row (0 without thinking)."""
    if spec is None or spec.thinking is None:
        return 0
    if spec.thinking == "budget":
        return int(spec.judging or 0)
    return THINKING_TOKENS.get(str(spec.judging), THINKING_TOKENS["medium"])


def _backend_class(name: str):
    from . import JUDGES

    return JUDGES.get(name)


def _placeholder_features(entities: Sequence[str]) -> dict[str, list[str]]:
    return {e: ["x" * FEATURE_CHARS] * FEATURES_PER_ENTITY for e in entities}


def _placeholder_report(entities: Sequence[str]) -> str:
    return "\n".join("x" * REPORT_CHARS for _ in entities)


def estimate(
    judge: str,
    samples: Sequence[Sample],
    *,
    options: Mapping[str, Any] | None = None,
    image_size: tuple[int, int] = (512, 512),
    methods: int = 1,
    references: bool = True,
) -> dict[str, Any]:
    """Calls, tokens and cost of judging ``samples`` for ``methods`` methods.

    Extraction and the vanilla image's typicality are asked once per sample whatever the number
    of methods (the cache shares them); each method adds one typicality and two rankings.

    Args:
        judge: The judge backend name.
        samples: The samples to judge.
        options: Judge options as for ``get_judge`` (only ``model`` matters here).
        image_size: Width and height of generated and reference images.
        methods: Methods judged against the same vanilla images.
        references: Whether reference images are sent for extraction.

    Raises:
        ConfigError: For an unknown option or a bad count.
    """
    cls = _backend_class(judge)
    options = dict(options or {})
    known = {"model", *getattr(cls, "options", {}), *JUDGE_OPTIONS}
    for key in options:
        if key not in known:
            raise ConfigError(
                f"The {judge!r} judge has no option {key!r}.{did_you_mean(key, known)}",
                hint=f"Known options: {', '.join(sorted(known))}.",
            )
    if methods < 1:
        raise ConfigError(f"methods={methods} must be at least 1.", hint="Pass --methods 1")
    model = options.get("model") or getattr(cls, "default_model", "") or "?"
    backend = getattr(cls, "name", judge)
    family = pricing.token_family(backend, model)
    per_image = pricing.image_tokens(*image_size, family=family, model=model)
    provider = getattr(cls, "provider", None)
    spec = None if provider is None else models.lookup(provider, model)
    thinking = thinking_per_call(spec)

    questions = PROTOCOL.questions()
    calls = dict.fromkeys(questions, 0)
    tokens_in = dict.fromkeys(questions, 0)
    tokens_out = dict.fromkeys(questions, 0)
    tokens_thinking = dict.fromkeys(questions, 0)
    image_tokens = 0

    def add(stage: str, text: str, n_images: int, times: int) -> None:
        nonlocal image_tokens
        calls[stage] += times
        tokens_in[stage] += times * (pricing.text_tokens(text) + n_images * per_image)
        tokens_out[stage] += times * pricing.OUTPUT_TOKENS[stage]
        tokens_thinking[stage] += times * thinking
        image_tokens += times * n_images * per_image

    for sample in samples:
        ents = list(sample.entities)
        common = sample_fields(sample)
        add(EXTRACTION_TEXT.name, EXTRACTION_TEXT.render(common), 0, 1)
        if references:
            text = EXTRACTION_IMAGES.render({**common, "reference_list": reference_list(ents)})
            add(EXTRACTION_IMAGES.name, text, len(ents), 1)
        features = feature_block(_placeholder_features(ents))
        text = TYPICALITY_QUESTION.render({**common, "feature_block": features})
        add(TYPICALITY_QUESTION.name, text, 1, 1 + methods)
        report = _placeholder_report(ents)
        text = RANKING_QUESTION.render({**common, "report_1": report, "report_2": report})
        add(RANKING_QUESTION.name, text, 0, 2 * methods)

    total_in, total_out = sum(tokens_in.values()), sum(tokens_out.values())
    total_thinking = sum(tokens_thinking.values())
    cost, priced = pricing.cost_usd(backend, model, total_in, total_out, total_thinking)
    price = pricing.PRICES.get(model)
    batch_price = pricing.BATCH_PRICES.get(model)
    batch_cost, _ = pricing.cost_usd(
        backend, model, total_in, total_out, total_thinking, batch=True
    )
    batch_source = models.BATCH_DISCOUNT.get(getattr(spec, "provider", ""), (None, None))[1]
    cost_by_stage = {
        stage: round(
            pricing.cost_usd(
                backend, model, tokens_in[stage], tokens_out[stage], tokens_thinking[stage]
            )[0],
            4,
        )
        for stage in questions
    }
    return {
        "judge": backend,
        "model": model,
        "samples": len(samples),
        "methods": methods,
        "calls": calls,
        "calls_total": sum(calls.values()),
        "input_tokens": tokens_in,
        "output_tokens": tokens_out,
        "image_tokens": image_tokens,
        "thinking_tokens": tokens_thinking,
        "input_tokens_total": total_in,
        "output_tokens_total": total_out,
        "thinking_tokens_total": total_thinking,
        "cost_usd": round(cost, 4),
        "cost_usd_by_stage": cost_by_stage,
        "priced": priced,
        "price_per_mtok": None
        if price is None or backend in pricing.FREE_BACKENDS
        else {"input": price[0], "output": price[1]},
        # Through the provider's batch interface (--judge-arg batch=true), where it has one.
        "cost_usd_batch": round(batch_cost, 4) if batch_price is not None else None,
        "price_per_mtok_batch": None
        if batch_price is None or backend in pricing.FREE_BACKENDS
        else {"input": batch_price[0], "output": batch_price[1], "source": batch_source},
        "model_info": None if spec is None else spec.describe(),
        "leakage": _leakage_extra(calls, cost_by_stage),
        "assumptions": {
            "image_size": list(image_size),
            "tokens_per_image": per_image,
            "thinking_tokens_per_call": thinking,
            "references": references,
            "repairs_and_retries": "not included",
        },
    }


def _leakage_extra(calls: Mapping[str, int], cost_by_stage: Mapping[str, float]) -> dict:
    """The extra judge calls of the run's absolute leakage rate (one check per image).

    A check runs extraction and the blind typicality rating of one image: with the cache on
    (the default) these are the very requests the comparison made, so they cost no call;
    without it they are asked again, as many as the comparison's extraction and typicality.
    """
    stages = [EXTRACTION_TEXT.name, EXTRACTION_IMAGES.name, TYPICALITY_QUESTION.name]
    return {
        "calls_with_cache": 0,
        "calls_without_cache": sum(calls.get(s, 0) for s in stages),
        "cost_usd_without_cache": round(sum(cost_by_stage.get(s, 0.0) for s in stages), 4),
    }
