"""Batch mode: the judge's requests sent through a provider's batch interface.

With ``batch=true`` the :class:`~.asking.Asker` hands each request to a :class:`Batcher`
instead of sending it. The batcher gathers the requests that arrive together (the protocol
asks a whole stage's questions at once, so each stage of a run is one wave), submits them as
one batch (several when a wave is larger than the interface takes), records each batch id in
the run directory's batch book (``slim_leakage.rundir.BatchBook``) before it waits, polls until
the batch is finished, and answers every waiting request from it. The answers go back through
the Asker, so they are parsed, repaired, cached and turned into verdicts exactly as
synchronous answers are.

Every request has a stable id (:func:`request_id`: its cache key, question, text and output
budget), so a killed run, started again, finds its requests in the book and waits for the batch
already paid for instead of submitting them again. A request the batch answered with an error,
or did not answer (the batch failed or expired), is a judge error for its sample, naming the
batch; it is dropped from the book so that the next run submits it again.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from pathlib import Path

from ..errors import JudgeError, TransientBackendError
from .backends.base import BackendRequest, BackendResponse
from .backends.batches import BatchInterface

#: Seconds without a new request before the gathered ones are submitted.
GATHER_SECONDS = 0.25


def request_id(request: BackendRequest) -> str:
    """A stable id of one request within a batch (the same request gets the same id in every
    run): its cache key, question, text and output budget."""
    digest = hashlib.sha256()
    for part in (
        request.key,
        request.stage,
        request.text,
        str(request.decoding.max_output_tokens),
    ):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:40]


def _size(request: BackendRequest) -> int:
    # base64 makes image bytes 4/3 larger on the wire; text and schema are small next to them
    return len(request.text.encode()) + sum(4 * len(im.data) // 3 for im in request.images)


class Batcher:
    """Gathers requests into batches, remembers them in a book, and answers from them.

    Args:
        interface: The provider's batch interface (from the backend's ``batch_interface()``).
        book: Where batch ids are kept (``slim_leakage.rundir.BatchBook``).
        poll: Seconds between two looks at a submitted batch.
        notify: Called with a one-line notice when batches are submitted or resumed.
    """

    def __init__(
        self,
        interface: BatchInterface,
        book,
        *,
        poll: float,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        self.interface = interface
        self.book = book
        self.poll = poll
        self.notify = notify or (lambda line: None)
        self.submitted = 0
        self.resumed = 0
        self._waiting: dict[str, tuple[BackendRequest, asyncio.Future]] = {}
        self._flusher: asyncio.Task | None = None
        self._last = 0.0
        self._dispatching: set[asyncio.Task] = set()

    def reset(self) -> None:
        """Forget requests of an event loop that has ended (a judge call stopped early); their
        batches stay in the book, so the next call waits for them again."""
        self._waiting = {}
        self._flusher = None
        self._dispatching = set()

    def use_book(self, book) -> None:
        """Keep batch ids in ``book`` from now on (a run directory's)."""
        self.book = book

    async def ask(self, request: BackendRequest) -> BackendResponse:
        """The answer to ``request`` from a batch (submitted with others, or found in the book).

        Raises:
            JudgeError: The batch answered it with an error, or ended without an answer.
            TransientBackendError: Submitting the batch failed in a way worth retrying.
        """
        loop = asyncio.get_running_loop()
        rid = request_id(request)
        pending = self._waiting.get(rid)
        if pending is not None:
            return await asyncio.shield(pending[1])
        future = loop.create_future()
        self._waiting[rid] = (request, future)
        self._last = loop.time()
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush_when_quiet())
        return await future

    async def _flush_when_quiet(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            wait = self._last + GATHER_SECONDS - loop.time()
            if wait <= 0:
                break
            await asyncio.sleep(wait)
        gathered, self._waiting = self._waiting, {}
        # Dispatched in a task of its own, so that requests arriving while these wait (a retry
        # with a larger budget, a repair) start the next gathering at once.
        task = loop.create_task(self._dispatch_all(gathered))
        self._dispatching.add(task)
        task.add_done_callback(self._dispatching.discard)

    async def _dispatch_all(self, gathered) -> None:
        try:
            await self._dispatch(gathered)
        except BaseException as exc:  # never leave a request waiting for an answer
            for _, future in gathered.values():
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise

    async def _dispatch(self, gathered: dict[str, tuple[BackendRequest, asyncio.Future]]) -> None:
        iface = self.interface
        known = self.book.find(iface.provider, iface.model, gathered)
        by_batch: dict[str, dict[str, tuple[BackendRequest, asyncio.Future]]] = {}
        for rid, batch_id in known.items():
            by_batch.setdefault(batch_id, {})[rid] = gathered[rid]
        if known:
            self.resumed += len(known)
            self.notify(
                f"batch mode: {len(known)} request(s) wait for {len(by_batch)} batch(es) "
                "submitted before"
            )
        fresh = [(rid, pair) for rid, pair in gathered.items() if rid not in known]
        tasks = [self._watch(batch_id, group) for batch_id, group in by_batch.items()]
        for chunk in self._chunks(fresh):
            tasks.append(self._submit(dict(chunk)))
        await asyncio.gather(*tasks)

    def _chunks(self, items):
        chunk, size = [], 0
        for rid, (request, future) in items:
            n = _size(request)
            full = len(chunk) >= self.interface.max_requests
            if chunk and (full or size + n > self.interface.max_bytes):
                yield chunk
                chunk, size = [], 0
            chunk.append((rid, (request, future)))
            size += n
        if chunk:
            yield chunk

    async def _submit(self, group: dict[str, tuple[BackendRequest, asyncio.Future]]) -> None:
        iface = self.interface
        try:
            batch_id = await iface.submit([(rid, pair[0]) for rid, pair in group.items()])
        except Exception as exc:  # each request's own retry decides what happens next
            for _, future in group.values():
                if not future.done():
                    future.set_exception(exc)
            return
        self.book.add(batch_id, provider=iface.provider, model=iface.model, request_ids=[*group])
        self.submitted += 1
        self.notify(f"batch mode: submitted batch {batch_id} with {len(group)} request(s)")
        await self._watch(batch_id, group)

    async def _watch(
        self, batch_id: str, group: dict[str, tuple[BackendRequest, asyncio.Future]]
    ) -> None:
        try:
            handle = await self._until_final(batch_id)
            # the submission order, for answers matched by position
            order = self.book.batches().get(batch_id, {}).get("requests", [])
            answers, error = await self.interface.results(
                handle, {rid: pair[0] for rid, pair in group.items()}, order
            )
        except Exception as exc:
            for _, future in group.values():
                if not future.done():
                    future.set_exception(exc)
            return
        unanswered = []
        for rid, (_, future) in group.items():
            answer = answers.get(rid)
            if future.done():
                continue
            if isinstance(answer, BackendResponse):
                future.set_result(answer)
                continue
            unanswered.append(rid)
            if answer is None:
                answer = JudgeError(f"{error or f'batch {batch_id}'}: no answer to this request")
            future.set_exception(answer)
        self.book.finish(batch_id, "failed" if error else "done")
        if unanswered:
            self.book.forget(batch_id, unanswered)

    async def _until_final(self, batch_id: str):
        """Poll ``batch_id`` until it is final; transient failures of a poll are polled again."""
        while True:
            try:
                _, final, handle = await self.interface.state(batch_id)
            except TransientBackendError:
                final = False
            if final:
                return handle
            await asyncio.sleep(self.poll)


def default_book(folder: Path):
    """The batch book outside a run directory: in the judge's cache folder."""
    from ..rundir import BATCHES, BatchBook

    return BatchBook(folder / BATCHES)
