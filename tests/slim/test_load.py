import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import slim_leakage
from slim_leakage._io import sha256_file
from slim_leakage.errors import ConfigError, DatasetError, UnknownNameError
from slim_leakage.records import Sample
from slim_leakage.slim import (
    data_root,
    dataset_fingerprint,
    describe_configs,
    hub_format,
    list_configs,
    load_samples,
    load_slim,
)
from slim_leakage.slim.builder import build_slim

REPO_SLIM = Path(slim_leakage.__file__).resolve().parents[2] / "slim"
needs_checkout = pytest.mark.skipif(
    not (REPO_SLIM / "README.md").is_file(), reason="not running from a source checkout"
)


def _same_content(a: Path, b: Path) -> bool:
    ta, tb = pq.read_table(a), pq.read_table(b)
    return ta.equals(tb) and ta.schema.metadata == tb.schema.metadata


@needs_checkout
def test_committed_folder_is_what_the_builder_makes(tmp_path):
    # Configs other vocabularies built into the folder are kept by copying the folder first.
    work = tmp_path / "slim"
    hub_format.copy_folder(REPO_SLIM, work)
    build_slim(work)
    recorded = hub_format.read_card(REPO_SLIM)["pyarrow"]
    if recorded == pa.__version__:
        assert hub_format.compare_folders(work, REPO_SLIM) == []
    else:  # Parquet records the writer's version, so only the content can match
        for name in hub_format.folder_files(REPO_SLIM):
            if name.endswith(".parquet"):
                assert _same_content(work / name, REPO_SLIM / name), name


@needs_checkout
def test_package_copy_is_identical_to_the_repository_folder():
    assert hub_format.compare_folders(REPO_SLIM, data_root()) == []


@needs_checkout
def test_load_dataset_from_the_repository_root(monkeypatch):
    import datasets

    monkeypatch.chdir(REPO_SLIM.parent)
    ds = datasets.load_dataset("slim", "pairs", split="test")
    assert ds.num_rows == describe_configs()[0]["rows"]
    assert isinstance(ds.features["reference_image"], datasets.Image)
    assert ds[0]["entities"] == list(load_samples("pairs", limit=1)[0].entities)


def test_describe_and_list_configs_read_the_card():
    rows = describe_configs()
    assert [r["name"] for r in rows][:3] == ["pairs", "triplets", "controls"]
    assert list_configs()[:3] == ["pairs", "triplets", "controls"]
    for row in rows:
        assert set(row) == {"name", "rows", "description"} and row["description"]
        assert (
            row["rows"] == pq.read_metadata(hub_format.data_path(data_root(), row["name"])).num_rows
        )


