"""Hub revisions: the ``revision=`` a user pins, checked, and the commit a download resolved to.

A hub id without a revision loads whatever ``main`` holds that day; results name the exact
weights and data only with the commit. ``huggingface_hub`` keeps each download under
``<cache>/<type>s--ORG--NAME/snapshots/<commit>/`` and maps branch and tag names to commits in
``refs/`` (its cache layout, documented in huggingface_hub's "Manage the cache" guide);
:func:`resolved_commit` reads that mapping without the network.
"""

from __future__ import annotations

import re

from .errors import ConfigError

#: What a revision may be: a commit hash, a branch or a tag name (git's ref-name rules, kept to
#: the characters hub names use).
_REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,199}")


def check_revision(value: object, *, owner: str) -> str | None:
    """``value`` as a revision (``None`` stays ``None``).

    Raises:
        ConfigError: Naming the value and the form a revision takes.
    """
    if value is None:
        return None
    if not isinstance(value, str) or not _REVISION.fullmatch(value) or ".." in value:
        raise ConfigError(
            f"{owner}: revision={value!r} is not a commit hash, branch or tag name.",
            hint="Give the hub commit to load (40 hex digits, from the model or data set page's "
            "history), or a branch or tag such as main.",
        )
    return value


def is_hub_id(source: str) -> bool:
    """Whether ``source`` reads as ``ORG/NAME`` rather than a local path."""
    parts = source.split("/")
    return len(parts) == 2 and all(parts) and not source.startswith((".", "~", "/"))


def resolved_commit(
    repo_id: str, revision: str | None = None, *, repo_type: str = "model"
) -> str | None:
    """The commit the local hub cache holds for ``repo_id`` at ``revision`` (default ``main``).

    Nothing is downloaded; ``None`` when huggingface_hub is missing or the cache does not hold
    that revision (a local folder, an offline copy made another way).
    """
    if not is_hub_id(repo_id):
        return None
    try:
        from pathlib import Path

        from huggingface_hub import snapshot_download

        folder = snapshot_download(
            repo_id, revision=revision, repo_type=repo_type, local_files_only=True
        )
    except Exception:  # not in the cache, or no huggingface_hub: the commit is unknown
        return None
    return Path(folder).name
