"""Scripted replies of the local protocol server: what to send for the next requests.

A :class:`Reply` is queued with :meth:`ScriptedServer.push` or drawn at random from the
server's fault rates (:func:`fault_reply`); the server turns it into an :class:`Outcome` (a
status, a body and headers) in the wire shape of the request's protocol.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping

#: Fault kinds accepted by ``fault_rates``: the simple ones, then the shapes the real services
#: send (see :meth:`Reply.real`).
FAULT_KINDS = (
    "429",
    "500",
    "drop",
    "timeout",
    "malformed",
    "truncated",
    "wrong_schema",
    "position_bias",
    "retry_info_429",
    "503",
    "max_tokens",
    "safety",
    "blocked_prompt",
    "reroute",
    "daily_quota",
    "insufficient_quota",
)
#: Shapes of :meth:`Reply.real`: what the real services answer when no answer can be given.
SHAPES = (
    "retry_info",
    "overloaded",
    "max_tokens",
    "safety",
    "blocked_prompt",
    "daily_quota",
    "insufficient_quota",
    "limit_zero",
)
#: Fault kinds no retry can cure: a run meeting one stops (quota) or fails that sample.
HOPELESS_KINDS = ("safety", "blocked_prompt", "daily_quota", "insufficient_quota")
#: The model named as having answered by ``reroute`` faults.
REROUTED_MODEL = "rerouted-model-001"
#: The ranking answer of a ``position_bias`` fault: the first image wins, whatever it shows.
BIASED_RANKING = json.dumps(
    {"less_leaky": "image1", "magnitude": "major", "reason": "the first image looks better"}
)


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What the server sends for one request: ``status`` ``None`` drops the connection."""

    status: int | None
    payload: dict
    headers: dict
    delay: float


@dataclasses.dataclass(frozen=True)
class Reply:
    """One scripted reply.

    Attributes:
        kind: ``answer`` (HTTP 200 with an answer), ``status`` (an HTTP error), ``drop``
            (close the connection without a response) or ``shape`` (one of :data:`SHAPES`, made by :meth:`real`).
        text: The answer text; ``None`` means the default protocol answer.
        transform: ``truncate`` cuts the answer text in half.
        status: HTTP status for ``status`` replies.
        retry_after: ``Retry-After`` seconds sent with a ``status`` reply (in a real-shapes
            server's Gemini 429, the ``RetryInfo`` delay instead); the delay of a
            ``retry_info`` or ``daily_quota`` shape.
        delay: Seconds to wait before replying (beyond the server's latency).
        stage: Only requests of this stage consume the reply (``None``: any request).
        shape: For ``shape`` replies, which one.
        model: The model an answer names as having answered (default: the server's
            ``reroute`` of the requested one, else the requested one).
        finish: For an ``answer``, the finish reason of a candidate with no content (Gemini's
            ``finishReason``, OpenAI's ``finish_reason``) instead of the answer text.
        headers: Extra response headers (``x-should-retry``, a ``Retry-After`` date).
    """

    kind: str = "answer"
    text: str | None = None
    transform: str | None = None
    status: int = 200
    retry_after: float | None = None
    delay: float = 0.0
    stage: str | None = None
    shape: str | None = None
    model: str | None = None
    finish: str | None = None
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def ok(
        cls,
        text: str | None = None,
        *,
        delay: float = 0.0,
        stage: str | None = None,
        model: str | None = None,
    ) -> Reply:
        """An answer (``None``: the default protocol answer), optionally from another model."""
        return cls("answer", text=text, delay=delay, stage=stage, model=model)

    @classmethod
    def real(
        cls, name: str, *, retry_after: float | None = None, stage: str | None = None
    ) -> Reply:
        """What a real service answers when it cannot answer, in its own wire shape.

        ``retry_info``: Gemini's 429 whose only wait is ``RetryInfo.retryDelay`` (no
        ``Retry-After`` header; OpenAI's 429 with its ``retry-after`` header);
        ``overloaded``: 503 ``UNAVAILABLE``; ``max_tokens``: ``finishReason MAX_TOKENS`` (OpenAI
        ``length``) with no text, the whole limit spent on thinking; ``safety``: a candidate
        blocked with ``finishReason SAFETY`` (OpenAI ``content_filter``); ``blocked_prompt``: no
        candidates and ``promptFeedback.blockReason``; ``daily_quota``: a 429 whose
        ``QuotaFailure`` names a per-day quota (OpenAI: ``insufficient_quota``);
        ``insufficient_quota``: OpenAI's 429 for an account without credit (Gemini: a quota
        with a limit of 0); ``limit_zero``: Gemini's "limit: 0" 429 as real keys get it
        (:func:`~.errors.gemini_limit_zero`; OpenAI: ``insufficient_quota``).
        """
        if name not in SHAPES:
            raise ValueError(f"unknown shape {name!r}; known: {', '.join(SHAPES)}")
        return cls("shape", shape=name, retry_after=retry_after, stage=stage)

    @classmethod
    def error(
        cls,
        status: int,
        *,
        retry_after: float | None = None,
        stage: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """An HTTP error such as 429 (with ``Retry-After``) or 500, with extra ``headers``."""
        extra = tuple((headers or {}).items())
        return cls("status", status=status, retry_after=retry_after, stage=stage, headers=extra)

    @classmethod
    def finished(cls, reason: str, *, stage: str | None = None) -> Reply:
        """An answer whose candidate ended with ``reason`` and no content (``PUP_LIMITED_DISABLED``)."""
        return cls("answer", finish=reason, stage=stage)

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


def fault_reply(kind: str, *, retry_after: float, timeout_delay: float) -> Reply:
    """The reply of a random fault of ``kind`` (one of :data:`FAULT_KINDS`)."""
    if kind == "429":
        return Reply.error(429, retry_after=retry_after)
    if kind == "500":
        return Reply.error(500)
    if kind == "retry_info_429":
        return Reply.real("retry_info", retry_after=retry_after)
    if kind == "503":
        return Reply.real("overloaded")
    if kind == "reroute":
        return Reply.ok(model=REROUTED_MODEL)
    if kind in ("max_tokens", "safety", "blocked_prompt", "insufficient_quota"):
        return Reply.real(kind)
    if kind == "daily_quota":
        return Reply.real(kind, retry_after=9 * 3600.0)
    if kind == "drop":
        return Reply.drop()
    if kind == "timeout":
        return Reply.slow(timeout_delay)
    if kind == "position_bias":
        return Reply.ok(BIASED_RANKING)
    return {
        "malformed": Reply.malformed,
        "truncated": Reply.truncated,
        "wrong_schema": Reply.wrong_schema,
    }[kind]()
