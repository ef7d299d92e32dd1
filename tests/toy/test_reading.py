"""The oracle's exact image analysis, on renders with known ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from slim_leakage.errors import ConfigError
from slim_leakage.toy.analysis import components, read_image
from slim_leakage.toy.measure import inject, measure_oracle, rate, wilson
from slim_leakage.toy.world import (
    IMAGE_SIZE,
    entity_type,
    lookalike_pairs,
    pattern_texture,
    place,
    render,
)


def test_components_are_4_connected_and_sorted():
    m = np.zeros((6, 6), bool)
    m[0, 0] = m[0, 1] = True
    m[1, 2] = True  # diagonal neighbour only: separate
    m[3:6, 3:6] = True
    comps = components(m)
    assert [int(c.sum()) for c in comps] == [9, 2, 1]


def test_clean_lookalike_renders_read_exactly():
    rng = np.random.default_rng(0)
    for a, b in lookalike_pairs():
        scene = render(place((a, b), rng))
        ra, rb = read_image(scene.image, (a, b))
        for r, m in ((ra, scene.masks[0]), (rb, scene.masks[1])):
            assert r.found and r.own == 1.0 and r.other == 0.0 and r.control == 0.0
            assert not r.leaks and not r.control_fires
            assert (r.mask == m).all()  # the oracle found exactly the right entity


def test_full_pattern_transfer_is_leakage_and_assignment_is_fair():
    rng = np.random.default_rng(1)
    pl = place(("tiger", "leopard"), rng)
    # both drawn striped: one of them is a leaky leopard, whichever blob it is
    scene = render(pl, patterns=["striped", "striped"])
    tiger, leopard = read_image(scene.image, ("tiger", "leopard"))
    assert tiger.own == 1.0 and not tiger.leaks
    assert leopard.other == 1.0 and leopard.leaks and leopard.typicality == -1.0
    # a pattern nobody in the caption has fires the control, not the leak
    scene = render(pl, patterns=["barred", "diagonal"])
    tiger, leopard = read_image(scene.image, ("tiger", "leopard"))
    assert tiger.control_fires and not tiger.leaks


def test_missing_entity_and_blank_image():
    rng = np.random.default_rng(2)
    scene = render(place(("tiger",), rng))
    tiger, zebra = read_image(scene.image, ("tiger", "zebra"))
    assert tiger.found and not zebra.found and zebra.typicality == -1.0
    blank = np.zeros((IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    assert not any(r.found for r in read_image(blank, ("tiger", "leopard")))
    with pytest.raises(ConfigError, match="cat"):
        read_image(blank, ("cat", "tiger"))


def test_injected_transfer_has_the_requested_strength():
    rng = np.random.default_rng(3)
    pl = place(("zebra", "pony"), rng)
    mask = render(pl).masks[0]
    for s in (0.0, 0.5, 1.0):
        tex = inject("zebra", "pony", s, mask, np.random.default_rng(0))
        r = read_image(render(pl, patterns=[tex, "diagonal"]).image, ("zebra", "pony"))[0]
        assert r.other == pytest.approx(s, abs=0.15)
    assert (inject("zebra", "pony", 0.0, mask, rng) == pattern_texture("striped")).all()
    assert entity_type("pony").pattern == "diagonal"


def test_blended_transfer_paints_the_union_of_both_patterns():
    rng = np.random.default_rng(4)
    mask = render(place(("zebra", "okapi"), rng)).masks[0]
    striped, barred = pattern_texture("striped"), pattern_texture("barred")
    full = inject("zebra", "okapi", 1.0, mask, np.random.default_rng(0), blend=True)
    assert (full[mask] == (striped | barred)[mask]).all()  # every cell of the entity is a grid
    half = inject("zebra", "okapi", 0.5, mask, np.random.default_rng(0), blend=True)
    grid_px = (half & ~striped)[mask].sum()  # white pixels only the bars add
    assert 0 < grid_px < (barred & ~striped)[mask].sum()
    assert (half | (striped | barred) == (striped | barred)).all()  # never beyond the union


def test_oracle_detection_is_monotone_with_no_false_alarms_on_clean_renders():
    out = measure_oracle(strengths=(0.0, 0.6, 1.0), n=24)
    by = out["by_strength"]
    assert by["0.0"]["receiver_flagged"]["rate"] == 0.0
    assert by["0.0"]["control_fired"]["rate"] == 0.0
    assert by["0.6"]["receiver_flagged"]["rate"] >= 0.8
    assert by["1.0"]["receiver_flagged"]["rate"] == 1.0
    assert all(v["donor_flagged"]["rate"] == 0.0 for v in by.values())


def test_rates_and_wilson_intervals():
    assert rate([True, False, False, False]) == {
        "rate": 0.25,
        "k": 1,
        "n": 4,
        "ci95": wilson(1, 4),
    }
    lo, hi = wilson(10, 100)
    assert 0.04 < lo < 0.1 < hi < 0.18
    assert wilson(0, 0) == [None, None]  # no data, no interval (and valid JSON)
