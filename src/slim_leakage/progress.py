"""Progress bars with ETA (tqdm), silenced when not wanted or not on a terminal."""

from __future__ import annotations

import contextlib
import sys


class _Null:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str) -> None:
        pass


@contextlib.contextmanager
def progress_bar(*, total: int, desc: str, enabled: bool = True):
    """A tqdm bar on stderr (``enabled=False`` or ``SLIM_NO_PROGRESS=1`` gives a silent one)."""
    import os

    if not enabled or os.environ.get("SLIM_NO_PROGRESS") == "1":
        yield _Null()
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit="it", file=sys.stderr, dynamic_ncols=True, leave=False)
    try:
        yield bar
    finally:
        bar.close()
