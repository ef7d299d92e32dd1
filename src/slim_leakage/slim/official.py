"""Import the published SLIM release into our schema.

The release has one row per (prompt, seed) with the columns ``image`` (the leaky image),
``prompt``, ``entities`` (a comma-separated string), ``seed``, ``dataset`` (``two_entities``,
``animal_triplets`` or ``fruit_n_veg_triplets``), ``model`` and ``leakage``. The importer checks
every row, reorders entities into prompt order, looks families up in our taxonomy, keeps the
image as ``reference_image``, groups the rows of one prompt together, and writes the configs
``<prefix>-pairs`` and ``<prefix>-triplets`` into a Hub-layout folder.

A malformed row is never dropped silently: with ``on_error="reject"`` nothing is written and the
error lists the bad rows by number; with ``on_error="skip"`` the rows are left out and listed in
the report.
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._hub import check_revision, resolved_commit
from ..errors import ConfigError, DatasetError
from ..records import Sample
from . import hub_format as _folder
from .builder import check_samples, entity_spans, sample_id, sample_problems
from .taxonomy import SLIM_TAXONOMY, Taxonomy

#: Official ``dataset`` value -> (config suffix, kind, our subset name).
OFFICIAL_SUBSETS: dict[str, tuple[str, str, str]] = {
    "two_entities": ("pairs", "pair", "two-entities"),
    "animal_triplets": ("triplets", "triplet", "animal-triplets"),
    "fruit_n_veg_triplets": ("triplets", "triplet", "produce-triplets"),
}
OFFICIAL_COLUMNS = ("image", "prompt", "entities", "seed", "dataset", "model", "leakage")
_ARITY = {"pair": 2, "triplet": 3}
_DESCRIPTIONS = {
    "pairs": "The published SLIM release's two-entity rows (pairs, interactions, styled interactions), imported with their leaky images",
    "triplets": "The published SLIM release's animal and fruit-and-vegetable triplets, imported with their leaky images",
}


@dataclasses.dataclass(frozen=True)
class ImportReport:
    """What :func:`import_official` read and wrote.

    Attributes:
        out: The folder written (``None`` when nothing was written).
        rows_read: Rows in the source.
        rows_written: Rows written.
        skipped: ``(row number, reason)`` of each row left out (1-based, source order).
        per_subset: Official ``dataset`` value -> ``{"rows": n, "prompts": m}`` written.
        configs: Config name -> rows written.
        revision: The hub revision asked for (a hub id source only).
        commit: The hub commit read, when the local hub cache says (a hub id source only).
    """

    out: str | None
    rows_read: int
    rows_written: int
    skipped: tuple[tuple[int, str], ...]
    per_subset: dict
    configs: dict
    revision: str | None = None
    commit: str | None = None


def _iter_official_rows(source: str, revision: str | None = None) -> Iterator[dict[str, Any]]:
    path = Path(source).expanduser()
    if path.is_dir():
        files = sorted(path.rglob("*.parquet"))
        if not files:
            raise DatasetError(
                f"The folder {str(path)!r} holds no Parquet files.",
                hint="Point at the release's Parquet file(s) or its hub id.",
            )
    elif path.is_file():
        files = [path]
    elif _looks_like_hub_id(source):
        yield from _iter_hub_rows(source, revision)
        return
    else:
        raise DatasetError(
            f"{source!r} does not exist and is not a hub id ORG/NAME.",
            hint="Give the release's Parquet file, its folder, or e.g. tokeron/slim-dataset.",
        )
    import pyarrow.parquet as pq

    for file in files:
        try:
            pf = pq.ParquetFile(file)
        except Exception as exc:
            raise DatasetError(f"{file} is not a readable Parquet file ({exc}).") from exc
        missing = [c for c in OFFICIAL_COLUMNS if c not in pf.schema_arrow.names]
        if missing:
            raise DatasetError(
                f"{file} lacks the official column(s) {', '.join(missing)}.",
                hint=f"The official release has the columns {', '.join(OFFICIAL_COLUMNS)}.",
            )
        for batch in pf.iter_batches(batch_size=256, columns=list(OFFICIAL_COLUMNS)):
            yield from batch.to_pylist()


def _looks_like_hub_id(source: str) -> bool:
    parts = source.split("/")
    return (
        len(parts) == 2
        and all(parts)
        and not source.startswith((".", "~"))
        and not source.endswith((".parquet", ".jsonl"))
    )


def _iter_hub_rows(repo_id: str, revision: str | None = None) -> Iterator[dict[str, Any]]:
    import datasets

    try:
        ds = datasets.load_dataset(repo_id, split="train", revision=revision)
    except Exception as exc:
        raise DatasetError(
            f"Could not load {repo_id!r} from the hub: {str(exc).splitlines()[0]}",
            hint="Check the network and your hub login, or download the release and pass its "
            "Parquet file or folder.",
        ) from exc
    if "image" in ds.column_names:
        ds = ds.cast_column("image", datasets.Image(decode=False))
    yield from ds


def _image_bytes(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, dict):
        raw = value.get("bytes")
        if raw:
            return bytes(raw)
        if value.get("path") and Path(value["path"]).is_file():
            return Path(value["path"]).read_bytes()
        return None
    if hasattr(value, "save"):  # a PIL image
        buf = io.BytesIO()
        value.save(buf, format="PNG")
        return buf.getvalue()
    raise TypeError(f"image of type {type(value).__name__}")


def _family(entities: tuple[str, ...], taxonomy: Taxonomy) -> str:
    if not all(e in taxonomy for e in entities):
        return ""
    families = sorted({taxonomy.get(e).family for e in entities})
    return "+".join(families)


def convert_row(
    row: dict[str, Any], *, taxonomy: Taxonomy = SLIM_TAXONOMY
) -> tuple[Sample, bytes | None, bool | None]:
    """Convert one official row to ``(sample, image bytes, leakage)``.

    Raises:
        DatasetError: Saying what is wrong with the row.
    """
    prompt = row.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise DatasetError(f"prompt is missing or empty ({prompt!r})")
    value = row.get("dataset")
    if value not in OFFICIAL_SUBSETS:
        raise DatasetError(
            f"dataset is {value!r}, not one of {', '.join(OFFICIAL_SUBSETS)}",
        )
    _suffix, kind, subset = OFFICIAL_SUBSETS[value]
    raw = row.get("entities")
    if isinstance(raw, str):
        names = [e.strip() for e in raw.split(",")]
    elif isinstance(raw, (list, tuple)):
        names = [str(e).strip() for e in raw]
    else:
        raise DatasetError(f"entities is {raw!r}, not a comma-separated string")
    if any(not n for n in names) or len(names) != _ARITY[kind]:
        raise DatasetError(
            f"entities {raw!r} must list {_ARITY[kind]} non-empty names for {value!r}"
        )
    seed = row.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, (int, str)):
        raise DatasetError(f"seed is {seed!r}, not an integer")
    try:
        seed = int(seed)
    except ValueError:
        raise DatasetError(f"seed is {seed!r}, not an integer") from None
    leakage = row.get("leakage")
    if leakage is not None and not isinstance(leakage, bool):
        raise DatasetError(f"leakage is {leakage!r}, not true or false")
    try:
        image = _image_bytes(row.get("image"))
    except TypeError as exc:
        raise DatasetError(f"image is not an image ({exc})") from None
    # The published prompts capitalise the first word; order entities as the prompt does.
    starts = {}
    for name in names:
        spans = entity_spans(prompt, name, case_sensitive=False)
        if not spans:
            raise DatasetError(f"entity {name!r} does not occur in the prompt {prompt!r}")
        starts[name] = spans[0][0]
    entities = tuple(sorted(names, key=lambda n: starts[n]))
    model = row.get("model") or "unknown-model"
    sample = Sample(
        id=sample_id(kind, prompt, entities, seed),
        prompt=prompt,
        entities=entities,
        seed=seed,
        kind=kind,
        subset=subset,
        family=_family(entities, taxonomy),
        template_id="",
        source=f"official:{model}",
    )
    problems = sample_problems(sample, arity=_ARITY[kind], case_sensitive=False, once=False)
    if problems:
        raise DatasetError("; ".join(problems))
    return sample, image, leakage


def import_official(
    source: str,
    out_dir: str | os.PathLike,
    *,
    on_error: str = "reject",
    prefix: str = "official",
    taxonomy: Taxonomy = SLIM_TAXONOMY,
    revision: str | None = None,
) -> ImportReport:
    """Convert the published release at ``source`` into configs in ``out_dir``.

    Args:
        source: A Parquet file, a folder of Parquet files, or a hub id (``ORG/NAME``).
        out_dir: The Hub-layout folder to write ``<prefix>-pairs``/``<prefix>-triplets`` into.
        on_error: ``reject`` (write nothing if any row is malformed) or ``skip`` (leave the
            bad rows out and list them in the report).
        prefix: Config name prefix.
        taxonomy: Where entity families are looked up.
        revision: The hub commit (or branch, tag) to import, for a hub id ``source``; the
            commit read is recorded in each written file's provenance and the report.

    Raises:
        ConfigError: For an unknown ``on_error``, or a bad ``revision`` (or one given for a
            local source).
        DatasetError: For an unreadable source, or malformed rows with ``on_error="reject"``.
    """
    if on_error not in ("reject", "skip"):
        raise ConfigError(
            f"on_error={on_error!r} is not 'reject' or 'skip'.",
            hint="Use --on-error reject (write nothing) or --on-error skip (leave bad rows out).",
        )
    revision = check_revision(revision, owner="import-official")
    from_hub = not Path(source).expanduser().exists() and _looks_like_hub_id(source)
    if revision is not None and not from_hub:
        raise ConfigError(
            f"--revision {revision} was given, but {source!r} is not a hub id.",
            hint="A revision picks a commit of a hub data set (ORG/NAME); leave it out for a "
            "local file or folder.",
        )
    converted: list[tuple[int, str, Sample, bytes | None, bool | None]] = []
    bad: list[tuple[int, str]] = []
    seen: dict[tuple[str, int], int] = {}
    number = 0
    for number, row in enumerate(_iter_official_rows(source, revision), 1):
        try:
            sample, image, leakage = convert_row(row, taxonomy=taxonomy)
        except DatasetError as exc:
            bad.append((number, exc.message))
            continue
        key = (sample.prompt, sample.seed)
        if key in seen:
            bad.append((number, f"repeats the prompt and seed of row {seen[key]}"))
            continue
        seen[key] = number
        converted.append((number, row["dataset"], sample, image, leakage))
    if bad and on_error == "reject":
        shown = "; ".join(f"row {n}: {why}" for n, why in bad[:5])
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise DatasetError(
            f"{len(bad)} of {number} rows of {source!r} are malformed: {shown}{more}. "
            "Nothing was written.",
            hint="Fix the rows, or pass --on-error skip to leave them out (they are reported).",
        )
    # Rows of one prompt stay together, prompts in order of first appearance, seeds ascending.
    by_config: dict[str, dict[str, list]] = defaultdict(dict)
    for item in converted:
        config = f"{prefix}-{OFFICIAL_SUBSETS[item[1]][0]}"
        by_config[config].setdefault(item[2].prompt, []).append(item)
    commit = resolved_commit(source, revision, repo_type="dataset") if from_hub else None
    provenance = {"imported_from": str(source)}
    if from_hub:
        provenance.update(revision=revision, commit=commit)
    configs: dict[str, int] = {}
    counts: Counter = Counter()
    prompts: dict[str, set[str]] = defaultdict(set)
    plans = []
    for config, groups in by_config.items():
        items = [it for group in groups.values() for it in sorted(group, key=lambda i: i[2].seed)]
        samples = [dataclasses.replace(it[2], config=config) for it in items]
        kind = samples[0].kind
        check_samples(samples, config=config, kind=kind, case_sensitive=False)
        plans.append((config, kind, items, samples))
        for it in items:
            counts[it[1]] += 1
            prompts[it[1]].add(it[2].prompt)
    for config, kind, items, samples in plans:
        rows = [
            _folder.sample_row(s, reference_image=it[3], leakage=it[4])
            for s, it in zip(samples, items)
        ]
        suffix = config[len(prefix) + 1 :]
        _folder.write_config(
            out_dir,
            config,
            rows,
            kind=kind,
            description=_DESCRIPTIONS[suffix],
            provenance=provenance,
        )
        configs[config] = len(rows)
    if configs:
        _folder.write_card(out_dir)
    per_subset = {
        value: {"rows": counts[value], "prompts": len(prompts[value])}
        for value in OFFICIAL_SUBSETS
        if counts[value]
    }
    return ImportReport(
        out=str(out_dir) if configs else None,
        rows_read=number,
        rows_written=sum(configs.values()),
        skipped=tuple(bad),
        per_subset=per_subset,
        configs=configs,
        revision=revision,
        commit=commit,
    )


__all__ = ["OFFICIAL_SUBSETS", "ImportReport", "convert_row", "import_official"]
