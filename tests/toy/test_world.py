"""The toy world's renderer, vocabulary and scene sampler."""

from __future__ import annotations

import numpy as np
import pytest

from slim_leakage.errors import ConfigError
from slim_leakage.toy import world
from slim_leakage.toy.world import (
    ENTITY_TYPES,
    FAMILIES,
    IMAGE_SIZE,
    SceneMix,
    caption,
    lookalike_pairs,
    pattern_texture,
    place,
    render,
    sample_nouns,
)


def test_families_are_lookalikes_differing_only_in_pattern():
    for fam in FAMILIES:
        patterns = [p for _, p in fam.members]
        assert len(set(patterns)) == len(patterns)
        for noun, _ in fam.members:
            et = ENTITY_TYPES[noun]
            assert (et.shape, et.colour, et.family) == (fam.shape, fam.colour, fam.name)
    assert len(lookalike_pairs()) == 4 * 3 * 2
    assert all(ENTITY_TYPES[a].family == ENTITY_TYPES[b].family for a, b in lookalike_pairs())


def test_no_pattern_is_a_combination_of_two_others():
    # A model that compromises between two named patterns (their crossing or their union) must
    # not thereby draw a third pattern of the family, or leakage would read as a control error.
    phases = [(dy, dx) for dy in range(world.PERIOD) for dx in range(world.PERIOD)]
    for third in world.PATTERNS:
        a, b = (p for p in world.PATTERNS if p != third)
        for pa in phases:
            for pb in phases:
                ta, tb = pattern_texture(a, phase=pa), pattern_texture(b, phase=pb)
                for combo in (ta & tb, ta | tb):
                    for pc in phases:
                        assert (combo != pattern_texture(third, phase=pc)).mean() > 0.2


def test_captions():
    assert caption(["tiger"]) == "A tiger"
    assert caption(["okapi", "tiger"]) == "An okapi and a tiger"
    assert caption(["tiger", "perch", "melon"]) == "A tiger, a perch and a melon"
    with pytest.raises(ConfigError, match="cat"):
        caption(["tiger", "cat"])
    with pytest.raises(ConfigError):
        caption([])


def test_render_ground_truth_matches_pixels():
    rng = np.random.default_rng(0)
    for _ in range(30):
        nouns = sample_nouns(rng)
        scene = render(place(nouns, rng))
        assert scene.image.shape == (IMAGE_SIZE, IMAGE_SIZE, 3) and scene.image.dtype == np.uint8
        assert scene.masks.shape == (len(nouns), IMAGE_SIZE, IMAGE_SIZE)
        # masks are disjoint and every non-black pixel belongs to exactly one entity
        assert (scene.masks.sum(0) <= 1).all()
        assert ((scene.image.max(2) > 0) == scene.masks.any(0)).all()
        for i, noun in enumerate(nouns):
            et = ENTITY_TYPES[noun]
            pix = scene.image[scene.masks[i]]
            white = (pix == world.WHITE).all(1)
            base = (pix == np.array(et.colour)).all(1)
            assert (white | base).all()
            tex = pattern_texture(et.pattern)[scene.masks[i]]
            assert (white == tex).all()


def test_placements_do_not_overlap_and_stay_inside():
    rng = np.random.default_rng(1)
    for n in (1, 2, 3):
        for _ in range(20):
            pl = place(["tiger", "zebra", "perch"][:n], rng)
            for p in pl:
                assert (
                    p.radius <= p.cx <= IMAGE_SIZE - p.radius
                    and p.radius <= p.cy <= IMAGE_SIZE - p.radius
                )
            for i in range(n):
                for j in range(i):
                    d = np.hypot(pl[i].cx - pl[j].cx, pl[i].cy - pl[j].cy)
                    assert d >= pl[i].radius + pl[j].radius


def test_scene_mix_shares_and_validation():
    rng = np.random.default_rng(2)
    kinds = {"single": 0, "lookalike": 0, "mixed": 0, "triplet": 0}
    for _ in range(3000):
        nouns = sample_nouns(rng, SceneMix())
        fams = {ENTITY_TYPES[n].family for n in nouns}
        if len(nouns) == 1:
            kinds["single"] += 1
        elif len(nouns) == 3:
            kinds["triplet"] += 1
            assert len(fams) == 3
        elif len(fams) == 1:
            kinds["lookalike"] += 1
        else:
            kinds["mixed"] += 1
    assert 0.35 < kinds["single"] / 3000 < 0.45
    assert 0.001 < kinds["lookalike"] / 3000 < 0.015  # look-alikes co-occur rarely (0.5%)
    with pytest.raises(ConfigError, match="sum to 1"):
        SceneMix(single=0.5)


def test_unknown_pattern_and_shape_are_clear_errors():
    with pytest.raises(ConfigError, match="zigzag"):
        pattern_texture("zigzag")
    with pytest.raises(ConfigError, match="hexagon"):
        world.shape_mask("hexagon", 10, 10, 5)
