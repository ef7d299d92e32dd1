"""SANA: the tiny backbone, entity spans through SANA's prompt processing, and DeLeaker on it."""

from __future__ import annotations

import numpy as np
import pytest

from slim_leakage.errors import ConfigError, EntityNotFoundError
from slim_leakage.methods import get_method
from slim_leakage.methods.deleaker import sana as S
from slim_leakage.records import Sample

torch = pytest.importorskip("torch")

PROMPT = "A Cow and a horse in a field"
PAIR = Sample(id="p1", prompt=PROMPT, entities=("cow", "horse"), seed=3)
TRIPLET = Sample(id="t1", prompt="a cat, a dog and a fox", entities=("cat", "dog", "fox"), seed=4)
LOOSE = {"smoothing": False, "beta1": 0.0}  # random tiny attention: keep the masks non-empty


def _pipeline_selected_ids(tokenizer, prompt, instruction, max_len):
    """The token ids SANA's encode_prompt keeps, computed as the pipeline does."""
    tokenizer.padding_side = "right"
    prefix = "\n".join(instruction) if instruction else ""
    total = len(tokenizer.encode(prefix)) + max_len - 2 if prefix else max_len
    ids = tokenizer(
        prefix + prompt.lower().strip(),
        padding="max_length",
        max_length=total,
        truncation=True,
        add_special_tokens=True,
    ).input_ids
    return [ids[0]] + ids[-(max_len - 1) :] if max_len > 1 else [ids[0]]


def test_tiny_sana_backbone_is_deterministic_per_seed(tiny_sana):
    assert tiny_sana.family == "sana" and tiny_sana.name == "sana"
    kwargs = tiny_sana.pipe_kwargs()
    assert kwargs["complex_human_instruction"] == list(tiny_sana.instruction)
    assert kwargs["use_resolution_binning"] is False and kwargs["max_sequence_length"] == 24
    batch = tiny_sana.generate([PROMPT, TRIPLET.prompt], [1, 2])
    alone = tiny_sana.generate([TRIPLET.prompt], [2])
    assert batch[0].size == (32, 32)
    assert np.array_equal(np.asarray(batch[1]), np.asarray(alone[0]))
    assert tiny_sana.describe()["complex_human_instruction"] == list(tiny_sana.instruction)


def test_sana_preset_is_registered_without_loading_weights():
    from slim_leakage.backbones import BACKBONES

    preset = BACKBONES.get("sana")
    assert preset.family == "sana" and preset.settings.max_sequence_length == 300


@pytest.mark.parametrize(
    "instruction, max_len",
    [((), 16), (("describe the scene:", "keep it short."), 24), (("one long line " * 6,), 12)],
)
def test_spans_point_at_the_entity_in_the_tokens_sana_keeps(tiny_sana, instruction, max_len):
    tok = tiny_sana.tokenizer
    spans = S.sana_entity_spans(
        tok, PROMPT, ["cow", "horse"], instruction=instruction, max_sequence_length=max_len
    )
    selected = _pipeline_selected_ids(tok, PROMPT, instruction, max_len)
    for entity, positions in spans.items():
        pieces = tok.convert_ids_to_tokens([selected[p] for p in positions])
        assert "".join(pieces).replace("\u2581", "") == entity


def test_entity_words_inside_the_instruction_are_skipped(tiny_sana):
    tok = tiny_sana.tokenizer
    instruction = ("draw a horse and a cow well:",)
    spans = S.sana_entity_spans(
        tok, PROMPT, ["cow", "horse"], instruction=instruction, max_sequence_length=24
    )
    selected = _pipeline_selected_ids(tok, PROMPT, instruction, 24)
    prompt_ids = tok(PROMPT.lower()).input_ids[1:]
    start = next(i for i in range(len(selected)) if selected[i : i + len(prompt_ids)] == prompt_ids)
    assert all(p >= start for ps in spans.values() for p in ps)


def test_truncated_or_missing_entities_are_errors(tiny_sana):
    tok = tiny_sana.tokenizer
    with pytest.raises(EntityNotFoundError, match="'horse'"):
        S.sana_entity_spans(tok, PROMPT, ["cow", "horse"], max_sequence_length=4)
    with pytest.raises(EntityNotFoundError, match="'fox'"):
        S.sana_entity_spans(tok, PROMPT, ["cow", "fox"], max_sequence_length=24)
    with pytest.raises(EntityNotFoundError, match="Sample 'bad'"):
        bad = Sample(id="bad", prompt="a cows and a horse", entities=("cow", "horse"), seed=1)
        get_method("deleaker").prepare(tiny_sana, [bad])


