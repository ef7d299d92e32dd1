"""Regional prompting: the mask, the processor against diffusers' own, and generation."""

from __future__ import annotations

import types

import numpy as np
import pytest

from slim_leakage.errors import ConfigError, DatasetError
from slim_leakage.methods import get_method
from slim_leakage.methods.layouts import Layout, plan_layouts, split_layout, write_layouts
from slim_leakage.methods.regional import (
    RegionalAttnProcessor,
    RegionalState,
    build_attention_mask,
    region_masks,
    regional_processors,
    sub_prompt_blocking,
)
from slim_leakage.records import Sample

torch = pytest.importorskip("torch")

PAIR = Sample(id="p1", prompt="a cow and a horse in a field", entities=("cow", "horse"), seed=5)
TRIPLET = Sample(id="t1", prompt="a cat, a dog and a fox", entities=("cat", "dog", "fox"), seed=6)


def test_region_masks_follow_the_boxes_in_row_major_order():
    left, right = region_masks(split_layout(PAIR), rows=2, cols=4)
    assert left.tolist() == [True, True, False, False, True, True, False, False]
    assert right.tolist() == [not v for v in left.tolist()]
    tiny = Layout("x", ("a",), ((0.1, 0.1, 0.12, 0.12),), ("a",))
    (only,) = region_masks(tiny, rows=4, cols=4)
    assert int(only.sum()) == 1  # a box smaller than a token still gets its nearest token


def test_attention_mask_blocks_other_entities_sub_prompts():
    regions = [torch.tensor([1, 0, 0], dtype=torch.bool), torch.tensor([0, 1, 0], dtype=torch.bool)]
    m = build_attention_mask(2, [1, 2], regions)  # [base base | s1 | s2 s2 | i0 i1 i2]
    base, s1, s2, img = [0, 1], [2], [3, 4], [5, 6, 7]
    i0, i1, i2 = img
    # base text sees base text and all image tokens, no sub-prompt
    assert m[0].tolist() == [1, 1, 0, 0, 0, 1, 1, 1]
    # a sub-prompt sees itself and its own region only
    assert m[2].tolist() == [0, 0, 1, 0, 0, 1, 0, 0]
    assert m[3].tolist() == [0, 0, 0, 1, 1, 0, 1, 0]
    # region-1 image token: base, sub-prompt 1, every image token; never sub-prompt 2
    assert m[i0].tolist() == [1, 1, 1, 0, 0, 1, 1, 1]
    assert m[i1].tolist() == [1, 1, 0, 1, 1, 1, 1, 1]
    # background token: base and image only
    assert m[i2].tolist() == [1, 1, 0, 0, 0, 1, 1, 1]
    assert all(m[r].any() for r in base + s1 + s2 + img)
    no_sub = build_attention_mask(2, [1, 2], regions, with_subprompts=False)
    assert not no_sub[img][:, 2:5].any() and not no_sub[base][:, 2:5].any()


def _attention_inputs(pipe, text_len=5, rows=2, cols=3, seed=0):
    tr = pipe.transformer
    dim = tr.config.num_attention_heads * tr.config.attention_head_dim
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(1, rows * cols, dim, generator=g)
    encoder = torch.randn(1, text_len, dim, generator=g)
    img_ids = pipe._prepare_latent_image_ids(1, rows, cols, "cpu", torch.float32)
    ids = torch.cat([torch.zeros(text_len, 3), img_ids], dim=0)
    rotary = tr.pos_embed(ids)
    return hidden, encoder, rotary


def _regional_state(text_split, regions, base_ratio=0.0, implementation="reference"):
    base_len, subs = text_split
    mask = build_attention_mask(base_len, subs, regions)[None, None]
    base = build_attention_mask(base_len, subs, regions, with_subprompts=False)[None, None]
    tokens, blocked = sub_prompt_blocking(base_len, subs, regions)
    return RegionalState(
        mask=mask,
        base_mask=base,
        text_len=base_len + sum(subs),
        base_ratio=base_ratio,
        implementation=implementation,
        sub_tokens=tokens,
        sub_blocked=blocked,
    )


def _stock(attn, *args, mask=None, **kwargs):
    from diffusers.models.transformers.transformer_flux import FluxAttnProcessor

    additive = None
    if mask is not None:
        additive = torch.zeros(mask.shape).masked_fill(~mask, float("-inf"))
    return FluxAttnProcessor()(attn, *args, attention_mask=additive, **kwargs)


