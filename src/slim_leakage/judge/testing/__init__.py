"""A local judge server for tests and benchmarks: OpenAI and Gemini REST on 127.0.0.1.

:class:`ScriptedServer` is a real HTTP/1.1 server (asyncio, in a background thread, or a
separate process with ``python -m slim_leakage.judge.testing``) that speaks

- OpenAI chat completions: ``POST <base>/chat/completions`` (use ``server.openai_base_url``);
- Gemini ``generateContent``: ``POST /v1beta/models/<model>:generateContent``
  (use ``server.url`` as the SDK's ``base_url``).

By default each question answers for itself, so a whole run can be judged through it: the
request names its question, which reads the request's facts back and gives its
:meth:`~slim_leakage.judge.stages.Question.local_answer` (extraction lists generic features per
entity, typicality is a deterministic function of the image bytes, and the ranking compares the
two reports it is given, so both orders agree). A server given a ``pipeline`` with more stages
answers their questions too.
Faults are injected either scripted (the next requests get the replies you push) or at random
rates: ``429`` with ``Retry-After``, ``500``, dropped connections, delays past the client's
timeout, malformed, truncated or wrong-schema JSON answers, and position bias (a ranking that
prefers whichever image comes first); and the shapes the real services send, each taken from
their SDKs' types and documentation (:meth:`Reply.real`): a Gemini 429 whose only wait is a
``RetryInfo`` body, 503 overloaded, ``MAX_TOKENS`` answers whose budget went to thinking,
``SAFETY`` blocks and blocked prompts, other final finish reasons (:meth:`Reply.finished`),
per-day quota, "limit: 0" and ``insufficient_quota`` errors, and answers naming another model
than the one asked for. Error bodies follow each service's specification (:mod:`.errors`:
OpenAI's ``Error`` object with ``param``, an integer ``Retry-After``; ``google.rpc.Status``
names), and scripted errors may carry extra headers (``x-should-retry``, a ``Retry-After``
date). ``ScriptedServer(shapes="real")`` also
answers with usage as the services report it (``thoughtsTokenCount``, reasoning tokens) and
sends its random 429s in Gemini's ``RetryInfo`` form. Every request is recorded.

Example::

    with ScriptedServer(latency=0.05) as server:
        server.push(Reply.error(429, retry_after=0.1), Reply.malformed())
        judge = get_judge("openai-compatible", base_url=server.openai_base_url)
"""

from __future__ import annotations

from ..stages import typicality_of
from .answers import default_answer
from .replies import (
    BIASED_RANKING,
    FAULT_KINDS,
    HOPELESS_KINDS,
    REROUTED_MODEL,
    SHAPES,
    Reply,
)
from .server import ScriptedServer, main
from .wire import RecordedRequest

__all__ = [
    "BIASED_RANKING",
    "FAULT_KINDS",
    "HOPELESS_KINDS",
    "REROUTED_MODEL",
    "SHAPES",
    "RecordedRequest",
    "Reply",
    "ScriptedServer",
    "default_answer",
    "main",
    "typicality_of",
]
