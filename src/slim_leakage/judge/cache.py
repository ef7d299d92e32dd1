"""A content-addressed SQLite cache of judge answers.

The key of a request is the SHA-256 of everything that can change its answer: backend, model
id, stage and prompt version, the rendered prompt, the answer schema, the SHA-256 (and caption)
of every image and the decoding parameters. API keys and other secrets are never part of a request, so they can
never reach the cache. Only answers that parsed are stored, so a re-run of a finished judgement
makes no backend call at all.

The cache uses SQLite's write-ahead log where it works, so that several processes (the ranks
of a distributed run) read while one writes. WAL needs shared memory between the processes,
and "WAL does not work over a network filesystem" (SQLite's WAL documentation, sqlite.org/
wal.html, "Disadvantages"): on a network file system (NFS, SMB/CIFS, Lustre, GPFS and the
like: cluster home folders) the cache falls back to SQLite's rollback journal, which locks
the file the way those file systems support. So it does when SQLite refuses to switch to WAL.
``SLIM_CACHE_JOURNAL=wal|delete`` overrides the choice.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    stage TEXT NOT NULL,
    version TEXT NOT NULL,
    text TEXT NOT NULL,
    input_tokens INTEGER,
    output_tokens INTEGER,
    created REAL NOT NULL
)
"""

#: Columns added after the first release, with their types: a cache written before them gets
#: them on open (NULL in old rows), so old caches load and their keys stay valid.
_ADDED_COLUMNS = {"served_model": "TEXT", "thinking_tokens": "INTEGER"}


#: File system types (as ``/proc/mounts`` names them) on which WAL does not work: network and
#: cluster file systems, whose hosts share no memory.
NETWORK_FS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb",
        "smb3",
        "smbfs",
        "lustre",
        "gpfs",
        "beegfs",
        "ceph",
        "glusterfs",
        "fuse.glusterfs",
        "fuse.sshfs",
        "fuse.s3fs",
        "fuse.gcsfuse",
        "fuse.juicefs",
        "afs",
        "9p",
        "pvfs2",
        "orangefs",
        "ocfs2",
        "gfs2",
    }
)


def mount_type(path: str | os.PathLike, mounts: str | None = None) -> str | None:
    """The file system type of the mount holding ``path`` (Linux ``/proc/mounts``), if known.

    Args:
        path: A file or folder (need not exist; links in its existing part are resolved).
        mounts: The mount table's text (default: ``/proc/mounts`` read now).
    """
    if mounts is None:
        try:
            mounts = Path("/proc/mounts").read_text()
        except OSError:
            return None
    resolved = os.path.realpath(Path(path).expanduser().absolute())
    best, kind = -1, None
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        # /proc/mounts escapes spaces and such as octal (\040)
        point = fields[1].encode().decode("unicode_escape")
        inside = resolved == point or resolved.startswith(point.rstrip("/") + "/")
        if inside and len(point) > best:
            best, kind = len(point), fields[2]
    return kind


def journal_for(path: str | os.PathLike) -> str:
    """``wal`` or ``delete``: the journal mode of a cache file at ``path`` (see the module
    docstring; ``SLIM_CACHE_JOURNAL`` overrides)."""
    forced = os.environ.get("SLIM_CACHE_JOURNAL", "").strip().lower()
    if forced in ("wal", "delete"):
        return forced
    if forced not in ("", "auto"):
        raise ConfigError(
            f"SLIM_CACHE_JOURNAL={forced!r} is not one of wal, delete, auto.",
            hint="Unset it (auto), or set SLIM_CACHE_JOURNAL=delete for a network file system.",
        )
    kind = mount_type(path)
    return "delete" if kind is not None and kind.lower() in NETWORK_FS else "wal"


