"""DeLeaker's tensor maths, backbone-agnostic: thresholds, morphology, history, link statistics.

Every function here is pure (tensors in, tensors out) so that the FLUX and SANA processors and
the explicit reference share one definition of each step of the method.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import torch
import torch.nn.functional as F

#: Bound on the float32 temporaries of one step of the fast processors (a tile of attention
#: probabilities, a block of explicit logits). At FLUX.1-dev's 1024^2 geometry (24 heads, 4,608
#: tokens) the image-image statistics would otherwise need ``heads x rows x rows`` floats: over
#: 800 MB when the masks cover 70% of the image.
WORKING_SET_BYTES = 32 * 2**20


def blocks(
    n: int, item_bytes: int, *, reserve: int = 0, budget: int | None = None
) -> Iterator[slice]:
    """Consecutive slices of ``range(n)`` sized so that one slice's items take at most the
    working-set budget (at least one item per slice).

    Args:
        n: Items (heads, or query rows).
        item_bytes: Bytes of temporaries one item needs.
        reserve: Bytes already held for the whole loop (taken off the budget).
        budget: Bytes (default :data:`WORKING_SET_BYTES`, read at call time so tests can lower it).
    """
    budget = WORKING_SET_BYTES if budget is None else budget
    step = max(1, (budget - reserve) // max(1, item_bytes))
    for start in range(0, n, step):
        yield slice(start, min(start + step, n))


def nan_to_mean(x: torch.Tensor) -> torch.Tensor:
    """Replace NaNs by the mean of the other values (the official guard on attention maps).

    Written without data-dependent branches, so it never waits for the device.
    """
    fill = torch.nan_to_num(torch.nanmean(x.float()), nan=0.0).to(x.dtype)
    return torch.where(torch.isnan(x), fill, x)


def threshold_mask(values: torch.Tensor, beta: float) -> torch.Tensor:
    """``values > mean + beta * std`` over the last dimension (unbiased std, strict compare).

    Args:
        values: ``(..., n)`` scores, e.g. one per image token.
        beta: Multiple of the standard deviation.

    Returns:
        A boolean tensor shaped like ``values``.
    """
    values = values.float()
    mean = values.mean(dim=-1, keepdim=True)
    std = values.std(dim=-1, keepdim=True) if values.shape[-1] > 1 else torch.zeros_like(mean)
    return values > mean + beta * std


def _dilate(x: torch.Tensor) -> torch.Tensor:
    # max_pool2d pads with -inf, so pixels outside the grid never switch a pixel on.
    return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)


def _erode(x: torch.Tensor) -> torch.Tensor:
    # min-pool; outside the grid counts as "on", so borders are not eaten (as OpenCV's default).
    return -F.max_pool2d(-x, kernel_size=3, stride=1, padding=1)


def smooth_mask(
    mask: torch.Tensor,
    grid: tuple[int, int],
    *,
    open_iterations: int = 1,
    close_iterations: int = 2,
) -> torch.Tensor:
    """Morphological 3x3 opening then closing of flat binary masks on an ``h x w`` grid.

    Args:
        mask: ``(..., h * w)`` boolean masks in row-major token order.
        grid: ``(h, w)`` of the image-token grid (rectangular grids are fine).
        open_iterations: Erosions then as many dilations.
        close_iterations: Dilations then as many erosions.

    Returns:
        Boolean masks of the same shape.
    """
    h, w = grid
    lead = mask.shape[:-1]
    if mask.shape[-1] != h * w:
        raise ValueError(f"mask has {mask.shape[-1]} tokens but the grid is {h}x{w}")
    x = mask.reshape(-1, 1, h, w).float()
    for _ in range(open_iterations):
        x = _erode(x)
    for _ in range(open_iterations):
        x = _dilate(x)
    for _ in range(close_iterations):
        x = _dilate(x)
    for _ in range(close_iterations):
        x = _erode(x)
    return (x > 0.5).reshape(*lead, h * w)


def running_mean_update(
    mean: torch.Tensor | None, count: int, value: torch.Tensor
) -> tuple[torch.Tensor, int]:
    """Equal-weight running mean: the n-th value (0-based) gets weight ``1 / (n + 1)``.

    Returns:
        The new mean and the new count.
    """
    value = value.float()
    if mean is None or count == 0:
        return value.clone(), 1
    return mean + (value - mean) / (count + 1), count + 1


def entity_scores(probs: torch.Tensor, tokens: list[int]) -> torch.Tensor:
    """Per-image-token score of one entity: mean over its sub-tokens, then over heads.

    Args:
        probs: ``(heads, n_image, n_text_columns)`` post-softmax image->text attention.
        tokens: Column indices of the entity's tokens in ``probs``.

    Returns:
        ``(n_image,)`` float32 scores.
    """
    return probs[..., tokens].float().mean(dim=-1).mean(dim=0)


def entity_mask(
    scores: torch.Tensor,
    beta: float,
    grid: tuple[int, int],
    *,
    smoothing: bool = True,
    open_iterations: int = 1,
    close_iterations: int = 2,
) -> torch.Tensor:
    """Binary image-token mask of one entity from its scores (threshold, then smoothing)."""
    mask = threshold_mask(nan_to_mean(scores), beta)
    if smoothing:
        mask = smooth_mask(
            mask, grid, open_iterations=open_iterations, close_iterations=close_iterations
        )
    return mask


def abnormal_links(rect: torch.Tensor, beta: float) -> torch.Tensor:
    """Cross-entity image->image links to cut: non-zero entries above ``mean + beta * std``.

    Args:
        rect: ``(rows, cols)`` head-averaged post-softmax probabilities of one direction
            (queries of entity i, keys of entity j).
        beta: Multiple of the standard deviation (β₂).

    Returns:
        Boolean ``(rows, cols)``. The statistics use only the non-zero entries (already cut
        links and underflowed probabilities do not count); with fewer than two of them the
        unbiased std is undefined and nothing is cut. Computed with masked sums rather than
        boolean indexing so that it never waits for the device.
    """
    rect = rect.float()
    live = rect != 0
    n = live.sum()
    mean = torch.where(live, rect, 0.0).sum() / n
    var = torch.where(live, (rect - mean) ** 2, 0.0).sum() / (n - 1)
    # n < 2 gives a NaN threshold, and every comparison with NaN is False
    return (rect > mean + beta * var.sqrt()) & live


def pair_edits(s, p, image_start, spans, masks, cfg):
    """DeLeaker's pair loop on one item's logits, literally (spec §3.8): the reference
    processors' edit, which the fast processors are tested against.

    Args:
        s: ``(heads, queries, keys)`` pre-softmax logits, edited in place. Image-token queries
            start at row ``image_start``; text keys sit at the ``spans`` positions.
        p: Their softmax (the block's unedited probabilities).
        image_start: Row of the first image-token query: the text length in FLUX's joint
            attention ``[text ; image]``, 0 in a cross-attention from image tokens to text.
        spans: ``{entity: text token positions}`` in entity order.
        masks: ``{entity: (n_image,) bool}`` image-token masks.
        cfg: The :class:`DeLeakerConfig`. Image-image and text-text suppression need the joint
            ``[text ; image]`` layout (image keys at ``image_start`` on, text queries).

    Returns:
        ``(edited logits, edited probabilities)``.
    """
    neg_inf = float("-inf")
    rows = {e: image_start + masks[e].nonzero().squeeze(1) for e in spans}
    cols = {e: torch.tensor(ts, device=s.device) for e, ts in spans.items()}
    stale = False  # whether p misses the previous pairs' edits (recomputed only when read)
    for i, j in itertools.combinations(list(spans), 2):
        if stale and cfg.image_image_suppression:
            p, stale = torch.softmax(s, dim=-1), False
        ri, rj = rows[i], rows[j]
        if cfg.image_text_suppression:
            s[:, ri[:, None], cols[j][None, :]] += neg_inf
            s[:, rj[:, None], cols[i][None, :]] += neg_inf
        if cfg.self_identity:
            s[:, ri[:, None], cols[i][None, :]] *= cfg.alpha
            s[:, rj[:, None], cols[j][None, :]] *= cfg.alpha
        if cfg.text_text_suppression:
            a, c = spans[i][0], spans[j][0]
            s[:, a, c] = neg_inf
            s[:, c, a] = neg_inf
        if cfg.image_image_suppression:
            avg = p.mean(0)  # head-averaged current probabilities of this block
            for qa, kc in ((ri, rj), (rj, ri)):
                if qa.numel() and kc.numel():
                    hit = abnormal_links(avg[qa][:, kc], cfg.beta2)
                    ra, cc = hit.nonzero(as_tuple=True)
                    s[:, qa[ra], kc[cc]] = neg_inf
        stale = True
    return s, (torch.softmax(s, dim=-1) if stale else p)


def nearest_step(scheduler_timesteps, timestep: float, *, scale: float = 1.0) -> int:
    """Index of the scheduler timestep closest to ``timestep * scale``.

    The denoising step is read from the timestep the transformer receives, never from a call
    counter (true CFG and batched CFG call the transformer more than once per step). ``scale``
    converts the model's timestep units to the scheduler's (FLUX passes ``t / 1000``).
    """
    table = torch.as_tensor(scheduler_timesteps).detach().float().cpu()
    return int(torch.argmin((table - float(timestep) * scale).abs()))


def grid_from_ids(img_ids: torch.Tensor) -> tuple[int, int]:
    """``(rows, cols)`` of the image-token grid from FLUX-style position ids ``(n, 3)``."""
    rows = int(img_ids[:, 1].max().item()) + 1
    cols = int(img_ids[:, 2].max().item()) + 1
    if rows * cols != img_ids.shape[0]:
        raise ValueError(f"image ids are not a full {rows}x{cols} grid ({img_ids.shape[0]} tokens)")
    return rows, cols


def attention_with_lse(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scale: float, *, chunk: int = 1024
) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax attention and the row log-sum-exp of its logits, without an ``L x L`` tensor.

    Uses the fused kernels that return the log-sum-exp (flash on CPU and CUDA), and falls back to
    row chunks of explicit attention elsewhere.

    Args:
        query: ``(batch, heads, n_q, dim)``.
        key: ``(batch, heads, n_k, dim)``.
        value: ``(batch, heads, n_k, dim)``.
        scale: Logit scale (``dim ** -0.5``).
        chunk: Query rows per chunk in the fallback.

    Returns:
        ``(out (batch, heads, n_q, dim), lse (batch, heads, n_q) float32)``.
    """
    try:
        if query.device.type == "cpu":
            out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
                query, key, value, 0.0, False, scale=scale
            )[:2]
            return out, lse.float()
        if query.device.type == "cuda" and query.dtype in (torch.float16, torch.bfloat16):
            out, lse = torch.ops.aten._scaled_dot_product_flash_attention(
                query, key, value, 0.0, False, False, scale=scale
            )[:2]
            return out, lse.float()
    except (RuntimeError, NotImplementedError):
        pass  # unsupported shape or dtype for the fused kernel: use the explicit fallback
    return attention_with_lse_reference(query, key, value, scale, chunk=chunk)


def attention_with_lse_reference(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scale: float, *, chunk: int = 1024
) -> tuple[torch.Tensor, torch.Tensor]:
    """Explicit (row-chunked) version of :func:`attention_with_lse`; also its test oracle."""
    outs, lses = [], []
    for start in range(0, query.shape[-2], chunk):
        q = query[..., start : start + chunk, :].float()
        logits = (q @ key.float().transpose(-1, -2)) * scale
        lse = torch.logsumexp(logits, dim=-1)
        outs.append((torch.exp(logits - lse[..., None]) @ value.float()).to(query.dtype))
        lses.append(lse)
    return torch.cat(outs, dim=-2), torch.cat(lses, dim=-1)
