"""The judge's model table: what each API model takes, what we send it, and what it costs.

One row per supported model id of the ``gemini`` and ``openai`` backends: its release stage,
its thinking control (a Gemini 3 thinking *level*, a Gemini 2.5 thinking *budget*, or an
OpenAI reasoning *effort*) and the value used for judging, whether the API accepts sampling
parameters, its output-token limit, and its list prices with the date they were read and where.
This is the one place to edit when a provider changes a model or a price; the backends, the
cache key, the cost accounting and ``slim-eval estimate`` all read it.

Why the judging values are what they are (``docs/judge.md``, "Models and thinking"): every
question is one narrow, structured step (the protocol already splits the reasoning into
extraction, per-image rating and a text-only comparison), so a low thinking level keeps the
deliberation that helps match features to entities and keeps the JSON consistent, without
paying the default (medium) level's extra output tokens on thousands of calls. Thinking tokens
are billed as output, so the level is the largest lever on cost after the model itself.

An id that is not in the table still works: it is sent as before (no thinking settings,
sampling parameters as configured), priced as unknown, and the judge says so in one line.
"""

from __future__ import annotations

import dataclasses
from typing import Any

#: The day the rows below were checked against the providers' pages.
READ_ON = "2026-11-30"

_GEMINI_MODELS = "https://ai.google.dev/gemini-api/docs/deprecations"
_GEMINI_LATEST = "https://ai.google.dev/gemini-api/docs/latest-model"
_GEMINI_PRICING = "https://ai.google.dev/gemini-api/docs/pricing"
_GEMINI_3_GUIDE = (
    "https://docs.cloud.google.com/gemini-enterprise-agent-platform/models/guides/gemini-3-8-flash"
)
# Google's Gemini 3 guidance on temperature: keep the default 1.0; "changing the temperature
# (setting it below 1.0) may lead to unexpected behavior, such as looping or degraded
# performance" (the Gemini 3 developer guide, section "Temperature", and the Gemini 3
# prompting guide, section "Temperature tuning").
_GEMINI_3_TEMPERATURE = (
    "https://ai.google.dev/gemini-api/docs/gemini-3; "
    "https://docs.cloud.google.com/vertex-ai/generative-ai/docs/start/gemini-3-prompting-guide"
)
# Gemini 3 images at the default media resolution (Vertex AI's Gemini 3 Flash model page).
_GEMINI_3_IMAGE = "https://docs.cloud.google.com/vertex-ai/generative-ai/docs/models/gemini/3-flash"
# The installed openai SDK's own list of chat models and their announced shutdown dates.
_OPENAI_SDK = "openai/types/shared/chat_model.py (openai 3.57.0)"
_OPENAI_PRICING = "https://openrouter.ai/openai/gpt-5.4-mini (OpenAI list price, as listed)"