def _run(backbone, samples, implementation="fast", **options):
    with S.install(
        backbone.pipe,
        [list(s.entities) for s in samples],
        [s.prompt for s in samples],
        instruction=backbone.instruction,
        max_sequence_length=backbone.settings.max_sequence_length,
        implementation=implementation,
        **options,
    ) as run:
        images = backbone.generate([s.prompt for s in samples], [s.seed for s in samples])
    return run, images


@pytest.mark.parametrize(
    "options",
    [
        LOOSE,
        {**LOOSE, "use_history": False},
        {**LOOSE, "self_identity": False},
        {**LOOSE, "image_text_suppression": False, "alpha": 2.0},
        {"beta1": 0.5},  # the default smoothing
    ],
)
def test_fast_processor_matches_the_reference(tiny_sana, options):
    fast_run, fast = _run(tiny_sana, [PAIR, TRIPLET], "fast", **options)
    ref_run, ref = _run(tiny_sana, [PAIR, TRIPLET], "reference", **options)
    for b in range(2):
        f_masks, r_masks = fast_run.batch_masks[b], ref_run.batch_masks[b]
        assert f_masks.keys() == r_masks.keys()
        for entity in f_masks:
            for step in f_masks[entity]:
                assert torch.equal(f_masks[entity][step], r_masks[entity][step])
        diff = np.abs(np.asarray(fast[b], dtype=int) - np.asarray(ref[b], dtype=int)).max()
        assert diff <= 1, diff  # float rounding of alpha**k vs repeated products


def test_edits_change_the_image_and_follow_the_timestep(tiny_sana):
    run, images = _run(tiny_sana, [TRIPLET], **LOOSE)
    masks = run.batch_masks[0]
    steps = tiny_sana.settings.num_inference_steps
    assert run.forwards == steps  # CFG is batched: one forward per step
    assert set(masks) == {"cat", "dog", "fox"}
    assert all(set(per_step) == set(range(steps)) for per_step in masks.values())
    assert all(int(m.sum()) > 0 for m in run.final_masks(0).values())
    vanilla = tiny_sana.generate([TRIPLET.prompt], [TRIPLET.seed])[0]
    assert not np.array_equal(np.asarray(images[0]), np.asarray(vanilla))
    # without any edit only the numerics of explicit attention differ from the stock processor
    _, quiet = _run(
        tiny_sana, [TRIPLET], self_identity=False, image_text_suppression=False, **LOOSE
    )
    diff = np.abs(np.asarray(quiet[0], dtype=int) - np.asarray(vanilla, dtype=int)).max()
    assert diff <= 2


def test_only_the_conditional_half_is_edited(tiny_sana):
    transformer = tiny_sana.pipe.transformer
    attn = transformer.transformer_blocks[0].attn2
    state = S.SanaDeLeakerState(S.DeLeakerConfig(**LOOSE), ["cow", "horse"], 2)
    state.spans = [{"cow": [1], "horse": [3]}]
    state.prompts = [PROMPT]
    state.cfg = True
    state.begin_forward(step=0, num_steps=3, text_len=6, grid=(4, 4), batch=2)
    g = torch.Generator().manual_seed(0)
    dim = transformer.config.num_attention_heads * transformer.config.attention_head_dim
    hidden = torch.randn(1, 16, dim, generator=g).repeat(2, 1, 1)
    text = torch.randn(1, 6, dim, generator=g).repeat(2, 1, 1)
    proc = S.SanaDeLeakerProcessor(state, 1, attn.processor)
    with torch.no_grad():
        ours = proc(attn, hidden, text)
        stock = attn.processor(attn, hidden, text)
    torch.testing.assert_close(ours[0], stock[0], rtol=1e-5, atol=1e-5)
    assert (ours[1] - stock[1]).abs().max() > 1e-4
    assert state.item_prompt == [None, 0]


