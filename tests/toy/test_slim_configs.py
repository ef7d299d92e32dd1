"""The toy SLIM configs: the shipped Parquet files are what the toy vocabulary builds."""

from __future__ import annotations

from slim_leakage.slim import data_root, load_samples
from slim_leakage.slim.hub_format import compare_folders, copy_folder
from slim_leakage.toy.slim_configs import build_toy_slim
from slim_leakage.toy.world import ENTITY_TYPES, caption


def test_the_shipped_toy_configs_are_a_fresh_build(tmp_path):
    copy_folder(data_root(), tmp_path)  # the card lists every config, so build beside them
    report = build_toy_slim(tmp_path)
    assert report.rows == {"toy-pairs": 96, "toy-triplets": 32, "toy-controls": 48}
    assert compare_folders(tmp_path, data_root()) == []


def test_toy_prompts_are_the_captions_the_model_was_trained_on():
    for config in ("toy-pairs", "toy-triplets", "toy-controls"):
        for sample in load_samples(config):
            assert set(sample.entities) <= set(ENTITY_TYPES)
            assert sample.prompt == caption(sample.entities)
