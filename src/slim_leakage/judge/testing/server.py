"""A local judge server for tests and benchmarks: OpenAI and Gemini REST on 127.0.0.1.

:class:`ScriptedServer` is a real HTTP/1.1 server (asyncio, in a background thread, or a
separate process with ``python -m slim_leakage.judge.testing``) that speaks

- OpenAI chat completions: ``POST <base>/chat/completions`` (use ``server.openai_base_url``);
- Gemini ``generateContent``: ``POST /v1beta/models/<model>:generateContent``
  (use ``server.url`` as the SDK's ``base_url``).

By default it answers every judge stage sensibly, so a whole run can be judged through it:
extraction lists generic features per entity, typicality is a deterministic function of the
image bytes, and the ranking compares the two reports it is given (so both orders agree).
Faults are injected either scripted (the next requests get the replies you push) or at random
rates: ``429`` with ``Retry-After``, ``500``, dropped connections, delays past the client's
timeout, malformed, truncated or wrong-schema JSON answers, and position bias (a ranking that
prefers whichever image comes first). Every request is recorded.

Example::

    with ScriptedServer(latency=0.05) as server:
        server.push(Reply.status(429, retry_after=0.1), Reply.malformed())
        judge = get_judge("openai-compatible", base_url=server.openai_base_url)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import dataclasses
import hashlib
import json
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

#: Fault kinds accepted by ``fault_rates``.
FAULT_KINDS = (
    "429",
    "500",
    "drop",
    "timeout",
    "malformed",
    "truncated",
    "wrong_schema",
    "position_bias",
)
#: The ranking answer of a ``position_bias`` fault: the first image wins, whatever it shows.
BIASED_RANKING = json.dumps(
    {"less_leaky": "image1", "magnitude": "major", "reason": "the first image looks better"}
)


@dataclasses.dataclass(frozen=True)
class Reply:
    """One scripted reply.

    Attributes:
        kind: ``answer`` (HTTP 200 with an answer), ``status`` (an HTTP error) or ``drop``
            (close the connection without a response).
        text: The answer text; ``None`` means the default protocol answer.
        transform: ``truncate`` cuts the answer text in half.
        status: HTTP status for ``status`` replies.
        retry_after: ``Retry-After`` seconds sent with a ``status`` reply.
        delay: Seconds to wait before replying (beyond the server's latency).
        stage: Only requests of this stage consume the reply (``None``: any request).
    """

    kind: str = "answer"
    text: str | None = None
    transform: str | None = None
    status: int = 200
    retry_after: float | None = None
    delay: float = 0.0
    stage: str | None = None

    @classmethod
    def ok(cls, text: str | None = None, *, delay: float = 0.0, stage: str | None = None) -> Reply:
        """An answer (``None``: the default protocol answer)."""
        return cls("answer", text=text, delay=delay, stage=stage)

    @classmethod
    def error(
        cls, status: int, *, retry_after: float | None = None, stage: str | None = None
    ) -> Reply:
        """An HTTP error such as 429 (with ``Retry-After``) or 500."""
        return cls("status", status=status, retry_after=retry_after, stage=stage)

    @classmethod
    def drop(cls, *, stage: str | None = None) -> Reply:
        """Close the connection without answering."""
        return cls("drop", stage=stage)

    @classmethod
    def slow(cls, seconds: float, *, stage: str | None = None) -> Reply:
        """Answer normally, but only after ``seconds`` (past a client timeout)."""
        return cls("answer", delay=seconds, stage=stage)

    @classmethod
    def malformed(cls, *, stage: str | None = None) -> Reply:
        """An answer that is not JSON."""
        return cls("answer", text="Sure! Here is my assessment: {features: cat ears", stage=stage)

    @classmethod
    def truncated(cls, *, stage: str | None = None) -> Reply:
        """The default answer cut in half (as when the token limit is hit)."""
        return cls("answer", transform="truncate", stage=stage)

    @classmethod
    def wrong_schema(cls, *, stage: str | None = None) -> Reply:
        """Valid JSON that does not match the stage's schema."""
        return cls("answer", text='{"verdict": "looks fine", "score": 11}', stage=stage)


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


# -- default protocol answers -------------------------------------------------------------------

_FEATURE_KINDS = ("head shape", "ears", "coat pattern", "body proportions", "tail")


def _entities_from_schema(schema: Mapping[str, Any] | None) -> list[str]:
    try:
        return list(schema["properties"]["entities"]["items"]["properties"]["name"]["enum"])
    except (KeyError, TypeError):
        return []


def _unit(*parts: str) -> int:
    return int(hashlib.sha256("|".join(parts).encode()).hexdigest()[:8], 16)


def typicality_of(image_sha256: str, entity: str) -> int:
    """The default answer's typicality (1-5) of ``entity`` in the image with that SHA-256."""
    return 1 + _unit(image_sha256, entity) % 5


_REPORT = re.compile(r'<report image="(\d)">\s*(.*?)\s*</report>', re.S)


def _report_score(block: str) -> float:
    rows = [json.loads(line) for line in block.splitlines() if line.strip().startswith("{")]
    if not rows:
        return 0.0
    return sum(r.get("typicality", 0) for r in rows) / len(rows)


def default_answer(request: RecordedRequest) -> str:
    """A schema-valid, sensible answer to a judge request (see the module docstring)."""
    stage = request.stage.split("+", 1)[0]
    entities = _entities_from_schema(request.schema)
    if stage.startswith("extraction"):
        source = "reference" if stage == "extraction-images" else "typical"
        return json.dumps(
            {
                "entities": [
                    {"name": e, "features": [f"{source} {e} {kind}" for kind in _FEATURE_KINDS[:3]]}
                    for e in entities
                ]
            }
        )
    if stage == "typicality":
        image = request.images[0] if request.images else ""
        rows = []
        for e in entities:
            score = typicality_of(image, e)
            others = [o for o in entities if o != e]
            borrowed = [f"{others[0]} {_FEATURE_KINDS[score % 5]}"] if score <= 3 and others else []
            rows.append(
                {
                    "name": e,
                    "present": True,
                    "typicality": score,
                    "borrowed_features": borrowed,
                    "evidence": f"the {e} looks {'typical' if score >= 4 else 'mixed'}",
                }
            )
        return json.dumps({"entities": rows})
    if stage == "ranking":
        scores = {n: _report_score(b) for n, b in _REPORT.findall(request.text)}
        diff = scores.get("2", 0.0) - scores.get("1", 0.0)
        if abs(diff) < 0.25:
            return json.dumps(
                {"less_leaky": "neither", "magnitude": "none", "reason": "similar reports"}
            )
        return json.dumps(
            {
                "less_leaky": "image2" if diff > 0 else "image1",
                "magnitude": "major" if abs(diff) >= 1.5 else "minor",
                "reason": f"mean typicality differs by {abs(diff):.2f}",
            }
        )
    return json.dumps({"answer": "unknown stage"})


# -- request parsing ----------------------------------------------------------------------------


def _b64(text: str) -> bytes:
    # The Gemini SDK sends URL-safe base64, sometimes without padding.
    text = text.replace("-", "+").replace("_", "/")
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _parse_openai(path: str, body: dict, has_auth: bool) -> RecordedRequest:
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


def _parse_gemini(path: str, body: dict, has_auth: bool) -> RecordedRequest:
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


def _openai_body(request: RecordedRequest, text: str) -> dict:
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


def _gemini_body(request: RecordedRequest, text: str) -> dict:
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


def _error_body(protocol: str, status: int) -> dict:
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


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class ScriptedServer:
    """The local OpenAI + Gemini protocol server (see the module docstring).

    Args:
        latency: Seconds every request waits before its reply (an injected per-request latency).
        fault_rates: Fault kind (one of :data:`FAULT_KINDS`) -> probability per request, drawn
            from a seeded generator when no scripted reply applies.
        retry_after: ``Retry-After`` seconds sent with random 429 faults.
        timeout_delay: Seconds a random ``timeout`` fault waits before answering.
        answer: ``f(request) -> str | None`` overriding the default answers (``None``: default).
        seed: Seed of the fault generator.
        port: TCP port (0: any free port).
    """

    def __init__(
        self,
        *,
        latency: float = 0.0,
        fault_rates: Mapping[str, float] | None = None,
        retry_after: float = 0.05,
        timeout_delay: float = 30.0,
        answer: Callable[[RecordedRequest], str | None] | None = None,
        seed: int = 0,
        port: int = 0,
    ) -> None:
        unknown = sorted(set(fault_rates or {}) - set(FAULT_KINDS))
        if unknown:
            raise ValueError(f"unknown fault kind {unknown[0]!r}; known: {', '.join(FAULT_KINDS)}")
        self.latency = latency
        self.fault_rates = dict(fault_rates or {})
        self.retry_after = retry_after
        self.timeout_delay = timeout_delay
        self.answer = answer
        self.requests: list[RecordedRequest] = []
        self._script: collections.deque[Reply] = collections.deque()
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task] = set()
        self.port = 0

    # -- lifecycle ------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (the Gemini SDK's ``base_url``)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1`` (the OpenAI SDK's ``base_url``)."""
        return f"{self.url}/v1"

    def start(self) -> ScriptedServer:
        """Start serving in a background thread; returns once the port is bound."""
        ready = threading.Event()
        errors: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._handle, "127.0.0.1", self._port, backlog=1024)
                )
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=serve, name="slim-judge-server", daemon=True)
        self._thread.start()
        ready.wait()
        if errors:
            raise errors[0]
        return self

    def stop(self) -> None:
        """Stop serving and close open connections."""
        loop = self._loop
        if loop is None:
            return

        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.sleep(0)

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._loop = None

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scripting ------------------------------------------------------------------------------
    def push(self, *replies: Reply) -> None:
        """Queue replies for the next matching requests, in order."""
        with self._lock:
            self._script.extend(replies)

    def pending(self) -> int:
        """Scripted replies not consumed yet."""
        with self._lock:
            return len(self._script)

    def count(self, stage: str | None = None, reply: str | None = None) -> int:
        """Requests received (optionally of one stage and/or one reply kind)."""
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (stage is None or r.stage == stage) and (reply is None or r.reply == reply)
            )

    def _choose(self, stage: str) -> Reply:
        with self._lock:
            for i, reply in enumerate(self._script):
                if reply.stage is None or reply.stage == stage:
                    del self._script[i]
                    return reply
            for kind, rate in self.fault_rates.items():
                if kind == "position_bias" and stage.split("+", 1)[0] != "ranking":
                    continue  # bias is a property of comparisons only
                if self._rng.random() < rate:
                    return self._fault(kind)
        return Reply.ok()

    def _fault(self, kind: str) -> Reply:
        if kind == "429":
            return Reply.error(429, retry_after=self.retry_after)
        if kind == "500":
            return Reply.error(500)
        if kind == "drop":
            return Reply.drop()
        if kind == "timeout":
            return Reply.slow(self.timeout_delay)
        if kind == "position_bias":
            return Reply.ok(BIASED_RANKING)
        return {
            "malformed": Reply.malformed,
            "truncated": Reply.truncated,
            "wrong_schema": Reply.wrong_schema,
        }[kind]()

    # -- HTTP -----------------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                keep = await self._respond(method, path, headers, body, writer)
                if not keep or headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _respond(self, method, path, headers, raw, writer) -> bool:
        has_auth = "authorization" in headers or "x-goog-api-key" in headers
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            body = None
        if method == "GET" and path.split("?", 1)[0] == "/_stats":
            # For benchmarks that run the server in another process.
            with self._lock:
                stages = collections.Counter(r.stage for r in self.requests)
                replies = collections.Counter(r.reply for r in self.requests)
            await self._send(
                writer,
                200,
                {
                    "requests": len(self.requests),
                    "stages": stages,
                    "replies": replies,
                    "cpu_s": time.process_time(),
                },
            )
            return True
        if method != "POST" or body is None:
            await self._send(writer, 400, {"error": {"message": "bad request"}})
            return True
        route = path.split("?", 1)[0]
        if route.endswith("/chat/completions"):
            request = _parse_openai(route, body, has_auth)
        elif ":generateContent" in route:
            request = _parse_gemini(route, body, has_auth)
        else:
            await self._send(writer, 404, {"error": {"message": f"no route {route}"}})
            return True
        reply = self._choose(request.stage)
        tag = reply.kind if reply.kind != "status" else f"status:{reply.status}"
        if reply.transform:
            tag = f"answer:{reply.transform}"
        elif reply.text is not None:
            tag = "answer:scripted"
        with self._lock:
            self.requests.append(dataclasses.replace(request, reply=tag, time=time.monotonic()))
        delay = self.latency + reply.delay
        if delay > 0:
            await asyncio.sleep(delay)
        if reply.kind == "drop":
            writer.transport.abort()
            return False
        if reply.kind == "status":
            extra = {}
            if reply.retry_after is not None:
                extra["Retry-After"] = f"{reply.retry_after:g}"
            await self._send(
                writer, reply.status, _error_body(request.protocol, reply.status), extra
            )
            return True
        text = reply.text
        if text is None and self.answer is not None:
            text = self.answer(request)
        if text is None:
            text = default_answer(request)
        if reply.transform == "truncate":
            text = text[: len(text) // 2]
        payload = (_openai_body if request.protocol == "openai" else _gemini_body)(request, text)
        await self._send(writer, 200, payload)
        return True

    @staticmethod
    async def _send(writer, status: int, payload: dict, extra: dict | None = None) -> None:
        data = json.dumps(payload).encode()
        head = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}",
            "Content-Type: application/json",
            f"Content-Length: {len(data)}",
        ]
        head += [f"{k}: {v}" for k, v in (extra or {}).items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
        await writer.drain()


def main(argv: list[str] | None = None) -> int:
    """``python -m slim_leakage.judge.testing``: serve until interrupted, print the URL."""
    parser = argparse.ArgumentParser(description="Local OpenAI/Gemini judge protocol server.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND=RATE",
        help=f"random fault rate, KIND in {', '.join(FAULT_KINDS)} (repeatable)",
    )
    parser.add_argument("--retry-after", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rates = {}
    for item in args.fault:
        kind, _, rate = item.partition("=")
        rates[kind] = float(rate)
    server = ScriptedServer(
        latency=args.latency,
        fault_rates=rates,
        retry_after=args.retry_after,
        seed=args.seed,
        port=args.port,
    ).start()
    print(server.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
