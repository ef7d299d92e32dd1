"""DeLeaker on a tiny random Stable Diffusion 3 (MMDiT): fast == reference, vanilla when off,
restored processors, entity spans over SD3's ``[CLIP ; T5]`` text.

Tolerances: final latents of fast and reference agree to ``2e-5`` of the latents' largest
magnitude (as on FLUX); the masks agree exactly at every step. With every edit off the output
equals the stock pipeline's to ``1e-5`` of that magnitude (not bit for bit: DeLeaker's
processors attend over ``[text ; image]``, diffusers' over ``[image ; text]``, and the fused
kernel sums the keys in another order), and the 8-bit images are equal.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from slim_leakage.errors import ConfigError, EntityNotFoundError  # noqa: E402
from slim_leakage.methods.deleaker import sd3  # noqa: E402

PAIR = "a cow and a horse in a field"
TRIPLE = "a cat, a dog and a fox on a table"
LOOSE = {"smoothing": False, "beta1": 0.0}
OFF = dict(image_text_suppression=False, self_identity=False, image_image_suppression=False)


@pytest.fixture(scope="module")
def pipe():
    from slim_leakage.backbones.sd3 import build_tiny_sd3_pipeline

    return build_tiny_sd3_pipeline(seed=3)


def _generate(pipe, prompts, *, size=(32, 32), steps=3, length=32, seeds=None, **extra):
    prompts = [prompts] if isinstance(prompts, str) else prompts
    seeds = seeds or list(range(1, len(prompts) + 1))
    kwargs = {"guidance_scale": 3.5, "output_type": "latent", **extra}
    return pipe(
        prompt=prompts,
        height=size[0],
        width=size[1],
        num_inference_steps=steps,
        max_sequence_length=length,
        generator=[torch.Generator().manual_seed(s) for s in seeds],
        **kwargs,
    ).images


def _with(pipe, entities, prompts, implementation, gen_kwargs=None, **options):
    with sd3.install(pipe, entities, implementation=implementation, **options) as run:
        out = _generate(pipe, prompts, **(gen_kwargs or {}))
    return out, run


def _assert_same_masks(run_a, run_b, steps):
    assert len(run_a.batch_masks) == len(run_b.batch_masks) > 0
    for ma, mb in zip(run_a.batch_masks, run_b.batch_masks):
        assert ma.keys() == mb.keys()
        for entity in ma:
            assert sorted(ma[entity]) == list(range(steps))
            for step in ma[entity]:
                assert torch.equal(ma[entity][step], mb[entity][step]), (entity, step)
                assert ma[entity][step].any(), f"empty mask for {entity} at step {step}"


CASES = [
    pytest.param(PAIR, ["cow", "horse"], {}, LOOSE, id="pair-square-cfg"),
    pytest.param(TRIPLE, ["cat", "dog", "fox"], {"size": (32, 48)}, LOOSE, id="triple-wide"),
    pytest.param(
        [PAIR, "a cat, a dog and a fox near the river"],
        [["cow", "horse"], ["cat", "dog", "fox"]],
        {"size": (48, 32), "length": 64, "steps": 2},
        LOOSE,
        id="batch2-tall-t5-64",
    ),
    pytest.param(PAIR, ["cow", "horse"], {"guidance_scale": 1.0}, LOOSE, id="no-cfg"),
    pytest.param(PAIR, ["cow", "horse"], {}, {"beta1": -0.3}, id="pair-smoothed"),
]


@pytest.mark.parametrize("prompts, entities, gen_kwargs, options", CASES)
def test_fast_matches_reference_and_edits(pipe, prompts, entities, gen_kwargs, options):
    steps = gen_kwargs.get("steps", 3)
    vanilla = _generate(pipe, prompts, **gen_kwargs)
    fast, run_f = _with(pipe, entities, prompts, "fast", gen_kwargs, **options)
    ref, run_r = _with(pipe, entities, prompts, "reference", gen_kwargs, **options)
    _assert_same_masks(run_f, run_r, steps)
    scale = vanilla.abs().max()
    assert (fast - vanilla).abs().max() > 1e-3 * scale  # the edits did something
    assert torch.allclose(fast, ref, atol=2e-5 * scale, rtol=0)
    if isinstance(prompts, list):  # batched output equals each prompt generated alone
        for b, (p, e) in enumerate(zip(prompts, entities)):
            single, _ = _with(pipe, e, p, "fast", {**gen_kwargs, "seeds": [b + 1]}, **options)
            assert torch.allclose(single[0], fast[b], atol=2e-5 * scale, rtol=0)


@pytest.mark.parametrize(
    "switch",
    ["image_text_suppression", "self_identity", "image_image_suppression", "text_text_suppression"],
)
def test_each_component_alone_matches_reference(pipe, switch):
    opts = {**OFF, switch: True, "smoothing": False, "beta1": 0.0, "alpha": 1.5}
    vanilla = _generate(pipe, TRIPLE)
    fast, run_f = _with(pipe, ["cat", "dog", "fox"], TRIPLE, "fast", **opts)
    ref, run_r = _with(pipe, ["cat", "dog", "fox"], TRIPLE, "reference", **opts)
    _assert_same_masks(run_f, run_r, 3)
    scale = vanilla.abs().max()
    if switch != "text_text_suppression":
        assert (fast - vanilla).abs().max() > 1e-4 * scale
    assert torch.allclose(fast, ref, atol=2e-5 * scale, rtol=0)


@pytest.mark.parametrize(
    "entities, options",
    [
        pytest.param(["cow", "horse"], OFF, id="every-edit-off"),
        pytest.param(["cow", "horse"], {**OFF, "self_identity": True, "alpha": 1.0}, id="alpha-1"),
        pytest.param(["cow"], {}, id="one-entity"),
    ],
)
def test_nothing_to_edit_gives_the_vanilla_image(pipe, entities, options):
    vanilla = _generate(pipe, PAIR)
    for implementation in ("fast", "reference"):
        out, run = _with(pipe, entities, PAIR, implementation, **LOOSE, **options)
        assert run.masks["cow"][2].any()  # masks are still computed and recorded
        assert torch.allclose(out, vanilla, atol=1e-5 * vanilla.abs().max(), rtol=0)
    with sd3.install(pipe, entities, **LOOSE, **options):
        image = _generate(pipe, PAIR, output_type="np")
    assert np.array_equal(
        (image * 255).round().astype(np.uint8),
        (_generate(pipe, PAIR, output_type="np") * 255).round().astype(np.uint8),
    )


def test_processors_are_restored_even_after_an_error(pipe):
    before = dict(pipe.transformer.attn_processors)
    encode = pipe.encode_prompt
    with sd3.install(pipe, ["cow", "horse"]):
        kinds = {type(p).__name__ for p in pipe.transformer.attn_processors.values()}
        # the joint blocks get DeLeaker; SD3.5 Medium's image-only attn2 keeps its processor
        assert kinds == {
            "SD3DeLeakerProcessor",
            type(before["transformer_blocks.0.attn2.processor"]).__name__,
        }
    assert pipe.transformer.attn_processors == before
    with pytest.raises(RuntimeError, match="boom"), sd3.install(pipe, ["cow", "horse"]):
        raise RuntimeError("boom")
    assert pipe.transformer.attn_processors == before
    assert pipe.encode_prompt == encode and "encode_prompt" not in vars(pipe)
    assert not pipe.transformer._forward_pre_hooks


def test_the_unconditional_half_is_not_edited(pipe):
    """With CFG the transformer sees [uncond, cond]: only the conditional images have masks,
    and the step count is the scheduler's, not the number of forwards."""
    _, run = _with(pipe, ["cow", "horse"], PAIR, "fast", **LOOSE)
    assert run.forwards == 3 and run.num_steps == 3
    assert len(run.batch_masks) == 1 and run.uncond == 1


