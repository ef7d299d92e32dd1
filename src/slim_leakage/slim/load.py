"""Loading SLIM: config names, fingerprints, ``datasets.Dataset`` and typed samples.

The installed package carries a copy of the repository's ``slim/`` folder under
``slim_leakage/slim/data`` (same files, byte for byte; a test checks it), so loading works
from anywhere and offline. A config may also be a path to a Parquet file in the SLIM schema or
a ``.jsonl`` file of :class:`~slim_leakage.records.Sample` lines, so users can evaluate their
own prompts with the same commands.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._io import sha256_file
from ..errors import (
    ConfigError,
    DatasetError,
    MissingInputError,
    UnknownNameError,
    did_you_mean,
    one_error,
)
from ..records import Sample
from . import hub_format as _folder

_FILE_SUFFIXES = (".parquet", ".jsonl")


def data_root() -> Path:
    """The folder holding the installed copy of SLIM (``README.md`` + ``data/*.parquet``)."""
    return Path(__file__).resolve().parent / "data"


def _card_configs(root: Path) -> list[dict[str, Any]]:
    return list(_folder.read_card(root)["configs"])


def list_configs(*, root: str | os.PathLike | None = None) -> list[str]:
    """Names of the configs in the installed SLIM (or in the folder ``root``)."""
    return [c["name"] for c in _card_configs(Path(root) if root else data_root())]


def describe_configs(*, root: str | os.PathLike | None = None) -> list[dict]:
    """One row per config: ``name``, ``rows``, ``description`` (read from the card, not the data)."""
    try:
        configs = _card_configs(Path(root) if root else data_root())
    except DatasetError:
        return []
    return [
        {"name": c["name"], "rows": int(c["rows"]), "description": str(c.get("description", ""))}
        for c in configs
    ]


def _is_file_config(config: str) -> bool:
    return config.endswith(_FILE_SUFFIXES) or os.sep in config or "/" in config


def resolve(config: str, *, root: str | os.PathLike | None = None) -> Path:
    """The data file of ``config`` (a config name or a path to a ``.parquet``/``.jsonl`` file).

    Raises:
        UnknownNameError: For an unknown config name, listing the available ones.
        DatasetError: For a path that does not exist or is not Parquet or JSON lines.
    """
    if _is_file_config(config):
        path = Path(config).expanduser()
        if path.is_dir():
            raise MissingInputError(
                f"Dataset file {str(path)!r} is a folder.",
                hint="Give a .parquet or .jsonl file of samples (not the folder that holds it), "
                "or a config name (slim-eval ls configs).",
            )
        if not path.is_file():
            raise MissingInputError(
                f"Dataset file {str(path)!r} does not exist.",
                hint="Give a config name (slim-eval ls configs) or an existing .parquet/.jsonl file.",
            )
        if path.suffix not in _FILE_SUFFIXES:
            raise MissingInputError(
                f"Dataset file {str(path)!r} is neither .parquet nor .jsonl.",
                hint="Save your samples as Parquet in the SLIM schema or as Sample JSON lines.",
            )
        return path
    base = Path(root) if root else data_root()
    names = list_configs(root=base)
    if config not in names:
        raise UnknownNameError(
            f"Unknown SLIM config {config!r}.{did_you_mean(config, names)}",
            hint=(
                f"Available configs: {', '.join(names) or '(none)'}; or pass a path to a "
                ".parquet or .jsonl file of your own samples."
            ),
        )
    path = _folder.data_path(base, config)
    if not path.is_file():
        raise DatasetError(
            f"The card of {base} lists {config!r} but {path} is missing.",
            hint="Rebuild the folder (slim-eval dataset build) or reinstall the package.",
        )
    return path


def dataset_fingerprint(config: str, *, root: str | os.PathLike | None = None) -> str:
    """SHA-256 of the config's data file bytes (recorded in run manifests)."""
    return sha256_file(resolve(config, root=root))


def config_label(config: str) -> str:
    """The name recorded in ``Sample.config``: the config name, or a file's stem."""
    return Path(config).stem if _is_file_config(config) else config


def load_slim(config: str, *, root: str | os.PathLike | None = None):
    """Load a SLIM config as a ``datasets.Dataset`` (its ``test`` split).

    Args:
        config: A config name (``pairs``) or a path to a ``.parquet``/``.jsonl`` file.
        root: A SLIM folder to read instead of the installed copy.

    Raises:
        UnknownNameError: For an unknown config name, listing the available ones.
    """
    from .._api_checks import check_config

    config = check_config(config)
    import datasets
    import pyarrow.parquet as pq
    from datasets.table import InMemoryTable

    path = resolve(config, root=root)
    if path.suffix == ".jsonl":
        rows = [s.to_dict() for s in _read_jsonl(path)]
        return datasets.Dataset.from_list(rows, split=datasets.Split.TEST)
    table = pq.read_table(path)
    # In memory: no copy into the user's datasets cache, and features come from the file.
    return datasets.Dataset(InMemoryTable(table), split=datasets.Split.TEST)


#: How many problems of one samples file are listed (the rest are counted).
_MAX_LISTED = 20


def _refuse(problems: list[DatasetError], path: Path, unit: str) -> None:
    """Raise the problems found in a samples file, if any (the first few listed)."""
    if len(problems) > _MAX_LISTED:
        more = len(problems) - _MAX_LISTED
        problems = problems[:_MAX_LISTED] + [
            DatasetError(f"... and {more} more {unit}(s) of {path} with problems.")
        ]
    if problems:
        raise one_error(problems, what=f"in {path}")


def _read_jsonl(path: Path) -> list[Sample]:
    """The samples of a JSON-lines file; every bad line is reported, each with its number.

    A byte-order mark at the start (as some editors save UTF-8) is ignored.
    """
    samples, problems = [], []
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                problems.append(
                    DatasetError(
                        f"{path}:{number} is not UTF-8 text ({exc.reason} at byte {exc.start}).",
                        hint="Save the samples file as UTF-8, one Sample JSON object per line.",
                    )
                )
                continue
            if not line.strip():
                continue
            try:
                samples.append(Sample.from_json(line))
            except DatasetError as exc:
                problems.append(
                    DatasetError(
                        f"{path}:{number}: {exc.message}",
                        hint=exc.hint or "Each line must be one Sample as JSON.",
                    )
                )
    _refuse(problems, path, "line")
    return samples


def sample_locations(config: str, *, root: str | os.PathLike | None = None) -> dict[str, list[str]]:
    """Where each sample id of ``config`` is written: ``file:line`` (JSON lines) or ``file, row N``.

    Used to point a problem with an id (a duplicate, a collision) at the lines to fix; an id
    written twice has two places.
    """
    import json

    path = resolve(config, root=root)
    where: dict[str, list[str]] = {}
    if path.suffix == ".jsonl":
        with open(path, "rb") as fh:
            for number, raw in enumerate(fh, 1):
                try:
                    row = json.loads(raw.decode("utf-8-sig" if number == 1 else "utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError):
                    continue
                if isinstance(row, dict) and isinstance(row.get("id"), str):
                    where.setdefault(row["id"], []).append(f"{path}:{number}")
        return where
    import pyarrow.parquet as pq

    for number, sample_id in enumerate(
        pq.read_table(path, columns=["id"]).column(0).to_pylist(), 1
    ):
        where.setdefault(str(sample_id), []).append(f"{path}, row {number}")
    return where


def _read_parquet(path: Path, label: str) -> list[Sample]:
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except Exception as exc:
        raise DatasetError(f"{path} is not a readable Parquet file ({exc}).") from exc
    missing = [c for c in _folder.REQUIRED_COLUMNS if c not in schema.names]
    if missing:
        raise DatasetError(
            f"{path} lacks the column(s) {', '.join(missing)}.",
            hint=f"A SLIM file needs {', '.join(_folder.REQUIRED_COLUMNS)} and may have "
            f"{', '.join(c for c in _folder.FEATURES if c not in _folder.REQUIRED_COLUMNS)}.",
        )
    wanted = ["id", "prompt", "entities", "seed", "kind", "subset", "family", "template_id"]
    columns = [c for c in [*wanted, "source"] if c in schema.names]
    rows = pq.read_table(path, columns=columns).to_pylist()
    samples, problems = [], []
    for number, row in enumerate(rows, 1):
        try:
            samples.append(
                Sample(
                    id=row["id"],
                    prompt=row["prompt"] or "",
                    entities=row["entities"] if row["entities"] is not None else (),
                    seed=row["seed"],
                    kind=row.get("kind") or "pair",
                    subset=row.get("subset") or "",
                    family=row.get("family") or "",
                    template_id=row.get("template_id") or "",
                    config=label,
                    source=row.get("source") or "",
                )
            )
        except DatasetError as exc:
            problems.append(DatasetError(f"{path}, row {number}: {exc.message}", hint=exc.hint))
    _refuse(problems, path, "row")
    return samples


def load_samples(
    config: str,
    *,
    limit: int | None = None,
    ids: Sequence[str] | None = None,
    root: str | os.PathLike | None = None,
) -> list[Sample]:
    """Load a config (or a ``.parquet``/``.jsonl`` file) as :class:`Sample` records.

    Args:
        config: A config name or a path to a file of samples.
        limit: Keep only the first ``limit`` samples (after ``ids`` filtering).
        ids: Keep only these sample ids, in dataset order; an unknown id is an error.
        root: A SLIM folder to read instead of the installed copy.

    Raises:
        UnknownNameError: For an unknown config name.
        ConfigError: For requested ids that are not in the config (never silently dropped).
        ConfigError: For arguments of the wrong type, a limit below 1 (the same rule as
            ``--limit`` everywhere) or ids given as one string.
        DatasetError: For a file that is malformed or holds no samples (every bad line or row
            is named).
    """
    from .._api_checks import check_config, check_ids, check_limit

    config = check_config(config)
    limit = check_limit(limit)
    ids = check_ids(ids)
    path = resolve(config, root=root)
    label = config_label(config)
    if path.suffix == ".jsonl":
        samples = [
            s if s.config else Sample.from_dict({**s.to_dict(), "config": label})
            for s in _read_jsonl(path)
        ]
    else:
        samples = _read_parquet(path, label)
    if not samples:
        raise DatasetError(
            f"{path} holds no samples.",
            hint="Write one Sample JSON object per line (id, prompt, entities, seed), or give "
            "a config name (slim-eval ls configs).",
        )
    if ids is not None:
        wanted = list(dict.fromkeys(ids))
        have = {s.id for s in samples}
        unknown = [i for i in wanted if i not in have]
        if unknown:
            shown = ", ".join(map(repr, unknown[:5])) + (" ..." if len(unknown) > 5 else "")
            what = (
                f"No samples selected: none of the {len(wanted)} requested id(s) is in {config!r}"
                if len(unknown) == len(wanted)
                else f"{len(unknown)} of the {len(wanted)} requested id(s) are not in {config!r}"
            )
            raise ConfigError(
                f"{what}: {shown}.",
                hint="Check --ids against the config (load_samples(config) lists them) or check "
                "the config name.",
            )
        keep = set(wanted)
        samples = [s for s in samples if s.id in keep]
    if limit is not None:
        samples = samples[:limit]
    return samples