@dataclasses.dataclass(frozen=True)
class Price:
    """List prices of one model, US dollars per million tokens.

    Attributes:
        input: Per million input tokens (text and images).
        output: Per million output tokens; thinking tokens are billed at this rate.
        read: The day the price was read (``YYYY-MM-DD``).
        source: Where it was read.
        batch_input: The batch-interface input price, where one has been read.
        batch_output: The batch-interface output price, where one has been read.
    """

    input: float
    output: float
    read: str
    source: str
    batch_input: float | None = None
    batch_output: float | None = None


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What one API model takes and what the judge sends it.

    Attributes:
        id: The model id as the API takes it.
        provider: ``gemini`` or ``openai``.
        stage: ``ga``, ``preview`` or ``deprecated`` (announced for shutdown), or ``unknown``.
        thinking: The thinking control: ``level`` (Gemini 3 ``thinking_level``), ``budget``
            (Gemini 2.5 ``thinking_budget``, in tokens), ``effort`` (OpenAI
            ``reasoning_effort``), or ``None`` (none sent).
        judging: The value sent for judging (a level or effort name, or a budget in tokens).
        allowance: Output tokens added to the answer budget (``max_output_tokens``) for the
            model's thinking, which counts against the same limit.
        sampling: Whether temperature, top-p/k and seed are sent (Gemini 3.6 deprecates them;
            OpenAI reasoning models take them only with effort ``none``).
        max_output: The model's own output-token limit.
        price: List prices, or ``None`` where none has been read.
        image_tokens: Input tokens per image at the default resolution, where the provider
            states a flat count; ``None`` uses the tile formula in :mod:`.pricing`.
        shutdown: The announced shutdown date, if any.
        source: Where the row's facts were read.
    """

    id: str
    provider: str
    stage: str
    thinking: str | None = None
    judging: str | int | None = None
    allowance: int = 0
    sampling: bool = True
    max_output: int | None = None
    price: Price | None = None
    image_tokens: int | None = None
    shutdown: str | None = None
    source: str = ""

    @property
    def known(self) -> bool:
        """Whether the id is a row of the table (not the safe default of an unknown id)."""
        return self.stage != "unknown"

    def wire_settings(self) -> dict[str, Any]:
        """What this row changes on the wire (part of every request's cache key).

        Empty for an unknown id, which is sent as before, so its cache keys do not change.
        """
        if not self.known:
            return {}
        out: dict[str, Any] = {"sampling": self.sampling, "output_allowance": self.allowance}
        if self.thinking is not None:
            out[f"thinking_{self.thinking}"] = self.judging
        return out

    def describe(self) -> dict[str, Any]:
        """The row for manifests and ``slim-eval ls``: stage, thinking, prices and sources."""
        out: dict[str, Any] = {"stage": self.stage}
        if self.thinking is not None:
            out["thinking"] = {"control": self.thinking, "value": self.judging}
        if self.shutdown:
            out["shutdown"] = self.shutdown
        if self.price is not None:
            out["price_per_mtok"] = {
                "input": self.price.input,
                "output": self.price.output,
                "read": self.price.read,
                "source": self.price.source,
            }
        return out


def _gemini3(model: str, **kw: Any) -> ModelSpec:
    # Gemini 3 models take a thinking level (google-genai types.ThinkingConfig.thinking_level,
    # types.ThinkingLevel); thinking counts against maxOutputTokens like 2.5's, so the low
    # level gets an allowance of its own on top of the answer budget. No sampling parameters:
    # every Gemini 3 model keeps its default temperature (_GEMINI_3_TEMPERATURE), so neither
    # ``temperature`` nor ``seed`` is sent.
    kw.setdefault("source", _GEMINI_MODELS)
    kw.setdefault("sampling", False)
    return ModelSpec(
        model,
        "gemini",
        thinking="level",
        judging="low",
        allowance=2048,
        max_output=65536,
        image_tokens=1120,
        **kw,
    )


def _gemini25(model: str, budget: int, **kw: Any) -> ModelSpec:
    # Gemini 2.5 models take a thinking budget in tokens (types.ThinkingConfig.thinking_budget);
    # the budget is reserved on top of the answer budget so an answer always has room.
    return ModelSpec(
        model,
        "gemini",
        stage="deprecated",
        thinking="budget",
        judging=budget,
        allowance=budget,
        max_output=65536,
        source=_GEMINI_MODELS,
        **kw,
    )


def _openai(model: str, *, effort: str | None, price: Price | None, **kw: Any) -> ModelSpec:
    # Reasoning models: reasoning_effort (openai/types/chat/completion_create_params.py);
    # sampling parameters only with effort "none", so they are not sent. Reasoning tokens
    # count against max_completion_tokens.
    reasoning = effort is not None
    return ModelSpec(
        model,
        "openai",
        thinking="effort" if reasoning else None,
        judging=effort,
        allowance=2048 if reasoning else 0,
        sampling=not reasoning,
        price=price,
        source=_OPENAI_SDK,
        **kw,
    )


_MODELS: tuple[ModelSpec, ...] = (
    # -- Gemini 3: GA unless marked; thinking levels MINIMAL/LOW/MEDIUM/HIGH (3.5, 3.6) or
    #    LOW/MEDIUM/HIGH (3.7, 3.8), default MEDIUM.
    _gemini3(
        "gemini-3.6-flash",
        stage="ga",
        # The 2026-07-21 changelog deprecates temperature, top_p and top_k for 3.6 Flash.
        sampling=False,
        price=Price(1.50, 7.50, READ_ON, _GEMINI_LATEST),
        source=_GEMINI_LATEST,
    ),
    _gemini3(
        "gemini-3.8-flash",
        stage="ga",
        sampling=False,
        price=Price(0.75, 3.75, READ_ON, f"{_GEMINI_PRICING} (price through 2026-12-31)"),
        source=_GEMINI_3_GUIDE,
    ),
    _gemini3("gemini-3.7-flash", stage="ga", sampling=False, source=_GEMINI_3_GUIDE),
    _gemini3("gemini-3.5-flash", stage="ga"),
    _gemini3("gemini-3.5-flash-lite", stage="ga"),
    _gemini3("gemini-3.1-flash-lite", stage="ga", shutdown="2027-05-07"),
    _gemini3("gemini-3-flash-preview", stage="preview"),
    _gemini3("gemini-3.1-pro-preview", stage="preview"),
    # -- Gemini 2.5: announced for shutdown, requests rerouted to newer models.
    _gemini25(
        "gemini-2.5-flash",
        512,
        price=Price(0.30, 2.50, "2025", f"{_GEMINI_PRICING} (2025 list price, not re-read)"),
    ),
    _gemini25(
        "gemini-2.5-pro",
        512,  # 2.5 Pro cannot turn thinking off; its smallest budget is 128
        price=Price(1.25, 10.00, "2025", f"{_GEMINI_PRICING} (2025 list price, not re-read)"),
    ),
    _gemini25("gemini-2.5-flash-lite", 512),
    # -- OpenAI: a dated snapshot that the installed SDK does not list for shutdown.
    _openai(
        "gpt-5.4-mini-2026-03-17",
        effort="low",
        stage="ga",
        max_output=128000,
        price=Price(0.75, 4.50, READ_ON, _OPENAI_PRICING),
    ),
    _openai("gpt-5.4-mini", effort="low", stage="ga", max_output=128000, price=None),
    _openai("gpt-5.5-2026-04-23", effort="low", stage="ga", price=None),
    # The previous default and its kin: announced shutdown 2027-01-14 (SDK docstring).
    *(
        _openai(
            model,
            effort=None,
            stage="deprecated",
            shutdown="2027-01-14",
            price=Price(pin, pout, "2025", "OpenAI 2025 list price (not re-read)"),
        )
        for model, pin, pout in (
            ("gpt-4o-2024-08-06", 2.50, 10.00),
            ("gpt-4o-mini-2024-07-18", 0.15, 0.60),
            ("gpt-4.1-2025-04-14", 2.00, 8.00),
            ("gpt-4.1-mini-2025-04-14", 0.40, 1.60),
        )
    ),
)

#: provider -> model id -> row.
MODELS: dict[str, dict[str, ModelSpec]] = {}
for _spec in _MODELS:
    MODELS.setdefault(_spec.provider, {})[_spec.id] = _spec

#: The batch interfaces' price as a share of the list price, per provider, and where it was read:
#: the Gemini API's Batch Mode is billed at 50 % of the standard cost (Batch API guide), the
#: OpenAI Batch API at a 50 % discount against the synchronous APIs (Batch API FAQ). A row's own
#: ``Price.batch_input``/``batch_output`` wins where one has been read.
BATCH_DISCOUNT: dict[str, tuple[float, str]] = {
    "gemini": (0.5, "https://ai.google.dev/gemini-api/docs/batch-api"),
    "openai": (0.5, "https://help.openai.com/en/articles/9197833-batch-api-faq"),
}


def batch_price(spec: ModelSpec) -> Price | None:
    """The batch-interface price of ``spec`` (``None`` when it has no list price)."""
    price = spec.price
    if price is None or spec.provider not in BATCH_DISCOUNT:
        return None
    share, source = BATCH_DISCOUNT[spec.provider]
    return Price(
        price.batch_input if price.batch_input is not None else price.input * share,
        price.batch_output if price.batch_output is not None else price.output * share,
        READ_ON,
        source,
    )


#: The default model of each API backend: GA, not announced for shutdown.
DEFAULTS = {"gemini": "gemini-3.6-flash", "openai": "gpt-5.4-mini-2026-03-17"}


def lookup(provider: str, model: str) -> ModelSpec:
    """The row of ``model``, or the safe default row of an id the table does not know.

    Args:
        provider: ``gemini`` or ``openai``.
        model: The model id as given.
    """
    row = MODELS.get(provider, {}).get(model)
    if row is not None:
        return row
    return ModelSpec(model, provider, stage="unknown")


def find(model: str) -> ModelSpec | None:
    """The row of ``model`` under any provider, or ``None``."""
    for rows in MODELS.values():
        if model in rows:
            return rows[model]
    return None


def notice(spec: ModelSpec) -> str | None:
    """The one line a judge prints about its model, or ``None`` when there is nothing to say."""
    if not spec.known:
        return (
            f"model {spec.id!r} is not in the judge's model table: sent without thinking "
            "settings, sampling parameters as configured, cost not priced"
        )
    if spec.stage == "deprecated":
        when = f" (shutdown {spec.shutdown})" if spec.shutdown else ""
        return f"model {spec.id!r} is announced for shutdown{when}; its answers may be rerouted"
    if spec.stage == "preview":
        return f"model {spec.id!r} is a preview model: it may change or go away without notice"
    return None
