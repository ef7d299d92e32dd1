"""The oracle's own measurement: injected pattern transfer of known strength, and rates."""

from __future__ import annotations

import numpy as np
import pytest

from slim_leakage.toy.lab.measure import inject, measure_oracle, rate, wilson
from slim_leakage.toy.reading import read_image
from slim_leakage.toy.world import entity_type, pattern_texture, place, render


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
