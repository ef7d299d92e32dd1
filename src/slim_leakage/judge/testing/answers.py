"""Default answers of the local protocol server: each question answers for itself.

The request names its question (the schema's ``title``, or the OpenAI response format's name);
that question reads the request's facts back and gives its
:meth:`~slim_leakage.judge.stages.Question.local_answer`. The same works in process on a
:class:`~slim_leakage.judge.backends.base.BackendRequest`, whose context carries the facts.
"""

from __future__ import annotations

import json

from ..backends.base import BackendRequest
from ..stages import PROTOCOL, Pipeline
from .wire import RecordedRequest


def default_answer(request: RecordedRequest | BackendRequest, pipeline: Pipeline = PROTOCOL) -> str:
    """A schema-valid, sensible answer to a judge request, as JSON text.

    Args:
        request: A request as the server recorded it, or one built in this process.
        pipeline: The stages whose questions are known.

    Returns:
        The question's local answer; ``{"answer": "unknown stage"}`` for a question that is
        not in ``pipeline`` (which no stage parser accepts).
    """
    question = pipeline.question(request.stage)
    if question is None:
        return json.dumps({"answer": "unknown stage"})
    if isinstance(request, BackendRequest):
        asked = question.asked_in(request)
    else:
        asked = question.asked(text=request.text, schema=request.schema, images=request.images)
    return json.dumps(question.local_answer(asked))
