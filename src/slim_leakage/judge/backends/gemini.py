"""Gemini through the maintained ``google-genai`` SDK (``GEMINI_API_KEY``/``GOOGLE_API_KEY``).

Images go as inline bytes; the answer schema as ``response_json_schema`` with a JSON MIME type,
on the pinned API version :data:`API_VERSION`. What each model takes (a thinking level or
budget, sampling parameters, the output allowance for thinking) comes from the model table
(:mod:`slim_leakage.judge.models`). The SDK's own retries stay off: the judge retries with its
shared limits, treating as transient only what the SDK itself would retry
(:data:`~._common.GEMINI_RETRY`).

Answers and errors are read as the API documents them (google-genai ``types.py`` and
``errors.py``, and the rate-limit and error pages): an answer that ends with ``MAX_TOKENS`` and
no text raises :class:`~slim_leakage.errors.OutputLimitError` (asked once more with a larger
budget); a ``SAFETY``-class finish (and ``IMAGE_RECITATION``, ``ESCALATION``,
``PUP_LIMITED_DISABLED``) or a blocked prompt is final; a 429 waits what its
``google.rpc.RetryInfo`` says, and one whose ``google.rpc.QuotaFailure`` names a per-day
quota or a limit of 0 raises :class:`~slim_leakage.errors.QuotaExhaustedError`, which stops
the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import re
from collections.abc import Sequence
from typing import Any, ClassVar

from ...errors import (
    ConfigError,
    JudgeError,
    OutputLimitError,
    QuotaExhaustedError,
    require,
)
from ..models import DEFAULTS
from ._common import (
    GEMINI_RETRY,
    api_key,
    check_reachable,
    classify_status,
    is_transport_error,
    redact_url,
)
from .base import Backend, BackendRequest, BackendResponse, TransientBackendError

#: The Gemini API version the backend talks to. google-genai 3.x defaults to ``v1``
#: (``_api_client.GOOGLE_AI_API_DEFAULT_VERSION``), where structured-output fields
#: (``responseMimeType``, ``responseSchema``) have been reported rejected as unknown names;
#: ``v1beta`` documents and accepts them.
API_VERSION = "v1beta"

#: Finish reasons of an answer that no retry can change (google-genai ``types.FinishReason``).
BLOCKED_FINISH = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "LANGUAGE",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        # The generated image may be a recitation (types.FinishReason.IMAGE_RECITATION): the
        # same answer recites again.
        "IMAGE_RECITATION",
        # "Request was filtered by an escalation rule" (types.FinishReason.ESCALATION): a
        # policy decision about the request, not a passing fault.
        "ESCALATION",
        # "the user account is limited or disabled due to Prohibited Use Policy (PUP)
        # violations" (types.FinishReason.PUP_LIMITED_DISABLED): no request of this account
        # can succeed until the account is restored.
        "PUP_LIMITED_DISABLED",
    }
)

_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
_QUOTA_FAILURE = "type.googleapis.com/google.rpc.QuotaFailure"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?)s\s*$")


def duration_seconds(value: Any) -> float | None:
    """Seconds of a protobuf ``Duration`` in its JSON form (``"36s"``, ``"0.5s"``), else ``None``."""
    if not isinstance(value, str):
        return None
    match = _DURATION.match(value)
    return float(match.group(1)) if match else None


def error_details(body: Any) -> list[dict]:
    """The ``details`` list of a Google API error body (``{"error": {..., "details": [...]}}``)."""
    if not isinstance(body, dict):
        return []
    error = body.get("error", body)
    details = error.get("details") if isinstance(error, dict) else None
    return [d for d in details or [] if isinstance(d, dict)]


def _is_daily(violation: dict) -> bool:
    return "perday" in str(violation.get("quotaId", "")).lower()


def _is_zero(violation: dict) -> bool:
    """Whether a ``QuotaFailure.Violation`` names a quota whose limit is 0.

    ``quotaValue`` is an int64 (``google/rpc/error_details.proto``), and proto3 JSON omits a
    field at its zero value: a quota of 0 arrives as a violation with a ``quotaId`` (or
    ``quotaMetric``) and no ``quotaValue`` at all, as public captures of real "limit: 0" bodies
    show (google-gemini/gemini-cli issue 8437). Old-style violations that carry only
    ``subject``/``description`` say nothing about the limit.
    """
    if "quotaValue" in violation:
        return str(violation.get("quotaValue", "")).strip() in ("0", "")
    return bool(violation.get("quotaId") or violation.get("quotaMetric"))


#: "limit: 0" in the message of a real free-tier 429 ("Quota exceeded for metric: ...,
#: limit: 0, model: ..."; continuedev/continue issue 10062), read when no detail says more.
_LIMIT_ZERO = re.compile(r"\blimit:\s*0\b")


def rate_limit_error(body: Any, message: str, headers: Any = None) -> JudgeError:
    """The error of a 429 ``RESOURCE_EXHAUSTED`` answer, read from its details.

    A ``QuotaFailure`` naming any per-day quota (real bodies mix per-day and per-minute ids:
    waiting out the minute does not bring the day back), or any quota with a limit of 0 (its
    ``quotaValue`` absent or ``"0"``; the tier has none for this model), or a message saying
    ``limit: 0``, cannot be waited out within a run: :class:`QuotaExhaustedError`, with the
    reset time from ``RetryInfo`` when it is given. Anything else is transient and waits the
    ``RetryInfo`` delay (or ``Retry-After``).
    """
    details = error_details(body)
    delay = None
    violations: list[dict] = []
    for detail in details:
        if detail.get("@type") == _RETRY_INFO:
            delay = duration_seconds(detail.get("retryDelay"))
        elif detail.get("@type") == _QUOTA_FAILURE:
            violations += [v for v in detail.get("violations") or [] if isinstance(v, dict)]
    zero = [v for v in violations if _is_zero(v)]
    daily = [v for v in violations if _is_daily(v)]
    # the per-day quota first: it is the one whose reset matters
    hopeless = [v for v in zero if _is_daily(v)] or zero or daily
    limit_zero = bool(zero) or bool(_LIMIT_ZERO.search(message or ""))
    if hopeless or limit_zero:
        first = hopeless[0] if hopeless else {}
        quota = str(first.get("quotaId") or first.get("quotaMetric") or "quota")
        model = (first.get("quotaDimensions") or {}).get("model")
        resets = None
        when = ""
        if delay is not None and not limit_zero:
            at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=delay)
            resets = at.replace(microsecond=0).isoformat().replace("+00:00", "Z")
            when = f"; the API says it resets in {_span(delay)} (about {resets})"
        what = "is 0 for this key (limit: 0)" if limit_zero else "is used up"
        hint = (
            "Everything judged so far is kept. This key's tier has no quota for the model: "
            "enable billing or pick a model the tier includes "
            "(https://ai.google.dev/gemini-api/docs/rate-limits), then run the same command again."
            if limit_zero
            else "Everything judged so far is kept: run the same command again after the "
            "reset, or raise the quota (https://ai.google.dev/gemini-api/docs/rate-limits)."
        )
        return QuotaExhaustedError(
            f"gemini: the quota {quota}{f' for {model}' if model else ''} {what}{when}.",
            quota=quota,
            resets_at=resets,
            hint=hint,
        )
    from ._common import retry_after_seconds

    wait = delay if delay is not None else retry_after_seconds(headers)
    return TransientBackendError(f"HTTP 429: {message}", retry_after=wait, status=429)


def _span(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 1:
        return f"{seconds:.0f} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


class GeminiBackend(Backend):
    """Gemini models through the Gemini API."""

    name: ClassVar[str] = "gemini"
    description: ClassVar[str] = "Google Gemini (google-genai) with JSON-schema answers"
    default_model: ClassVar[str] = DEFAULTS["gemini"]
    provider: ClassVar[str | None] = "gemini"
    options: ClassVar[dict[str, Any]] = {"base_url": None, "api_key": None, "timeout": 120.0}
    key_env: ClassVar[tuple[str, ...]] = ("GEMINI_API_KEY", "GOOGLE_API_KEY")

    def __init__(self, model: str | None = None, **options: Any) -> None:
        super().__init__(model, **options)
        try:
            self.timeout = float(self.settings["timeout"])
        except (TypeError, ValueError):
            raise ConfigError(
                f"gemini: timeout={self.settings['timeout']!r} is not a number of seconds.",
                hint="Pass --judge-arg timeout=60",
            ) from None
        self._client: Any = None
        self._loop: Any = None

    def batch_interface(self) -> Any:
        """Gemini Batch Mode (:class:`~.batches.GeminiBatches`)."""
        from .batches import GeminiBatches

        return GeminiBatches(self)

    def describe(self) -> dict[str, Any]:
        """Backend, model and (credential-free) base URL."""
        out = super().describe()
        if self.settings.get("base_url"):
            out["base_url"] = redact_url(self.settings["base_url"])
        return out

    def check(self) -> None:
        """Fail before any work if the SDK or the API key is missing, or the server is down."""
        require("google.genai", "gemini", feature="the 'gemini' judge")
        api_key(self.settings["api_key"], self.key_env, backend=self.name, required=True)
        check_reachable(self.base_url(), backend=self.name)

    def base_url(self) -> str:
        """The server the client talks to: ``base_url``, else ``$GOOGLE_GEMINI_BASE_URL``, else
        the Gemini API (the SDK's order: ``google/genai/_base_url.py`` and ``_api_client.py``)."""
        return (
            self.settings["base_url"]
            or os.environ.get("GOOGLE_GEMINI_BASE_URL")
            or "https://generativelanguage.googleapis.com/"
        )

    def _get_client(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            genai = require("google.genai", "gemini", feature="the 'gemini' judge")
            from google.genai import types

            key = api_key(self.settings["api_key"], self.key_env, backend=self.name, required=True)
            http = types.HttpOptions(
                base_url=self.settings["base_url"],
                api_version=API_VERSION,
                timeout=int(self.timeout * 1000),
            )
            self._client = genai.Client(api_key=key, http_options=http)
            self._loop = loop
        return self._client

    def _options(self, request: BackendRequest) -> dict[str, Any]:
        """The ``GenerateContentConfig`` fields of one request, as the model table says (plain
        values: the SDK's ``GenerateContentConfigDict`` shape)."""
        spec = self.spec
        decoding = request.decoding
        options: dict[str, Any] = {
            "max_output_tokens": decoding.max_output_tokens + spec.allowance,
            "response_mime_type": "application/json",
            "response_json_schema": request.schema,
        }
        if spec.sampling or not spec.known:
            options["temperature"] = decoding.temperature
            options["seed"] = decoding.seed
        if spec.thinking == "level":
            options["thinking_config"] = {"thinking_level": spec.judging}
        elif spec.thinking == "budget":
            options["thinking_config"] = {"thinking_budget": spec.judging}
        return options

    def _config(self, request: BackendRequest) -> Any:
        """The typed ``GenerateContentConfig`` of one request (batch requests take it)."""
        from google.genai import types

        return types.GenerateContentConfig(**self._options(request))

    def _call_config(self, request: BackendRequest) -> dict[str, Any]:
        """The config of one ``generate_content`` call: :meth:`_options` as a
        ``GenerateContentConfigDict`` with two documented switches that change nothing on the
        wire (a test compares the bodies with the plain call's) and save the SDK work:

        - ``automatic_function_calling={"disable": True}`` (as the SDK's README shows): the
          judge declares no tools, but ``AsyncModels.generate_content`` otherwise runs its
          function-calling loop;
        - ``should_return_http_response=True`` ("the raw HTTP response will be returned in the
          'sdk_http_response' field", ``types.GenerateContentConfig``): the SDK skips building
          the typed response, and :func:`answer_json` reads the body as the REST reference
          documents ``GenerateContentResponse``.

        A plain dict, not the typed model: ``generate_content`` deep-copies a typed config
        (its answer schema with it) on every call, and builds the model once from a dict.
        Measured without HTTP (the SDK's ``httpx_async_client`` option with a mock transport,
        the protocol's requests): 1.19 ms of SDK CPU per call with the typed config and the
        typed answer, 0.95 ms with these.
        """
        return {
            **self._options(request),
            "automatic_function_calling": {"disable": True},
            "should_return_http_response": True,
        }

    def _content(self, request: BackendRequest) -> Any:
        """The one user ``Content`` of a request: its text, then each image after its label."""
        from google.genai import types

        parts = [types.Part.from_text(text=request.text)]
        for image in request.images:
            if image.label:
                parts.append(types.Part.from_text(text=f"{image.label}:"))
            parts.append(types.Part.from_bytes(data=image.data, mime_type=image.mime))
        return types.Content(role="user", parts=parts)

    def _contents(self, request: BackendRequest) -> list[Any]:
        """The ``contents`` of one request (a list of one ``Content``, as batch requests take)."""
        return [self._content(request)]

    @staticmethod
    def api_error(exc: Any) -> JudgeError:
        """The judge error of a google-genai ``APIError`` (a rate limit read from its body)."""
        headers = getattr(getattr(exc, "response", None), "headers", None)
        message = str(exc.message or exc)[:300]
        if exc.code == 429:
            return rate_limit_error(exc.details, message, headers)
        # The google-genai SDK's own retry set (GEMINI_RETRY), not OpenAI's: a 409 ABORTED
        # or 501 NOT_IMPLEMENTED answers the same way again.
        error = classify_status(
            exc.code, message, headers, retryable=GEMINI_RETRY, any_5xx=False, obey_header=False
        )
        if isinstance(error, TransientBackendError) and error.retry_after is None:
            for detail in error_details(exc.details):
                if detail.get("@type") == _RETRY_INFO:
                    error.retry_after = duration_seconds(detail.get("retryDelay"))
        return error

    async def _one(self, request: BackendRequest) -> BackendResponse:
        config = self._call_config(request)
        # One ``Content``, not a list of one: ``contents`` is a ``types.ContentListUnion``
        # (``Union[list[ContentUnion], ContentUnion]``) and the SDK wraps a single Content
        # into the same one-element list (``_transformers.t_contents``), so the request body
        # is the same (a test compares them); but validating a list of models against that
        # union costs more than the rest of the request's conversion (measured: about
        # 0.25 ms per call, against 0.01 ms for a single Content).
        response = await self.call(
            self._get_client().aio.models.generate_content(
                model=self.model, contents=self._content(request), config=config
            )
        )
        return answer_json(response.sdk_http_response.body, config["max_output_tokens"])

    async def call(self, pending: Any) -> Any:
        """Await one SDK call, its failures turned into judge errors."""
        from google.genai import errors

        try:
            return await pending
        except errors.APIError as exc:
            raise self.api_error(exc) from exc
        except Exception as exc:
            if is_transport_error(exc):
                raise TransientBackendError(f"{type(exc).__name__}: {exc}") from exc
            raise

    @staticmethod
    def answer(response: Any, limit: int | None) -> BackendResponse:
        """The :class:`BackendResponse` of a typed ``GenerateContentResponse`` (a batch's
        answers; the simple reference :func:`answer_json` is tested against).

        Raises:
            JudgeError: A blocked prompt or answer (no retry can change it).
            OutputLimitError: The output limit spent before any text.
            TransientBackendError: An answer without candidates or content.
        """
        usage = response.usage_metadata
        candidates = response.candidates or []
        candidate = candidates[0] if candidates else None
        content = candidate.content if candidate is not None else None
        parts = (content.parts if content is not None else None) or []
        return _answer(
            blocked=_name(getattr(response.prompt_feedback, "block_reason", None)),
            has_candidate=candidate is not None,
            reason=_name(candidate.finish_reason) if candidate is not None else "",
            has_content=content is not None,
            # Thought parts (Part.thought) are the model's reasoning, never the answer.
            texts=[p.text or "" for p in parts if not getattr(p, "thought", False)],
            input_tokens=getattr(usage, "prompt_token_count", None),
            output_tokens=getattr(usage, "candidates_token_count", None),
            thinking=getattr(usage, "thoughts_token_count", None),
            model=response.model_version,
            limit=limit,
        )

    async def complete(self, requests: Sequence[BackendRequest]) -> list[BackendResponse]:
        """Send each request as one ``generateContent`` call (concurrently)."""
        return list(await asyncio.gather(*(self._one(r) for r in requests)))

    async def aclose(self) -> None:
        """Close the async HTTP client (a new one is made on the next event loop)."""
        if self._client is not None:
            client, self._client = self._client, None
            with contextlib.suppress(RuntimeError, AttributeError):
                await client.aio.aclose()


def answer_json(body: str | None, limit: int | None) -> BackendResponse:
    """The :class:`BackendResponse` of a ``generateContent`` answer's raw JSON body, read as the
    Gemini API reference documents ``GenerateContentResponse`` (camelCase fields:
    ``candidates[].content.parts[].text``/``thought``, ``candidates[].finishReason``,
    ``promptFeedback.blockReason``, ``usageMetadata.promptTokenCount``/
    ``candidatesTokenCount``/``thoughtsTokenCount``, ``modelVersion``; proto3 JSON omits
    zero and empty fields). Same errors as :meth:`GeminiBackend.answer`, which a test holds
    it to on every answer shape the local server speaks."""
    import json

    try:
        payload = json.loads(body) if body else {}
    except ValueError:
        raise TransientBackendError(f"the answer is not JSON: {str(body)[:120]!r}") from None
    if not isinstance(payload, dict):
        raise TransientBackendError(f"the answer is not a JSON object: {str(body)[:120]!r}")
    usage = payload.get("usageMetadata") or {}
    candidates = payload.get("candidates") or []
    candidate = candidates[0] if candidates else None
    content = candidate.get("content") if candidate is not None else None
    parts = (content or {}).get("parts") or []
    return _answer(
        blocked=str((payload.get("promptFeedback") or {}).get("blockReason") or ""),
        has_candidate=candidate is not None,
        reason=str((candidate or {}).get("finishReason") or ""),
        has_content=content is not None,
        texts=[p.get("text") or "" for p in parts if not p.get("thought")],
        input_tokens=usage.get("promptTokenCount"),
        output_tokens=usage.get("candidatesTokenCount"),
        thinking=usage.get("thoughtsTokenCount"),
        model=payload.get("modelVersion"),
        limit=limit,
    )


def _answer(
    *,
    blocked: str,
    has_candidate: bool,
    reason: str,
    has_content: bool,
    texts: list[str],
    input_tokens: int | None,
    output_tokens: int | None,
    thinking: int | None,
    model: str | None,
    limit: int | None,
) -> BackendResponse:
    """What an answer's fields mean for the judge (both readers above end here)."""
    if blocked:
        raise JudgeError(f"the prompt was blocked ({blocked}); no retry can change it")
    if not has_candidate:
        raise TransientBackendError("the answer has no candidates")
    text = "".join(texts)
    if reason in BLOCKED_FINISH:
        raise JudgeError(f"the answer was blocked ({reason}); no retry can change it")
    if not text.strip():
        if reason == "MAX_TOKENS":
            raise OutputLimitError(
                f"finishReason MAX_TOKENS with no text, thoughtsTokenCount {thinking}",
                limit=limit,
                thinking_tokens=thinking,
                input_tokens=input_tokens,
            )
        if not has_content:
            raise TransientBackendError(f"the answer has no content (finishReason {reason})")
    return BackendResponse(
        text=text,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        model=model,
        thinking_tokens=thinking,
    )


def _name(value: Any) -> str:
    """An enum member's name, or the string itself (``FinishReason.SAFETY`` -> ``SAFETY``)."""
    return str(getattr(value, "value", value) or "")
