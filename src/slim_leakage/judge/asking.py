"""One question to a backend, asked once: the per-request flow of every judge.

:class:`Asker` builds a backend request from a rendered question (its cache key included) and
answers it: from the cache, else by joining an identical request already in flight, else by
sending it within the rate limits, retrying transient failures with backoff, and sending an
unusable answer back once with the repair prompt. Only answers that parse are stored. Every
request goes through :meth:`Asker.ask`, so what is recorded per request (tokens, thinking
tokens and cost per question, the model that answered, and the cache row) is decided in one
place. With ``batch=true`` requests go through a :class:`~.batching.Batcher` (the provider's
batch interface) instead of the rate limits, and are priced at the batch price.

Answers that no retry can change are not retried: an answer that ran out of output tokens
before any text is asked once more with a larger budget, then fails its sample; a blocked
answer fails its sample at once; a quota that will not come back within the run (a per-day
quota, an account out of credit) stops every request and ends the run with
:class:`~slim_leakage.errors.QuotaExhaustedError`, everything answered so far kept.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import (
    ConfigError,
    JudgeError,
    JudgeParseError,
    OutputLimitError,
    QuotaExhaustedError,
    TransientBackendError,
)
from . import pricing
from .backends.base import Backend, BackendRequest, BackendResponse, Decoding, ImageInput
from .cache import AnswerCache, default_cache_dir, request_key
from .config import JudgeConfig
from .limits import RateLimiter, backoff_delay, server_delay
from .protocol import JudgeStats
from .stages import Question, repair_text


@dataclasses.dataclass
class Spent:
    """Tokens and cost of the calls one request made (retries, the enlarged retry, the repair).

    Attributes:
        input_tokens: Input tokens reported (or estimated).
        output_tokens: Answer tokens reported (or estimated), thinking excluded.
        thinking_tokens: Thinking tokens reported; billed as output.
        cost_usd: Their price from the model table (0 for an unpriced model).
    """

    input_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0
    cost_usd: float = 0.0


@dataclasses.dataclass(frozen=True)
class Answer:
    """The outcome of one request.

    Attributes:
        output: The parsed answer, or ``None`` on error.
        error: Why there is no answer (``<question>: <reason>``), else ``None``.
        calls: Backend calls it took (0 from the cache or a shared request).
        key: The request's cache key.
        served_model: The model the API said answered (from the cache row on a hit).
        spent: Tokens and cost of the calls it took (nothing from the cache or a shared
            request).
    """

    output: dict | None
    error: str | None
    calls: int
    key: str
    served_model: str | None = None
    spent: Spent = dataclasses.field(default_factory=Spent)


#: How much larger the output budget is on the one retry of an answer that hit the limit.
OUTPUT_RETRY_FACTOR = 4


class Asker:
    """Asks a backend questions through the cache, the limits, retries and one repair.

    Args:
        backend: The backend answering.
        config: The judge options.
        stats: The counters to update.
        notify: Called with a one-line notice (the first time another model than the one
            requested answers).
    """

    def __init__(
        self,
        backend: Backend,
        config: JudgeConfig,
        stats: JudgeStats,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        self.backend = backend
        self.config = config
        self.stats = stats
        self.notify = notify or (lambda line: None)
        self.decoding = Decoding(config.temperature, config.max_output_tokens, config.seed)
        folder = Path(config.cache_dir).expanduser() if config.cache_dir else default_cache_dir()
        self.cache = AnswerCache(folder / "judge-cache.sqlite3" if config.cache else None)
        self.limiter = RateLimiter(config.concurrency, config.rpm, config.tpm)
        self._family = pricing.token_family(backend.name, backend.model)
        self._settings = backend.wire_settings()
        self._inflight: dict[str, asyncio.Future] = {}
        self._rng = random.Random(0)
        self._rerouted: set[str] = set()
        self._stopped: QuotaExhaustedError | None = None
        #: The models named as having answered, for every answer given (cached ones too).
        self.served: set[str] = set()
        self.batcher = self._batcher(folder) if config.batch else None

    def _batcher(self, folder: Path):
        """The batcher of ``batch=true`` (its book in the cache folder until a run gives one)."""
        from .batching import Batcher, default_book

        interface = self.backend.batch_interface()
        if interface is None:
            raise ConfigError(
                f"The judge {self.backend.name!r} has no batch interface; batch=true works with "
                "the gemini and openai judges.",
                hint="Leave out --judge-arg batch=true for this judge.",
            )
        return Batcher(
            interface, default_book(folder), poll=self.config.batch_poll, notify=self.notify
        )

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
            settings=self._settings,
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
        answer = await self._ask(request, question, entities)
        if answer.served_model:
            self.served.add(answer.served_model)
        return answer

    async def _ask(
        self, request: BackendRequest, question: Question, entities: Sequence[str]
    ) -> Answer:
        hit = self.cache.get(request.key)
        if hit is not None:
            try:
                output = question.parse(hit["text"], entities)
            except JudgeParseError:
                pass  # a stored answer that no longer parses is asked again
            else:
                self.stats.cache_hits += 1
                return Answer(output, None, 0, request.key, hit.get("served_model"))
        pending = self._inflight.get(request.key)
        if pending is not None:
            self.stats.shared += 1
            answer = await asyncio.shield(pending)
            return dataclasses.replace(answer, calls=0, spent=Spent())
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
        if self.batcher is not None:
            self.batcher.reset()
        await self.backend.aclose()

    @property
    def stopped(self) -> QuotaExhaustedError | None:
        """The quota error that stopped all requests, if one did."""
        return self._stopped

    def close(self) -> None:
        """Close the cache."""
        self.cache.close()

    # -- one request ----------------------------------------------------------------------------
    async def _ask_backend(
        self, request: BackendRequest, question: Question, entities: Sequence[str]
    ) -> Answer:
        spent = Spent()
        response, calls, error = await self._send(request, spent)
        if error is not None:
            return Answer(None, error, calls, request.key, spent=spent)
        try:
            output = question.parse(response.text, entities)
        except JudgeParseError as exc:
            problem = exc.message
        else:
            self._store(request, response)
            return Answer(output, None, calls, request.key, response.model, spent)
        self.stats.repairs += 1
        repair = dataclasses.replace(
            request,
            stage=f"{request.stage}+repair",
            text=request.text + repair_text(problem, response.text[:4000]),
        )
        response2, more, error = await self._send(repair, spent)
        calls += more
        if error is not None:
            self.stats.failed_requests += 1
            return Answer(
                None,
                f"{request.stage}: unusable answer ({problem}); the repair request failed: {error}",
                calls,
                request.key,
                spent=spent,
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
                spent=spent,
            )
        self._store(request, response2)
        return Answer(output, None, calls, request.key, response2.model, spent)

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
            served_model=response.model,
            thinking_tokens=response.thinking_tokens,
        )

    def _estimate(self, request: BackendRequest) -> int:
        sizes = [(im.width or 512, im.height or 512) for im in request.images]
        return pricing.request_tokens(
            request.text, sizes, family=self._family, model=self.backend.model
        )

    async def _send(
        self, request: BackendRequest, spent: Spent
    ) -> tuple[BackendResponse | None, int, str | None]:
        cfg = self.config
        estimate = self._estimate(request)
        attempts = 0
        last: Exception | None = None
        enlarged = False
        attempt = 0
        told = 0  # retries so far that waited on the server's word
        wait: float | None = None
        while attempt <= cfg.max_retries:
            if self._stopped is not None:
                raise self._stopped
            batch = self.batcher is not None
            if not batch:
                await self.limiter.acquire(estimate)
                if self._stopped is not None:  # the run stopped while this one waited
                    self.limiter.release(estimate, None)
                    raise self._stopped
            actual = None
            try:
                attempts += 1
                self.stats.count_call(request.base_stage)
                if batch:
                    # A batch takes hours, under the batch interface's own limits.
                    responses = [await self.batcher.ask(request)]
                else:
                    responses = await asyncio.wait_for(
                        self.backend.complete([request]), cfg.timeout
                    )
                if not isinstance(responses, list) or len(responses) != 1:
                    raise JudgeError(
                        f"backend {self.backend.name!r} returned {len(responses)} answers "
                        "for 1 request (it must return one per request)."
                    )
                response = responses[0]
                actual = self._account(request, response, estimate, spent)
                return response, attempts, None
            except TransientBackendError as exc:
                last = exc
                wait = None
                if exc.retry_after is not None:
                    # The server said how long to wait (Retry-After, Gemini's RetryInfo): the
                    # same word again after it was honoured grows the wait, up to a cap.
                    wait = server_delay(exc.retry_after, told, cap=cfg.backoff_cap, rng=self._rng)
                    told += 1
                    if exc.status in (429, 503) and wait > 0:
                        # every new request waits too, not only this one
                        self.limiter.pause(wait)
            except asyncio.TimeoutError:
                last = TransientBackendError(f"no answer within {cfg.timeout:g} s")
                wait = None
            except QuotaExhaustedError as exc:
                self.stats.failed_requests += 1
                if self._stopped is None:
                    self._stopped = exc
                raise
            except OutputLimitError as exc:
                # The cut-off answer's thinking is billed: count it like any answer's.
                cut_off = BackendResponse(
                    text="",
                    input_tokens=exc.input_tokens,
                    output_tokens=0,
                    thinking_tokens=exc.thinking_tokens,
                )
                actual = self._account(request, cut_off, estimate, spent)
                if enlarged:
                    self.stats.failed_requests += 1
                    return None, attempts, f"{request.stage}: {self._limit_problem(exc)}"
                # Thinking used the whole budget before any answer: once more with room for
                # both, which is not a retry of a transient failure.
                enlarged = True
                self.stats.output_limit_retries += 1
                bigger = request.decoding.max_output_tokens * OUTPUT_RETRY_FACTOR
                request = dataclasses.replace(
                    request,
                    decoding=dataclasses.replace(request.decoding, max_output_tokens=bigger),
                )
                continue
            except JudgeError as exc:
                self.stats.failed_requests += 1
                return None, attempts, f"{request.stage}: {exc.message}"
            except Exception as exc:  # a backend bug fails this request, not the whole run
                self.stats.failed_requests += 1
                return None, attempts, f"{request.stage}: {type(exc).__name__}: {exc}"
            finally:
                if not batch:
                    self.limiter.release(estimate, actual)
            attempt += 1
            if attempt <= cfg.max_retries:
                self.stats.retries += 1
                delay = (
                    wait
                    if wait is not None
                    else backoff_delay(
                        attempt - 1, base=cfg.backoff_base, cap=cfg.backoff_cap, rng=self._rng
                    )
                )
                await asyncio.sleep(delay)
        self.stats.failed_requests += 1
        return None, attempts, f"{request.stage}: gave up after {attempts} attempts: {last}"

    @staticmethod
    def _limit_problem(exc: OutputLimitError) -> str:
        thought = (
            f", {exc.thinking_tokens} of them thinking" if exc.thinking_tokens is not None else ""
        )
        limit = f" of {exc.limit} tokens" if exc.limit else ""
        return (
            f"the answer reached the output limit{limit}{thought} before any usable text, "
            f"also with a {OUTPUT_RETRY_FACTOR}x larger budget ({exc.message})"
        )

    def _account(
        self, request: BackendRequest, response: BackendResponse, estimate: int, spent: Spent
    ) -> int:
        tin = response.input_tokens if response.input_tokens is not None else estimate
        tout = (
            response.output_tokens
            if response.output_tokens is not None
            else pricing.text_tokens(response.text)
        )
        thinking = response.thinking_tokens or 0
        cost, priced = pricing.cost_usd(
            self.backend.name,
            self.backend.model,
            tin,
            tout,
            thinking,
            batch=self.batcher is not None,
        )
        self.stats.add_usage(
            request.base_stage,
            input_tokens=tin,
            output_tokens=tout,
            thinking_tokens=thinking,
            cost_usd=cost,
            served_model=response.model,
        )
        self.stats.priced = self.stats.priced and priced
        spent.input_tokens += tin
        spent.output_tokens += tout
        spent.thinking_tokens += thinking
        spent.cost_usd += cost
        served = response.model
        if served and served != self.backend.model and served not in self._rerouted:
            self._rerouted.add(served)
            self.notify(
                f"requested model {self.backend.model!r} was answered by {served!r}; both are "
                "recorded (served_model in the cache, stage records, verdicts and manifest)"
            )
        return tin + tout + thinking
