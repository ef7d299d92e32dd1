"""Gemini through the maintained ``google-genai`` SDK (``GEMINI_API_KEY``/``GOOGLE_API_KEY``).

Images go as inline bytes; the answer schema as ``response_json_schema`` with a JSON MIME type.
The SDK's own retries stay off: the judge retries with its shared limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Sequence
from typing import Any, ClassVar

from ...errors import ConfigError, JudgeError, require
from ._common import (
    api_key,
    check_reachable,
    classify_status,
    is_transport_error,
    redact_url,
)
from .base import Backend, BackendRequest, BackendResponse, TransientBackendError


class GeminiBackend(Backend):
    """Gemini models through the Gemini API."""

    name: ClassVar[str] = "gemini"
    description: ClassVar[str] = "Google Gemini (google-genai) with JSON-schema answers"
    default_model: ClassVar[str] = "gemini-2.5-flash"
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
                base_url=self.settings["base_url"], timeout=int(self.timeout * 1000)
            )
            self._client = genai.Client(api_key=key, http_options=http)
            self._loop = loop
        return self._client

    async def _one(self, request: BackendRequest) -> BackendResponse:
        from google.genai import errors, types

        client = self._get_client()
        parts = [types.Part.from_text(text=request.text)]
        for image in request.images:
            if image.label:
                parts.append(types.Part.from_text(text=f"{image.label}:"))
            parts.append(types.Part.from_bytes(data=image.data, mime_type=image.mime))
        config = types.GenerateContentConfig(
            temperature=request.decoding.temperature,
            max_output_tokens=request.decoding.max_output_tokens,
            seed=request.decoding.seed,
            response_mime_type="application/json",
            response_json_schema=request.schema,
        )
        try:
            response = await client.aio.models.generate_content(
                model=self.model,
                contents=[types.Content(role="user", parts=parts)],
                config=config,
            )
        except errors.APIError as exc:
            headers = getattr(getattr(exc, "response", None), "headers", None)
            raise classify_status(exc.code, str(exc.message or exc)[:300], headers) from exc
        except Exception as exc:
            if is_transport_error(exc):
                raise TransientBackendError(f"{type(exc).__name__}: {exc}") from exc
            raise
        candidates = response.candidates or []
        if not candidates or candidates[0].content is None:
            reason = getattr(response.prompt_feedback, "block_reason", None)
            if reason:
                raise JudgeError(f"the prompt was blocked ({reason})")
            raise TransientBackendError("the answer has no candidates")
        text = "".join(p.text or "" for p in candidates[0].content.parts or [])
        usage = response.usage_metadata
        return BackendResponse(
            text=text,
            input_tokens=getattr(usage, "prompt_token_count", None),
            output_tokens=getattr(usage, "candidates_token_count", None),
            model=response.model_version,
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