def test_listing_configs_imports_no_torch_or_datasets():
    code = (
        "import sys; from slim_leakage.slim import describe_configs; rows = describe_configs(); "
        "assert rows; print(sorted(m for m in ('torch', 'datasets', 'diffusers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_load_slim_gives_the_test_split():
    import datasets

    ds = load_slim("triplets")
    assert isinstance(ds, datasets.Dataset) and str(ds.split) == "test"
    assert ds.num_rows == describe_configs()[1]["rows"]
    assert len(ds[0]["entities"]) == 3


def test_load_samples_limit_ids_and_config_field():
    all_pairs = load_samples("pairs")
    assert all(
        isinstance(s, Sample) and s.config == "pairs" and s.kind == "pair" for s in all_pairs
    )
    assert load_samples("pairs", limit=5) == all_pairs[:5]
    wanted = [all_pairs[7].id, all_pairs[2].id]
    got = load_samples("pairs", ids=wanted)
    assert [s.id for s in got] == [all_pairs[2].id, all_pairs[7].id]  # dataset order
    assert load_samples("pairs", ids=wanted, limit=1) == got[:1]
    with pytest.raises(
        ConfigError, match="1 of the 2 requested id\\(s\\) are not in 'pairs': 'nope'"
    ):
        load_samples("pairs", ids=["nope", all_pairs[0].id])
    with pytest.raises(ConfigError, match="No samples selected: none of the 1 requested"):
        load_samples("pairs", ids=["nope"])
    for limit in (-1, 0):  # the rule of --limit everywhere: N >= 1, or None for all
        with pytest.raises(ConfigError, match=f"limit={limit} selects no samples"):
            load_samples("pairs", limit=limit)


def test_unknown_config_lists_the_available_ones():
    with pytest.raises(UnknownNameError) as info:
        load_samples("pair")
    assert "Did you mean 'pairs'" in str(info.value)
    assert "pairs, triplets, controls" in info.value.hint


def test_fingerprint_is_the_sha256_of_the_file_and_matches_the_card():
    card = {c["name"]: c for c in hub_format.read_card(data_root())["configs"]}
    for name in list_configs():
        fp = dataset_fingerprint(name)
        assert fp == sha256_file(hub_format.data_path(data_root(), name)) == card[name]["sha256"]
    assert dataset_fingerprint("pairs") != dataset_fingerprint("controls")


def test_user_files_as_config(tmp_path):
    samples = load_samples("controls", limit=3)
    jsonl = tmp_path / "mine.jsonl"
    jsonl.write_text(
        "".join(json.dumps({**s.to_dict(), "config": ""}) + "\n" for s in samples) + "\n"
    )
    got = load_samples(str(jsonl))
    assert [s.id for s in got] == [s.id for s in samples]
    assert {s.config for s in got} == {"mine"}
    assert load_slim(str(jsonl)).num_rows == 3
    assert len(dataset_fingerprint(str(jsonl))) == 64

    parquet = tmp_path / "mine.parquet"
    pq.write_table(
        pa.table(
            {
                "id": ["a", "b"],
                "prompt": ["A cat and a dog", "A fox and a wolf"],
                "entities": [["cat", "dog"], ["fox", "wolf"]],
                "seed": [1, 2],
            }
        ),
        parquet,
    )
    got = load_samples(str(parquet))
    assert [(s.id, s.entities, s.seed, s.config, s.kind) for s in got] == [
        ("a", ("cat", "dog"), 1, "mine", "pair"),
        ("b", ("fox", "wolf"), 2, "mine", "pair"),
    ]


def test_bad_user_files_are_reported(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"id": "a", "prompt": "A cat and a dog", "entities": ["cat", "dog"], "seed": 1}\n{"id": "b"\n'
    )
    with pytest.raises(DatasetError, match="bad.jsonl:2"):
        load_samples(str(bad))
    cols = tmp_path / "cols.parquet"
    pq.write_table(pa.table({"id": ["a"], "prompt": ["A cat"]}), cols)
    with pytest.raises(DatasetError, match="lacks the column\\(s\\) entities, seed"):
        load_samples(str(cols))
    with pytest.raises(DatasetError, match="does not exist"):
        load_samples(str(tmp_path / "missing.parquet"))
    other = tmp_path / "x.csv"
    other.write_text("id\n")
    with pytest.raises(DatasetError, match="neither .parquet nor .jsonl"):
        load_samples(str(other))


def test_cli_ls_configs_shows_rows(cli):
    code, out, _ = cli("ls", "configs", "--json")
    assert code == 0
    rows = json.loads(out.strip().splitlines()[-1])["configs"]
    assert rows == describe_configs()


def test_non_utf8_samples_file_names_the_line(tmp_path):
    from slim_leakage.errors import DatasetError
    from slim_leakage.slim import load_samples

    path = tmp_path / "mine.jsonl"
    path.write_bytes(
        b'{"id": "a", "prompt": "a cow and a horse", "entities": ["cow", "horse"], "seed": 1}\n'
        b'{"id": "b", "prompt": "a k\xf6nig", "entities": ["cow"], "seed": 2}\n'
    )
    with pytest.raises(DatasetError, match=r"mine.jsonl:2 is not UTF-8"):
        load_samples(str(path))


def test_every_bad_line_of_a_samples_file_is_named(tmp_path):
    from slim_leakage.errors import Problems

    path = tmp_path / "mine.jsonl"
    good = {"id": "a", "prompt": "a cow and a horse", "entities": ["cow", "horse"], "seed": 1}
    path.write_text(
        "\n".join(
            json.dumps(row)
            for row in (
                good,
                {**good, "id": "b", "seed": 1.5},
                {**good, "id": "c", "entities": "cow and horse"},
                {**good, "id": "d"},
            )
        )
        + "\n"
    )
    with pytest.raises(Problems) as info:
        load_samples(str(path))
    lines = str(info.value).splitlines()
    assert lines[0] == f"2 problems in {path}:"
    assert f"{path}:2: Sample field 'seed'" in lines[1]
    assert f"{path}:3: Sample field 'entities'" in lines[2]
    assert info.value.exit_code == 1  # dataset content, not usage


def test_a_byte_order_mark_is_not_a_problem(tmp_path):
    path = tmp_path / "bom.jsonl"
    row = {"id": "a", "prompt": "a cow and a horse", "entities": ["cow", "horse"], "seed": 1}
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(row).encode() + b"\n")
    assert [s.id for s in load_samples(str(path))] == ["a"]


def test_empty_files_folders_and_parquet_types_are_refused(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(DatasetError, match="empty.jsonl holds no samples"):
        load_samples(str(empty))
    folder = tmp_path / "data.jsonl"
    folder.mkdir()
    with pytest.raises(DatasetError, match="is a folder"):
        load_samples(str(folder))
    floats = tmp_path / "floats.parquet"
    pq.write_table(
        pa.table(
            {
                "id": ["a"],
                "prompt": ["A cat and a dog"],
                "entities": [["cat", "dog"]],
                "seed": [1.5],
            }
        ),
        floats,
    )
    # a float seed used to be cut to 1 silently
    with pytest.raises(DatasetError, match=r"floats.parquet, row 1: .*seed 1.5"):
        load_samples(str(floats))


def test_sample_locations_point_at_lines_and_rows(tmp_path):
    from slim_leakage.slim.load import sample_locations

    path = tmp_path / "mine.jsonl"
    row = {"id": "a", "prompt": "a cow and a horse", "entities": ["cow", "horse"], "seed": 1}
    path.write_text(json.dumps(row) + "\n\n" + json.dumps(row) + "\n")
    assert sample_locations(str(path)) == {"a": [f"{path}:1", f"{path}:3"]}
    where = sample_locations("toy-pairs")
    first = load_samples("toy-pairs", limit=1)[0].id
    assert where[first] == [f"{data_root() / 'data' / 'toy-pairs.parquet'}, row 1"]
