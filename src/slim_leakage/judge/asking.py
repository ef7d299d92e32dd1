"""One question to a backend, asked once: the per-request flow of every judge.

:class:`Asker` builds a backend request from a rendered question (its cache key included) and
answers it: from the cache, else by joining an identical request already in flight, else by
sending it within the rate limits, retrying transient failures with backoff, and sending an
unusable answer back once with the repair prompt. Only answers that parse are stored. Every
request goes through :meth:`Asker.ask`, so what is recorded per request (tokens, cost, and the
cache row) is decided in one place.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import JudgeError, JudgeParseError, TransientBackendError
from . import pricing
from .backends.base import Backend, BackendRequest, BackendResponse, Decoding, ImageInput
from .cache import AnswerCache, default_cache_dir, request_key
from .config import JudgeConfig
from .limits import RateLimiter, backoff_delay
from .protocol import JudgeStats
from .stages import Question, repair_text


@dataclasses.dataclass(frozen=True)
class Answer:
    """The outcome of one request.

    Attributes:
        output: The parsed answer, or ``None`` on error.
        error: Why there is no answer (``<question>: <reason>``), else ``None``.
        calls: Backend calls it took (0 from the cache or a shared request).
        key: The request's cache key.
    """

    output: dict | None
    error: str | None
    calls: int
    key: str


class Asker:
    """Asks a backend questions through the cache, the limits, retries and one repair.

    Args:
        backend: The backend answering.
        config: The judge options.
        stats: The counters to update.
    """

    def __init__(self, backend: Backend, config: JudgeConfig, stats: JudgeStats) -> None:
        self.backend = backend
        self.config = config
        self.stats = stats
        self.decoding = Decoding(config.temperature, config.max_output_tokens, config.seed)
        folder = Path(config.cache_dir).expanduser() if config.cache_dir else default_cache_dir()
        self.cache = AnswerCache(folder / "judge-cache.sqlite3" if config.cache else None)
        self.limiter = RateLimiter(config.concurrency, config.rpm, config.tpm)
        self._family = pricing.token_family(backend.name, backend.model)
        self._inflight: dict[str, asyncio.Future] = {}
        self._rng = random.Random(0)

    def request(
        self,
        question: Question,
        text: str,
        images: Sequence[ImageInput],
        schema: dict,
        context: Mapping[str, Any],
    ) -> BackendRequest:
        """The backend request of a rendered question, with its cache key."""
        key = request_key(
            backend=self.backend.name,
            model=self.backend.model,
            stage=question.name,
            version=question.version,
            text=text,
            schema=schema,
            image_sha256s=[im.sha256 for im in images],
            image_labels=[im.label for im in images],
            decoding=self.decoding.to_dict(),
        )
        return BackendRequest(
            stage=question.name,
            version=question.version,
            text=text,
            images=tuple(images),
            schema=schema,
            decoding=self.decoding,
            context=dict(context),
            key=key,
        )

    async def ask(
        self, request: BackendRequest, question: Question, entities: Sequence[str]
    ) -> Answer:
        """The parsed answer to ``request`` (an error answer when there is none)."""
        hit = self.cache.get(request.key)
        if hit is not None:
            try:
                output = question.parse(hit["text"], entities)
            except JudgeParseError:
                pass  # a stored answer that no longer parses is asked again
            else:
                self.stats.cache_hits += 1
                return Answer(output, None, 0, request.key)
        pending = self._inflight.get(request.key)
        if pending is not None:
            self.stats.shared += 1
            answer = await asyncio.shield(pending)
            return dataclasses.replace(answer, calls=0)
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._inflight[request.key] = future
        try:
            answer = await self._ask_backend(request, question, entities)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: joiners re-raise it themselves
            raise
        finally:
            self._inflight.pop(request.key, None)
        future.set_result(answer)
        return answer

    async def finish(self) -> None:
        """End a batch of questions: forget in-flight requests, release the backend's clients."""
        self.limiter.reset_loop()
        self._inflight.clear()
        await self.backend.aclose()

    def close(self) -> None:
        """Close the cache."""
        self.cache.close()

    # -- one request ----------------------------------------------------------------------------
    async def _ask_backend(
        self, request: BackendRequest, question: Question, entities: Sequence[str]
    ) -> Answer:
        response, calls, error = await self._send(request)
        if error is not None:
            return Answer(None, error, calls, request.key)
        try:
            output = question.parse(response.text, entities)
        except JudgeParseError as exc:
            problem = exc.message
        else:
            self._store(request, response)
            return Answer(output, None, calls, request.key)
        self.stats.repairs += 1
        repair = dataclasses.replace(
            request,
            stage=f"{request.stage}+repair",
            text=request.text + repair_text(problem, response.text[:4000]),
        )
        response2, more, error = await self._send(repair)
        calls += more
        if error is not None:
            self.stats.failed_requests += 1
            return Answer(
                None,
                f"{request.stage}: unusable answer ({problem}); the repair request failed: {error}",
                calls,
                request.key,
            )
        try:
            output = question.parse(response2.text, entities)
        except JudgeParseError as exc:
            self.stats.failed_requests += 1
            return Answer(
                None,
                f"{request.stage}: unusable answer after one repair: {exc.message}",
                calls,
                request.key,
            )
        self._store(request, response2)
        return Answer(output, None, calls, request.key)

    def _store(self, request: BackendRequest, response: BackendResponse) -> None:
        self.cache.put(
            request.key,
            backend=self.backend.name,
            model=self.backend.model,
            stage=request.stage,
            version=request.version,
            text=response.text,
            input_tokens=response.input_tokens,
            output_tokens=response.output_tokens,
        )

    def _estimate(self, request: BackendRequest) -> int:
        sizes = [(im.width or 512, im.height or 512) for im in request.images]
        return pricing.request_tokens(request.text, sizes, family=self._family)

    async def _send(
        self, request: BackendRequest
    ) -> tuple[BackendResponse | None, int, str | None]:
        cfg = self.config
        estimate = self._estimate(request)
        attempts = 0
        last: Exception | None = None
        for attempt in range(cfg.max_retries + 1):
            await self.limiter.acquire(estimate)
            actual = None
            try:
                attempts += 1
                self.stats.calls += 1
                responses = await asyncio.wait_for(self.backend.complete([request]), cfg.timeout)
                if not isinstance(responses, list) or len(responses) != 1:
                    raise JudgeError(
                        f"backend {self.backend.name!r} returned {len(responses)} answers "
                        "for 1 request (it must return one per request)."
                    )
                response = responses[0]
                actual = self._account(response, estimate)
                return response, attempts, None
            except TransientBackendError as exc:
                last = exc
                if exc.status == 429 and exc.retry_after:
                    self.limiter.pause(exc.retry_after)
            except asyncio.TimeoutError:
                last = TransientBackendError(f"no answer within {cfg.timeout:g} s")
            except JudgeError as exc:
                self.stats.failed_requests += 1
                return None, attempts, f"{request.stage}: {exc.message}"
            except Exception as exc:  # a backend bug fails this request, not the whole run
                self.stats.failed_requests += 1
                return None, attempts, f"{request.stage}: {type(exc).__name__}: {exc}"
            finally:
                self.limiter.release(estimate, actual)
            if attempt < cfg.max_retries:
                self.stats.retries += 1
                retry_after = getattr(last, "retry_after", None)
                delay = (
                    retry_after
                    if retry_after is not None
                    else backoff_delay(
                        attempt, base=cfg.backoff_base, cap=cfg.backoff_cap, rng=self._rng
                    )
                )
                await asyncio.sleep(delay)
        self.stats.failed_requests += 1
        return None, attempts, f"{request.stage}: gave up after {attempts} attempts: {last}"

    def _account(self, response: BackendResponse, estimate: int) -> int:
        tin = response.input_tokens if response.input_tokens is not None else estimate
        tout = (
            response.output_tokens
            if response.output_tokens is not None
            else pricing.text_tokens(response.text)
        )
        self.stats.input_tokens += tin
        self.stats.output_tokens += tout
        cost, priced = pricing.cost_usd(self.backend.name, self.backend.model, tin, tout)
        self.stats.cost_usd += cost
        self.stats.priced = self.stats.priced and priced
        return tin + tout