REGIONS = [torch.tensor([1, 1, 0, 0, 0, 0]).bool(), torch.tensor([0, 0, 0, 1, 1, 0]).bool()]


@pytest.mark.parametrize("block", ["double", "single"])
@pytest.mark.parametrize("masked", [False, "reference", "fast"])
def test_processor_matches_diffusers_processor(tiny_flux_pipeline, block, masked):
    pipe = tiny_flux_pipeline
    hidden, encoder, rotary = _attention_inputs(pipe)
    state = _regional_state((2, [1, 2]), REGIONS, implementation=masked) if masked else None
    state = state or RegionalState()
    ours = RegionalAttnProcessor(state)
    with torch.no_grad():
        if block == "double":
            attn = pipe.transformer.transformer_blocks[0].attn
            got = ours(attn, hidden, encoder, image_rotary_emb=rotary)
            want = _stock(
                attn, hidden, encoder, mask=state.mask if masked else None, image_rotary_emb=rotary
            )
            for a, b in zip(got, want):
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        else:
            attn = pipe.transformer.single_transformer_blocks[0].attn
            joint = torch.cat([encoder, hidden], dim=1)
            got = ours(attn, joint, image_rotary_emb=rotary)
            want = _stock(attn, joint, mask=state.mask if masked else None, image_rotary_emb=rotary)
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert state.calls == (1 if masked else 0)


@pytest.mark.parametrize("implementation", ["reference", "fast"])
def test_after_the_binding_steps_every_sub_prompt_is_hidden(tiny_flux_pipeline, implementation):
    pipe = tiny_flux_pipeline
    hidden, encoder, rotary = _attention_inputs(pipe)
    attn = pipe.transformer.single_transformer_blocks[0].attn
    joint = torch.cat([encoder, hidden], dim=1)
    state = _regional_state((2, [1, 2]), REGIONS, implementation=implementation)
    state.steps, state.step = 1, 1
    with torch.no_grad():
        got = RegionalAttnProcessor(state)(attn, joint, image_rotary_emb=rotary)
        want = _stock(attn, joint, mask=state.base_mask, image_rotary_emb=rotary)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert state.calls == 0  # no binding call counted


