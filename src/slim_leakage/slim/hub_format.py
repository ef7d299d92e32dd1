"""The SLIM folder in Hub layout: the Parquet schema, writing configs, and the dataset card.

A folder holds ``README.md`` (the card, whose YAML ``configs:`` block lets
``datasets.load_dataset(folder, config)`` find each file, plus a ``slim:`` block that
:func:`read_card` reads without touching the data) and ``data/<config>.parquet``.
Each Parquet file carries its own description in its schema metadata, so the card is always
regenerated from the files present: configs built by other vocabularies into the same folder
(the toy world's) appear in the card without anyone editing it.

Writing is deterministic: the same rows give the same bytes (with the same pyarrow version,
which Parquet records in its footer).
"""

from __future__ import annotations

import io
import json
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._io import atomic_write_bytes, atomic_write_text, sha256_file
from ..errors import DatasetError
from ..records import Sample

#: Card and file format version; bump when the columns or their meaning change.
FORMAT_VERSION = 1

#: Columns of a SLIM Parquet file, in order, with their ``datasets`` feature types.
FEATURES: dict[str, dict] = {
    "id": {"dtype": "string", "_type": "Value"},
    "prompt": {"dtype": "string", "_type": "Value"},
    "entities": {"feature": {"dtype": "string", "_type": "Value"}, "_type": "Sequence"},
    "family": {"dtype": "string", "_type": "Value"},
    "subset": {"dtype": "string", "_type": "Value"},
    "kind": {"dtype": "string", "_type": "Value"},
    "seed": {"dtype": "int64", "_type": "Value"},
    "template_id": {"dtype": "string", "_type": "Value"},
    "reference_image": {"_type": "Image"},
    "leakage": {"dtype": "bool", "_type": "Value"},
    "source": {"dtype": "string", "_type": "Value"},
}
REQUIRED_COLUMNS = ("id", "prompt", "entities", "seed")
#: The order configs are listed in (others follow alphabetically).
PREFERRED_ORDER = ("pairs", "triplets", "controls")


def _arrow_schema():
    import pyarrow as pa

    types = {
        "id": pa.string(),
        "prompt": pa.string(),
        "entities": pa.list_(pa.string()),
        "family": pa.string(),
        "subset": pa.string(),
        "kind": pa.string(),
        "seed": pa.int64(),
        "template_id": pa.string(),
        "reference_image": pa.struct([("bytes", pa.binary()), ("path", pa.string())]),
        "leakage": pa.bool_(),
        "source": pa.string(),
    }
    return pa.schema([pa.field(name, types[name]) for name in FEATURES])


def data_path(root: str | os.PathLike, config: str) -> Path:
    """Where ``config``'s Parquet file lives in the folder ``root``."""
    return Path(root) / "data" / f"{config}.parquet"


def sample_row(
    sample: Sample,
    *,
    reference_image: bytes | None = None,
    leakage: bool | None = None,
) -> dict[str, Any]:
    """The Parquet row of ``sample`` (image bytes as PNG, if any)."""
    return {
        "id": sample.id,
        "prompt": sample.prompt,
        "entities": list(sample.entities),
        "family": sample.family,
        "subset": sample.subset,
        "kind": sample.kind,
        "seed": int(sample.seed),
        "template_id": sample.template_id,
        "reference_image": None
        if reference_image is None
        else {"bytes": reference_image, "path": f"{sample.id}.png"},
        "leakage": leakage,
        "source": sample.source or None,
    }


