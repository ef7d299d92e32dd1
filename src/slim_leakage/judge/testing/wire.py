"""The wire side of the local protocol server: OpenAI and Gemini request and reply bodies.

Request bodies are read into a :class:`RecordedRequest` (text parts, image hashes, the answer
schema, the question's name); answers and errors are written in each protocol's JSON shape
(a chat completion, a ``generateContent`` response, each provider's error body).

The answers the real services send when no usable text can be given are written here too,
each from its source: Gemini's from google-genai ``types.py`` (``GenerateContentResponse``,
``Candidate.finish_reason``, ``FinishReason``, ``GenerateContentResponseUsageMetadata``
with ``thoughts_token_count``, ``GenerateContentResponsePromptFeedback.block_reason``), its
counts written as proto3 JSON writes them (zero-valued counts omitted); OpenAI's from the
openai SDK's ``types/chat/chat_completion.py`` (``finish_reason`` ``length`` /
``content_filter``) and ``types/completion_usage.py``
(``completion_tokens_details.reasoning_tokens``). Error bodies are in :mod:`.errors`.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import time


@dataclasses.dataclass(frozen=True)
class RecordedRequest:
    """A request as the server saw it (no header values are kept, so no keys).

    Attributes:
        protocol: ``openai`` or ``gemini``.
        path: The HTTP path.
        model: The model id asked for.
        stage: The stage (the schema's ``title``), or ``""``.
        text: The text parts joined by newlines.
        images: SHA-256 of each image, in order.
        schema: The answer schema sent, if any.
        body: The decoded JSON body with image data replaced by its SHA-256.
        has_auth: Whether an API key header was present.
        reply: The reply kind given (``answer``, ``status:429``, ``drop`` ...).
        time: Monotonic arrival time.
    """

    protocol: str
    path: str
    model: str
    stage: str
    text: str
    images: tuple[str, ...]
    schema: dict | None
    body: dict
    has_auth: bool
    reply: str = ""
    time: float = 0.0


def _b64(text: str) -> bytes:
    # The Gemini SDK sends URL-safe base64, sometimes without padding.
    text = text.replace("-", "+").replace("_", "/")
    return base64.b64decode(text + "=" * (-len(text) % 4))


def parse_openai(path: str, body: dict, has_auth: bool) -> RecordedRequest:
    """A chat-completions body as recorded; the response format's name gives the question."""
    texts, images = [], []
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
            continue
        for part in content or []:
            if part.get("type") == "text":
                texts.append(part.get("text", ""))
            elif part.get("type") == "image_url":
                url = part["image_url"]["url"]
                data = _b64(url.split(",", 1)[1]) if url.startswith("data:") else b""
                sha = hashlib.sha256(data).hexdigest()
                images.append(sha)
                part["image_url"]["url"] = f"sha256:{sha}"
    json_schema = (body.get("response_format") or {}).get("json_schema", {})
    schema = json_schema.get("schema")
    # Strict-mode schemas carry no title; the response format's name is the stage.
    stage = (schema or {}).get("title") or json_schema.get("name", "").replace("_", "-")
    return RecordedRequest(
        protocol="openai",
        path=path,
        model=body.get("model", ""),
        stage=stage,
        text="\n".join(texts),
        images=tuple(images),
        schema=schema,
        body=body,
        has_auth=has_auth,
    )


def parse_gemini(path: str, body: dict, has_auth: bool) -> RecordedRequest:
    """A ``generateContent`` body as recorded; the schema's ``title`` gives the question."""
    texts, images = [], []
    for content in body.get("contents", []):
        for part in content.get("parts", []):
            if "text" in part:
                texts.append(part["text"])
            inline = part.get("inlineData") or part.get("inline_data")
            if inline:
                sha = hashlib.sha256(_b64(inline["data"])).hexdigest()
                images.append(sha)
                inline["data"] = f"sha256:{sha}"
    config = body.get("generationConfig") or body.get("generation_config") or {}
    schema = config.get("responseJsonSchema") or config.get("responseSchema")
    model = path.split("/models/", 1)[-1].split(":", 1)[0]
    return RecordedRequest(
        protocol="gemini",
        path=path,
        model=model,
        stage=(schema or {}).get("title", ""),
        text="\n".join(texts),
        images=tuple(images),
        schema=schema,
        body=body,
        has_auth=has_auth,
    )


def output_limit(request: RecordedRequest) -> int | None:
    """The output-token limit a request was sent with (``maxOutputTokens``, ``max_*tokens``)."""
    if request.protocol == "gemini":
        config = request.body.get("generationConfig") or request.body.get("generation_config")
        value = (config or {}).get("maxOutputTokens", (config or {}).get("max_output_tokens"))
    else:
        value = request.body.get("max_completion_tokens", request.body.get("max_tokens"))
    return value if isinstance(value, int) else None


def thinking_budget(request: RecordedRequest) -> int | None:
    """The Gemini ``thinkingConfig.thinkingBudget`` of a request, if it set one."""
    config = request.body.get("generationConfig") or request.body.get("generation_config") or {}
    thinking = config.get("thinkingConfig") or config.get("thinking_config") or {}
    value = thinking.get("thinkingBudget", thinking.get("thinking_budget"))
    return value if isinstance(value, int) else None


def openai_body(
    request: RecordedRequest,
    text: str | None,
    *,
    model: str | None = None,
    finish: str = "stop",
    thinking: int = 0,
) -> dict:
    """A chat completion answering ``request`` with ``text``.

    ``model`` is the model named as having answered (default: the one asked for); ``finish``
    the ``finish_reason`` (``length``, ``content_filter``); ``thinking`` the reasoning tokens
    (counted in ``completion_tokens``, as the SDK's ``CompletionUsage`` documents).
    """
    return {
        "id": f"chatcmpl-{hashlib.sha256((text or '').encode()).hexdigest()[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model or request.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "finish_reason": finish,
                "logprobs": None,
            }
        ],
        "usage": _usage(request, text or "", "openai", thinking),
    }


