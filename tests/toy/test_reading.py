"""The oracle's exact image reading, on renders with known ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from slim_leakage.errors import ConfigError
from slim_leakage.toy.reading import components, read_image
from slim_leakage.toy.world import (
    IMAGE_SIZE,
    lookalike_pairs,
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
