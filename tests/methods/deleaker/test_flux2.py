"""DeLeaker on a tiny random FLUX.2 ([klein]-shaped): fast == reference, vanilla when off,
restored processors, entity spans in the chat-templated text.

Tolerances, as on FLUX.1: the masks agree exactly at every step, the final latents to ``2e-5``
of their largest magnitude. With every edit off the output is bit-identical to the stock
pipeline's (the joint sequence is ``[text ; image]`` in diffusers' FLUX.2 processors too).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from slim_leakage.errors import ConfigError, EntityNotFoundError  # noqa: E402
from slim_leakage.methods.deleaker import flux2  # noqa: E402

PAIR = "a cow and a horse in a field"
TRIPLE = "a cat, a dog and a fox on a table"
LOOSE = {"smoothing": False, "beta1": 0.0}
OFF = dict(
    image_text_suppression=False,
    self_identity=False,
    image_image_suppression=False,
    text_text_suppression=False,
)


@pytest.fixture(scope="module")
def pipe():
    from slim_leakage.backbones.flux2 import build_tiny_flux2_pipeline

    return build_tiny_flux2_pipeline(seed=3, num_layers=2, num_single_layers=2)


def _generate(pipe, prompts, *, size=(32, 32), steps=3, length=64, seeds=None, **extra):
    prompts = [prompts] if isinstance(prompts, str) else prompts
    seeds = seeds or list(range(1, len(prompts) + 1))
    kwargs = {"guidance_scale": 2.0, "output_type": "latent", **extra}
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
    with flux2.install(pipe, entities, implementation=implementation, **options) as run:
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
    pytest.param(
        [PAIR, "a cat, a dog and a fox near the river"],
        [["cow", "horse"], ["cat", "dog", "fox"]],
        {"size": (48, 32), "length": 96, "steps": 2, "guidance_scale": 1.0},
        LOOSE,
        id="batch2-tall-no-cfg",
    ),
    pytest.param(PAIR, ["cow", "horse"], {}, {**LOOSE, "mask_blocks": "single"}, id="single"),
]


@pytest.mark.parametrize("prompts, entities, gen_kwargs, options", CASES)
def test_fast_matches_reference_and_edits(pipe, prompts, entities, gen_kwargs, options):
    steps = gen_kwargs.get("steps", 3)
    vanilla = _generate(pipe, prompts, **gen_kwargs)
    fast, run_f = _with(pipe, entities, prompts, "fast", gen_kwargs, **options)
    ref, run_r = _with(pipe, entities, prompts, "reference", gen_kwargs, **options)
    _assert_same_masks(run_f, run_r, steps)
    scale = vanilla.abs().max()
    assert (fast - vanilla).abs().max() > 5e-4 * scale  # the edits did something
    assert torch.allclose(fast, ref, atol=2e-5 * scale, rtol=0)


@pytest.mark.parametrize(
    "switch",
    ["image_text_suppression", "self_identity", "image_image_suppression", "text_text_suppression"],
)
def test_each_component_alone_matches_reference(pipe, switch):
    opts = {**OFF, switch: True, **LOOSE, "alpha": 1.5}
    vanilla = _generate(pipe, TRIPLE)
    fast, run_f = _with(pipe, ["cat", "dog", "fox"], TRIPLE, "fast", **opts)
    ref, run_r = _with(pipe, ["cat", "dog", "fox"], TRIPLE, "reference", **opts)
    _assert_same_masks(run_f, run_r, 3)
    scale = vanilla.abs().max()
    if switch != "text_text_suppression":
        assert (fast - vanilla).abs().max() > 1e-4 * scale
    assert torch.allclose(fast, ref, atol=2e-5 * scale, rtol=0)


def test_nothing_to_edit_gives_the_vanilla_image(pipe):
    vanilla = _generate(pipe, PAIR)
    off, run = _with(pipe, ["cow", "horse"], PAIR, "fast", **LOOSE, **OFF)
    assert torch.equal(off, vanilla) and run.masks["cow"][2].any()
    alpha1 = {**OFF, "self_identity": True, "alpha": 1.0}
    same, _ = _with(pipe, ["cow", "horse"], PAIR, "fast", **LOOSE, **alpha1)
    assert torch.allclose(same, vanilla, atol=1e-5 * vanilla.abs().max(), rtol=0)
    one, _ = _with(pipe, ["cow"], PAIR, "fast", **LOOSE)
    assert torch.equal(one, vanilla)
    ref, _ = _with(pipe, ["cow", "horse"], PAIR, "reference", **LOOSE, **OFF)
    assert torch.allclose(ref, vanilla, atol=1e-5 * vanilla.abs().max(), rtol=0)


def test_processors_are_restored_even_after_an_error(pipe):
    before = dict(pipe.transformer.attn_processors)
    encode = pipe.encode_prompt
    with flux2.install(pipe, ["cow", "horse"]):
        kinds = [type(p).__name__ for p in pipe.transformer.attn_processors.values()]
        assert kinds == ["FluxDeLeakerProcessor"] * 2 + ["Flux2SingleDeLeakerProcessor"] * 2
    assert pipe.transformer.attn_processors == before
    with pytest.raises(RuntimeError, match="boom"), flux2.install(pipe, ["cow", "horse"]):
        raise RuntimeError("boom")
    assert pipe.transformer.attn_processors == before
    assert pipe.encode_prompt == encode and "encode_prompt" not in vars(pipe)
    assert not pipe.transformer._forward_pre_hooks


def test_cfg_second_call_is_not_edited(pipe):
    """[klein] base runs CFG as a second transformer call per step: 6 forwards, 3 steps."""
    _, run = _with(pipe, ["cow", "horse"], PAIR, "fast", **LOOSE)
    assert run.forwards == 6 and run.num_steps == 3 and len(run.batch_masks) == 1


def test_spans_sit_in_the_user_turn_with_the_prefix_kept(pipe):
    tok = pipe.tokenizer
    render, special = flux2.pipeline_render(pipe)
    text = render(PAIR)
    assert text.startswith("<|im_start|>user\n" + PAIR)
    spans = flux2.chat_entity_spans(
        tok, PAIR, ["cow", "horse"], render=render, max_sequence_length=64
    )
    enc = tok(text, return_offsets_mapping=True)
    for entity, positions in spans.items():
        assert min(positions) >= 2  # after <|im_start|> and "user": the prefix is kept
        covered = "".join(text[s:e] for s, e in (enc["offset_mapping"][p] for p in positions))
        assert covered.strip() == entity
    # a word of the template ("user") is never taken for an entity of the prompt
    with pytest.raises(EntityNotFoundError, match="'user'"):
        flux2.chat_entity_spans(tok, PAIR, ["user"], render=render, max_sequence_length=64)
    with pytest.raises(EntityNotFoundError, match="max_sequence_length=4"):
        flux2.chat_entity_spans(tok, PAIR, ["horse"], render=render, max_sequence_length=4)


def test_a_mistral_style_template_with_a_system_prompt():
    """[dev]'s layout: a system prompt before the user turn, list-of-parts content, special
    tokens written by the template; the system prompt's words are not the entity's."""
    from slim_leakage.backbones.flux2 import make_qwen_tokenizer

    template = (
        "{{- '<s>' }}{%- for m in messages %}{%- if m['role'] == 'system' %}"
        "{{- '[SYSTEM_PROMPT]' + m['content'][0]['text'] + '[/SYSTEM_PROMPT]' }}"
        "{%- else %}{{- '[INST]' + m['content'][0]['text'] + '[/INST]' }}{%- endif %}"
        "{%- endfor %}"
    )
    tok = make_qwen_tokenizer(chat_template=template)
    system = "You describe a horse and a cow."

    def render(prompt):
        messages = [
            {"role": "system", "content": [{"type": "text", "text": system}]},
            {"role": "user", "content": [{"type": "text", "text": prompt}]},
        ]
        return tok.apply_chat_template(messages, tokenize=False)

    spans = flux2.chat_entity_spans(
        tok, PAIR, ["cow", "horse"], render=render, max_sequence_length=128,
        add_special_tokens=False,
    )  # fmt: skip
    text = render(PAIR)
    enc = tok(text, return_offsets_mapping=True, add_special_tokens=False)
    user = text.index("[INST]")
    for entity, positions in spans.items():
        assert all(enc["offset_mapping"][p][0] >= user for p in positions), entity


def test_errors_are_clear(pipe):
    before = dict(pipe.transformer.attn_processors)
    with (
        pytest.raises(ConfigError, match="Flux2KleinPipeline"),
        flux2.install(object(), ["cow", "horse"]),
    ):
        pass
    with (
        pytest.raises(EntityNotFoundError, match="'zebra'"),
        flux2.install(pipe, ["cow", "zebra"]),
    ):
        _generate(pipe, PAIR)
    assert pipe.transformer.attn_processors == before


def test_the_registered_method_runs_on_tiny_flux2():
    import numpy as np

    from slim_leakage.backbones import load_backbone
    from slim_leakage.methods import get_method
    from slim_leakage.records import Sample

    backbone = load_backbone("tiny-flux2", device="cpu")
    samples = [
        Sample(id="p1", prompt=PAIR, entities=("cow", "horse"), seed=1),
        Sample(id="t1", prompt="a cat, a dog and a fox", entities=("cat", "dog", "fox"), seed=2),
    ]
    method = get_method("deleaker", smoothing=False, beta1=0.0)
    method.prepare(backbone, samples)
    outputs = method.generate(backbone, samples)
    vanilla = backbone.generate([s.prompt for s in samples], [s.seed for s in samples])
    for sample, out, van in zip(samples, outputs, vanilla):
        assert set(out.extra["mask_tokens"]) == set(sample.entities)
        assert all(n > 0 for n in out.extra["mask_tokens"].values())
        assert out.extra["mask_grid"] == [16, 16]
        assert not np.array_equal(np.asarray(out.image), np.asarray(van))
