"""Progress bars with ETA (tqdm), silenced when not wanted, and the libraries' own output.

:func:`library_output` keeps diffusers, transformers and the hub client quiet where they would
quote a prompt or draw bars the user turned off.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import re
import sys
from collections.abc import Callable, Iterator
from typing import Any


class _Null:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str) -> None:
        pass


def progress_enabled(enabled: bool = True) -> bool:
    """Whether to draw progress bars: ``enabled`` unless ``SLIM_NO_PROGRESS=1`` is set."""
    import os

    return enabled and os.environ.get("SLIM_NO_PROGRESS") != "1"


@contextlib.contextmanager
def progress_bar(*, total: int, desc: str, enabled: bool = True):
    """A tqdm bar on stderr (``enabled=False`` or ``SLIM_NO_PROGRESS=1`` gives a silent one)."""
    if not progress_enabled(enabled):
        yield _Null()
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit="it", file=sys.stderr, dynamic_ncols=True, leave=False)
    try:
        yield bar
    finally:
        bar.close()


# -- what the libraries print ---------------------------------------------------------------------
#: Library warnings summarised by a note of ours: (pattern, note). The pipelines' own warning
#: quotes the cut-off text, which for a very long prompt floods the terminal.
_SUMMARISED = (
    (
        re.compile(r"The following part of your input was truncated because (?P<why>[^:]{0,120})"),
        "note: a prompt is longer than a text encoder reads ({why}); the pipeline uses its start "
        "and drops the rest (shown once)",
    ),
    (
        re.compile(r"Token indices sequence length is longer than the specified maximum"),
        None,  # the tokenizer's warning before the same cut; the note above covers it
    ),
    (
        # diffusers warns when a model with nothing to keep in float32 is cast; it says nothing
        re.compile(r"There are modules in \w+ that should be kept in float32: \[\]\."),
        None,
    ),
)


class _Summarise(logging.Filter):
    """Drops the library warnings of :data:`_SUMMARISED`, giving each note once instead."""

    def __init__(self, note: Callable[[str], None]) -> None:
        super().__init__()
        self.note = note
        self.noted: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        head = str(record.msg)[:300]
        for pattern, text in _SUMMARISED:
            found = pattern.search(head)
            if found is None:
                continue
            if text is not None:
                line = text.format(why=found.groupdict().get("why", "").strip())
                if text not in self.noted:
                    self.noted.add(text)
                    self.note(line)
            return False
        return True


#: The libraries' logging modules; each has ``get_logger`` and a progress-bar switch
#: (diffusers/utils/logging.py, transformers/utils/logging.py).
_LIBRARY_LOGGING = ("diffusers.utils.logging", "transformers.utils.logging")


def _library_logs() -> list[Any]:
    out = []
    for module in _LIBRARY_LOGGING:
        try:
            out.append(importlib.import_module(module))
        except ImportError:
            continue
    return out


@contextlib.contextmanager
def library_output(*, progress: bool, note: Callable[[str], None]) -> Iterator[None]:
    """Keep diffusers, transformers and the hub client to what a run's reader needs.

    Inside, their warnings that quote a prompt (a cut-off text) are replaced by one note of our
    own each, and with ``progress=False`` their loading and download bars are off too. Both
    are restored on exit.

    Args:
        progress: Whether bars may be drawn (``--no-progress`` turns theirs off as well).
        note: Where the notes go (the run's log).
    """
    logs = _library_logs()
    summarise = _Summarise(note)
    # get_logger() sets up a library's own handler (once), which its records go to; the root
    # logger's handlers see them only if someone let them propagate
    handlers = [h for lib in logs for h in lib.get_logger().handlers]
    handlers += logging.getLogger().handlers
    for handler in handlers:
        handler.addFilter(summarise)
    restore = [] if progress else _bars_off(logs)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(summarise)
        for undo in restore:
            undo()


def _bars_off(logs: list[Any]) -> list[Callable[[], None]]:
    """Turn off the libraries' own bars; returns how to turn back on those that were on."""
    undo: list[Callable[[], None]] = []
    for lib in logs:
        if lib.is_progress_bar_enabled():
            lib.disable_progress_bar()
            undo.append(lib.enable_progress_bar)
    try:
        from huggingface_hub.utils import (
            are_progress_bars_disabled,
            disable_progress_bars,
            enable_progress_bars,
        )
    except ImportError:
        return undo
    if not are_progress_bars_disabled():
        disable_progress_bars()
        undo.append(enable_progress_bars)
    return undo