def test_entity_spans_cover_clip_and_t5(pipe):
    spans = sd3.sd3_entity_spans(
        pipe.tokenizer, pipe.tokenizer_3, PAIR, ["cow", "horse"], max_sequence_length=32
    )
    clip = pipe.tokenizer(PAIR, return_offsets_mapping=True)
    for entity, positions in spans.items():
        t5 = [p for p in positions if p >= 77]
        clip_part = [p for p in positions if p < 77]
        assert t5 and clip_part and positions == t5 + clip_part  # T5 first
        start = PAIR.index(entity)
        assert [clip["offset_mapping"][p] for p in clip_part][0][0] == start
        enc = pipe.tokenizer_3(PAIR, return_offsets_mapping=True)
        covered = "".join(PAIR[s:e] for s, e in (enc["offset_mapping"][p - 77] for p in t5))
        assert covered.strip() == entity
    # CLIP-G's tokenizer gives the same positions (its hidden states sit beside CLIP-L's)
    again = sd3.sd3_entity_spans(
        pipe.tokenizer_2, pipe.tokenizer_3, PAIR, ["cow", "horse"], max_sequence_length=32
    )
    assert again == spans


def test_entities_past_one_encoder_use_the_other():
    from slim_leakage.backbones.sd3 import build_tiny_sd3_pipeline

    p = build_tiny_sd3_pipeline(seed=1)
    long = "the " * 40 + "cow and a horse"  # past the (character-level) CLIP, not T5
    spans = sd3.sd3_entity_spans(p.tokenizer, p.tokenizer_3, long, ["cow"], max_sequence_length=64)
    assert spans["cow"] and all(t >= 77 for t in spans["cow"])
    no_t5 = sd3.sd3_entity_spans(
        p.tokenizer, None, PAIR, ["cow"], max_sequence_length=32, use_t5=False
    )
    assert no_t5["cow"] and all(t < 77 for t in no_t5["cow"])
    with pytest.raises(EntityNotFoundError, match="CLIP's 77 tokens or T5's"):
        sd3.sd3_entity_spans(p.tokenizer, p.tokenizer_3, long, ["cow"], max_sequence_length=8)
    with pytest.raises(EntityNotFoundError, match="'zebra'"):
        sd3.sd3_entity_spans(p.tokenizer, p.tokenizer_3, PAIR, ["zebra"], max_sequence_length=32)