def write_config(
    root: str | os.PathLike,
    config: str,
    rows: Sequence[dict[str, Any]],
    *,
    kind: str,
    description: str,
    provenance: dict[str, Any] | None = None,
) -> Path:
    """Write ``rows`` (from :func:`sample_row`) as ``root/data/<config>.parquet``, atomically.

    Args:
        root: The Hub-layout folder.
        config: Config name (the file stem).
        rows: One dict per sample, keys as :data:`FEATURES`.
        kind: ``pair``, ``triplet``, ``control`` or ``mixed``.
        description: One line for the card and ``slim-eval ls configs``.
        provenance: Extra facts stored in the file (builder version, vocabulary ...).

    Returns:
        The path written.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _arrow_schema()
    meta = {
        "config": config,
        "kind": kind,
        "description": description,
        "format_version": FORMAT_VERSION,
        **(provenance or {}),
    }
    schema = schema.with_metadata(
        {
            b"huggingface": json.dumps({"info": {"features": FEATURES}}, sort_keys=True).encode(),
            b"slim": json.dumps(meta, sort_keys=True, ensure_ascii=False).encode(),
        }
    )
    table = pa.Table.from_pylist(list(rows), schema=schema)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd", row_group_size=max(1, len(rows)))
    path = data_path(root, config)
    atomic_write_bytes(path, buf.getvalue())
    return path


def file_info(path: str | os.PathLike) -> dict[str, Any]:
    """What the card says about one Parquet file: rows, metadata, counts per subset."""
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:
        raise DatasetError(
            f"{path} is not a readable Parquet file ({exc}).",
            hint="Rebuild it with `slim-eval dataset build` or remove it from the folder.",
        ) from exc
    raw = (pf.schema_arrow.metadata or {}).get(b"slim")
    meta = json.loads(raw) if raw else {}
    subsets: Counter = Counter()
    families: set[str] = set()
    if "subset" in pf.schema_arrow.names:
        cols = [c for c in ("subset", "family") if c in pf.schema_arrow.names]
        table = pf.read(columns=cols)
        subsets.update(v or "" for v in table.column("subset").to_pylist())
        if "family" in cols:
            families.update(v for v in table.column("family").to_pylist() if v)
    return {
        "name": path.stem,
        "rows": pf.metadata.num_rows,
        "kind": meta.get("kind", ""),
        "description": meta.get("description", ""),
        "sha256": sha256_file(path),
        "subsets": dict(sorted(subsets.items())),
        "families": len(families),
        "meta": meta,
    }


def _order(names: Sequence[str]) -> list[str]:
    head = [n for n in PREFERRED_ORDER if n in names]
    return head + sorted(n for n in names if n not in PREFERRED_ORDER)


def folder_configs(root: str | os.PathLike) -> list[dict[str, Any]]:
    """:func:`file_info` for every Parquet file in ``root/data``, in card order."""
    files = {p.stem: p for p in (Path(root) / "data").glob("*.parquet")}
    return [file_info(files[name]) for name in _order(list(files))]


def _yaml_block(infos: Sequence[dict[str, Any]], pyarrow_version: str) -> str:
    lines = [
        "---",
        "license: apache-2.0",
        "pretty_name: SLIM (Semantic Leakage in IMages)",
        "language:",
        "- en",
        "task_categories:",
        "- text-to-image",
        "tags:",
        "- semantic-leakage",
        "- evaluation",
        "size_categories:",
        f"- {_size_category(sum(i['rows'] for i in infos))}",
        "configs:",
    ]
    for info in infos:
        lines.append(f"- config_name: {info['name']}")
        if info["name"] == "pairs":
            lines.append("  default: true")
        lines += [
            "  data_files:",
            "  - split: test",
            f"    path: data/{info['name']}.parquet",
        ]
    lines += ["slim:", f"  format_version: {FORMAT_VERSION}", f"  pyarrow: '{pyarrow_version}'"]
    lines.append("  configs:")
    for info in infos:
        lines += [
            f"  - name: {info['name']}",
            f"    rows: {info['rows']}",
            f"    kind: {info['kind'] or 'unknown'}",
            f"    description: {json.dumps(info['description'], ensure_ascii=False)}",
            f"    sha256: {info['sha256']}",
        ]
    lines.append("---")
    return "\n".join(lines) + "\n"


def _size_category(n: int) -> str:
    if n < 1000:
        return "n<1K"
    if n < 10_000:
        return "1K<n<10K"
    return "10K<n<100K"


def _provenance(meta: dict[str, Any]) -> str:
    if "imported_from" in meta:
        return f"imported from `{meta['imported_from']}`"
    if "backbone" in meta:
        return (
            f"verified: {meta.get('checked', '?')} samples generated with `{meta['backbone']}`, "
            f"judged by `{meta.get('judge', '?')}`, kept: {meta.get('keep', '?')}"
        )
    if "builder_version" in meta:
        return (
            f"built by builder v{meta['builder_version']} from taxonomy "
            f"`{meta.get('taxonomy', '?')}` and templates `{meta.get('templates', '?')}`"
        )
    return "unknown"


def render_card(infos: Sequence[dict[str, Any]], pyarrow_version: str) -> str:
    """The full dataset card (YAML block and Markdown) for the given configs."""
    total = sum(i["rows"] for i in infos)
    config_rows = "\n".join(
        f"| `{i['name']}` | {i['rows']:,} | {i['kind'] or '?'} | {i['families']} | "
        f"{i['description']} |"
        for i in infos
    )
    subset_rows = "\n".join(
        f"| `{i['name']}` | {sub or '(none)'} | {n:,} |"
        for i in infos
        for sub, n in i["subsets"].items()
    )
    provenance_rows = "\n".join(f"| `{i['name']}` | {_provenance(i['meta'])} |" for i in infos)
    first = infos[0]["name"] if infos else "pairs"
    body = f"""