@pytest.mark.parametrize("implementation", ["reference", "fast"])
def test_base_ratio_blends_image_tokens_with_the_unmasked_output(
    tiny_flux_pipeline, implementation
):
    pipe = tiny_flux_pipeline
    hidden, encoder, rotary = _attention_inputs(pipe)
    attn = pipe.transformer.single_transformer_blocks[0].attn
    joint = torch.cat([encoder, hidden], dim=1)
    state = _regional_state((2, [1, 2]), REGIONS, base_ratio=0.3, implementation=implementation)
    with torch.no_grad():
        got = RegionalAttnProcessor(state)(attn, joint, image_rotary_emb=rotary)
        masked = _stock(attn, joint, mask=state.mask, image_rotary_emb=rotary)
        base = _stock(attn, joint, mask=state.base_mask, image_rotary_emb=rotary)
    torch.testing.assert_close(got[:, :5], masked[:, :5], rtol=1e-5, atol=1e-6)
    want = 0.7 * masked[:, 5:] + 0.3 * base[:, 5:]
    torch.testing.assert_close(got[:, 5:], want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("implementation", ["reference", "fast"])
def test_a_region_never_reads_another_entitys_sub_prompt(tiny_flux_pipeline, implementation):
    pipe = tiny_flux_pipeline
    hidden, encoder, rotary = _attention_inputs(pipe)
    attn = pipe.transformer.transformer_blocks[0].attn
    state = _regional_state((2, [1, 2]), REGIONS, implementation=implementation)
    changed = encoder.clone()
    changed[:, 3:5] += 5.0  # sub-prompt of entity 2
    proc = RegionalAttnProcessor(state)
    with torch.no_grad():
        img_a, _ = proc(attn, hidden, encoder, image_rotary_emb=rotary)
        img_b, _ = proc(attn, hidden, changed, image_rotary_emb=rotary)
    region1, region2 = REGIONS
    torch.testing.assert_close(img_a[0, region1], img_b[0, region1], rtol=1e-5, atol=1e-6)
    assert (img_a[0, region2] - img_b[0, region2]).abs().max() > 1e-3


def test_mask_of_the_wrong_length_is_a_clear_error(tiny_flux_pipeline):
    pipe = tiny_flux_pipeline
    hidden, encoder, rotary = _attention_inputs(pipe)
    state = _regional_state((3, [1, 2]), REGIONS)
    with pytest.raises(ConfigError, match="built for"), torch.no_grad():
        RegionalAttnProcessor(state)(
            pipe.transformer.transformer_blocks[0].attn, hidden, encoder, image_rotary_emb=rotary
        )


def test_processors_are_restored_even_after_an_error(tiny_flux_pipeline):
    transformer = tiny_flux_pipeline.transformer
    before = dict(transformer.attn_processors)
    with pytest.raises(RuntimeError), regional_processors(tiny_flux_pipeline, RegionalState()):
        assert all(
            isinstance(p, RegionalAttnProcessor) for p in transformer.attn_processors.values()
        )
        raise RuntimeError("boom")
    after = transformer.attn_processors
    assert all(after[k] is before[k] for k in before)
    assert not transformer._forward_pre_hooks


@pytest.fixture
def layout_file(tmp_path):
    path = tmp_path / "layouts.jsonl"
    write_layouts(path, plan_layouts([PAIR, TRIPLET]))
    return str(path)


def test_generation_binds_every_block_of_every_step(tiny_backbone, layout_file):
    method = get_method("regional-prompting", layouts=layout_file)
    method.prepare(tiny_backbone, [PAIR, TRIPLET])
    out = method.generate(tiny_backbone, [PAIR, TRIPLET])
    tr = tiny_backbone.pipe.transformer.config
    blocks = tr.num_layers + tr.num_single_layers
    steps = tiny_backbone.settings.num_inference_steps
    assert [o.extra["masked_attention_calls"] for o in out] == [blocks * steps] * 2
    assert set(out[1].overlays) == {"cat", "dog", "fox"}
    assert out[0].image.size == (tiny_backbone.settings.width, tiny_backbone.settings.height)
    vanilla = tiny_backbone.generate([PAIR.prompt], [PAIR.seed])[0]
    assert not np.array_equal(np.asarray(out[0].image), np.asarray(vanilla))
    # One sample alone gives the same pixels as in a batch (per-sample seed and mask).
    alone = method.generate(tiny_backbone, [TRIPLET])[0]
    assert np.array_equal(np.asarray(alone.image), np.asarray(out[1].image))


def test_steps_limits_the_binding_to_the_first_steps(tiny_backbone, layout_file):
    out = get_method("regional-prompting", layouts=layout_file, steps=1).generate(
        tiny_backbone, [PAIR]
    )
    tr = tiny_backbone.pipe.transformer.config
    assert out[0].extra["masked_attention_calls"] == tr.num_layers + tr.num_single_layers


def test_inputs_are_checked_before_generation(tiny_backbone, layout_file, tmp_path):
    method = get_method("regional-prompting", layouts=layout_file)
    other = Sample(id="nope", prompt="a cat and a dog", entities=("cat", "dog"), seed=1)
    with pytest.raises(DatasetError, match="'nope' has no layout"):
        method.prepare(tiny_backbone, [PAIR, other])
    sana = types.SimpleNamespace(name="sana", family="sana")
    with pytest.raises(ConfigError, match="does not support") as info:
        method.prepare(sana, [PAIR])
    assert "flux" in info.value.hint
    with pytest.raises(ConfigError, match="needs layouts=FILE"):
        get_method("regional-prompting")
    with pytest.raises(ConfigError, match="base_ratio"):
        get_method("regional-prompting", layouts=layout_file, base_ratio=1.0)


def test_fast_and_reference_generations_agree(tiny_backbone, layout_file):
    options = {"layouts": layout_file, "base_ratio": 0.2, "steps": 2}
    fast = get_method("regional-prompting", **options)
    ref = get_method("regional-prompting", implementation="reference", **options)
    for a, b in zip(
        fast.generate(tiny_backbone, [PAIR, TRIPLET]), ref.generate(tiny_backbone, [PAIR, TRIPLET])
    ):
        diff = np.abs(np.asarray(a.image, dtype=int) - np.asarray(b.image, dtype=int)).max()
        assert diff <= 1, diff
    with pytest.raises(ConfigError, match="implementation"):
        get_method("regional-prompting", layouts=layout_file, implementation="magic")
