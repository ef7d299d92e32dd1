import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from slim_leakage.errors import ConfigError, DatasetError
from slim_leakage.slim import hub_format, load_samples, load_slim
from slim_leakage.slim.official import import_official


def _png(colour):
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buf, format="PNG")
    return buf.getvalue()


GOOD = [
    # (prompt, entities, seed, dataset)
    ("A cow and a horse in a farm", "cow, horse", 7, "two_entities"),
    ("The dolphin and the whale are cuddling together", "whale, dolphin", 3, "two_entities"),
    ("A cow and a horse in a farm", "cow, horse", 2, "two_entities"),
    ("Cat and cheetah sitting back to back in a 3D render", "cat, cheetah", 11, "two_entities"),
    (
        "A crow is perched on a branch, while a magpie is flying and a blue jay sits on a fence",
        "crow, magpie, blue jay",
        5,
        "animal_triplets",
    ),
    ("A strawberry, a radish, and a cherry sit on a table", "strawberry,radish,cherry", 9, "fruit_n_veg_triplets"),
]  # fmt: skip


def _write(path, rows):
    table = pa.table(
        {
            "image": pa.array(
                [{"bytes": _png((i * 30, 0, 0)), "path": f"{i}.png"} for i in range(len(rows))],
                type=pa.struct([("bytes", pa.binary()), ("path", pa.string())]),
            ),
            "prompt": [r[0] for r in rows],
            "entities": [r[1] for r in rows],
            "seed": pa.array([r[2] for r in rows], type=pa.int64()),
            "dataset": [r[3] for r in rows],
            "model": ["FLUX.1-dev"] * len(rows),
            "leakage": [True] * len(rows),
        }
    )
    pq.write_table(table, path)
    return path


def test_import_converts_groups_and_keeps_images(tmp_path):
    src = _write(tmp_path / "train.parquet", GOOD)
    report = import_official(str(src), tmp_path / "out")
    assert report.rows_read == 6 and report.rows_written == 6 and report.skipped == ()
    assert report.per_subset == {
        "two_entities": {"rows": 4, "prompts": 3},
        "animal_triplets": {"rows": 1, "prompts": 1},
        "fruit_n_veg_triplets": {"rows": 1, "prompts": 1},
    }
    assert report.configs == {"official-pairs": 4, "official-triplets": 2}
    out = tmp_path / "out"
    pairs = load_samples("official-pairs", root=out)
    # Rows of one prompt are adjacent (seeds ascending), prompts in order of first appearance.
    assert [(s.prompt[:20], s.seed) for s in pairs] == [
        ("A cow and a horse in", 2),
        ("A cow and a horse in", 7),
        ("The dolphin and the ", 3),
        ("Cat and cheetah sitt", 11),
    ]
    assert pairs[2].entities == ("dolphin", "whale")  # reordered to prompt order
    assert pairs[0].family == "bovids-equids" and pairs[3].family == "big-cats"
    assert {s.source for s in pairs} == {"official:FLUX.1-dev"} and pairs[
        0
    ].subset == "two-entities"
    triplets = load_samples("official-triplets", root=out)
    assert [s.subset for s in triplets] == ["animal-triplets", "produce-triplets"]
    assert triplets[1].family == "berries+root-vegetables+stone-fruit"
    ds = load_slim("official-pairs", root=out)
    row = ds[0]
    assert row["leakage"] is True and row["reference_image"].size == (8, 8)
    # The image of each row is the one of its source row (source row 3 is the seed-2 cow row).
    raw = pq.read_table(hub_format.data_path(out, "official-pairs")).column("reference_image")
    assert raw[0].as_py()["bytes"] == _png((60, 0, 0))
    assert hub_format.read_card(out)["configs"][0]["name"] == "official-pairs"


BAD = [
    ("A cat and a dog", "cat, dog, fox", 1, "two_entities"),  # row 1: arity
    ("A cat and a dog", "cat, dog", 1, "three_entities"),  # row 2: unknown subset
    ("A cat and a dog", "cat, wolf", 1, "two_entities"),  # row 3: entity not in prompt
    ("A cat and a dog", "cat, dog", 1, "two_entities"),  # row 4: fine
    ("A cat and a dog", "cat, dog", 1, "two_entities"),  # row 5: repeats row 4
    ("", "cat, dog", 1, "two_entities"),  # row 6: empty prompt
]


