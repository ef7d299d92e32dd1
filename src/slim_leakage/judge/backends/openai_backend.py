"""OpenAI chat-completions backends: ``openai`` and ``openai-compatible``.

``openai-compatible`` is the same client pointed at any server that speaks the chat-completions
protocol (vLLM, Ollama, LM Studio serving Qwen2.5-VL and the like) via ``base_url``. Images go
as base64 ``data:`` URLs; the answer schema goes as a strict ``json_schema`` response format in
the portable subset (no numeric or length bounds, which the parser checks instead). The SDK's
own retries are off: the judge retries with its shared limits.

For ``openai`` the model table (:mod:`slim_leakage.judge.models`) says what each model takes:
reasoning models get ``reasoning_effort`` and no sampling parameters, and room for their
reasoning tokens in ``max_completion_tokens``. Answers and errors are read as the SDK types
them (``openai/types/chat/chat_completion.py``, ``openai/types/completion_usage.py``,
``openai/_exceptions.py``): ``finish_reason`` ``length`` with no content raises
:class:`~slim_leakage.errors.OutputLimitError`, ``content_filter`` is final, and a 429 whose
error code is ``insufficient_quota`` (billing, never lifted by waiting) raises
:class:`~slim_leakage.errors.QuotaExhaustedError`, which stops the run.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
from collections.abc import Sequence
from typing import Any, ClassVar

from ...errors import ConfigError, JudgeError, OutputLimitError, QuotaExhaustedError, require
from ..models import DEFAULTS
from ..stages import portable_schema
from ._common import (
    api_key,
    check_reachable,
    classify_status,
    is_transport_error,
    redact_url,
)
from .base import Backend, BackendRequest, BackendResponse, TransientBackendError


class OpenAIBackend(Backend):
    """OpenAI models through the OpenAI API (``OPENAI_API_KEY``)."""

    name: ClassVar[str] = "openai"
    description: ClassVar[str] = "OpenAI chat completions with JSON-schema answers"
    default_model: ClassVar[str] = DEFAULTS["openai"]
    provider: ClassVar[str | None] = "openai"
    options: ClassVar[dict[str, Any]] = {
        "base_url": None,
        "api_key": None,
        "timeout": 120.0,
        "detail": "auto",
    }
    key_env: ClassVar[tuple[str, ...]] = ("OPENAI_API_KEY",)
    key_required: ClassVar[bool] = True
    #: The chat-completions field that limits answer tokens.
    max_tokens_field: ClassVar[str] = "max_completion_tokens"

    def __init__(self, model: str | None = None, **options: Any) -> None:
        super().__init__(model, **options)
        try:
            self.timeout = float(self.settings["timeout"])
        except (TypeError, ValueError):
            raise ConfigError(
                f"{self.name}: timeout={self.settings['timeout']!r} is not a number of seconds.",
                hint="Pass --judge-arg timeout=60",
            ) from None
        if self.settings["detail"] not in ("auto", "low", "high"):
            raise ConfigError(
                f"{self.name}: detail={self.settings['detail']!r} is not one of auto, low, high.",
                hint="Pass --judge-arg detail=auto",
            )
        self._client: Any = None
        self._loop: Any = None

    def batch_interface(self) -> Any:
        """The OpenAI Batch API (:class:`~.batches.OpenAIBatches`); none for a compatible
        server, whose batch support is not known."""
        if self.provider != "openai":
            return None
        from .batches import OpenAIBatches

        return OpenAIBatches(self)

    def describe(self) -> dict[str, Any]:
        """Backend, model and (credential-free) base URL."""
        out = super().describe()
        if self.settings.get("base_url"):
            out["base_url"] = redact_url(self.settings["base_url"])
        return out

    def check(self) -> None:
        """Fail before any work if the SDK or the API key is missing, or the server is down."""
        require("openai", "openai", feature=f"the {self.name!r} judge")
        api_key(
            self.settings["api_key"], self.key_env, backend=self.name, required=self.key_required
        )
        check_reachable(self.base_url(), backend=self.name)

    def base_url(self) -> str:
        """The server the client talks to: ``base_url``, else ``$OPENAI_BASE_URL``, else the
        OpenAI API (the SDK's own order, ``openai/lib/_client_auth.py``)."""
        return (
            self.settings["base_url"]
            or os.environ.get("OPENAI_BASE_URL")
            or "https://api.openai.com/v1"
        )

    def _get_client(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            openai = require("openai", "openai", feature=f"the {self.name!r} judge")
            key = api_key(
                self.settings["api_key"],
                self.key_env,
                backend=self.name,
                required=self.key_required,
            )
            self._client = openai.AsyncOpenAI(
                api_key=key or "not-needed",
                base_url=self.settings["base_url"],
                timeout=self.timeout,
                max_retries=0,
            )
            self._loop = loop
        return self._client

    def _messages(self, request: BackendRequest) -> list[dict]:
        content: list[dict] = [{"type": "text", "text": request.text}]
        for image in request.images:
            if image.label:
                content.append({"type": "text", "text": f"{image.label}:"})
            url = f"data:{image.mime};base64,{base64.b64encode(image.data).decode('ascii')}"
            content.append(
                {"type": "image_url", "image_url": {"url": url, "detail": self.settings["detail"]}}
            )
        return [{"role": "user", "content": content}]

    def _body(self, request: BackendRequest) -> dict[str, Any]:
        spec = self.spec
        sampling = spec is None or spec.sampling or not spec.known
        allowance = 0 if spec is None else spec.allowance
        body: dict[str, Any] = {
            "model": self.model,
            "messages": self._messages(request),
            self.max_tokens_field: request.decoding.max_output_tokens + allowance,
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": request.base_stage.replace("-", "_"),
                    "schema": portable_schema(request.schema),
                    "strict": True,
                },
            },
        }
        if sampling:
            body["temperature"] = request.decoding.temperature
            if request.decoding.seed is not None:
                body["seed"] = request.decoding.seed
        if spec is not None and spec.thinking == "effort":
            body["reasoning_effort"] = spec.judging
        return body

    def api_error(self, exc: Any) -> JudgeError:
        """The judge error of an openai ``APIStatusError`` (``insufficient_quota`` stops)."""
        if exc.status_code == 429 and "insufficient_quota" in (exc.code, exc.type):
            return QuotaExhaustedError(
                f"{self.name}: the account's quota is used up (insufficient_quota: "
                f"{str(exc.message)[:200]}).",
                quota="insufficient_quota",
                hint="Everything judged so far is kept: add credit or raise the limit for "
                "this key, then run the same command again.",
            )
        return classify_status(exc.status_code, str(exc.message)[:300], exc.response.headers)

    async def call(self, pending: Any) -> Any:
        """Await one SDK call, its failures turned into judge errors."""
        import openai

        try:
            return await pending
        except openai.APIStatusError as exc:
            raise self.api_error(exc) from exc
        except (openai.APITimeoutError, openai.APIConnectionError) as exc:
            raise TransientBackendError(f"{type(exc).__name__}: {exc}") from exc
        except Exception as exc:
            if is_transport_error(exc):
                raise TransientBackendError(f"{type(exc).__name__}: {exc}") from exc
            raise

    async def _one(self, request: BackendRequest) -> BackendResponse:
        from openai.types.chat import ChatCompletion

        client = self._get_client()
        body = self._body(request)
        # The typed ``chat.completions.create`` walks every nested parameter (the JSON schema,
        # the base64 images) to transform it, which costs milliseconds of CPU per request; the
        # body is already in wire form, so post it through the same client (same auth, errors
        # and response model) without that walk.
        completion = await self.call(
            client.post("/chat/completions", body=body, cast_to=ChatCompletion)
        )
        return self.answer(completion, body[self.max_tokens_field])

    def answer(self, completion: Any, limit: int | None) -> BackendResponse:
        """The :class:`BackendResponse` of a ``ChatCompletion`` (also a batch's).

        Raises:
            JudgeError: A refusal or a filtered answer (no retry can change it).
            OutputLimitError: The output limit spent before any text.
            TransientBackendError: An answer without choices.
        """
        if not completion.choices:
            raise TransientBackendError("the answer has no choices")
        choice = completion.choices[0]
        message = choice.message
        if getattr(message, "refusal", None):
            raise JudgeError(f"the model refused: {message.refusal[:200]}")
        usage = completion.usage
        details = getattr(usage, "completion_tokens_details", None)
        reasoning = getattr(details, "reasoning_tokens", None)
        text = message.content or ""
        if choice.finish_reason == "content_filter":
            raise JudgeError("the answer was blocked (content_filter); no retry can change it")
        if choice.finish_reason == "length" and not text.strip():
            raise OutputLimitError(
                f"finish_reason length with no content, reasoning_tokens {reasoning}",
                limit=limit,
                thinking_tokens=reasoning,
                input_tokens=getattr(usage, "prompt_tokens", None),
            )
        completion_tokens = getattr(usage, "completion_tokens", None)
        # completion_tokens includes the reasoning tokens (CompletionTokensDetails).
        answer_tokens = (
            completion_tokens - reasoning
            if completion_tokens is not None and reasoning is not None
            else completion_tokens
        )
        return BackendResponse(
            text=text,
            input_tokens=getattr(usage, "prompt_tokens", None),
            output_tokens=answer_tokens,
            model=completion.model,
            thinking_tokens=reasoning,
        )

    async def complete(self, requests: Sequence[BackendRequest]) -> list[BackendResponse]:
        """Send each request as one chat completion (concurrently)."""
        return list(await asyncio.gather(*(self._one(r) for r in requests)))

    async def aclose(self) -> None:
        """Close the HTTP client (a new one is made on the next event loop)."""
        if self._client is not None:
            client, self._client = self._client, None
            # RuntimeError: its loop is gone already, so there is nothing left to release.
            with contextlib.suppress(RuntimeError):
                await client.close()


class OpenAICompatibleBackend(OpenAIBackend):
    """Any OpenAI-compatible server (vLLM, Ollama, LM Studio) via ``base_url``."""

    name: ClassVar[str] = "openai-compatible"
    description: ClassVar[str] = "an OpenAI-compatible server (vLLM, Ollama, LM Studio) at base_url"
    default_model: ClassVar[str] = "Qwen/Qwen2.5-VL-7B-Instruct"
    provider: ClassVar[str | None] = None
    key_required: ClassVar[bool] = False
    max_tokens_field: ClassVar[str] = "max_tokens"

    def __init__(self, model: str | None = None, **options: Any) -> None:
        super().__init__(model, **options)
        if not self.settings.get("base_url"):
            raise ConfigError(
                "The 'openai-compatible' judge needs the server address.",
                hint="Pass --judge-arg base_url=http://127.0.0.1:8000/v1",
            )
