"""The providers' batch interfaces: Gemini Batch Mode and the OpenAI Batch API.

Each adapter submits a list of requests as one batch and returns its id, reads a batch's
state, and turns a finished batch's answers into :class:`~.base.BackendResponse` objects
through the very function that reads a synchronous answer (``answer()`` of the backend), so a
batch answer is parsed, checked (blocked, out of tokens) and recorded exactly as any other.

Wire shapes, from the installed SDKs: Gemini, google-genai ``batches.py``
(``AsyncBatches.create`` with inlined requests -> ``POST {model}:batchGenerateContent`` with
``batch.inputConfig.requests.requests[].{request, metadata}``; ``get`` -> ``GET batches/{id}``,
an operation whose ``metadata`` holds ``state`` (``BATCH_STATE_*``, read as ``JOB_STATE_*``) and
``output.inlinedResponses.inlinedResponses[].{response, metadata, error}``) and ``types.py``
(``InlinedRequest``, ``InlinedResponse``, ``JobError``, ``JobState``). OpenAI, openai
``resources/files.py`` (a JSONL file uploaded with ``purpose="batch"``),
``resources/batches.py`` and ``types/batch.py`` (``status``, ``output_file_id``,
``error_file_id``, ``errors``); each line of the output and error files is a
``BatchRequestOutput`` (``custom_id``, ``response.{status_code, body}``, ``error.{code,
message}``) as the OpenAI API reference documents it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ...errors import JudgeError
from .base import BackendRequest, BackendResponse

#: One batch's answers: request id -> the response, or the error that stands for it.
Results = dict[str, "BackendResponse | Exception"]


class BatchInterface:
    """What the judge's batcher needs from a provider's batch interface.

    Attributes:
        provider: ``gemini`` or ``openai`` (the model table's provider).
        max_requests: Most requests in one batch.
        max_bytes: Most bytes of request bodies in one batch (images included).
    """

    provider: str = ""
    max_requests: int = 10_000
    max_bytes: int = 100 * 2**20

    def __init__(self, backend: Any) -> None:
        self.backend = backend

    @property
    def model(self) -> str:
        """The model id the batches are for."""
        return self.backend.model

    async def submit(self, items: Sequence[tuple[str, BackendRequest]]) -> str:
        """Submit ``(request id, request)`` pairs as one batch; its id."""
        raise NotImplementedError

    async def state(self, batch_id: str) -> tuple[str, bool, Any]:
        """``(state, finished, handle)`` of a batch; the handle goes to :meth:`results`."""
        raise NotImplementedError

    async def results(
        self, handle: Any, wanted: dict[str, BackendRequest], order: Sequence[str] = ()
    ) -> tuple[Results, str | None]:
        """The answers of a finished batch to the ``wanted`` requests, and the batch's own
        error (a failed or expired batch), if any. ``order`` is the request ids in the order
        they were submitted (for answers that can only be matched by position)."""
        raise NotImplementedError


def _item_error(code: Any, message: Any) -> JudgeError:
    return JudgeError(f"the batch answered this request with an error ({code}: {message})")


class GeminiBatches(BatchInterface):
    """Gemini Batch Mode with inlined requests (the Batch API guide keeps an inlined batch
    under 20 MB; larger waves are split)."""

    provider = "gemini"
    max_bytes = 18 * 2**20

    async def submit(self, items: Sequence[tuple[str, BackendRequest]]) -> str:
        """Create one batch job of inlined ``generateContent`` requests."""
        from google.genai import types

        b = self.backend
        src = [
            types.InlinedRequest(
                model=b.model,
                contents=b._contents(request),
                config=b._config(request),
                metadata={"request": request_id},
            )
            for request_id, request in items
        ]
        config = types.CreateBatchJobConfig(display_name=f"slim-leakage-{items[0][0][:12]}")
        client = b._get_client()
        job = await b.call(client.aio.batches.create(model=b.model, src=src, config=config))
        return str(job.name)

    async def state(self, batch_id: str) -> tuple[str, bool, Any]:
        """The job's ``JOB_STATE_*`` and whether it is final."""
        b = self.backend
        job = await b.call(b._get_client().aio.batches.get(name=batch_id))
        state = str(getattr(job.state, "value", job.state) or "JOB_STATE_UNSPECIFIED")
        final = state in (
            "JOB_STATE_SUCCEEDED",
            "JOB_STATE_FAILED",
            "JOB_STATE_CANCELLED",
            "JOB_STATE_EXPIRED",
            "JOB_STATE_PARTIALLY_SUCCEEDED",
        )
        return state, final, job

    async def results(
        self, handle: Any, wanted: dict[str, BackendRequest], order: Sequence[str] = ()
    ) -> tuple[Results, str | None]:
        """Each inlined response, matched to its request (:func:`match_inlined`)."""
        b = self.backend
        out: Results = {}
        dest = handle.dest
        items = list((dest.inlined_responses if dest is not None else None) or [])
        for request_id, item in match_inlined(items, order):
            if request_id not in wanted:
                continue
            if item.error is not None:
                out[request_id] = _item_error(item.error.code, item.error.message)
            elif item.response is not None:
                limit = b._config(wanted[request_id]).max_output_tokens
                try:
                    out[request_id] = b.answer(item.response, limit)
                except JudgeError as exc:
                    out[request_id] = exc
        error = None
        state = str(getattr(handle.state, "value", handle.state))
        if state != "JOB_STATE_SUCCEEDED":
            detail = f": {handle.error.message}" if handle.error is not None else ""
            error = f"batch {handle.name} ended {state}{detail}"
        return out, error


def match_inlined(items: Sequence[Any], order: Sequence[str]) -> list[tuple[str, Any]]:
    """``(request id, inlined response)`` pairs of a Gemini batch's answers.

    By the ``metadata`` each request was sent with (``InlinedResponse.metadata``, google-genai
    ``types.py``): its ``request`` entry, else a ``key`` entry. Answers without either (the
    service has been reported to drop the metadata: Google AI developer forum, "Gemini Batch
    API doesn't return the user metadata back") are matched by position, which the API
    reference guarantees ("The responses will be in the same order as the input requests",
    ``GenerateContentBatchOutput.inlinedResponses``), but only when there are exactly as many
    answers as requests submitted (``order``), so no answer can go to the wrong request.
    """
    out: list[tuple[str, Any]] = []
    unmatched: list[int] = []
    for index, item in enumerate(items):
        metadata = getattr(item, "metadata", None) or {}
        request_id = metadata.get("request") or metadata.get("key") or getattr(item, "key", None)
        if request_id:
            out.append((str(request_id), item))
        else:
            unmatched.append(index)
    if unmatched and len(items) == len(order):
        taken = {rid for rid, _ in out}
        out += [(order[i], items[i]) for i in unmatched if order[i] not in taken]
    return out


class OpenAIBatches(BatchInterface):
    """The OpenAI Batch API over ``/v1/chat/completions`` (a file of at most 50,000 requests
    and 200 MB, as ``batches.create`` documents)."""

    provider = "openai"
    max_requests = 50_000
    max_bytes = 190 * 2**20

    def _limit(self, request: BackendRequest) -> int:
        spec = self.backend.spec
        return request.decoding.max_output_tokens + (spec.allowance if spec is not None else 0)

    async def submit(self, items: Sequence[tuple[str, BackendRequest]]) -> str:
        """Upload the requests as a JSONL file and create a 24 h batch over it."""
        b = self.backend
        lines = [
            json.dumps(
                {
                    "custom_id": request_id,
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": b._body(request),
                }
            )
            for request_id, request in items
        ]
        data = ("\n".join(lines) + "\n").encode()
        client = b._get_client()
        upload = await b.call(
            client.files.create(
                file=("slim-leakage-batch.jsonl", data, "application/jsonl"), purpose="batch"
            )
        )
        batch = await b.call(
            client.batches.create(
                input_file_id=upload.id,
                endpoint="/v1/chat/completions",
                completion_window="24h",
            )
        )
        return str(batch.id)

    async def state(self, batch_id: str) -> tuple[str, bool, Any]:
        """The batch's ``status`` and whether it is final."""
        b = self.backend
        batch = await b.call(b._get_client().batches.retrieve(batch_id))
        final = batch.status in ("completed", "failed", "expired", "cancelled")
        return str(batch.status), final, batch

    async def results(
        self, handle: Any, wanted: dict[str, BackendRequest], order: Sequence[str] = ()
    ) -> tuple[Results, str | None]:
        """The lines of the output and error files, matched by ``custom_id``."""
        from openai.types.chat import ChatCompletion

        b = self.backend
        client = b._get_client()
        out: Results = {}
        for file_id in (handle.output_file_id, handle.error_file_id):
            if not file_id:
                continue
            content = await b.call(client.files.content(file_id))
            for line in content.text.splitlines():
                if not line.strip():
                    continue
                row = json.loads(line)
                request_id = row.get("custom_id")
                if request_id not in wanted:
                    continue
                response = row.get("response") or {}
                error = row.get("error")
                if error:
                    out[request_id] = _item_error(error.get("code"), error.get("message"))
                elif response.get("status_code") != 200:
                    body = (response.get("body") or {}).get("error") or {}
                    out[request_id] = _item_error(
                        f"HTTP {response.get('status_code')}", body.get("message")
                    )
                else:
                    completion = ChatCompletion.model_validate(response["body"])
                    try:
                        out[request_id] = b.answer(completion, self._limit(wanted[request_id]))
                    except JudgeError as exc:
                        out[request_id] = exc
        error = None
        if handle.status != "completed":
            reasons = [e.message for e in (handle.errors.data if handle.errors else None) or []]
            detail = f": {'; '.join(str(r) for r in reasons)}" if reasons else ""
            error = f"batch {handle.id} ended {handle.status}{detail}"
        return out, error