def test_reject_names_every_bad_row_and_writes_nothing(tmp_path):
    src = _write(tmp_path / "bad.parquet", BAD)
    with pytest.raises(DatasetError) as info:
        import_official(str(src), tmp_path / "out", on_error="reject")
    message = info.value.message
    assert "5 of 6 rows" in message
    for fragment in (
        "row 1: entities 'cat, dog, fox' must list 2",
        "row 2: dataset is 'three_entities'",
        "row 3: entity 'wolf' does not occur",
        "row 5: repeats the prompt and seed of row 4",
        "row 6: prompt is missing or empty",
    ):
        assert fragment in message
    assert not (tmp_path / "out").exists()


def test_skip_reports_each_skipped_row(tmp_path):
    src = _write(tmp_path / "bad.parquet", BAD)
    report = import_official(str(src), tmp_path / "out", on_error="skip")
    assert [n for n, _ in report.skipped] == [1, 2, 3, 5, 6]
    assert report.rows_written == 1 and report.configs == {"official-pairs": 1}


def test_bad_sources_and_options(tmp_path):
    with pytest.raises(ConfigError, match="on_error='drop'"):
        import_official("x.parquet", tmp_path / "out", on_error="drop")
    with pytest.raises(DatasetError, match="does not exist and is not a hub id"):
        import_official(str(tmp_path / "missing.parquet"), tmp_path / "out")
    pq.write_table(pa.table({"prompt": ["A cat"]}), tmp_path / "cols.parquet")
    with pytest.raises(DatasetError, match="lacks the official column\\(s\\) image, entities"):
        import_official(str(tmp_path / "cols.parquet"), tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="holds no Parquet files"):
        import_official(str(tmp_path / "empty"), tmp_path / "out")


def test_hub_id_offline_fails_with_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="Could not load 'someone/slim-dataset' from the hub"):
        import_official("someone/slim-dataset", tmp_path / "out")


def test_cli_import_official(tmp_path, cli):
    src = _write(tmp_path / "bad.parquet", BAD)
    code, _, err = cli("dataset", "import-official", str(src), "--out", str(tmp_path / "o"))
    assert code == 1 and "row 3: entity 'wolf'" in err and "--on-error skip" in err
    code, out, err = cli(
        "dataset",
        "import-official",
        str(src),
        "--out",
        str(tmp_path / "o"),
        "--on-error",
        "skip",
        "--json",
    )
    assert code == 0
    assert "skipped row 2: dataset is 'three_entities'" in err
    data = json.loads(out.strip().splitlines()[-1])
    assert data["rows_read"] == 6 and data["rows_written"] == 1
    assert data["per_subset"] == {"two_entities": {"prompts": 1, "rows": 1}}


def test_a_hub_import_passes_the_revision_and_records_the_commit(tmp_path, monkeypatch):
    import datasets
    import huggingface_hub.constants as constants

    commit = "89abcdef0123456789abcdef0123456789abcdef"
    # the hub cache layout of huggingface_hub: refs/<revision> -> snapshots/<commit>
    repo = tmp_path / "hub" / "datasets--someone--slim-dataset"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "v1").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    release = _write(tmp_path / "release.parquet", GOOD)
    asked = []

    def load_dataset(repo_id, split, revision=None):
        asked.append((repo_id, split, revision))
        return datasets.Dataset.from_parquet(str(release))

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    report = import_official("someone/slim-dataset", tmp_path / "out", revision="v1")
    assert asked == [("someone/slim-dataset", "train", "v1")]
    assert (report.revision, report.commit) == ("v1", commit)
    meta = pq.read_schema(tmp_path / "out" / "data" / "official-pairs.parquet").metadata
    written = json.loads(meta[b"slim"])
    assert written["revision"] == "v1" and written["commit"] == commit


def test_a_revision_for_a_local_file_is_refused(tmp_path):
    release = _write(tmp_path / "release.parquet", GOOD)
    with pytest.raises(ConfigError, match="is not a hub id"):
        import_official(str(release), tmp_path / "out", revision="v1")
    with pytest.raises(ConfigError, match="revision='a b' is not a commit hash"):
        import_official("someone/slim-dataset", tmp_path / "out", revision="a b")
