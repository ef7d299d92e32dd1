"""The wire side of the local protocol server: OpenAI and Gemini request and reply bodies.

Request bodies are read into a :class:`RecordedRequest` (text parts, image hashes, the answer
schema, the question's name); answers and errors are written in each protocol's JSON shape
(a chat completion, a ``generateContent`` response, each provider's error body).
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


def openai_body(request: RecordedRequest, text: str) -> dict:
    """A chat completion answering ``request`` with ``text``."""
    return {
        "id": f"chatcmpl-{hashlib.sha256(text.encode()).hexdigest()[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": _usage(request, text, "openai"),
    }


def gemini_body(request: RecordedRequest, text: str) -> dict:
    """A ``generateContent`` response answering ``request`` with ``text``."""
    return {
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}
        ],
        "usageMetadata": _usage(request, text, "gemini"),
        "modelVersion": request.model,
    }


def _usage(request: RecordedRequest, text: str, protocol: str) -> dict:
    prompt = len(request.text) // 4 + 258 * len(request.images)
    out = max(1, len(text) // 4)
    if protocol == "gemini":
        return {
            "promptTokenCount": prompt,
            "candidatesTokenCount": out,
            "totalTokenCount": prompt + out,
        }
    return {"prompt_tokens": prompt, "completion_tokens": out, "total_tokens": prompt + out}


def error_body(protocol: str, status: int) -> dict:
    """The error body ``protocol`` sends with an HTTP ``status``."""
    message = {429: "Resource exhausted: slow down", 500: "Internal error"}.get(
        status, f"error {status}"
    )
    if protocol == "gemini":
        names = {
            429: "RESOURCE_EXHAUSTED",
            500: "INTERNAL",
            503: "UNAVAILABLE",
            400: "INVALID_ARGUMENT",
        }
        return {
            "error": {"code": status, "message": message, "status": names.get(status, "UNKNOWN")}
        }
    kinds = {429: "rate_limit_error", 400: "invalid_request_error", 401: "authentication_error"}
    return {"error": {"message": message, "type": kinds.get(status, "server_error"), "code": None}}


#: HTTP reason phrases of the statuses the server sends.
REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
