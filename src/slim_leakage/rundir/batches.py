"""The judge's submitted batches, kept in the run directory so a killed run resumes by polling.

``DIR/judge-batches.json`` maps each batch a judge submitted through a provider's batch
interface (``--judge-arg batch=true``) to the requests in it and its last known state::

    {"version": 1, "batches": {"<batch id>": {"provider": "gemini", "model": "...",
      "requests": ["<request id>", ...], "state": "submitted" | "<final state>",
      "submitted": "<UTC time>"}}}

The file is rewritten atomically after each change, so a process killed at any point leaves
either the old or the new book, never half of one. A resumed run looks each request up here
before it submits anything: a request already in a batch waits for that batch instead of
being paid for twice.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .._io import atomic_write_json
from ..errors import RunError

#: File name of the book in a run directory (or in the judge's cache folder outside a run).
BATCHES = "judge-batches.json"
_VERSION = 1


class BatchBook:
    """The batches submitted for one run (see the module docstring).

    Args:
        path: The book's file (``DIR/judge-batches.json``); it need not exist yet.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._batches: dict[str, dict[str, Any]] = self._read()

    def _read(self) -> dict[str, dict[str, Any]]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text())
            batches = data["batches"]
            if not isinstance(batches, dict):
                raise TypeError("'batches' is not an object")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RunError(
                f"The judge's batch book {self.path} cannot be read ({exc}).",
                hint="It lists batches already paid for: restore it from a backup, or delete "
                "it to submit the unanswered requests again.",
            ) from exc
        return batches

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.path, {"version": _VERSION, "batches": self._batches})

    def batches(self) -> dict[str, dict[str, Any]]:
        """Every batch in the book: batch id -> its entry (a copy)."""
        return json.loads(json.dumps(self._batches))

    def find(self, provider: str, model: str, request_ids: Iterable[str]) -> dict[str, str]:
        """``request id -> batch id`` for the requests already in a batch of ``model``.

        A request in several batches (submitted again after its first batch ended without an
        answer for it) maps to the latest.
        """
        wanted = set(request_ids)
        out: dict[str, str] = {}
        for batch_id, entry in self._batches.items():
            if entry.get("provider") != provider or entry.get("model") != model:
                continue
            for request_id in entry.get("requests", ()):
                if request_id in wanted:
                    out[request_id] = batch_id
        return out

    def add(self, batch_id: str, *, provider: str, model: str, request_ids: list[str]) -> None:
        """Record a batch just submitted (written before anything waits on it)."""
        self._batches[batch_id] = {
            "provider": provider,
            "model": model,
            "requests": list(request_ids),
            "state": "submitted",
            "submitted": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        self._write()

    def finish(self, batch_id: str, state: str) -> None:
        """Record the final state of a batch (its answers can still be fetched by id)."""
        entry = self._batches.get(batch_id)
        if entry is not None and entry.get("state") != state:
            entry["state"] = state
            self._write()

    def forget(self, batch_id: str, request_ids: Iterable[str]) -> None:
        """Drop requests from a batch that ended without an answer for them, so a later run
        submits them again instead of waiting on a batch that will never answer them."""
        entry = self._batches.get(batch_id)
        if entry is None:
            return
        drop = set(request_ids)
        entry["requests"] = [r for r in entry.get("requests", ()) if r not in drop]
        self._write()