def test_errors_are_clear(pipe):
    before = dict(pipe.transformer.attn_processors)
    with (
        pytest.raises(ConfigError, match="mask_blocks='double'"),
        sd3.install(pipe, ["cow", "horse"], mask_blocks="double"),
    ):
        pass
    with (
        pytest.raises(ConfigError, match="not its transformer"),
        sd3.install(pipe.transformer, ["cow", "horse"]),
    ):
        pass
    with (
        pytest.raises(ConfigError, match="StableDiffusion3Pipeline"),
        sd3.install(object(), ["cow", "horse"]),
    ):
        pass
    with pytest.raises(ConfigError, match="prompt_3"), sd3.install(pipe, ["cow", "horse"]):
        _generate(pipe, PAIR, prompt_3="a cat and a dog")
    with pytest.raises(EntityNotFoundError, match="'zebra'"), sd3.install(pipe, ["cow", "zebra"]):
        _generate(pipe, PAIR)
    assert pipe.transformer.attn_processors == before


def test_the_registered_method_runs_on_tiny_sd3():
    """``--method deleaker --backbone tiny-sd3``: prepare, generate, masks, overlays, extra."""
    from slim_leakage.backbones import load_backbone
    from slim_leakage.methods import get_method
    from slim_leakage.records import Sample

    backbone = load_backbone("tiny-sd3", device="cpu")
    samples = [
        Sample(id="p1", prompt=PAIR, entities=("cow", "horse"), seed=1),
        Sample(id="t1", prompt="a cat, a dog and a fox", entities=("cat", "dog", "fox"), seed=2),
    ]
    method = get_method("deleaker", smoothing=False, beta1=0.0)
    method.prepare(backbone, samples)
    bad = Sample(id="bad7", prompt="a cowboy and a horse", entities=("cow", "horse"), seed=1)
    with pytest.raises(EntityNotFoundError, match="'bad7'.*'cow'"):
        method.prepare(backbone, [bad])
    outputs = method.generate(backbone, samples)
    vanilla = backbone.generate([s.prompt for s in samples], [s.seed for s in samples])
    for sample, out, van in zip(samples, outputs, vanilla):
        assert set(out.extra["mask_tokens"]) == set(sample.entities)
        assert all(n > 0 for n in out.extra["mask_tokens"].values())
        assert out.extra["mask_grid"] == [16, 16]  # 32 px, VAE factor 1, patch 2
        assert out.extra["entity_tokens_from"].startswith("CLIP")
        assert set(out.overlays) == set(sample.entities)
        assert not np.array_equal(np.asarray(out.image), np.asarray(van))
