"""What judging will cost, before any money is spent: calls, tokens and dollars per stage.

The estimate renders the real v1 prompts for every sample (so prompt length is exact) and adds
image tokens by the vendor's formula for the given image size. Feature lists and typicality
reports do not exist before the judge runs; they are stood in for by text of the length the v1
answers typically have (:data:`FEATURE_CHARS`, :data:`REPORT_CHARS`). Repairs and retries are
not counted: they are rare, and the run's stats report them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ConfigError, did_you_mean
from ..records import Sample
from . import pricing
from .stages import STAGES, entity_list, feature_block, render

#: Characters of one merged feature, and features per entity, assumed before extraction.
FEATURE_CHARS, FEATURES_PER_ENTITY = 24, 8
#: Characters of one entity's row in a typicality report shown to the ranking.
REPORT_CHARS = 200


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
    from .protocol import JudgeConfig

    cls = _backend_class(judge)
    options = dict(options or {})
    known = {
        "model",
        *getattr(cls, "options", {}),
        *(f.name for f in dataclasses.fields(JudgeConfig)),
    }
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
    per_image = pricing.image_tokens(*image_size, family=family)

    calls = dict.fromkeys(STAGES, 0)
    tokens_in = dict.fromkeys(STAGES, 0)
    tokens_out = dict.fromkeys(STAGES, 0)
    image_tokens = 0

    def add(stage: str, text: str, n_images: int, times: int) -> None:
        nonlocal image_tokens
        calls[stage] += times
        tokens_in[stage] += times * (pricing.text_tokens(text) + n_images * per_image)
        tokens_out[stage] += times * pricing.OUTPUT_TOKENS[stage]
        image_tokens += times * n_images * per_image

    for sample in samples:
        ents = list(sample.entities)
        common = {"prompt": sample.prompt, "entity_list": entity_list(ents)}
        add(
            "extraction-text",
            render("extraction-text", STAGES["extraction-text"].version, **common),
            0,
            1,
        )
        if references:
            refs = ", ".join(f'reference image {i} shows "{e}"' for i, e in enumerate(ents, 1))
            text = render(
                "extraction-images",
                STAGES["extraction-images"].version,
                reference_list=refs,
                **common,
            )
            add("extraction-images", text, len(ents), 1)
        text = render(
            "typicality",
            STAGES["typicality"].version,
            feature_block=feature_block(_placeholder_features(ents)),
            **common,
        )
        add("typicality", text, 1, 1 + methods)
        report = _placeholder_report(ents)
        text = render(
            "ranking", STAGES["ranking"].version, report_1=report, report_2=report, **common
        )
        add("ranking", text, 0, 2 * methods)

    total_in, total_out = sum(tokens_in.values()), sum(tokens_out.values())
    cost, priced = pricing.cost_usd(backend, model, total_in, total_out)
    price = pricing.PRICES.get(model)
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
        "input_tokens_total": total_in,
        "output_tokens_total": total_out,
        "cost_usd": round(cost, 4),
        "priced": priced,
        "price_per_mtok": None
        if price is None or backend in pricing.FREE_BACKENDS
        else {"input": price[0], "output": price[1]},
        "assumptions": {
            "image_size": list(image_size),
            "tokens_per_image": per_image,
            "references": references,
            "repairs_and_retries": "not included",
        },
    }
