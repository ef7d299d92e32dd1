"""The oracle's vectorised component labelling against a plain flood fill, and its bounds."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from slim_leakage.toy.reading import MAX_PIXELS, component_labels, components, read_image


def flood_fill_components(mask: np.ndarray) -> list[np.ndarray]:
    """The reference: a breadth-first flood fill per component, largest first (stable)."""
    h, w = mask.shape
    seen = np.zeros((h, w), bool)
    out = []
    for y0, x0 in zip(*np.nonzero(mask)):
        if seen[y0, x0]:
            continue
        comp = np.zeros((h, w), bool)
        stack = [(y0, x0)]
        seen[y0, x0] = comp[y0, x0] = True
        while stack:
            y, x = stack.pop()
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = comp[ny, nx] = True
                    stack.append((ny, nx))
        out.append(comp)
    out.sort(key=lambda m: -int(m.sum()))
    return out


@pytest.mark.parametrize("density", [0.2, 0.45, 0.6, 0.9])
def test_vectorised_labelling_equals_flood_fill(density):
    rng = np.random.default_rng(int(density * 100))
    for shape in ((1, 1), (1, 17), (13, 1), (24, 31), (64, 64)):
        mask = rng.random(shape) < density
        want = flood_fill_components(mask)
        got = components(mask, max_count=10**6)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert (g == w).all()


def test_snake_and_spiral_shapes_join_into_one_component():
    mask = np.zeros((41, 41), bool)
    mask[::2, :] = True
    mask[1::4, -1] = True
    mask[3::4, 0] = True  # one long snake
    labels, sizes = component_labels(mask)
    assert int(sizes.max()) == int(mask.sum()) and labels.max() == 1
    assert (components(mask)[0] == flood_fill_components(mask)[0]).all()


def test_checkerboard_returns_a_bounded_number_of_masks():
    mask = (np.add.outer(np.arange(512), np.arange(512)) % 2).astype(bool)
    labels, sizes = component_labels(mask)
    assert labels.max() == mask.sum()  # every pixel its own component
    assert components(mask, min_area=2) == []
    assert len(components(mask, max_count=5)) == 5


def test_oracle_refuses_a_huge_image_before_decoding():
    side = int(MAX_PIXELS**0.5) + 1
    image = Image.new("1", (side, side))  # tiny in memory as bits; far too many pixels
    with pytest.raises(ValueError, match="above the oracle's limit"):
        read_image(image, ("tiger", "leopard"))
