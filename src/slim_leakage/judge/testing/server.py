"""The local protocol server: scripted and random faults over the OpenAI and Gemini wire.

See the package docstring (:mod:`slim_leakage.judge.testing`) for what it speaks and answers.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import json
import random
import threading
import time
from collections.abc import Callable, Mapping

from ..stages import PROTOCOL, RANKING_QUESTION, Pipeline
from .answers import default_answer
from .batch import BatchService
from .errors import (
    REASONS,
    error_body,
    gemini_limit_zero,
    gemini_rate_limit,
    openai_insufficient_quota,
    retry_after_headers,
)
from .replies import (
    BIASED_RANKING,
    FAULT_KINDS,
    HOPELESS_KINDS,
    REROUTED_MODEL,
    SHAPES,
    Outcome,
    Reply,
    fault_reply,
)
from .wire import (
    RecordedRequest,
    gemini_blocked_prompt,
    gemini_body,
    openai_body,
    output_limit,
    parse_gemini,
    parse_openai,
    thinking_budget,
)

__all__ = [
    "BIASED_RANKING",
    "FAULT_KINDS",
    "HOPELESS_KINDS",
    "REROUTED_MODEL",
    "SHAPES",
    "Outcome",
    "Reply",
    "ScriptedServer",
    "main",
]


class ScriptedServer:
    """The local OpenAI + Gemini protocol server (see the package docstring).

    Args:
        latency: Seconds every request waits before its reply (an injected per-request latency).
        fault_rates: Fault kind (one of :data:`FAULT_KINDS`) -> probability per request, drawn
            from a seeded generator when no scripted reply applies.
        retry_after: ``Retry-After`` seconds sent with random 429 faults.
        timeout_delay: Seconds a random ``timeout`` fault waits before answering.
        answer: ``f(request) -> str | None`` overriding the default answers (``None``: default).
        seed: Seed of the fault generator.
        port: TCP port (0: any free port).
        pipeline: The stages whose questions get default answers (each question's
            :meth:`~slim_leakage.judge.stages.Question.local_answer`).
        shapes: ``simple`` (errors are bare status codes with ``Retry-After``) or ``real``:
            answers carry usage as the services report it, a Gemini 429 carries its wait only
            in a ``RetryInfo`` body, and faults take the services' shapes.
        thinking: Tokens every answer "thinks" before it answers (capped by a Gemini
            ``thinkingBudget``), counted against the request's output limit: when they and the
            answer do not fit, the reply is ``MAX_TOKENS`` with no text, as a thinking model's.
        reroute: Requested model -> model named in the answer (``modelVersion``, ``model``).
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
        pipeline: Pipeline = PROTOCOL,
        shapes: str = "simple",
        thinking: int = 0,
        reroute: Mapping[str, str] | None = None,
    ) -> None:
        unknown = sorted(set(fault_rates or {}) - set(FAULT_KINDS))
        if unknown:
            raise ValueError(f"unknown fault kind {unknown[0]!r}; known: {', '.join(FAULT_KINDS)}")
        if shapes not in ("simple", "real"):
            raise ValueError(f"shapes={shapes!r} is not 'simple' or 'real'")
        self.shapes = shapes
        self.thinking = thinking
        self.reroute = dict(reroute or {})
        self.latency = latency
        self.fault_rates = dict(fault_rates or {})
        self.retry_after = retry_after
        self.timeout_delay = timeout_delay
        self.answer = answer
        self.pipeline = pipeline
        self.requests: list[RecordedRequest] = []
        self._script: collections.deque[Reply] = collections.deque()
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        #: Random faults injected so far, by kind (scripted replies are not counted).
        self.faults_injected: collections.Counter[str] = collections.Counter()
        #: TCP connections accepted (a client that keeps its connections alive opens few).
        self.connections = 0
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task] = set()
        self.port = 0
        self.batches = BatchService(self)  # the two batch interfaces (batch.py)

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
                if kind == "position_bias" and stage.split("+", 1)[0] != RANKING_QUESTION.name:
                    continue  # bias is a property of comparisons only
                if self._rng.random() < rate:
                    self.faults_injected[kind] += 1
                    return fault_reply(
                        kind, retry_after=self.retry_after, timeout_delay=self.timeout_delay
                    )
        return Reply.ok()

    # -- HTTP -----------------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
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
                    "connections": self.connections,
                    "stages": stages,
                    "replies": replies,
                    "cpu_s": time.process_time(),
                },
            )
            return True
        route = path.split("?", 1)[0]
        batch = self.batches.handle(method, route, headers, raw, has_auth)
        if batch is not None:
            await self._send_bytes(writer, *batch)
            return True
        if method != "POST" or body is None:
            await self._send(writer, 400, {"error": {"message": "bad request"}})
            return True
        if route.endswith("/chat/completions"):
            request = parse_openai(route, body, has_auth)
        elif ":generateContent" in route:
            request = parse_gemini(route, body, has_auth)
        else:
            await self._send(writer, 404, {"error": {"message": f"no route {route}"}})
            return True
        outcome = self.outcome(request)
        if outcome.delay > 0:
            await asyncio.sleep(outcome.delay)
        if outcome.status is None:
            writer.transport.abort()
            return False
        await self._send(writer, outcome.status, outcome.payload, outcome.headers)
        return True

    def outcome(self, request: RecordedRequest) -> Outcome:
        """What the server answers ``request`` (its reply chosen, the request recorded)."""
        reply = self._choose(request.stage)
        real_429 = reply.kind == "status" and reply.status == 429 and self.shapes == "real"
        if real_429 and request.protocol == "gemini":
            # Gemini sends its wait in the body only (google.rpc.RetryInfo).
            reply = dataclasses.replace(reply, kind="shape", shape="retry_info", status=200)
        tag = reply.kind if reply.kind != "status" else f"status:{reply.status}"
        if reply.transform:
            tag = f"answer:{reply.transform}"
        elif reply.text is not None:
            tag = "answer:scripted"
        elif reply.kind == "shape":
            tag = f"shape:{reply.shape}"
        elif reply.model is not None:
            tag = "answer:rerouted"
        with self._lock:
            self.requests.append(dataclasses.replace(request, reply=tag, time=time.monotonic()))
        delay = self.latency + reply.delay
        if reply.kind == "drop":
            return Outcome(None, {}, {}, delay)
        if reply.kind == "status":
            extra = {**retry_after_headers(reply.retry_after), **dict(reply.headers)}
            return Outcome(reply.status, error_body(request.protocol, reply.status), extra, delay)
        if reply.kind == "shape":
            status, payload, extra = self._shape(request, reply)
            return Outcome(status, payload, extra, delay)
        text = reply.text
        if text is None and self.answer is not None:
            text = self.answer(request)
        if text is None:
            text = default_answer(request, self.pipeline)
        if reply.transform == "truncate":
            text = text[: len(text) // 2]
        served = reply.model or self.reroute.get(request.model, request.model)
        body = openai_body if request.protocol == "openai" else gemini_body
        if reply.finish is not None:
            return Outcome(200, body(request, None, model=served, finish=reply.finish), {}, delay)
        thought = self._thought(request)
        limit = output_limit(request)
        if thought and limit is not None and thought + max(1, len(text) // 4) > limit:
            finish = "length" if request.protocol == "openai" else "MAX_TOKENS"
            payload = body(request, None, model=served, finish=finish, thinking=limit)
        else:
            payload = body(request, text, model=served, thinking=thought)
        return Outcome(200, payload, {}, delay)

    def _thought(self, request: RecordedRequest) -> int:
        """Thinking tokens an answer spends: the server's ``thinking``, within a set budget."""
        budget = thinking_budget(request) if request.protocol == "gemini" else None
        return self.thinking if budget is None else min(self.thinking, budget)

    def _shape(self, request: RecordedRequest, reply: Reply) -> tuple[int, dict, dict]:
        """Status, body and extra headers of a real-service shape (see :meth:`Reply.real`)."""
        gemini = request.protocol == "gemini"
        name = reply.shape
        if name == "retry_info":
            if gemini:  # the wait is in the body only
                return 429, gemini_rate_limit(request.model, retry_delay=reply.retry_after), {}
            return 429, error_body("openai", 429), retry_after_headers(reply.retry_after)
        if name == "overloaded":
            return 503, error_body(request.protocol, 503), {}
        if name == "max_tokens":
            limit = output_limit(request) or 1024
            if gemini:
                return 200, gemini_body(request, None, finish="MAX_TOKENS", thinking=limit), {}
            return 200, openai_body(request, None, finish="length", thinking=limit), {}
        if name in ("safety", "blocked_prompt"):
            if not gemini:
                return 200, openai_body(request, None, finish="content_filter"), {}
            if name == "safety":
                return 200, gemini_body(request, None, finish="SAFETY"), {}
            return 200, gemini_blocked_prompt(request), {}
        # daily_quota / insufficient_quota / limit_zero
        if gemini and name == "daily_quota":
            return (
                429,
                gemini_rate_limit(request.model, retry_delay=reply.retry_after, daily=True),
                {},
            )
        if gemini:
            delay = 20.04466179 if reply.retry_after is None else reply.retry_after
            return 429, gemini_limit_zero(request.model, retry_delay=delay), {}
        return 429, openai_insufficient_quota(), {}

    @staticmethod
    async def _send(writer, status: int, payload: dict, extra: dict | None = None) -> None:
        await ScriptedServer._send_bytes(
            writer, status, json.dumps(payload).encode(), "application/json", extra
        )

    @staticmethod
    async def _send_bytes(writer, status, data: bytes, ctype: str, extra=None) -> None:
        head = [
            f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}",
            f"Content-Type: {ctype}",
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
    parser.add_argument(
        "--shapes", choices=["simple", "real"], default="simple", help="error and answer shapes"
    )
    parser.add_argument("--thinking", type=int, default=0, help="thinking tokens per answer")
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
        shapes=args.shapes,
        thinking=args.thinking,
    ).start()
    print(server.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
    return 0
