"""Layout files: the deterministic planner, the file format and its validation."""

from __future__ import annotations

import argparse
import json

import pytest

from slim_leakage.errors import ConfigError, DatasetError
from slim_leakage.methods import layouts as L
from slim_leakage.records import Sample

PAIR = Sample(id="p1", prompt="a cow and an owl", entities=("cow", "owl"), seed=1)
TRIPLET = Sample(id="t1", prompt="a cat, a dog and a fox", entities=("cat", "dog", "fox"), seed=2)


def test_split_planner_pairs_side_by_side_triplets_in_thirds():
    pair, triplet = L.plan_layouts([PAIR, TRIPLET])
    assert pair.boxes == ((0.0, 0.0, 0.5, 1.0), (0.5, 0.0, 1.0, 1.0))
    assert pair.prompts == ("a cow", "an owl")
    assert [b[0] for b in triplet.boxes] == pytest.approx([0, 1 / 3, 2 / 3])
    assert [b[2] for b in triplet.boxes] == pytest.approx([1 / 3, 2 / 3, 1])
    assert triplet.entities == ("cat", "dog", "fox")
    assert pair.planner == L.SPLIT_PLANNER


def test_written_file_is_byte_identical_and_round_trips(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    L.write_layouts(a, L.plan_layouts([PAIR, TRIPLET]))
    L.write_layouts(b, L.plan_layouts([PAIR, TRIPLET]))
    assert a.read_bytes() == b.read_bytes()
    back = L.read_layouts(a)
    assert set(back) == {"p1", "t1"}
    assert back["t1"] == L.split_layout(TRIPLET)


@pytest.mark.parametrize(
    "record, match",
    [
        ({"sample_id": "x", "entities": ["a"], "boxes": [[0, 0, 1]], "prompts": ["a"]}, "box"),
        (
            {"sample_id": "x", "entities": ["a"], "boxes": [[0.5, 0, 0.2, 1]], "prompts": ["a"]},
            "x0 < x1",
        ),
        (
            {"sample_id": "x", "entities": ["a"], "boxes": [[0, 0, 1, 1.5]], "prompts": ["a"]},
            "<= 1",
        ),
        (
            {"sample_id": "x", "entities": ["a", "b"], "boxes": [[0, 0, 1, 1]], "prompts": ["a"]},
            "one box",
        ),
        ({"sample_id": "x", "entities": ["a"], "boxes": [[0, 0, 1, 1]], "prompts": [" "]}, "empty"),
        ({"sample_id": "x", "entities": ["a"], "boxes": [[0, 0, 1, 1]]}, "missing keys"),
        (
            {
                "sample_id": "x",
                "entities": ["a"],
                "boxes": [[0, 0, 1, 1]],
                "prompts": ["a"],
                "z": 1,
            },
            "unknown keys",
        ),
    ],
)
def test_bad_layout_lines_are_reported_with_their_line_number(tmp_path, record, match):
    path = tmp_path / "l.jsonl"
    good = L.split_layout(PAIR).to_dict()
    path.write_text(json.dumps(good) + "\n" + json.dumps(record) + "\n")
    with pytest.raises(DatasetError, match=match) as info:
        L.read_layouts(path)
    assert ":2" in str(info.value)


def test_missing_file_duplicates_and_entity_mismatch(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        L.read_layouts(tmp_path / "nope.jsonl")
    with pytest.raises(DatasetError, match="Two layouts"):
        L.write_layouts(tmp_path / "d.jsonl", [L.split_layout(PAIR), L.split_layout(PAIR)])
    other = Sample(id="p1", prompt="a cat and a dog", entities=("cat", "dog"), seed=1)
    with pytest.raises(DatasetError, match="lists entities"):
        L.split_layout(PAIR).check_sample(other)
    with pytest.raises(ConfigError, match="planner"):
        L.plan_layouts([PAIR], planner="llm")


def test_command_writes_layouts_from_a_samples_file(tmp_path, capsys):
    samples = tmp_path / "samples.jsonl"
    samples.write_text(PAIR.to_json() + "\n" + TRIPLET.to_json() + "\n")
    parser = argparse.ArgumentParser()
    L.add_arguments(parser)
    out = tmp_path / "layouts.jsonl"
    args = parser.parse_args(["--samples", str(samples), "--out", str(out), "--limit", "1"])
    assert L.run(args) == 0
    assert list(L.read_layouts(out)) == ["p1"]
    assert "wrote 1 layouts" in capsys.readouterr().out


def test_slim_eval_dataset_layouts_writes_one_layout_per_sample(cli, tmp_path):
    from slim_leakage.slim import load_samples

    out = tmp_path / "pairs.jsonl"
    code, stdout, _ = cli("dataset", "layouts", "--config", "pairs", "--out", str(out))
    assert code == 0 and "layouts" in stdout
    samples = load_samples("pairs")
    layouts = L.read_layouts(out)
    assert list(layouts) == [s.id for s in samples]
    assert all(layouts[s.id] == L.split_layout(s) for s in samples)
    code, _, err = cli("dataset", "layouts", "--config", "pairz", "--out", str(out))
    assert code == 2 and "pairs" in err
