"""The pure tensor maths of DeLeaker against plain-loop references."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from slim_leakage.methods.deleaker import ops  # noqa: E402


def _morph(grid: np.ndarray, op: str) -> np.ndarray:
    # 3x3 erosion/dilation where pixels outside the grid are neutral (OpenCV's default border)
    h, w = grid.shape
    out = np.zeros_like(grid)
    for y in range(h):
        for x in range(w):
            window = grid[max(0, y - 1) : y + 2, max(0, x - 1) : x + 2]
            out[y, x] = window.min() if op == "erode" else window.max()
    return out


def _smooth_loops(grid: np.ndarray, n_open: int, n_close: int) -> np.ndarray:
    for op in ["erode"] * n_open + ["dilate"] * n_open + ["dilate"] * n_close + ["erode"] * n_close:
        grid = _morph(grid, op)
    return grid


@pytest.mark.parametrize("shape", [(8, 8), (6, 11), (1, 5)])
@pytest.mark.parametrize("iters", [(1, 2), (0, 1), (2, 0)])
def test_smoothing_matches_loop_morphology_on_any_grid(shape, iters):
    gen = torch.Generator().manual_seed(sum(shape) + sum(iters))
    masks = torch.rand(3, shape[0] * shape[1], generator=gen) > 0.45
    got = ops.smooth_mask(masks, shape, open_iterations=iters[0], close_iterations=iters[1])
    for m, g in zip(masks, got):
        want = _smooth_loops(m.reshape(shape).numpy().astype(np.uint8), *iters)
        assert np.array_equal(g.reshape(shape).numpy().astype(np.uint8), want)


def test_smoothing_removes_speckle_and_keeps_blobs():
    grid = torch.zeros(10, 12, dtype=torch.bool)
    grid[2:7, 3:9] = True  # a blob
    grid[0, 11] = True  # a speck
    out = ops.smooth_mask(grid.flatten(), (10, 12)).reshape(10, 12)
    assert out[2:7, 3:9].all() and not out[0, 11]
    with pytest.raises(ValueError, match="grid"):
        ops.smooth_mask(grid.flatten(), (11, 12))


def test_threshold_is_strict_mean_plus_beta_unbiased_std():
    x = torch.tensor([[0.0, 1.0, 2.0, 3.0, 10.0]])
    thr = x.mean() + 1.0 * x.std(unbiased=True)
    assert ops.threshold_mask(x, 1.0).tolist() == [(x[0] > thr).tolist()]
    flat = torch.ones(1, 4)
    assert not ops.threshold_mask(flat, 0.0).any()  # strict: equal values never pass


def test_running_mean_is_equal_weight():
    values = [torch.tensor([1.0, 2.0]), torch.tensor([3.0, 0.0]), torch.tensor([5.0, 7.0])]
    mean, count = None, 0
    for v in values:
        mean, count = ops.running_mean_update(mean, count, v)
    assert count == 3
    assert torch.allclose(mean, torch.stack(values).mean(0))


def test_nan_to_mean():
    x = torch.tensor([1.0, float("nan"), 3.0])
    assert ops.nan_to_mean(x).tolist() == [1.0, 2.0, 3.0]


def test_abnormal_links_use_nonzero_entries_only():
    rect = torch.tensor([[0.0, 0.1, 0.1], [0.1, 0.9, 0.0]])
    nz = torch.tensor([0.1, 0.1, 0.1, 0.9])
    thr = nz.mean() + nz.std()
    want = (rect > thr) & (rect != 0)
    assert torch.equal(ops.abnormal_links(rect, 1.0), want)
    assert ops.abnormal_links(rect, 1.0).sum() == 1
    assert not ops.abnormal_links(torch.zeros(2, 2), 1.0).any()


def test_entity_scores_average_tokens_then_heads():
    probs = torch.rand(3, 5, 4)
    want = probs[..., [1, 3]].mean(-1).mean(0)
    assert torch.allclose(ops.entity_scores(probs, [1, 3]), want)


def test_grid_from_ids_reads_rectangular_grids():
    rows, cols = 3, 5
    ids = torch.zeros(rows, cols, 3)
    ids[..., 1] = torch.arange(rows)[:, None]
    ids[..., 2] = torch.arange(cols)[None, :]
    assert ops.grid_from_ids(ids.reshape(-1, 3)) == (3, 5)


@pytest.mark.parametrize("n_q, n_k", [(40, 40), (7, 300)])
def test_attention_with_lse_matches_explicit(n_q, n_k):
    gen = torch.Generator().manual_seed(n_q)
    q = torch.randn(2, 3, n_q, 16, generator=gen)
    k = torch.randn(2, 3, n_k, 16, generator=gen)
    v = torch.randn(2, 3, n_k, 16, generator=gen)
    out, lse = ops.attention_with_lse(q, k, v, 0.25)
    logits = (q @ k.transpose(-1, -2)) * 0.25
    assert torch.allclose(lse, logits.logsumexp(-1), atol=1e-5)
    assert torch.allclose(out, torch.softmax(logits, -1) @ v, atol=1e-5)
    out_r, lse_r = ops.attention_with_lse_reference(q, k, v, 0.25, chunk=3)
    assert torch.allclose(out_r, out, atol=1e-5) and torch.allclose(lse_r, lse, atol=1e-5)


def test_nearest_step_reads_the_step_from_the_timestep():
    import torch

    from slim_leakage.methods.deleaker.ops import nearest_step

    table = torch.tensor([1000.0, 750.0, 500.0, 250.0])
    assert nearest_step(table, 0.75, scale=1000.0) == 1  # FLUX passes t / 1000
    assert nearest_step(table, 0.26, scale=1000.0) == 3
    assert nearest_step(table, 500.0) == 2
    assert nearest_step(table.tolist(), 999.0) == 0
