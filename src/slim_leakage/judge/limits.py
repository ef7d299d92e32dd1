"""Request pacing: concurrency, requests- and tokens-per-minute budgets, backoff.

A rate-limited or failing backend slows a run down instead of crashing it: requests wait for
budget before they start, a ``429`` with ``Retry-After`` pauses every request (not only the one
that got it), and transient failures are retried with capped exponential backoff and jitter.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import itertools
import random
import time

from .._config import check_range

#: The place in the run of the item a request belongs to (set by the runner for each item):
#: free request slots go to the earliest item waiting, so items already under way finish
#: before new ones start their first stage. Requests outside any item come after all items.
ITEM_ORDER: contextvars.ContextVar[int] = contextvars.ContextVar("judge_item_order", default=2**62)


class PrioritySlots:
    """At most ``n`` holders at once; a freed slot goes to the waiter with the lowest priority
    value (first come among equals), not simply to the longest waiting one.

    With first-come slots, every item of a run's window asks its first stage before any item
    asks its second, so the items move through the stages in lockstep and, at the end of each
    window, the last of them leave request slots idle. Given to the earliest item waiting, the
    slots carry a few items through all their stages while the others wait (a test shows the
    order). Measured with an in-process backend that answers after 100 ms (200 samples,
    concurrency 32, three runs each): 0.911-0.915 of the concurrency bound with first-come
    slots, 0.912-0.940 with these.
    """

    def __init__(self, n: int) -> None:
        self._free = n
        self._waiting: list[tuple[int, int, asyncio.Future]] = []
        self._count = itertools.count()

    async def acquire(self, priority: int) -> None:
        """Wait for a slot."""
        if self._free > 0 and not self._waiting:
            self._free -= 1
            return
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (priority, next(self._count), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # handed over just as the waiter was cancelled: pass it on
            raise

    def release(self) -> None:
        """Give a slot back: to the first waiter by priority, else to the free pool."""
        while self._waiting:
            future = heapq.heappop(self._waiting)[2]
            if not future.done():
                future.set_result(None)
                return
        self._free += 1


class TokenBucket:
    """A refilling budget: ``rate`` units per second, at most ``capacity`` saved up.

    The level may go negative when actual usage turns out larger than estimated; later
    acquisitions then wait until the debt is repaid.
    """

    def __init__(self, rate: float, capacity: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.level = capacity
        self._last = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self._last) * self.rate)
        self._last = now

    def wait_time(self, amount: float) -> float:
        """Seconds until ``amount`` is available (0 if it is now)."""
        self._refill()
        need = min(amount, self.capacity) - self.level
        return 0.0 if need <= 0 else need / self.rate

    def take(self, amount: float) -> None:
        """Spend ``amount`` (the level may go negative)."""
        self._refill()
        self.level -= amount


class RateLimiter:
    """Concurrency slots plus optional per-minute request and token budgets.

    Args:
        concurrency: Requests in flight at once.
        rpm: Requests per minute, or ``None`` for no limit.
        tpm: Tokens per minute (estimated before, corrected after), or ``None``.
    """

    def __init__(self, concurrency: int, rpm: float | None = None, tpm: float | None = None):
        check_range("judge", "concurrency", concurrency, low=1)
        if rpm is not None:
            check_range("judge", "rpm", rpm, low=0, low_open=True)
        if tpm is not None:
            check_range("judge", "tpm", tpm, low=0, low_open=True)
        self.concurrency = int(concurrency)
        self.rpm = rpm
        self.tpm = tpm
        self._slots: PrioritySlots | None = None
        self._gate: asyncio.Lock | None = None
        # Bursts are limited to what the concurrency can use, so a fresh bucket cannot fire a
        # whole minute of requests in the first second.
        self._requests = (
            None if rpm is None else TokenBucket(rpm / 60.0, max(1.0, min(rpm, concurrency)))
        )
        self._tokens = None if tpm is None else TokenBucket(tpm / 60.0, max(1.0, tpm / 6.0))
        self._paused_until = 0.0
        self.waited_s = 0.0

    def _bind(self) -> None:
        # asyncio primitives belong to the loop that first uses them: one judge() call.
        if self._slots is None:
            self._slots = PrioritySlots(self.concurrency)
            self._gate = asyncio.Lock()

    def reset_loop(self) -> None:
        """Forget loop-bound primitives (before a new event loop uses the limiter)."""
        self._slots = None
        self._gate = None

    def pause(self, seconds: float) -> None:
        """Hold every new request for ``seconds`` (a server said ``Retry-After``)."""
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    async def acquire(self, tokens: float) -> None:
        """Wait for a slot (the earliest item first, :data:`ITEM_ORDER`) and for budget for one
        request of about ``tokens`` tokens."""
        self._bind()
        assert self._slots is not None and self._gate is not None
        await self._slots.acquire(ITEM_ORDER.get())
        try:
            # One waiter at a time computes and spends budget, so waits are first-come.
            async with self._gate:
                while True:
                    delay = self._paused_until - time.monotonic()
                    if self._requests is not None:
                        delay = max(delay, self._requests.wait_time(1))
                    if self._tokens is not None:
                        delay = max(delay, self._tokens.wait_time(tokens))
                    if delay <= 0:
                        break
                    self.waited_s += delay
                    await asyncio.sleep(delay)
                if self._requests is not None:
                    self._requests.take(1)
                if self._tokens is not None:
                    self._tokens.take(tokens)
        except BaseException:
            self._slots.release()
            raise

    def release(self, estimated_tokens: float, actual_tokens: float | None) -> None:
        """Give the slot back and correct the token budget with the actual usage."""
        if self._tokens is not None and actual_tokens is not None:
            self._tokens.take(actual_tokens - estimated_tokens)
        assert self._slots is not None
        self._slots.release()


def backoff_delay(
    attempt: int, *, base: float = 1.0, cap: float = 60.0, rng: random.Random | None = None
) -> float:
    """Capped exponential backoff with full jitter: uniform in ``[0.5, 1] * min(cap, base*2^n)``."""
    rng = rng or random
    ceiling = min(cap, base * (2**attempt))
    return ceiling * (0.5 + 0.5 * rng.random())


#: The longest a retry waits on a server's word (``Retry-After``, ``RetryInfo``), however long
#: it asks or however long the growth below makes it: a run does not sleep for hours on one
#: transient error. (The openai SDK stops retrying past two minutes, ``MAX_RETRY_AFTER_DELAY``
#: in ``openai/_constants.py``; a judge run is long, so it waits longer but not unbounded.)
SERVER_WAIT_CAP = 600.0


def server_delay(
    retry_after: float,
    streak: int,
    *,
    cap: float = 60.0,
    limit: float = SERVER_WAIT_CAP,
    rng: random.Random | None = None,
) -> float:
    """The wait before retry number ``streak`` (0-based) of a request the server asked to wait.

    A server that says the same delay again after it was honoured has not recovered in that
    time, so the wait doubles with each such retry (``retry_after * 2**streak``, up to 10 %
    jitter on top) until it reaches ``cap``; it is never shorter than what the server asked and
    never longer than ``limit``.
    """
    rng = rng or random
    asked = max(0.0, retry_after)
    grown = min(max(cap, asked), asked * (2**streak)) * (1.0 + 0.1 * rng.random())
    return min(limit, max(asked, grown))
