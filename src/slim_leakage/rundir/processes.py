"""Who works on a run directory: each rank's shard, the lock, and what a failed write says."""

from __future__ import annotations

import dataclasses
import errno
import os
import platform
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError, OutputWriteError, RunError
from ..records import Sample

# -- failed writes -------------------------------------------------------------------------------
#: errno values that mean "this folder cannot take more data" (full, read-only, forbidden).
WRITE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}
)


def write_error(path: str | os.PathLike, exc: OSError) -> OutputWriteError:
    """The error for a failed write of ``path``: names the path, the reason and the fix."""
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        hint = (
            "Free some disk space (or choose another --out directory), then run the same "
            "command again: finished work is kept."
        )
    elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        hint = "Choose a writable directory (another --out), then run the same command again."
    else:
        hint = "Check the path and the disk, then run the same command again."
    return OutputWriteError(f"Cannot write {os.fspath(path)}: {reason}.", hint=hint)


# -- processes: shards and the lock --------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Shard:
    """This process's place among ``world`` processes (from ``accelerate launch`` env vars)."""

    rank: int = 0
    world: int = 1

    @classmethod
    def from_env(cls) -> Shard:
        """The shard that ``WORLD_SIZE`` and ``RANK`` (or ``LOCAL_RANK``) describe.

        Raises:
            ConfigError: If they are not whole numbers with ``0 <= RANK < WORLD_SIZE``.
        """
        values = {}
        for name, default in (("WORLD_SIZE", "1"), ("RANK", os.environ.get("LOCAL_RANK", "0"))):
            text = os.environ.get(name, default)
            try:
                values[name] = int(text)
            except ValueError:
                values[name] = -1
            if values[name] < 0:
                raise ConfigError(
                    f"The environment variable {name}={text!r} is not a whole number >= 0.",
                    hint="Start several processes with `accelerate launch`, which sets WORLD_SIZE "
                    "and RANK, or unset them for one process.",
                )
        world, rank = values["WORLD_SIZE"], values["RANK"]
        if not rank < world:
            raise ConfigError(
                f"RANK={rank} is not below WORLD_SIZE={world}.",
                hint="Unset RANK and WORLD_SIZE for one process, or start with `accelerate "
                "launch`.",
            )
        return cls(rank=rank, world=world)

    def take(self, samples: Sequence[Sample]) -> list[Sample]:
        """This rank's samples: every ``world``-th one, starting at ``rank``."""
        return list(samples[self.rank :: self.world])


class RunLock:
    """An exclusive ``flock`` on ``DIR/.lock`` (released automatically if the process dies)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh = None

    def __enter__(self) -> RunLock:
        import fcntl

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fh = open(self.path, "a+")
        except OSError as exc:
            raise write_error(self.path.parent, exc) from exc
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise RunError(
                f"The run directory {self.path.parent} is in use by {holder}.",
                hint="Wait for that run to finish, or use another --out directory.",
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {platform.node()}")
        fh.flush()
        self._fh = fh
        return self

    def __exit__(self, *exc) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