def gemini_body(
    request: RecordedRequest,
    text: str | None,
    *,
    model: str | None = None,
    finish: str = "STOP",
    thinking: int = 0,
) -> dict:
    """A ``generateContent`` response answering ``request`` with ``text``.

    ``text=None`` gives a candidate without parts (as a ``MAX_TOKENS`` answer whose budget went
    to thinking has); ``finish`` is the ``finishReason``; ``thinking`` the
    ``thoughtsTokenCount``; ``model`` the ``modelVersion`` (default: the model asked for).
    """
    candidate: dict = {"content": {"role": "model"}, "finishReason": finish, "index": 0}
    if text is not None:
        candidate["content"]["parts"] = [{"text": text}]
    if finish == "SAFETY":
        # A blocked candidate has no content, only its safety ratings.
        candidate = {
            "finishReason": "SAFETY",
            "index": 0,
            "safetyRatings": [
                {
                    "category": "HARM_CATEGORY_DANGEROUS_CONTENT",
                    "probability": "HIGH",
                    "blocked": True,
                }
            ],
        }
    return {
        "candidates": [candidate],
        "usageMetadata": _usage(request, text or "", "gemini", thinking),
        "modelVersion": model or request.model,
    }


def gemini_blocked_prompt(request: RecordedRequest, reason: str = "SAFETY") -> dict:
    """A ``generateContent`` response to a blocked prompt: no candidates, ``promptFeedback``."""
    return {
        "promptFeedback": {"blockReason": reason},
        "usageMetadata": _usage(request, "", "gemini"),
        "modelVersion": request.model,
    }


def _usage(request: RecordedRequest, text: str, protocol: str, thinking: int = 0) -> dict:
    prompt = len(request.text) // 4 + 258 * len(request.images)
    out = max(1, len(text) // 4) if text else 0
    if protocol == "gemini":
        # GenerateContentResponse.UsageMetadata's counts are int32 (Gemini API v1beta discovery
        # document, schema "UsageMetadata"); proto3 JSON omits a field at its zero value, so an
        # answer with no output (MAX_TOKENS spent on thinking, a block) has no
        # candidatesTokenCount at all, and no thoughtsTokenCount without thinking.
        usage = {
            "promptTokenCount": prompt,
            "candidatesTokenCount": out,
            "totalTokenCount": prompt + out + thinking,
            "thoughtsTokenCount": thinking,
        }
        return {name: value for name, value in usage.items() if value}
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": out + thinking,
        "total_tokens": prompt + out + thinking,
    }
    if thinking:
        usage["completion_tokens_details"] = {"reasoning_tokens": thinking}
    return usage
