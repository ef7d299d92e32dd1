"""Publish a SLIM folder (card + Parquet) to the Hugging Face hub, or to a local mirror.

Before anything is sent the folder is checked: the card parses, every config it lists has its
file, and each file's SHA-256 matches the card (a stale card is refused). The local target
(``to_dir``) writes exactly the files an upload would send, under ``<to_dir>/<org>/<name>``.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

from .._io import sha256_file
from ..errors import ConfigError, DatasetError, require
from . import hub_format as _folder

_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclasses.dataclass(frozen=True)
class PushReport:
    """Where a folder went.

    Attributes:
        repo_id: The dataset repository id.
        target: The hub URL or the local folder written.
        files: Paths sent, relative to the folder.
    """

    repo_id: str
    target: str
    files: tuple[str, ...]


def check_folder(root: str | os.PathLike) -> list[str]:
    """Check a SLIM folder before publishing; returns the files to send (relative paths).

    Raises:
        DatasetError: If the card is missing or stale, or a listed file is missing.
    """
    root = Path(root)
    block = _folder.read_card(root)
    files = ["README.md"]
    listed = set()
    for config in block["configs"]:
        path = _folder.data_path(root, config["name"])
        listed.add(path.name)
        if not path.is_file():
            raise DatasetError(
                f"The card of {root} lists {config['name']!r} but {path} is missing.",
                hint="Rebuild the folder or regenerate its card.",
            )
        if sha256_file(path) != config.get("sha256"):
            raise DatasetError(
                f"{path} does not match the SHA-256 its card records; the card is stale.",
                hint="Regenerate the card (slim-eval dataset build, or folder.write_card).",
            )
        files.append(f"data/{path.name}")
    extra = sorted(p.name for p in (root / "data").glob("*.parquet") if p.name not in listed)
    if extra:
        raise DatasetError(
            f"{root / 'data'} holds {', '.join(extra)}, which the card does not list.",
            hint="Regenerate the card so it describes every file, or remove the extra files.",
        )
    return files


def push_folder(
    root: str | os.PathLike,
    repo_id: str,
    *,
    to_dir: str | os.PathLike | None = None,
    private: bool = False,
    token: str | None = None,
    message: str = "Upload SLIM",
) -> PushReport:
    """Upload the folder ``root`` as the dataset ``repo_id`` (or mirror it into ``to_dir``).

    Args:
        root: A SLIM folder (``README.md`` + ``data/*.parquet``).
        repo_id: ``ORG/NAME`` on the hub.
        to_dir: Write to ``<to_dir>/<ORG>/<NAME>`` instead of the hub.
        private: Create the hub repository as private.
        token: A hub token (defaults to the login of ``hf auth login``).
        message: The commit message on the hub.

    Raises:
        ConfigError: For a malformed ``repo_id``.
        DatasetError: For a folder that fails :func:`check_folder`, or a hub that cannot be
            reached or refuses the upload.
        MissingDependencyError: Without ``huggingface-hub`` (``pip install 'slim-leakage[hub]'``).
    """
    if not _REPO_RE.match(repo_id or ""):
        raise ConfigError(
            f"--repo-id {repo_id!r} is not of the form ORG/NAME.",
            hint="Write for example --repo-id my-lab/slim.",
        )
    root = Path(root)
    files = check_folder(root)
    if to_dir is not None:
        target = Path(to_dir) / repo_id
        _folder.copy_folder(root, target)
        return PushReport(repo_id=repo_id, target=str(target), files=tuple(files))
    hub = require("huggingface_hub", "hub", feature="Publishing to the hub")
    api = hub.HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        api.upload_folder(
            folder_path=str(root),
            repo_id=repo_id,
            repo_type="dataset",
            allow_patterns=files,
            commit_message=message,
        )
    except (OSError, ValueError) as exc:  # hub errors derive from these (HTTP, offline mode)
        raise DatasetError(
            f"Could not publish {root} to the hub as {repo_id!r}: {str(exc).splitlines()[0]}",
            hint=(
                "Check the network (and unset HF_HUB_OFFLINE), log in with `hf auth login` "
                "or pass a token, or use --to-dir to write a local copy instead."
            ),
        ) from exc
    return PushReport(
        repo_id=repo_id, target=f"https://huggingface.co/datasets/{repo_id}", files=tuple(files)
    )


__all__ = ["PushReport", "check_folder", "push_folder"]