# SLIM: Semantic Leakage in IMages

SLIM is a benchmark of text prompts that make text-to-image models leak features between the
entities they name: in "a cow and a horse in a grassy field" the horse grows cow horns or takes
the cow's patches. Each sample names two or three look-alike entities (same family: big cats,
canids, citrus ...) and comes with the seed it is generated with. The `controls` config pairs
visually distant entities of different categories (a cat and a guitar) where a fix should change
nothing. This folder holds {total:,} samples in {len(infos)} config(s).

## Quick start

```python
from datasets import load_dataset

ds = load_dataset("slim", "{first}", split="test")  # from the folder's parent directory
print(ds[0]["prompt"], ds[0]["entities"], ds[0]["seed"])
```

With the `slim-leakage` package installed, from anywhere:

```python
from slim_leakage.slim import load_slim, load_samples

ds = load_slim("{first}")  # a datasets.Dataset
samples = load_samples("{first}")  # typed Sample records
```

## Configs

Each config has a single `test` split (SLIM is an evaluation set; there is no training split).

| config | rows | kind | families | description |
|---|---:|---|---:|---|
{config_rows}

Rows per subset:

| config | subset | rows |
|---|---|---:|
{subset_rows}

Where each config comes from:

| config | provenance |
|---|---|
{provenance_rows}

## Columns

| column | type | meaning |
|---|---|---|
| `id` | string | stable id derived from the prompt, entities and seed |
| `prompt` | string | the full text prompt |
| `entities` | list of strings | the entities, in prompt order; each occurs in the prompt as a whole word, spelled exactly as listed |
| `family` | string | the look-alike family (`big-cats`); `a+b` for a pair linked across two families |
| `subset` | string | `simple`, `interaction`, `interaction-style`, `animal-triplets`, `produce-triplets`, `object-triplets`, `control` |
| `kind` | string | `pair`, `triplet` or `control` |
| `seed` | int64 | the generation seed of the sample |
| `template_id` | string | the template the prompt was made from (`+style-before/after` for styled prompts) |
| `reference_image` | image | for verified or imported rows: the leaky image generated at this seed; empty otherwise |
| `leakage` | bool | for verified or imported rows: whether the judge (or a person) found leakage; empty otherwise |
| `source` | string | where the row comes from (`slim-builder`, `official`, `verified:<backbone>:<judge>`) |

## How it was built

1. A curated taxonomy groups entities into families of look-alikes that leak into each other:
   animals (big cats, canids, bovids and equids, deer, bears, large herbivores, primates, rodents,
   marine mammals, birds of prey, songbirds, corvids, parrots, waterbirds, insects, reptiles),
   fruit and vegetables (citrus, berries, stone fruit, round fruit, gourds, nightshades, root
   vegetables, brassicas, tropical fruit) and, beyond the published benchmark, objects
   (vehicles, string instruments, seating). A few look-alike links cross families (a bat and an
   owl, a strawberry and a radish). Every entity has a one-sentence description of its
   distinguishing look.
2. Hand-written templates per subset and per kind of scene: a simple scene, an interaction, an
   interaction with a rendering style (before or after the sentence), and three-entity clauses.
   Pairs take every two members of a family (and every link) once per two-entity subset;
   triplets take up to a fixed number of three-member combinations per family; controls pair each
   entity with one from a different category.
3. Template, entity order and seed are chosen from a hash of the content, so the builder is
   deterministic: the same builder version gives byte-identical files.
4. Before anything is written the builder checks that every entity occurs exactly once in its
   prompt as a whole word spelled as listed, that occurrences do not overlap and follow the
   listed order, that ids are unique, that the number of entities matches the kind, and that no
   (prompt, seed) pair repeats.

`slim-eval dataset verify --backbone flux-dev --judge <judge>` generates the image of each
sample at its seed and keeps the ones the judge finds leaky, storing the image and verdict: the
selection step of the published benchmark. `slim-eval dataset import-official` converts the
published release into this schema.

## Limitations

- The configs built here are candidate prompts: a row's seed is derived from its content, not
  selected because the model leaked at it. Run `verify` on the model you study to keep only the
  leaky (prompt, seed) pairs, and report which set you evaluated.
- The published benchmark holds 1,130 human-verified samples (840 pairs); this builder's
  families, templates and counts are its own, so figures on it are not comparable with the
  published table. Import the official release to compare.
