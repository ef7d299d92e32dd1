"""One attention block: each switch edits exactly what it names; fast == reference there."""

from __future__ import annotations

import itertools

import pytest

torch = pytest.importorskip("torch")

from slim_leakage.methods.deleaker import DeLeakerConfig  # noqa: E402
from slim_leakage.methods.deleaker.flux import (  # noqa: E402
    FluxDeLeakerProcessor,
    ReferenceFluxProcessor,
)
from slim_leakage.methods.deleaker.ops import pair_edits  # noqa: E402
from slim_leakage.methods.deleaker.state import DeLeakerState  # noqa: E402

T, GRID = 8, (4, 5)
N = GRID[0] * GRID[1]
SPANS = {"a": [1], "b": [3, 4], "c": [6]}
SWITCHES = [
    "image_text_suppression",
    "self_identity",
    "image_image_suppression",
    "text_text_suppression",
]


def _config(on: list[str], **extra) -> DeLeakerConfig:
    flags = {s: s in on for s in SWITCHES}
    return DeLeakerConfig(smoothing=False, beta1=0.0, alpha=1.5, **flags, **extra)


def _state(cfg, spans=SPANS, batch=1):
    state = DeLeakerState(cfg, list(spans), blocks_per_step=1)
    state.spans, state.prompts = [dict(spans)], ["prompt"]
    state.begin_forward(step=0, num_steps=1, text_len=T, grid=GRID, batch=batch)
    assert state.phase(0) == (True, True)
    return state


def _qkv(seed=0, heads=3, dim=8):
    gen = torch.Generator().manual_seed(seed)
    shape = (1, heads, T + N, dim)
    q, k, v = (torch.randn(shape, generator=gen) for _ in range(3))
    return q * 2.0, k * 2.0, v


