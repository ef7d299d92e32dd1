"""The one rule for a file a command writes where the user said (``--out``, ``--labels``).

Every command that writes an output file asks :func:`guard_output` first. It refuses, with the
path and the fix:

- a path inside a run directory that names one of the run's own records (its manifest,
  samples, generation, judgement and verdict records, metrics, images, shards, lock, batch
  book): never, not even with ``--force``, since a paid judge's answers cannot be fetched back;
- anything that exists and is not a regular file (a folder, a device such as ``/dev/full``, a
  pipe, a socket, a link): an atomic write replaces the directory entry, so a device node would
  become a JSON file;
- an existing regular file, unless it is the command's own earlier output (``own``) or the
  user said ``--force``;
- a path whose folder cannot be written.

:func:`write_output` then writes through the atomic helpers of :mod:`slim_leakage._io`.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable
from pathlib import Path

from .._io import atomic_write_bytes
from ..errors import ConfigError, OutputWriteError
from .layout import GENERATIONS, JUDGEMENTS, MANIFEST, METRICS, SAMPLES, VERDICTS

#: Names a run directory uses for its records (files at its top, or folders below it).
RUN_RECORDS = frozenset(
    {
        MANIFEST,
        SAMPLES,
        GENERATIONS,
        JUDGEMENTS,
        VERDICTS,
        METRICS,
        "images",
        "shards",
        "judged",
        ".lock",
        "judge-batches.json",
    }
)


def run_of(path: Path) -> Path | None:
    """The run directory ``path`` lies in (a folder above it holding ``manifest.json``)."""
    for folder in path.parents:
        if (folder / MANIFEST).is_file():
            return folder
    return None


def run_record(path: Path) -> str | None:
    """The run record ``path`` names, as ``RUN/NAME``, or ``None`` if it names none."""
    resolved = Path(os.path.abspath(path))
    with contextlib.suppress(OSError):
        resolved = resolved.parent.resolve() / resolved.name
    run = run_of(resolved)
    if run is None:
        return None
    top = resolved.relative_to(run).parts[0]
    if top in RUN_RECORDS or top.startswith(".lock"):
        return f"{run}/{top}"
    return None


def guard_output(
    path: str | os.PathLike,
    *,
    force: bool = False,
    flag: str = "--out",
    own: Callable[[Path], bool] | None = None,
    append: bool = False,
) -> Path:
    """Check that ``path`` may be written by a command; returns it as a :class:`Path`.

    Args:
        path: The file the command will write.
        force: The user said ``--force``: an existing regular file may be replaced.
        flag: The option that named the path (for the message).
        own: Recognises the command's own earlier output, which it may replace without
            ``--force`` (a report rewritten).
        append: The command appends to the file (a labels file resumed): an existing regular
            file is expected.

    Raises:
        ConfigError: For a run's record, something that is not a regular file, or an existing
            file without ``--force``.
        OutputWriteError: For a folder that cannot be written.
    """
    target = Path(path)
    record = run_record(target)
    if record is not None:
        raise ConfigError(
            f"{flag} {str(target)!r} would overwrite {record}, a record of the run "
            f"{str(Path(record).parent)!r}.",
            hint=f"Give {flag} a path outside the run's records (a new file name); a run's "
            "records are never overwritten, not even with --force.",
        )
    try:
        info = os.lstat(target)
    except FileNotFoundError:
        info = None
    except NotADirectoryError:
        file = next((p for p in target.parents if p.is_file()), target.parent)
        raise ConfigError(
            f"{flag} {str(target)!r}: {str(file)!r} is a file, not a folder.",
            hint=f"Give {flag} a path in a folder.",
        ) from None
    except OSError as exc:
        raise OutputWriteError(
            f"{flag} {str(target)!r} cannot be checked: {exc.strerror or exc}.",
            hint="Check the path and its permissions.",
        ) from exc
    if info is not None:
        if stat.S_ISLNK(info.st_mode):
            raise ConfigError(
                f"{flag} {str(target)!r} is a link; writing would replace the link, not what "
                "it points to.",
                hint=f"Give {flag} the real path, or a new file name.",
            )
        if stat.S_ISDIR(info.st_mode):
            raise ConfigError(
                f"{flag} {str(target)!r} is a folder, not a file.",
                hint=f"Give {flag} a file path inside it, e.g. {str(target / 'out')!r}.",
            )
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(
                f"{flag} {str(target)!r} is not a regular file (a device, pipe or socket); "
                "it would be replaced by a file.",
                hint=f"Give {flag} a path to a regular file.",
            )
        if not (append or force or (own is not None and own(target))):
            raise ConfigError(
                f"{flag} {str(target)!r} already exists.",
                hint=f"Give {flag} a new file name, or add --force to replace it.",
            )
    folder = target.parent if str(target.parent) else Path(".")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(
            f"{flag} {str(target)!r}: {str(existing)!r} is a file, not a folder.",
            hint=f"Give {flag} a path in a folder.",
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputWriteError(
            f"{flag} {str(target)!r}: the folder {str(existing)!r} cannot be written.",
            hint=f"Give {flag} a path in a folder you can write, or fix its permissions.",
        )
    return target


def write_output(
    path: str | os.PathLike,
    data: bytes | str,
    *,
    force: bool = False,
    flag: str = "--out",
    own: Callable[[Path], bool] | None = None,
) -> Path:
    """:func:`guard_output`, then write ``data`` atomically; returns the path.

    Raises:
        ConfigError: As :func:`guard_output`.
        OutputWriteError: If the write fails (full disk, read-only folder).
    """
    target = guard_output(path, force=force, flag=flag, own=own)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        atomic_write_bytes(target, raw)
    except OSError as exc:
        if isinstance(exc, OutputWriteError):
            raise
        raise OutputWriteError(
            f"Cannot write {str(target)!r}: {exc.strerror or exc}.",
            hint="Free disk space or choose another path, then run the command again.",
        ) from exc
    return target


def json_text(obj) -> str:
    """``obj`` as the indented JSON the project writes (NaN refused)."""
    import json

    return json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