def default_cache_dir() -> Path:
    """``$SLIM_CACHE_DIR``, else ``~/.cache/slim-leakage``."""
    env = os.environ.get("SLIM_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "slim-leakage"


def request_key(
    *,
    backend: str,
    model: str,
    stage: str,
    version: str,
    text: str,
    schema: dict,
    image_sha256s: list[str],
    decoding: dict,
    image_labels: list[str] | None = None,
    settings: dict | None = None,
) -> str:
    """The content address of one judge request (hex SHA-256).

    ``image_labels`` are the captions sent before each image (part of what the model reads).
    ``settings`` are what the backend adds on the wire (thinking level or budget, output
    allowance; :meth:`Backend.wire_settings`): part of the key only when there are any, so the
    keys of requests sent as they always were do not change. The model that answered is never
    part of a key.
    """
    content = {
        "backend": backend,
        "model": model,
        "stage": stage,
        "version": version,
        "text": text,
        "schema": schema,
        "images": list(image_sha256s),
        "image_labels": list(image_labels or []),
        "decoding": decoding,
    }
    if settings:
        content["settings"] = settings
    blob = json.dumps(content, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class AnswerCache:
    """Parsed-answer store keyed by :func:`request_key`.

    Args:
        path: The SQLite file (created with its folder), or ``None`` for an in-memory cache
            that lives as long as the object.

    Attributes:
        journal_mode: The journal mode in use (``wal``, ``delete``; ``memory`` in memory).
    """

    def __init__(self, path: str | os.PathLike | None) -> None:
        self.path = None if path is None else Path(path)
        if self.path is not None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(
                    f"Cannot create the judge cache folder {str(self.path.parent)!r} ({exc}).",
                    hint="Pass --judge-arg cache_dir=<writable folder> or set SLIM_CACHE_DIR.",
                ) from exc
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            ":memory:" if self.path is None else str(self.path),
            check_same_thread=False,
            timeout=30,
            isolation_level=None,
        )
        self.journal_mode = "memory"
        statements = [_SCHEMA]
        if self.path is not None:
            self.journal_mode = self._set_journal(journal_for(self.path))
            # NORMAL sync keeps WAL durable at commit boundaries without an fsync per answer;
            # a rollback journal needs FULL for the same.
            sync = "NORMAL" if self.journal_mode == "wal" else "FULL"
            statements = [f"PRAGMA synchronous={sync}", _SCHEMA]
        for statement in statements:
            self._execute_when_free(statement)
        with self._lock:
            have = {row[1] for row in self._db.execute("PRAGMA table_info(answers)")}
        for column, kind in _ADDED_COLUMNS.items():
            if column not in have:
                try:
                    self._execute_when_free(f"ALTER TABLE answers ADD COLUMN {column} {kind}")
                except sqlite3.OperationalError as exc:
                    # another process (a rank of the same run) added it a moment ago
                    if "duplicate column" not in str(exc):
                        raise

    def _set_journal(self, wanted: str) -> str:
        """Switch to the ``wanted`` journal mode; the mode SQLite reports afterwards.

        WAL where SQLite refuses it (it answers with the mode it kept, or fails to set up its
        shared memory) falls back to the rollback journal.
        """
        if wanted == "wal":
            try:
                mode = self._execute_when_free("PRAGMA journal_mode=WAL")
            except sqlite3.OperationalError:
                mode = None
            if mode == "wal":
                return "wal"
        mode = self._execute_when_free("PRAGMA journal_mode=DELETE")
        return str(mode or "delete").lower()

    def _execute_when_free(self, statement: str, wait: float = 30.0) -> Any:
        # Switching to WAL needs a moment of exclusive access and SQLite reports "locked" at
        # once, without its busy timeout, when another process (another rank of a distributed
        # run) opens the same cache at that instant: retry for a bounded time.
        deadline = time.monotonic() + wait
        delay = 0.01
        while True:
            try:
                row = self._db.execute(statement).fetchone()
                return None if row is None else str(row[0]).lower()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() > deadline:
                    raise ConfigError(
                        f"The judge cache {str(self.path)!r} stayed locked for {wait:.0f} s.",
                        hint="Another process holds it; wait for it, or pass "
                        "--judge-arg cache_dir=<another folder>.",
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored answer for ``key`` (``text``, token counts, ``served_model``), or ``None``."""
        with self._lock:
            row = self._db.execute(
                "SELECT text, input_tokens, output_tokens, served_model, thinking_tokens "
                "FROM answers WHERE key = ?",
                (key,),
            ).fetchone()
        if row is None:
            return None
        names = ("text", "input_tokens", "output_tokens", "served_model", "thinking_tokens")
        return dict(zip(names, row))

    def put(
        self,
        key: str,
        *,
        backend: str,
        model: str,
        stage: str,
        version: str,
        text: str,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        served_model: str | None = None,
        thinking_tokens: int | None = None,
    ) -> None:
        """Store the answer text of a parsed answer (replacing an older one).

        ``model`` is the requested model id; ``served_model`` the one the API said answered.
        """
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO answers (key, backend, model, stage, version, text, "
                "input_tokens, output_tokens, created, served_model, thinking_tokens) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    backend,
                    model,
                    stage,
                    version,
                    text,
                    input_tokens,
                    output_tokens,
                    time.time(),
                    served_model,
                    thinking_tokens,
                ),
            )

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
