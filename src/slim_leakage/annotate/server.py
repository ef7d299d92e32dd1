"""The annotation session and its HTTP server (standard library only, 127.0.0.1 only).

Blind comparison: the annotator sees "left" and "right", never which image is the method's.
The answer ("left is much less leaky" ... "right is much less leaky") is turned into the
method-relative label of the CSV using the recorded order. Each answer is appended to the CSV
(``sample_id,method,annotator,label``) and to a log beside it (``<labels>.log.jsonl``: order,
answer and time), each write a single appended line flushed to disk, so a session killed at
any point resumes from the CSV with nothing lost or doubled.
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import io
import json
import os
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from .._io import append_jsonl, atomic_write_text
from ..errors import UsageError, ValidationError
from ..judge.agreement import CSV_COLUMNS, read_labels
from ..rundir import RunData
from .guards import legend_png, locked, request_problem, toy_legend
from .page import PAGE

#: Seconds a sample must be on screen before its answer counts (a double click otherwise
#: labels the next sample unseen); the page waits as long before it takes a click or key.
MIN_VIEW_S = 0.35

#: The five answers, in button / key order (1-5), as seen by the annotator.
CHOICES: tuple[str, ...] = (
    "left-major",
    "left-minor",
    "same",
    "right-minor",
    "right-major",
)
_WHEN_METHOD_LEFT = dict(
    zip(
        CHOICES,
        (
            "mitigation-major",
            "mitigation-minor",
            "no-change",
            "degradation-minor",
            "degradation-major",
        ),
    )
)
_WHEN_METHOD_RIGHT = dict(zip(CHOICES, reversed(list(_WHEN_METHOD_LEFT.values()))))


def choice_to_label(choice: str, method_side: str) -> str:
    """The method-relative label of an answer, given on which side the method image was.

    Args:
        choice: One of :data:`CHOICES` (``left-major`` = the left image leaks much less).
        method_side: ``left`` or ``right``.
    """
    table = _WHEN_METHOD_LEFT if method_side == "left" else _WHEN_METHOD_RIGHT
    return table[choice]


def method_side(seed: int, annotator: str, sample_id: str) -> str:
    """Where the method image is shown: a fair coin fixed per (seed, annotator, sample).

    Fixed rather than drawn afresh so that reloading the page or resuming a session shows a
    sample the same way, and independent across annotators so order effects average out.
    """
    digest = hashlib.sha256(f"{seed}\0{annotator}\0{sample_id}".encode()).digest()
    return "left" if digest[0] % 2 == 0 else "right"


class AnnotationSession:
    """What one annotator still has to label in one run, and the files answers go to.

    Args:
        run: The loaded run directory.
        labels_path: The labels CSV (created with its header if missing).
        annotator: The annotator's name (written in every row).
        seed: Seed of the left/right order.

    Raises:
        UsageError: For an empty or comma-containing annotator name, or a run with no image
            pairs to show.
        ValidationError: If the existing labels file is malformed.
    """

    def __init__(
        self,
        run: RunData,
        labels_path: str | Path,
        annotator: str,
        seed: int = 0,
        *,
        min_view_s: float = 0.0,
    ):
        annotator = annotator.strip()
        if not annotator or any(c in annotator for c in ',\n\r"'):
            raise UsageError(
                f"Annotator name {annotator!r} must be non-empty without commas or quotes.",
                hint="Use e.g. --annotator alice",
            )
        self.run = run
        self.method = run.method
        self.annotator = annotator
        self.seed = seed
        self.labels_path = Path(labels_path)
        self.log_path = self.labels_path.with_name(self.labels_path.name + ".log.jsonl")
        self._lock = threading.Lock()
        self.min_view_s = min_view_s
        self._shown: dict[str, float] = {}
        self._answered: list[tuple[str, str]] = []  # (sample id, label) of this session
        self.samples = [
            s
            for s in run.samples
            if run.image_path(s.id, "vanilla").is_file()
            and run.image_path(s.id, "method").is_file()
        ]
        if not self.samples:
            raise UsageError(
                f"Run {str(run.path)!r} has no sample with both a vanilla and a method image.",
                hint="Annotate a run whose images have been generated.",
            )
        self._by_id = {s.id: s for s in self.samples}
        self.done: set[str] = set()
        self._reload()

    def _reload(self) -> None:
        """Read which samples this annotator labelled (another server may share the file)."""
        if self.labels_path.exists():
            self.done = {
                label.sample_id
                for label in read_labels(self.labels_path)
                if label.annotator == self.annotator and label.method == self.method
            }

    def pending(self) -> list[str]:
        """Sample ids this annotator has not labelled yet, in run order."""
        return [s.id for s in self.samples if s.id not in self.done]

    def state(self) -> dict[str, Any]:
        """What the page shows next (``item`` is ``None`` when everything is labelled)."""
        with self._lock:
            pending = self.pending()
            item = None
            if pending:
                sample = self._by_id[pending[0]]
                item = {
                    "sample_id": sample.id,
                    "prompt": sample.prompt,
                    "entities": list(sample.entities),
                    "left": f"/image/{sample.id}/left",
                    "right": f"/image/{sample.id}/right",
                    "legend": toy_legend(list(sample.entities)),
                }
                self._shown.setdefault(sample.id, time.monotonic())
            return {
                "annotator": self.annotator,
                "method": self.method,
                "done": len(self.done & set(self._by_id)),
                "total": len(self.samples),
                "choices": list(CHOICES),
                "item": item,
                "can_undo": bool(self._answered),
                "min_view_ms": int(self.min_view_s * 1000),
            }

    def image(self, sample_id: str, side: str) -> Path:
        """The image file shown on ``side`` for a sample.

        Raises:
            ValidationError: For an unknown sample or side.
        """
        if sample_id not in self._by_id or side not in ("left", "right"):
            raise ValidationError(f"No image {sample_id!r}/{side!r} in this session.")
        role = "method" if method_side(self.seed, self.annotator, sample_id) == side else "vanilla"
        return self.run.image_path(sample_id, role)

    def answer(self, sample_id: str, choice: str) -> str:
        """Record an answer; returns the method-relative label written to the CSV.

        Raises:
            ValidationError: For an unknown sample or choice, or a sample already labelled.
        """
        if choice not in CHOICES:
            raise ValidationError(
                f"Unknown answer {choice!r}.", hint=f"Use one of: {', '.join(CHOICES)}."
            )
        if sample_id not in self._by_id:
            raise ValidationError(f"Sample {sample_id!r} is not part of this session.")
        with self._lock, locked(self.labels_path):
            self._reload()
            if sample_id in self.done:
                raise ValidationError(
                    f"Sample {sample_id!r} is already labelled by {self.annotator!r}.",
                    hint="Each annotator labels a sample once.",
                )
            if self.min_view_s:
                shown = self._shown.get(sample_id)
                if shown is None or time.monotonic() - shown < self.min_view_s:
                    raise ValidationError(
                        f"Sample {sample_id!r} was answered before it was shown for "
                        f"{self.min_view_s:g} s (a double click?); the answer was not taken.",
                        hint="Look at the two images, then answer.",
                    )
            side = method_side(self.seed, self.annotator, sample_id)
            label = choice_to_label(choice, side)
            self._append_csv([sample_id, self.method, self.annotator, label])
            self._log(sample_id, method_side=side, choice=choice, label=label)
            self.done.add(sample_id)
            self._answered.append((sample_id, label))
            return label

    def undo(self) -> str:
        """Take back this session's last answer: its row leaves the CSV (the log keeps both
        the answer and the undo), and the sample is shown again. Returns its id.

        Raises:
            ValidationError: If this session has no answer to take back.
        """
        with self._lock, locked(self.labels_path):
            if not self._answered:
                raise ValidationError(
                    "There is no answer of this session to undo.",
                    hint="Undo takes back answers given since the page was served.",
                )
            sample_id, label = self._answered[-1]
            row = [sample_id, self.method, self.annotator, label]
            lines = self.labels_path.read_text(encoding="utf-8").splitlines(keepends=True)
            for index in range(len(lines) - 1, 0, -1):
                if next(csv.reader([lines[index]]), None) == row:
                    del lines[index]
                    break
            else:
                raise ValidationError(
                    f"The answer for {sample_id!r} is no longer in {self.labels_path}.",
                    hint="The labels file was edited; fix it by hand.",
                )
            atomic_write_text(self.labels_path, "".join(lines))
            self._log(sample_id, undo=True, label=label)
            self._answered.pop()
            self.done.discard(sample_id)
            self._shown[sample_id] = time.monotonic()
            return sample_id

    def _log(self, sample_id: str, **fields: Any) -> None:
        record = {
            "sample_id": sample_id,
            "method": self.method,
            "annotator": self.annotator,
            **fields,
            "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        append_jsonl(self.log_path, json.dumps(record))

    def _append_csv(self, row: list[str]) -> None:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        fresh = not self.labels_path.exists() or self.labels_path.stat().st_size == 0
        if fresh:
            writer.writerow(CSV_COLUMNS)
        elif not self.labels_path.read_bytes().endswith(b"\n"):
            buf.write("\n")  # a file edited by hand may lack its final newline
        writer.writerow(row)
        # one write of complete lines, flushed to disk: a crash leaves whole rows only
        self.labels_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.labels_path, "ab") as fh:
            fh.write(buf.getvalue().encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())


class _Handler(BaseHTTPRequestHandler):
    session: AnnotationSession  # set on the subclass made by make_server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet by default
        pass

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = urlparse(self.path).path
        if path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, PAGE.encode(), "text/html; charset=utf-8")
        elif path == "/api/state":
            self._json(HTTPStatus.OK, self.session.state())
        elif path.startswith("/legend/") and path.endswith(".png"):
            try:
                self._send(HTTPStatus.OK, legend_png(unquote(path[8:-4])), "image/png")
            except KeyError:
                self._json(HTTPStatus.NOT_FOUND, {"error": "not a toy entity"})
        elif path.startswith("/image/"):
            parts = path.split("/")
            if len(parts) != 4:
                self._json(HTTPStatus.NOT_FOUND, {"error": "no such image"})
                return
            try:
                file = self.session.image(unquote(parts[2]), parts[3])
                self._send(HTTPStatus.OK, file.read_bytes(), "image/png")
            except (ValidationError, OSError) as exc:
                self._json(HTTPStatus.NOT_FOUND, {"error": str(exc)})
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no page {path!r}"})

    def do_POST(self) -> None:  # noqa: N802
        path = urlparse(self.path).path
        if path not in ("/api/label", "/api/undo"):
            self._json(HTTPStatus.NOT_FOUND, {"error": "no such endpoint"})
            return
        problem = request_problem(self.headers, self.server.server_address[1])
        if problem is not None:
            self._json(HTTPStatus.FORBIDDEN, {"error": f"refused: {problem}"})
            return
        if path == "/api/undo":
            try:
                sample_id = self.session.undo()
            except ValidationError as exc:
                self._json(HTTPStatus.CONFLICT, {"error": exc.message})
                return
            self._json(HTTPStatus.OK, {"undone": sample_id, "state": self.session.state()})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            data = json.loads(self.rfile.read(min(length, 1 << 16)) or b"{}")
            if not isinstance(data, dict):
                raise ValueError("expected a JSON object")
            label = self.session.answer(str(data.get("sample_id")), str(data.get("choice")))
        except ValidationError as exc:
            self._json(HTTPStatus.CONFLICT, {"error": exc.message})
            return
        except ValueError as exc:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            return
        self._json(HTTPStatus.OK, {"label": label, "state": self.session.state()})


def make_server(session: AnnotationSession, port: int = 0) -> ThreadingHTTPServer:
    """An HTTP server for ``session`` bound to 127.0.0.1 (``port=0`` picks a free port).

    Call ``serve_forever()`` on it (in a thread for tests) and ``shutdown()`` to stop.
    """
    handler = type("AnnotationHandler", (_Handler,), {"session": session})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    return server
