"""The two batch interfaces of the local protocol server: Gemini Batch Mode, the OpenAI Batch API.

Each batched request is answered by the server's own :meth:`ScriptedServer.outcome` (scripted
replies, random faults, thinking, rerouting), so a batch answer is exactly what the same
request would have got synchronously, wrapped in the batch interface's shape. A batch stays
pending for :attr:`BatchService.delay` seconds; :attr:`BatchService.expire` makes the next
batches end expired.

Shapes, from the installed SDKs (their wire converters and types) and the providers' API
references:

- Gemini (google-genai ``batches.py`` ``_CreateBatchJobParameters_to_mldev``,
  ``_BatchJob_from_mldev``, ``_InlinedResponse_from_mldev``; ``types.py`` ``JobState``):
  ``POST /v1beta/models/{model}:batchGenerateContent`` with
  ``{"batch": {"displayName", "inputConfig": {"requests": {"requests": [{"request",
  "metadata"}]}}}}`` answers an operation ``{"name": "batches/{id}", "metadata": {"state":
  "BATCH_STATE_PENDING", ...}}``; ``GET /v1beta/batches/{id}`` answers the same with ``done``
  and, once succeeded, ``metadata.output.inlinedResponses.inlinedResponses[]`` of
  ``{"response", "metadata"}`` or ``{"error": {"code", "message"}, "metadata"}``, in the order
  of the requests (``GenerateContentBatchOutput.inlinedResponses``: "The responses will be in
  the same order as the input requests"). With :attr:`BatchService.echo_metadata` off the
  answers carry no ``metadata``, as a public report of the real service describes (Google AI
  developer forum, "Gemini Batch API doesn't return the user metadata back"). An expired
  job (``BATCH_STATE_EXPIRED``) has no output, as the Batch API guide says.
- OpenAI (openai ``resources/files.py``, ``resources/batches.py``, ``types/file_object.py``,
  ``types/batch.py``): ``POST /v1/files`` (multipart, ``purpose=batch``) answers a file object;
  ``POST /v1/batches`` a batch (``status`` ``validating``); ``GET /v1/batches/{id}`` the batch
  with ``status``, ``request_counts``, ``output_file_id`` and ``error_file_id``; ``GET
  /v1/files/{id}/content`` the JSONL file, one ``{"id", "custom_id", "response":
  {"status_code", "request_id", "body"}, "error"}`` per line. An expired batch keeps the
  answers finished in time and lists the rest in the error file with the code
  ``batch_expired`` (the Batch API FAQ: remaining work is cancelled, completed work returned).
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import threading
import time
from typing import Any

from .wire import parse_gemini, parse_openai

_JSON = "application/json"


def _json(status: int, payload: Any) -> tuple[int, bytes, str]:
    return status, json.dumps(payload).encode(), _JSON


def _error_message(payload: dict) -> str:
    error = payload.get("error") if isinstance(payload, dict) else None
    return str((error or {}).get("message", "error")) if isinstance(error, dict) else "error"


class BatchService:
    """Batch jobs and files of one :class:`~.server.ScriptedServer`.

    Attributes:
        delay: Seconds a batch stays pending before it is finished.
        expire: Batches created while this is true end expired.
        echo_metadata: Whether Gemini batch answers carry the ``metadata`` of their request.
        jobs: Batch id -> job (``protocol``, ``created``, ``items``, ``expire`` ...).
        polls: How many times a batch's state was asked for.
    """

    def __init__(self, server: Any) -> None:
        self.server = server
        self.delay = 0.0
        self.expire = False
        self.echo_metadata = True
        self.jobs: dict[str, dict[str, Any]] = {}
        self.files: dict[str, bytes] = {}
        self.polls = 0
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def _new_id(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}{next(self._ids):06d}"

    def handle(self, method: str, route: str, headers: dict, raw: bytes, has_auth: bool):
        """``(status, body, content type)`` for a batch route, else ``None``."""
        if method == "POST" and route.endswith(":batchGenerateContent"):
            return self._gemini_create(route, json.loads(raw or b"{}"), has_auth)
        if method == "GET" and "/batches/" in route and route.startswith("/v1beta/"):
            return self._gemini_get(route.split("/batches/", 1)[1])
        if method == "POST" and route == "/v1/files":
            return self._openai_upload(headers.get("content-type", ""), raw)
        if method == "POST" and route == "/v1/batches":
            return self._openai_create(json.loads(raw or b"{}"), has_auth)
        if method == "GET" and route.startswith("/v1/batches/"):
            return self._openai_get(route.rsplit("/", 1)[1])
        if method == "GET" and route.startswith("/v1/files/") and route.endswith("/content"):
            data = self.files.get(route.split("/")[3])
            if data is None:
                return _json(404, {"error": {"message": "no such file", "type": "not_found"}})
            return 200, data, "application/octet-stream"
        return None

    def _job(self, protocol: str, items: list[dict]) -> dict:
        job = {
            "protocol": protocol,
            "created": time.time(),
            "items": items,
            "expire": self.expire,
        }
        return job

    def _finished(self, job: dict) -> bool:
        with self._lock:
            self.polls += 1
        return time.time() >= job["created"] + self.delay

    # -- Gemini ---------------------------------------------------------------------------------
    def _gemini_create(self, route: str, body: dict, has_auth: bool):
        model = route.split("/models/", 1)[-1].split(":", 1)[0]
        requests = ((body.get("batch") or {}).get("inputConfig") or {}).get("requests") or {}
        items = []
        for entry in requests.get("requests") or []:
            request = entry.get("request") or {}
            wire = {k: v for k, v in request.items() if k != "model"}
            recorded = parse_gemini(f"/v1beta/models/{model}:generateContent", wire, has_auth)
            recorded = _batched(recorded, route)
            outcome = self.server.outcome(recorded)
            item: dict[str, Any] = {}
            if self.echo_metadata:
                item["metadata"] = entry.get("metadata") or {}
            if outcome.status == 200:
                item["response"] = outcome.payload
            else:
                code = outcome.status or 503
                item["error"] = {"code": code, "message": _error_message(outcome.payload)}
            items.append(item)
        batch_id = self._new_id("batches/slim")
        job = self._job("gemini", items)
        job["model"] = f"models/{model}"
        job["displayName"] = (body.get("batch") or {}).get("displayName", "")
        self.jobs[batch_id] = job
        return _json(200, self._gemini_operation(batch_id, job, finished=False))

    def _gemini_get(self, name: str):
        batch_id = f"batches/{name}"
        job = self.jobs.get(batch_id)
        if job is None:
            return _json(
                404, {"error": {"code": 404, "message": "batch not found", "status": "NOT_FOUND"}}
            )
        return _json(200, self._gemini_operation(batch_id, job, finished=self._finished(job)))

    @staticmethod
    def _gemini_operation(batch_id: str, job: dict, *, finished: bool) -> dict:
        state = "BATCH_STATE_PENDING"
        metadata: dict[str, Any] = {
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatch",
            "model": job["model"],
            "displayName": job["displayName"],
            "name": batch_id,
        }
        if finished:
            state = "BATCH_STATE_EXPIRED" if job["expire"] else "BATCH_STATE_SUCCEEDED"
            if not job["expire"]:
                metadata["output"] = {"inlinedResponses": {"inlinedResponses": job["items"]}}
        metadata["state"] = state
        return {"name": batch_id, "metadata": metadata, "done": finished}

    # -- OpenAI ---------------------------------------------------------------------------------
    def _openai_upload(self, content_type: str, raw: bytes):
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + raw
        )
        fields: dict[str, tuple[str | None, bytes]] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            fields[str(name)] = (part.get_filename(), part.get_payload(decode=True) or b"")
        if "file" not in fields:
            return _json(400, {"error": {"message": "no file part", "type": "invalid_request"}})
        file_id = self._new_id("file-slim")
        filename, data = fields["file"]
        self.files[file_id] = data
        purpose = fields.get("purpose", (None, b""))[1].decode()
        return _json(
            200,
            {
                "id": file_id,
                "object": "file",
                "bytes": len(data),
                "created_at": int(time.time()),
                "filename": filename or "upload.jsonl",
                "purpose": purpose,
                "status": "processed",
            },
        )

    def _openai_create(self, body: dict, has_auth: bool):
        data = self.files.get(body.get("input_file_id", ""))
        if data is None:
            return _json(404, {"error": {"message": "no such file", "type": "not_found"}})
        items = []
        for n, line in enumerate(data.decode().splitlines()):
            if not line.strip():
                continue
            entry = json.loads(line)
            recorded = _batched(parse_openai(entry["url"], entry["body"], has_auth), "/v1/batches")
            outcome = self.server.outcome(recorded)
            status = outcome.status or 503
            items.append(
                {
                    "id": f"batch_req_{n:06d}",
                    "custom_id": entry["custom_id"],
                    "response": {
                        "status_code": status,
                        "request_id": f"req_{n:06d}",
                        "body": outcome.payload,
                    },
                    "error": None,
                }
            )
        batch_id = self._new_id("batch_slim")
        job = self._job("openai", items)
        job.update(body=body, out_files=None)
        self.jobs[batch_id] = job
        return _json(200, self._openai_batch(batch_id, job, finished=False))

    def _openai_get(self, batch_id: str):
        job = self.jobs.get(batch_id)
        if job is None:
            return _json(404, {"error": {"message": "no such batch", "type": "not_found"}})
        return _json(
            200, self._openai_batch(batch_id, job, finished=self._finished(job), look=True)
        )

    def _openai_files(self, job: dict) -> tuple[str | None, str | None, int, int]:
        """Write the output and error files of a finished job once: their ids and counts."""
        if job["out_files"] is None:
            items = job["items"]
            done = items[: len(items) // 2] if job["expire"] else items
            ok = [i for i in done if i["response"]["status_code"] == 200]
            failed = [i for i in done if i["response"]["status_code"] != 200]
            expired = [
                {
                    "id": i["id"],
                    "custom_id": i["custom_id"],
                    "response": None,
                    "error": {
                        "code": "batch_expired",
                        "message": "This request could not be executed before the completion "
                        "window expired.",
                    },
                }
                for i in items[len(done) :]
            ]
            ids = []
            for rows in (ok, failed + expired):
                if not rows:
                    ids.append(None)
                    continue
                file_id = self._new_id("file-slim")
                self.files[file_id] = "".join(json.dumps(r) + "\n" for r in rows).encode()
                ids.append(file_id)
            job["out_files"] = (ids[0], ids[1], len(ok), len(failed) + len(expired))
        return job["out_files"]

    def _openai_batch(
        self, batch_id: str, job: dict, *, finished: bool, look: bool = False
    ) -> dict:
        """The batch object; each ``look`` moves its status one step along the lifecycle,
        so a client sees ``validating``, ``in_progress`` and ``finalizing`` before the end."""
        steps = ["validating", "in_progress", "finalizing", "completed"]
        if job["expire"]:
            steps = ["validating", "in_progress", "expired"]
        step = job.get("step", 0)
        if look and (step == 0 or finished):  # work in progress until its time is up
            step = min(step + 1, len(steps) - 1)
        job["step"] = step
        finished = step == len(steps) - 1
        body = job["body"]
        total = len(job["items"])
        out: dict[str, Any] = {
            "id": batch_id,
            "object": "batch",
            "endpoint": body.get("endpoint", "/v1/chat/completions"),
            "errors": None,
            "input_file_id": body.get("input_file_id"),
            "completion_window": body.get("completion_window", "24h"),
            "status": steps[step],
            "output_file_id": None,
            "error_file_id": None,
            "created_at": int(job["created"]),
            "request_counts": {"total": total, "completed": 0, "failed": 0},
            "metadata": body.get("metadata"),
        }
        if finished:
            output, errors, ok, failed = self._openai_files(job)
            out.update(
                output_file_id=output,
                error_file_id=errors,
                request_counts={"total": total, "completed": ok, "failed": failed},
            )
        return out


def _batched(recorded, route: str):
    """The recorded request of a batch item: its path names the batch route."""
    import dataclasses

    return dataclasses.replace(recorded, path=f"{route}#item")
