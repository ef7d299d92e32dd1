"""DeLeaker on a tiny Z-Image: entity tokens through Qwen3's chat template, fast == reference
(also with a padded batch and batched CFG), stock when off, restored processors, the
registered method.

Random attention is noise, so the tests switch smoothing off (or lower the threshold) and assert
that masks are non-empty and the output moves away from vanilla, so no comparison is vacuous.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from slim_leakage.errors import ConfigError, EntityNotFoundError  # noqa: E402
from slim_leakage.methods.deleaker import zimage as Z  # noqa: E402

PAIR = "a cow and a horse in a field"
TRIPLE = "a cat, a dog and a fox on a table"
#: a second prompt over 32 tokens: its text pads to 64, the pair's to 32, so a batch of both
#: is padded and masked
LONG = "a cat, a dog and a fox near the old river bank where a lot of other animals are drinking"
#: fast vs reference, relative to the largest vanilla latent (float32 on the CPU)
TOL = 2e-5


@pytest.fixture(scope="module")
def pipe():
    from slim_leakage.backbones.zimage import build_tiny_zimage_pipeline

    return build_tiny_zimage_pipeline(seed=3, n_layers=3)


def _generate(pipe, prompts, *, size=(32, 32), steps=3, length=64, seeds=None, cfg=0.0):
    # ZImagePipeline rewrites the prompt list it is given in place (the chat template): a copy
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    seeds = seeds or list(range(1, len(prompts) + 1))
    return pipe(
        prompt=prompts,
        height=size[0],
        width=size[1],
        num_inference_steps=steps,
        max_sequence_length=length,
        guidance_scale=cfg,
        generator=[torch.Generator().manual_seed(s) for s in seeds],
        output_type="latent",
    ).images


def _with(pipe, entities, prompts, implementation, gen=None, **options):
    with Z.install(pipe, entities, implementation=implementation, **options) as run:
        out = _generate(pipe, prompts, **(gen or {}))
    return out, run


def _same_masks(run_a, run_b, steps):
    assert len(run_a.batch_masks) == len(run_b.batch_masks) > 0
    for ma, mb in zip(run_a.batch_masks, run_b.batch_masks):
        assert ma.keys() == mb.keys()
        for entity in ma:
            assert sorted(ma[entity]) == list(range(steps))
            for step in ma[entity]:
                assert torch.equal(ma[entity][step], mb[entity][step]), (entity, step)
                assert ma[entity][step].any(), f"empty mask for {entity} at step {step}"


# -- entity tokens ---------------------------------------------------------------------------
def _kept_ids(pipe, prompt, length):
    """The token ids the transformer sees, computed as ZImagePipeline does."""
    from slim_leakage.backbones.zimage import zimage_text

    text = pipe.tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}],
        tokenize=False,
        add_generation_prompt=True,
        enable_thinking=True,
    )
    assert text == zimage_text(pipe.tokenizer, prompt)
    assert text == f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n"
    return pipe.tokenizer(text, max_length=length, truncation=True).input_ids


@pytest.mark.parametrize(
    "prompt, entities",
    [
        (PAIR, ["cow", "horse"]),
        (TRIPLE, ["cat", "dog", "fox"]),
        ("a zebra and an okapi", ["zebra", "okapi"]),  # spelt from bytes
        ("A Blue jay near a Cow", ["blue jay", "cow"]),
        ("user and assistant", ["user", "assistant"]),  # words of the template itself
    ],
)
def test_spans_point_at_the_entity_in_the_tokens_the_transformer_sees(pipe, prompt, entities):
    spans = Z.zimage_entity_spans(pipe.tokenizer, prompt, entities, 64)
    kept = _kept_ids(pipe, prompt, 64)
    assert pipe.tokenizer.convert_ids_to_tokens(kept[:3]) == ["<|im_start|>", "user", "Ċ"]
    for entity, positions in spans.items():
        assert min(positions) >= 3  # nothing of the template is dropped: the prompt follows it
        text = pipe.tokenizer.decode([kept[i] for i in positions]).strip().lower()
        assert text == entity.lower()


def test_missing_repeated_or_truncated_entities_are_errors(pipe):
    with pytest.raises(EntityNotFoundError, match="'zebra'"):
        Z.zimage_entity_spans(pipe.tokenizer, PAIR, ["cow", "zebra"], 64)
    with pytest.raises(EntityNotFoundError, match="max_sequence_length=6"):
        Z.zimage_entity_spans(pipe.tokenizer, PAIR, ["horse"], 6)
    with pytest.raises(ConfigError, match="repeat"):
        Z.zimage_entity_spans(pipe.tokenizer, PAIR, ["cow", "Cow"], 64)


# -- fast == reference --------------------------------------------------------------------------
CASES = [
    pytest.param(PAIR, ["cow", "horse"], {}, {"smoothing": False}, id="pair"),
    # a 12x20 grid: 240 image tokens, padded to 256 with Z-Image's image pad token
    pytest.param(
        TRIPLE, ["cat", "dog", "fox"], {"size": (24, 40)}, {"smoothing": False}, id="triple-pad"
    ),
    pytest.param(PAIR, ["cow", "horse"], {"cfg": 4.0}, {"smoothing": False}, id="batched-cfg"),
    pytest.param(
        # texts padded to 32 and 64 tokens: the batch is padded and masked
        [PAIR, LONG],
        [["cow", "horse"], ["cat", "dog", "fox"]],
        {"steps": 2},
        {"smoothing": False},
        id="batch-padded",
    ),
    pytest.param(PAIR, ["cow", "horse"], {}, {"beta1": -0.3}, id="smoothed"),
]


@pytest.mark.parametrize("prompts, entities, gen, options", CASES)
def test_fast_matches_reference_and_edits(pipe, prompts, entities, gen, options):
    steps = gen.get("steps", 3)
    vanilla = _generate(pipe, prompts, **gen)
    fast, run_f = _with(pipe, entities, prompts, "fast", gen, **options)
    ref, run_r = _with(pipe, entities, prompts, "reference", gen, **options)
    _same_masks(run_f, run_r, steps)
    scale = vanilla.abs().max()
    assert (fast - vanilla).abs().max() > 1e-3 * scale
    assert torch.allclose(fast, ref, atol=TOL * scale, rtol=0)
    if isinstance(prompts, list):  # batched (padded) output equals each prompt alone
        for b, (p, e) in enumerate(zip(prompts, entities)):
            single, _ = _with(pipe, e, p, "fast", {**gen, "seeds": [b + 1]}, **options)
            assert torch.allclose(single[0], fast[b], atol=TOL * scale, rtol=0)


def test_cfg_edits_only_the_conditional_half(pipe, monkeypatch):
    seen = []
    original = Z.ZImageDeLeakerProcessor.deleaker

    def spy(self, attn, hidden_states, *args):
        seen.append(hidden_states.shape[0])
        return original(self, attn, hidden_states, *args)

    monkeypatch.setattr(Z.ZImageDeLeakerProcessor, "deleaker", spy)
    _, run = _with(pipe, ["cow", "horse"], PAIR, "fast", {"cfg": 4.0}, smoothing=False)
    assert run.forwards == 3 and run.num_steps == 3 and run.batch == 1  # [cond ; uncond]
    assert seen and set(seen) == {2} and len(run.batch_masks) == 1


@pytest.mark.parametrize(
    "switch",
    ["image_text_suppression", "self_identity", "image_image_suppression", "text_text_suppression"],
)
def test_each_component_alone_matches_reference(pipe, switch):
    opts = dict.fromkeys(
        ["image_text_suppression", "self_identity", "image_image_suppression"], False
    )
    opts[switch] = True
    opts.update(smoothing=False, alpha=1.5)
    vanilla = _generate(pipe, TRIPLE)
    fast, run_f = _with(pipe, ["cat", "dog", "fox"], TRIPLE, "fast", **opts)
    ref, run_r = _with(pipe, ["cat", "dog", "fox"], TRIPLE, "reference", **opts)
    _same_masks(run_f, run_r, 3)
    scale = vanilla.abs().max()
    if switch != "text_text_suppression":
        assert (fast - vanilla).abs().max() > 1e-4 * scale
    assert torch.allclose(fast, ref, atol=TOL * scale, rtol=0)


ALL_OFF = dict(
    image_text_suppression=False,
    self_identity=False,
    image_image_suppression=False,
    text_text_suppression=False,
)


@pytest.mark.parametrize("options", [ALL_OFF, {**ALL_OFF, "alpha": 1.0}], ids=["off", "alpha1"])
def test_every_edit_off_gives_the_vanilla_image(pipe, options):
    vanilla = _generate(pipe, PAIR)
    fast, run = _with(pipe, ["cow", "horse"], PAIR, "fast", smoothing=False, **options)
    assert torch.equal(fast, vanilla)
    assert run.masks["cow"][2].any()  # masks are still computed and recorded
    ref, _ = _with(pipe, ["cow", "horse"], PAIR, "reference", smoothing=False, **options)
    assert torch.allclose(ref, vanilla, atol=1e-5 * vanilla.abs().max(), rtol=0)


def test_alpha_one_with_only_self_identity_is_vanilla(pipe):
    vanilla = _generate(pipe, PAIR)
    opts = {**ALL_OFF, "self_identity": True, "alpha": 1.0, "smoothing": False}
    fast, _ = _with(pipe, ["cow", "horse"], PAIR, "fast", **opts)
    assert torch.allclose(fast, vanilla, atol=1e-5 * vanilla.abs().max(), rtol=0)


def test_no_second_entity_changes_nothing(pipe):
    vanilla = _generate(pipe, PAIR)
    fast, run = _with(pipe, ["cow"], PAIR, "fast", smoothing=False)
    assert torch.equal(fast, vanilla) and run.masks["cow"]


def _processors(pipe):
    t = pipe.transformer
    return [b.attention.processor for b in [*t.layers, *t.noise_refiner, *t.context_refiner]]


def test_processors_are_restored_even_after_an_error(pipe):
    before = _processors(pipe)
    with Z.install(pipe, ["cow", "horse"]):
        now = _processors(pipe)
        # the main blocks only: the refiners never see image and text together
        assert [type(p).__name__ for p in now[:3]] == ["ZImageDeLeakerProcessor"] * 3
        assert now[3:] == before[3:]
    assert _processors(pipe) == before
    with pytest.raises(RuntimeError, match="boom"), Z.install(pipe, ["cow", "horse"]):
        raise RuntimeError("boom")
    assert _processors(pipe) == before
    run = Z.install(pipe, ["cow", "zebra"])
    with pytest.raises(EntityNotFoundError, match="'zebra'"), run:
        _generate(pipe, PAIR)
    assert _processors(pipe) == before
    assert "encode_prompt" not in vars(pipe) and not pipe.transformer._forward_pre_hooks


def test_bad_setups_are_clear_errors(pipe):
    from slim_leakage.backbones.tiny import build_tiny_flux_pipeline

    flux = build_tiny_flux_pipeline()
    with pytest.raises(ConfigError, match="ZImagePipeline"), Z.install(flux, ["cow", "horse"]):
        pass
    several = Z.install(pipe, ["cow", "horse"], smoothing=False)
    with pytest.raises(ConfigError, match="one image per prompt"), several:
        pipe(
            prompt=[PAIR],
            num_images_per_prompt=3,
            height=32,
            width=32,
            num_inference_steps=2,
            guidance_scale=0.0,
            output_type="latent",
        )
    blocks = Z.install(pipe, ["cow", "horse"], mask_blocks="double")
    with pytest.raises(ConfigError, match="mask_blocks"), blocks:
        _generate(pipe, PAIR)


def test_explicit_prompts_match_captured_ones(pipe):
    captured, run_c = _with(pipe, ["cow", "horse"], PAIR, "fast", smoothing=False)
    with Z.install(
        pipe, ["cow", "horse"], prompts=[PAIR], max_sequence_length=64, smoothing=False
    ) as run:
        given = _generate(pipe, PAIR)
    assert torch.equal(captured, given)
    _same_masks(run, run_c, 3)


# -- the registered method ----------------------------------------------------------------------
def test_registered_method_runs_on_the_tiny_preset():
    from slim_leakage.backbones import load_backbone
    from slim_leakage.methods import get_method
    from slim_leakage.records import Sample

    backbone = load_backbone("tiny-zimage", device="cpu", num_inference_steps=2)
    samples = [
        Sample(id="p", prompt=PAIR, entities=("cow", "horse"), seed=3),
        Sample(id="t", prompt=TRIPLE, entities=("cat", "dog", "fox"), seed=4),
    ]
    method = get_method("deleaker", smoothing=False)
    method.prepare(backbone, samples)
    outs = method.generate(backbone, samples)
    vanilla = backbone.generate([s.prompt for s in samples], [s.seed for s in samples])
    assert len(outs) == 2 and outs[0].image.size == (32, 32)
    assert set(outs[1].extra["entity_tokens"]) == {"cat", "dog", "fox"}
    assert outs[0].extra["mask_grid"] == [16, 16]
    assert any((o.image.tobytes() != v.tobytes()) for o, v in zip(outs, vanilla)), (
        "DeLeaker changed nothing"
    )
    bad = [Sample(id="z", prompt=PAIR, entities=("cow", "zebra"), seed=1)]
    with pytest.raises(EntityNotFoundError, match="Sample 'z'"):
        method.prepare(backbone, bad)
