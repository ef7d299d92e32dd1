"""DeLeaker on a tiny Qwen-Image: entity tokens through the chat template, fast == reference
(also with padded text in a batch), stock when off, restored processors, the registered method.

Random attention is noise, so the tests switch smoothing off (or lower the threshold) and assert
that masks are non-empty and the output moves away from vanilla, so no comparison is vacuous.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from slim_leakage.errors import ConfigError, EntityNotFoundError  # noqa: E402
from slim_leakage.methods.deleaker import qwenimage as Q  # noqa: E402

PAIR = "a cow and a horse in a field"
TRIPLE = "a cat, a dog and a fox on a table"
#: fast vs reference, relative to the largest vanilla latent (float32 on the CPU)
TOL = 2e-5


@pytest.fixture(scope="module")
def pipe():
    from slim_leakage.backbones.qwenimage import build_tiny_qwenimage_pipeline

    return build_tiny_qwenimage_pipeline(seed=3, num_layers=3)


def _generate(pipe, prompts, *, size=(32, 32), steps=3, length=64, seeds=None, cfg=1.0):
    prompts = [prompts] if isinstance(prompts, str) else prompts
    seeds = seeds or list(range(1, len(prompts) + 1))
    extra = {"negative_prompt": [" "] * len(prompts)} if cfg > 1 else {}
    return pipe(
        prompt=prompts,
        height=size[0],
        width=size[1],
        num_inference_steps=steps,
        max_sequence_length=length,
        true_cfg_scale=cfg,
        generator=[torch.Generator().manual_seed(s) for s in seeds],
        output_type="latent",
        **extra,
    ).images


def _with(pipe, entities, prompts, implementation, gen=None, **options):
    with Q.install(pipe, entities, implementation=implementation, **options) as run:
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
    """The token ids the transformer sees, computed as QwenImagePipeline does."""
    drop = pipe.prompt_template_encode_start_idx
    ids = pipe.tokenizer(pipe.prompt_template_encode.format(prompt)).input_ids
    return ids[drop:][:length]


def test_the_dropped_prefix_is_the_system_turn_as_on_the_real_tokenizer(pipe):
    tok = pipe.tokenizer
    template = pipe.prompt_template_encode
    prefix = template[: template.index("{}")]
    # diffusers drops 34 tokens: the system turn plus "<|im_start|>user\n" on Qwen2.5-VL's
    # tokenizer; the tiny vocabulary reproduces that count
    assert len(tok(prefix).input_ids) == pipe.prompt_template_encode_start_idx == 34


@pytest.mark.parametrize(
    "prompt, entities",
    [
        (PAIR, ["cow", "horse"]),
        (TRIPLE, ["cat", "dog", "fox"]),
        ("a zebra and an okapi", ["zebra", "okapi"]),  # spelt from bytes
        ("A Blue jay near a Cow", ["blue jay", "cow"]),
    ],
)
def test_spans_point_at_the_entity_in_the_tokens_the_transformer_sees(pipe, prompt, entities):
    spans = Q.qwen_entity_spans(pipe, prompt, entities, 64)
    kept = _kept_ids(pipe, prompt, 64)
    for entity, positions in spans.items():
        text = pipe.tokenizer.decode([kept[i] for i in positions]).strip().lower()
        assert text == entity.lower()
        assert positions == list(range(positions[0], positions[-1] + 1))


def test_template_words_are_never_taken_for_entities(pipe):
    # "objects", "text" and "background" occur in the dropped system line first
    prompt = "some text on a sign and objects in the background"
    spans = Q.qwen_entity_spans(pipe, prompt, ["text", "objects", "background"], 64)
    kept = _kept_ids(pipe, prompt, 64)
    for entity, positions in spans.items():
        assert pipe.tokenizer.decode([kept[i] for i in positions]).strip() == entity
    assert spans["text"][0] < spans["objects"][0] < spans["background"][0]


def test_missing_repeated_or_truncated_entities_are_errors(pipe):
    with pytest.raises(EntityNotFoundError, match="'zebra'"):
        Q.qwen_entity_spans(pipe, PAIR, ["cow", "zebra"], 64)
    with pytest.raises(EntityNotFoundError, match="max_sequence_length=4"):
        Q.qwen_entity_spans(pipe, PAIR, ["horse"], 4)
    with pytest.raises(ConfigError, match="repeat"):
        Q.qwen_entity_spans(pipe, PAIR, ["cow", "Cow"], 64)


# -- fast == reference --------------------------------------------------------------------------
CASES = [
    pytest.param(PAIR, ["cow", "horse"], {}, {"smoothing": False}, id="pair"),
    pytest.param(
        TRIPLE, ["cat", "dog", "fox"], {"size": (32, 48)}, {"smoothing": False}, id="triple-wide"
    ),
    pytest.param(PAIR, ["cow", "horse"], {"cfg": 4.0}, {"smoothing": False}, id="true-cfg"),
    pytest.param(
        # two prompts of different lengths: the pipeline pads and passes a text mask
        [PAIR, "a cat, a dog and a fox near the old river bank"],
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


def test_true_cfg_edits_only_the_conditional_call(pipe):
    gen = {"cfg": 4.0}
    _, run = _with(pipe, ["cow", "horse"], PAIR, "fast", gen, smoothing=False)
    assert run.forwards == 6 and run.num_steps == 3  # two calls per step, three steps


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


def test_processors_are_restored_even_after_an_error(pipe):
    before = dict(pipe.transformer.attn_processors)
    with Q.install(pipe, ["cow", "horse"]):
        assert {type(p).__name__ for p in pipe.transformer.attn_processors.values()} == {
            "QwenDeLeakerProcessor"
        }
    assert pipe.transformer.attn_processors == before
    with pytest.raises(RuntimeError, match="boom"), Q.install(pipe, ["cow", "horse"]):
        raise RuntimeError("boom")
    assert pipe.transformer.attn_processors == before
    run = Q.install(pipe, ["cow", "zebra"])
    with pytest.raises(EntityNotFoundError, match="'zebra'"), run:
        _generate(pipe, PAIR)
    assert pipe.transformer.attn_processors == before
    assert "encode_prompt" not in vars(pipe) and not pipe.transformer._forward_pre_hooks


def test_bad_setups_are_clear_errors(pipe):
    from slim_leakage.backbones.tiny import build_tiny_flux_pipeline

    flux = build_tiny_flux_pipeline()
    with pytest.raises(ConfigError, match="QwenImagePipeline"), Q.install(flux, ["cow", "horse"]):
        pass
    bare = Q.install(pipe.transformer, ["cow", "horse"])
    with pytest.raises(ConfigError, match="needs the pipeline"), bare:
        pass
    blocks = Q.install(pipe, ["cow", "horse"], mask_blocks="double")
    with pytest.raises(ConfigError, match="mask_blocks"), blocks:
        _generate(pipe, PAIR)


def test_explicit_prompts_match_captured_ones(pipe):
    captured, run_c = _with(pipe, ["cow", "horse"], PAIR, "fast", smoothing=False)
    with Q.install(
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

    backbone = load_backbone("tiny-qwenimage", device="cpu", num_inference_steps=2)
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
