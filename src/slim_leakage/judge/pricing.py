"""Prices and token estimates for judge models: the one table to edit when prices change.

Prices are US dollars per million tokens (input, output): the vendors' 2025 list prices for
these pinned models, copied by hand and not checked against a live price page since, so verify
them before budgeting. Batch, cached-input and free-tier discounts are ignored, so an estimate
errs on the high side. A model not in the table is priced at zero and flagged as
unpriced in estimates. Image token counts follow each vendor's documented formula.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

#: model id -> (USD per 1M input tokens, USD per 1M output tokens).
PRICES: dict[str, tuple[float, float]] = {
    "gemini-2.5-flash": (0.30, 2.50),
    "gemini-2.5-pro": (1.25, 10.00),
    "gemini-2.0-flash": (0.10, 0.40),
    "gpt-4o-2024-08-06": (2.50, 10.00),
    "gpt-4o-mini-2024-07-18": (0.15, 0.60),
    "gpt-4.1-2025-04-14": (2.00, 8.00),
    "gpt-4.1-mini-2025-04-14": (0.40, 1.60),
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


def image_tokens(width: int, height: int, *, family: str) -> int:
    """Input tokens one image costs.

    Args:
        width: Image width in pixels.
        height: Image height in pixels.
        family: ``openai`` (85 + 170 per 512-px tile after fitting in 2048 and scaling the short
            side down to 768) or ``gemini`` (258 per image up to 384 px, else 258 per
            768-px tile); anything else uses the OpenAI rule.
    """
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
    backend: str, model: str, input_tokens: float, output_tokens: float
) -> tuple[float, bool]:
    """``(cost, priced)``: the price of the tokens, and whether the model is in the table."""
    if backend in FREE_BACKENDS:
        return 0.0, True
    price = PRICES.get(model)
    if price is None:
        return 0.0, False
    return (input_tokens * price[0] + output_tokens * price[1]) / 1e6, True


def request_tokens(text: str, image_sizes: Sequence[tuple[int, int]], *, family: str) -> int:
    """Estimated input tokens of one request."""
    return text_tokens(text) + sum(image_tokens(w, h, family=family) for w, h in image_sizes)