def test_padding_mask_is_respected(tiny_sana):
    transformer = tiny_sana.pipe.transformer
    attn = transformer.transformer_blocks[1].attn2
    state = S.SanaDeLeakerState(
        S.DeLeakerConfig(self_identity=False, image_text_suppression=False), ["cow"], 2
    )
    state.spans, state.prompts, state.cfg = [{"cow": [1]}], ["a cow"], False
    state.begin_forward(step=0, num_steps=3, text_len=6, grid=(4, 4), batch=1)
    g = torch.Generator().manual_seed(1)
    dim = transformer.config.num_attention_heads * transformer.config.attention_head_dim
    hidden, text = torch.randn(1, 16, dim, generator=g), torch.randn(1, 6, dim, generator=g)
    bias = torch.tensor([[[0.0, 0.0, 0.0, -10000.0, -10000.0, -10000.0]]])
    with torch.no_grad():
        ours = S.SanaDeLeakerProcessor(state, 1, attn.processor)(attn, hidden, text, bias)
        stock = attn.processor(attn, hidden, text, bias)
    torch.testing.assert_close(ours, stock, rtol=1e-5, atol=1e-5)


def test_processors_are_restored_and_bad_setups_rejected(tiny_sana, tiny_flux_pipeline):
    transformer = tiny_sana.pipe.transformer
    before = dict(transformer.attn_processors)
    with (
        pytest.raises(RuntimeError),
        S.install(tiny_sana.pipe, ["cow", "horse"], PROMPT, instruction=()),
    ):
        raise RuntimeError("boom")
    assert all(transformer.attn_processors[k] is v for k, v in before.items())
    bad = [
        ("text_text_suppression", tiny_sana.pipe, {"text_text_suppression": True}),
        ("not a SanaPipeline", tiny_flux_pipeline, {}),
        ("implementation", tiny_sana.pipe, {"implementation": "magic"}),
    ]
    for match, pipe, options in bad:
        with (
            pytest.raises(ConfigError, match=match),
            S.install(pipe, ["cow"], PROMPT, **options),
        ):
            pass


def test_generate_through_the_sana_preset(tiny_sana):
    method = get_method("deleaker", **LOOSE)
    outputs = method.generate(tiny_sana, [PAIR, TRIPLET])
    assert [set(o.overlays) for o in outputs] == [{"cow", "horse"}, {"cat", "dog", "fox"}]
    assert all(n > 0 for o in outputs for n in o.extra["mask_tokens"].values())
    assert outputs[0].extra["mask_grid"] == [16, 16]
    alone = method.generate(tiny_sana, [TRIPLET])
    assert np.array_equal(np.asarray(alone[0].image), np.asarray(outputs[1].image))


def test_spans_with_sanas_own_default_instruction(tiny_sana):
    """SANA's default instruction mentions a cat; the prompt's cat is the one found."""
    import inspect

    from diffusers import SanaPipeline

    default = inspect.signature(SanaPipeline.__call__).parameters["complex_human_instruction"]
    instruction = tuple(default.default)
    assert " cat " in " ".join(instruction).lower()
    tok = tiny_sana.tokenizer
    prompt = "A cat and a dog in a garden"
    spans = S.sana_entity_spans(
        tok, prompt, ["cat", "dog"], instruction=instruction, max_sequence_length=300
    )
    selected = _pipeline_selected_ids(tok, prompt, instruction, 300)
    for entity, positions in spans.items():
        pieces = tok.convert_ids_to_tokens([selected[p] for p in positions])
        assert "".join(pieces).replace("\u2581", "") == entity
    assert spans["cat"][0] < spans["dog"][0] < 20  # in the prompt, right after the instruction


def test_sana_preset_loads_a_local_folder(tmp_path):
    from slim_leakage.backbones import load_backbone
    from slim_leakage.backbones.sana import SanaBackbone, build_tiny_sana_pipeline

    build_tiny_sana_pipeline().save_pretrained(tmp_path)
    backbone = load_backbone("sana", path=str(tmp_path), device="cpu", max_sequence_length=24)
    assert isinstance(backbone, SanaBackbone) and backbone.family == "sana"
    assert backbone.model_id == str(tmp_path) and backbone.dtype == "float32"
    # the pipeline's own (long) default instruction, resolved from its signature
    assert len(backbone.instruction) > 1 and backbone.pipe_kwargs()["use_resolution_binning"]
    spans = S.sana_entity_spans(
        backbone.tokenizer,
        PROMPT,
        ["cow", "horse"],
        instruction=backbone.instruction,
        max_sequence_length=24,
    )
    assert set(spans) == {"cow", "horse"}
