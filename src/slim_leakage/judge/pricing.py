"""Prices and token estimates for judge models.

Prices live in the model table (:mod:`slim_leakage.judge.models`, with the date each was read
and its source); this module turns tokens into dollars and estimates tokens before a call.
Thinking (reasoning) tokens are billed as output. Requests sent through a provider's batch
interface are priced at its batch price (``models.batch_price``); cached-input and free-tier
discounts are ignored, so an estimate errs on the high side. A model without a price is priced at zero
and flagged as unpriced. Image token counts follow each vendor's documented formula.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from . import models

#: model id -> (USD per 1M input tokens, USD per 1M output tokens), from the model table.
PRICES: dict[str, tuple[float, float]] = {
    spec.id: (spec.price.input, spec.price.output)
    for rows in models.MODELS.values()
    for spec in rows.values()
    if spec.price is not None
}

#: model id -> batch-interface prices, as :data:`PRICES`.
BATCH_PRICES: dict[str, tuple[float, float]] = {
    spec.id: (price.input, price.output)
    for rows in models.MODELS.values()
    for spec in rows.values()
    if (price := models.batch_price(spec)) is not None
}

#: Backends that run on hardware you own: no per-token price.
FREE_BACKENDS = frozenset({"openai-compatible", "hf-local", "oracle"})

#: Expected answer tokens per stage (JSON answers of the v1 prompts, two entities).
OUTPUT_TOKENS: dict[str, int] = {
    "extraction-text": 160,
    "extraction-images": 160,
    "typicality": 180,
    "ranking": 60,
}


def text_tokens(text: str) -> int:
    """A rough token count of English text (about four characters per token)."""
    return max(1, math.ceil(len(text) / 4))


def image_tokens(width: int, height: int, *, family: str, model: str | None = None) -> int:
    """Input tokens one image costs.

    Args:
        width: Image width in pixels.
        height: Image height in pixels.
        family: ``openai`` (85 + 170 per 512-px tile after fitting in 2048 and scaling the short
            side down to 768) or ``gemini`` (258 per image up to 384 px, else 258 per
            768-px tile); anything else uses the OpenAI rule.
        model: The model id; a model-table row with a flat count per image (Gemini 3 at the
            default media resolution) overrides the formula.
    """
    spec = models.find(model) if model else None
    if spec is not None and spec.image_tokens is not None:
        return spec.image_tokens
    if family == "gemini":
        if width <= 384 and height <= 384:
            return 258
        return 258 * math.ceil(width / 768) * math.ceil(height / 768)
    scale = min(1.0, 2048 / max(width, height))
    w, h = width * scale, height * scale
    scale = min(1.0, 768 / min(w, h))
    w, h = w * scale, h * scale
    return 85 + 170 * math.ceil(w / 512) * math.ceil(h / 512)


def token_family(backend: str, model: str) -> str:
    """Which image-token rule applies to ``backend``/``model``."""
    return "gemini" if backend == "gemini" or model.startswith("gemini") else "openai"


def cost_usd(
    backend: str,
    model: str,
    input_tokens: float,
    output_tokens: float,
    thinking_tokens: float = 0,
    *,
    batch: bool = False,
) -> tuple[float, bool]:
    """``(cost, priced)``: the price of the tokens, and whether the model has a price.

    ``output_tokens`` are the answer's tokens; ``thinking_tokens`` are billed at the output
    rate on top of them. ``batch`` prices them at the batch interface's price.
    """
    if backend in FREE_BACKENDS:
        return 0.0, True
    price = (BATCH_PRICES if batch else PRICES).get(model)
    if price is None:
        return 0.0, False
    return (input_tokens * price[0] + (output_tokens + thinking_tokens) * price[1]) / 1e6, True


def request_tokens(
    text: str,
    image_sizes: Sequence[tuple[int, int]],
    *,
    family: str,
    model: str | None = None,
) -> int:
    """Estimated input tokens of one request."""
    return text_tokens(text) + sum(
        image_tokens(w, h, family=family, model=model) for w, h in image_sizes
    )