def _plain(q, k, v):
    return torch.softmax((q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5, -1) @ v


def _run(cls, cfg, q, k, v):
    state = _state(cfg)
    out = cls(state, 0, None).attend(q, k, v, True, True)
    masks = {e: steps[0].flatten() for e, steps in state.batch_masks[0].items()}
    return out, masks


@pytest.mark.parametrize("on", [[s] for s in SWITCHES] + [SWITCHES[:3], SWITCHES])
def test_fast_equals_reference_on_one_block(on):
    q, k, v = _qkv(len(on))
    cfg = _config(on)
    fast, masks_f = _run(FluxDeLeakerProcessor, cfg, q, k, v)
    ref, masks_r = _run(ReferenceFluxProcessor, cfg, q, k, v)
    assert all(torch.equal(masks_f[e], masks_r[e]) and masks_f[e].any() for e in SPANS)
    assert torch.allclose(fast, ref, atol=1e-4)  # fused vs explicit softmax rounding
    plain = _plain(q, k, v)
    changed = (fast - plain).abs().amax(dim=(0, 1, 3)) > 1e-6  # per query row
    union = torch.stack(list(masks_f.values())).any(0)
    if on == ["text_text_suppression"]:
        firsts = {ts[0] for ts in SPANS.values()}
        assert changed.nonzero().flatten().tolist() == sorted(firsts)
    else:
        assert changed.any()
        assert not changed[:T].any() or "text_text_suppression" in on  # text rows untouched
        assert not (changed[T:] & ~union).any()  # only masked image rows move


def _logits(seed=1, heads=3):
    gen = torch.Generator().manual_seed(seed)
    s = torch.randn(heads, T + N, T + N, generator=gen) * 2
    masks = {e: torch.rand(N, generator=gen) > 0.5 for e in SPANS}
    return s, torch.softmax(s, -1), masks


@pytest.mark.parametrize("switch", SWITCHES)
def test_each_switch_edits_exactly_the_logits_it_names(switch):
    s, p, masks = _logits()
    edited, _ = pair_edits(s.clone(), p, T, SPANS, masks, _config([switch]))
    diff = edited != s
    assert diff.any()
    assert (diff == diff[0]).all()  # head-shared positions
    diff = diff[0]
    rows = {e: set((T + masks[e].nonzero().flatten()).tolist()) for e in SPANS}
    expected = set()
    n = len(SPANS)
    for i, j in itertools.combinations(SPANS, 2):
        if switch == "image_text_suppression":
            expected |= {(r, c) for r in rows[i] for c in SPANS[j]}
            expected |= {(r, c) for r in rows[j] for c in SPANS[i]}
        elif switch == "self_identity":
            expected |= {(r, c) for e in (i, j) for r in rows[e] for c in SPANS[e]}
        elif switch == "text_text_suppression":
            expected |= {(SPANS[i][0], SPANS[j][0]), (SPANS[j][0], SPANS[i][0])}
    got = set(map(tuple, diff.nonzero().tolist()))
    if switch == "image_image_suppression":
        cross = {
            (r, c) for i, j in itertools.permutations(SPANS, 2) for r in rows[i] for c in rows[j]
        }
        assert got <= cross and torch.isinf(edited[:, diff]).all()
    else:
        assert got == expected
    if switch == "self_identity":
        # alpha once per pair the entity is in: alpha ** (n - 1) where masks do not overlap
        r = next(iter(rows["a"] - rows["b"] - rows["c"]))
        c = SPANS["a"][0]
        assert torch.allclose(edited[:, r, c], s[:, r, c] * 1.5 ** (n - 1))
    elif switch != "image_image_suppression":
        assert torch.isinf(edited[:, diff]).all() and (edited[:, diff] < 0).all()


@pytest.mark.parametrize("budget", [256, 4096])
def test_fast_equals_reference_in_small_working_set_blocks(monkeypatch, budget):
    """Heads and rows processed in many blocks (a budget of a few hundred bytes forces one head
    and a handful of rows per block) give the same output as the explicit reference."""
    from slim_leakage.methods.deleaker import ops

    q, k, v = _qkv(7, heads=4)
    cfg = _config(SWITCHES[:3])
    whole, masks_w = _run(FluxDeLeakerProcessor, cfg, q, k, v)
    monkeypatch.setattr(ops, "WORKING_SET_BYTES", budget)
    blocked, masks_b = _run(FluxDeLeakerProcessor, cfg, q, k, v)
    ref, _ = _run(ReferenceFluxProcessor, cfg, q, k, v)
    assert all(torch.equal(masks_w[e], masks_b[e]) and masks_b[e].any() for e in SPANS)
    assert torch.allclose(blocked, ref, atol=1e-4)
    assert torch.allclose(blocked, whole, atol=1e-5)


def test_rows_losing_most_of_their_mass_are_recomputed_exactly(monkeypatch):
    """Rows whose edits remove over half their attention take the exact path, and match."""
    from slim_leakage.methods.deleaker import flux

    q, k, v = _qkv(3)
    # every image query attends almost only to b's first text token: cutting it (image-text
    # suppression for rows of a and c) removes nearly all of their mass
    k[..., SPANS["b"][0], :] = q[..., T:, :].mean(-2) * 6.0
    calls = []
    original = flux.FluxDeLeakerProcessor._recompute

    def spy(*args, **kwargs):
        calls.append(args[8].numel())  # the weak rows
        return original(*args, **kwargs)

    monkeypatch.setattr(flux.FluxDeLeakerProcessor, "_recompute", staticmethod(spy))
    cfg = _config(["image_text_suppression", "image_image_suppression"])
    fast, masks = _run(FluxDeLeakerProcessor, cfg, q, k, v)
    ref, _ = _run(ReferenceFluxProcessor, cfg, q, k, v)
    assert calls and calls[0] > 0, "no row took the exact path"
    assert all(m.any() for m in masks.values())
    assert torch.allclose(fast, ref, atol=1e-4)
