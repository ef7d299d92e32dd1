"""The toy world's segmenter-style mask sources: the oracle's regions, coarsened or boxed."""

from __future__ import annotations

import numpy as np
import pytest

from slim_leakage.methods.deleaker.given import MASK_SOURCES
from slim_leakage.toy.masks import (
    COARSE_CELLS,
    box_mask,
    coarse_mask,
    oracle_box_masks,
    oracle_coarse_masks,
    oracle_masks,
)
from slim_leakage.toy.world import shape_mask


def test_a_box_covers_the_region_and_nothing_beyond_its_extent():
    region = shape_mask("diamond", 20, 30, 12)
    box = box_mask(region)
    assert (box | region).sum() == box.sum()  # the region lies inside its box
    ys, xs = np.nonzero(region)
    assert box.sum() == (np.ptp(ys) + 1) * (np.ptp(xs) + 1)
    assert not box_mask(np.zeros((8, 8), dtype=bool)).any()


def test_coarse_masks_keep_the_blob_but_lose_the_outline():
    region = shape_mask("circle", 20, 30, 14)
    coarse = coarse_mask(region)
    assert coarse.shape == region.shape and coarse.dtype == bool
    overlap = (coarse & region).sum() / region.sum()
    assert 0.6 < overlap < 1.0  # most of the blob, not all of it
    assert not np.array_equal(coarse, region)
    # a smaller blob loses a larger share at the same resolution
    small = shape_mask("circle", 20, 30, 8)
    assert (coarse_mask(small) & small).sum() / small.sum() < overlap
    assert coarse_mask(region, cells=64).sum() == region.sum()  # at full resolution: exact
    assert COARSE_CELLS == 6


def test_the_degraded_sources_are_registered_and_read_the_oracles_regions():
    pytest.importorskip("diffusers")
    from slim_leakage.backbones import load_backbone
    from slim_leakage.slim import load_samples

    assert MASK_SOURCES.get("oracle-coarse") is oracle_coarse_masks
    assert MASK_SOURCES.get("oracle-boxes") is oracle_box_masks
    toy = load_backbone("toy", device="cpu")
    samples = load_samples("toy-pairs", limit=2)
    exact = oracle_masks(toy, samples)
    for degrade, source in ((coarse_mask, oracle_coarse_masks), (box_mask, oracle_box_masks)):
        for got, want in zip(source(toy, samples), exact):
            assert list(got) == list(want)
            for entity in want:
                assert np.array_equal(got[entity], degrade(want[entity]))