- Entities are common English nouns; plural or inflected forms are not used, so methods that
  match entity tokens verbatim work, but the vocabulary is narrow (animals, produce and three
  object families).
- Three-entity prompts mix counting errors (a missing or doubled entity) with leakage.
- Images stored by `verify` or by the importer are outputs of the generating model and fall
  under that model's licence (FLUX.1-dev outputs under its non-commercial licence).

## License

The prompts, taxonomy and templates are released under the Apache-2.0 licence.

## Citation

The benchmark design follows the paper that introduced SLIM:

```bibtex
@inproceedings{{ventura2026deleaker,
  title     = {{DeLeaker: Dynamic Inference-Time Reweighting For Semantic Leakage Mitigation in Text-to-Image Models}},
  author    = {{Ventura, Mor and Toker, Michael and Patashnik, Or and Belinkov, Yonatan and Reichart, Roi}},
  booktitle = {{International Conference on Learning Representations (ICLR)}},
  year      = {{2026}},
  eprint    = {{2510.15015}},
  archivePrefix = {{arXiv}}
}}
```
"""
    return _yaml_block(infos, pyarrow_version) + body


def write_card(root: str | os.PathLike) -> Path:
    """Regenerate ``root/README.md`` from the Parquet files in ``root/data`` (atomically)."""
    import pyarrow

    infos = folder_configs(root)
    if not infos:
        raise DatasetError(
            f"{Path(root) / 'data'} has no Parquet files; there is nothing to describe.",
            hint="Build a config first (slim-eval dataset build).",
        )
    path = Path(root) / "README.md"
    atomic_write_text(path, render_card(infos, pyarrow.__version__))
    return path


def read_card(root: str | os.PathLike) -> dict[str, Any]:
    """The ``slim:`` block of ``root/README.md`` (format version and per-config rows).

    Raises:
        DatasetError: If the card is missing or its YAML has no ``slim:`` block.
    """
    import yaml

    path = Path(root) / "README.md"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(
            f"No dataset card at {path}.",
            hint="Point at a SLIM folder (README.md + data/*.parquet) or rebuild it.",
        ) from None
    if not text.startswith("---\n"):
        raise DatasetError(f"{path} has no YAML header.", hint="Regenerate the card.")
    head = text[4:].split("\n---\n", 1)[0]
    try:
        data = yaml.safe_load(head) or {}
    except yaml.YAMLError as exc:
        raise DatasetError(f"{path} has invalid YAML ({exc}).", hint="Regenerate it.") from exc
    block = data.get("slim")
    if not isinstance(block, dict) or not isinstance(block.get("configs"), list):
        raise DatasetError(
            f"{path} has no `slim:` block listing its configs.",
            hint="Regenerate the card with slim_leakage.slim.hub_format.write_card.",
        )
    return block


def copy_folder(src: str | os.PathLike, dst: str | os.PathLike) -> list[Path]:
    """Make ``dst`` hold exactly ``src``'s card and Parquet files (stale Parquet is removed).

    Returns:
        The files written.
    """
    src, dst = Path(src), Path(dst)
    written = []
    names = {p.name for p in (src / "data").glob("*.parquet")}
    for stale in (dst / "data").glob("*.parquet"):
        if stale.name not in names:
            stale.unlink()
    for name in sorted(names):
        target = dst / "data" / name
        atomic_write_bytes(target, (src / "data" / name).read_bytes())
        written.append(target)
    atomic_write_bytes(dst / "README.md", (src / "README.md").read_bytes())
    written.append(dst / "README.md")
    return written


def folder_files(root: str | os.PathLike) -> list[str]:
    """The card and Parquet files of a folder, as sorted relative paths."""
    root = Path(root)
    names = [f"data/{p.name}" for p in (root / "data").glob("*.parquet")]
    if (root / "README.md").is_file():
        names.append("README.md")
    return sorted(names)


def compare_folders(a: str | os.PathLike, b: str | os.PathLike) -> list[str]:
    """Differences between two SLIM folders' files, byte for byte (empty when identical)."""
    a, b = Path(a), Path(b)
    files_a, files_b = set(folder_files(a)), set(folder_files(b))
    out = [f"{name}: only in {a}" for name in sorted(files_a - files_b)]
    out += [f"{name}: only in {b}" for name in sorted(files_b - files_a)]
    out += [
        f"{name}: contents differ"
        for name in sorted(files_a & files_b)
        if (a / name).read_bytes() != (b / name).read_bytes()
    ]
    return out
