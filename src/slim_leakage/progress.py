"""Progress bars with ETA (tqdm), silenced when not wanted or not on a terminal."""

from __future__ import annotations

import contextlib
import sys


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
