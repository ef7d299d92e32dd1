"""Given masks: DeLeaker with entity masks from outside, on tiny FLUX, tiny SANA and the toy model.

The central check: masks equal to the ones DeLeaker reads from attention reproduce its normal
path. The windows put the whole history before the first edit, so the attention-derived masks
are frozen over every edited block, as given masks are. Outside the edit window the normal path
computes attention explicitly (for its history) where the given path runs the stock processor,
so outputs agree to rounding, not bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from PIL import Image  # noqa: E402

from slim_leakage.errors import ConfigError, UnknownNameError  # noqa: E402
from slim_leakage.methods import get_method  # noqa: E402
from slim_leakage.methods.deleaker import DeLeakerConfig, deleaker  # noqa: E402
from slim_leakage.methods.deleaker.given import (  # noqa: E402
    MASK_SOURCES,
    FolderSource,
    resolve_source,
    to_grid,
)
from slim_leakage.records import Sample  # noqa: E402

#: History over the first half of the steps, edits over the second half only.
FROZEN = {
    "smoothing": False,
    "history_start": (0.0, 0.0),
    "history_stop": (0.5, 0.0),
    "edit_start": (0.5, 0.0),
}
PAIR = "a cow and a horse in a field"
STEPS = 4


@pytest.fixture(scope="module")
def pipe():
    from slim_leakage.backbones.tiny import build_tiny_flux_pipeline

    return build_tiny_flux_pipeline(seed=3, num_layers=2, num_single_layers=2)


def _latents(pipe, prompts, seeds):
    return pipe(
        prompt=prompts,
        height=32,
        width=32,
        num_inference_steps=STEPS,
        max_sequence_length=256,
        generator=[torch.Generator().manual_seed(s) for s in seeds],
        output_type="latent",
    ).images


def _final(run, b=0):
    return {e: m.clone() for e, m in run.final_masks(b).items()}


@pytest.mark.parametrize("implementation", ["fast", "reference"])
def test_given_masks_equal_to_attention_masks_reproduce_the_normal_path(pipe, implementation):
    prompts = [PAIR, "a cat, a dog and a fox on a table"]
    entities = [["cow", "horse"], ["cat", "dog", "fox"]]
    with deleaker(pipe, entities, implementation=implementation, **FROZEN) as run:
        normal = _latents(pipe, prompts, [1, 2])
    given = [_final(run, 0), _final(run, 1)]
    for masks in given:
        assert all(m.any() and not m.all() for m in masks.values())
    vanilla = _latents(pipe, prompts, [1, 2])
    with deleaker(pipe, entities, implementation=implementation, masks=given, **FROZEN) as again:
        out = _latents(pipe, prompts, [1, 2])
    assert (normal - vanilla).abs().max() > 1e-3  # the edits act
    torch.testing.assert_close(out, normal, atol=2e-5, rtol=1e-4)
    # the given masks are the ones used (and recorded) at every edited step
    for b in range(2):
        for entity, mask in given[b].items():
            assert sorted(again.batch_masks[b][entity]) == [2, 3]
            for step_mask in again.batch_masks[b][entity].values():
                assert torch.equal(step_mask, mask)


def test_other_given_masks_change_the_output_and_a_callable_works(pipe):
    grid = (16, 16)
    left = np.zeros((32, 32), dtype=bool)
    left[:, :16] = True
    right = ~left
    calls = []

    def source(index, prompt, entities):
        calls.append((index, prompt, tuple(entities)))
        return {"cow": left, "horse": right}

    with deleaker(pipe, ["cow", "horse"], masks=source, **FROZEN) as run:
        a = _latents(pipe, [PAIR], [1])
    with deleaker(pipe, ["cow", "horse"], masks=[{"cow": right, "horse": left}], **FROZEN):
        b = _latents(pipe, [PAIR], [1])
    assert calls and calls[0] == (0, PAIR, ("cow", "horse"))
    assert torch.equal(run.final_masks(0)["cow"], torch.from_numpy(left[::2, ::2]))
    assert run.final_masks(0)["cow"].shape == grid
    assert (a - b).abs().max() > 1e-4  # above the 2e-5 rounding of the test above


def test_bad_given_masks_are_named(pipe):
    one = [{"cow": np.ones((32, 32))}]
    with pytest.raises(ConfigError, match="No given mask for entity 'horse'"):  # noqa: SIM117
        with deleaker(pipe, ["cow", "horse"], masks=one):
            _latents(pipe, [PAIR], [1])
    tall = [{"cow": np.ones((8, 4)), "horse": np.ones((8, 4))}]
    with pytest.raises(ConfigError, match="aspect ratio"):  # noqa: SIM117
        with deleaker(pipe, ["cow", "horse"], masks=tall):
            _latents(pipe, [PAIR], [1])
    with pytest.raises(ConfigError, match="one \\{entity: mask\\} mapping per prompt"):
        deleaker(pipe, ["cow", "horse"], masks="masks/").__enter__()
    with pytest.raises(ConfigError, match="no masks were given"):
        deleaker(pipe, ["cow", "horse"], config=DeLeakerConfig(masks="oracle")).__enter__()


def test_to_grid_takes_any_size_of_the_same_aspect_ratio():
    mask = np.zeros((64, 32), dtype=np.uint8)
    mask[:32] = 255  # top half
    out = to_grid(mask, (8, 4), what="m").reshape(8, 4)
    assert out[:4].all() and not out[4:].any()
    image = Image.fromarray(mask).resize((3, 6))
    assert to_grid(image, (2, 1), what="m").tolist() == [True, False]
    # a token is on when at least half of its pixels are
    half = np.zeros((4, 4))
    half[0, :2] = half[1, :2] = 1.0
    assert to_grid(half, (2, 2), what="m").tolist() == [True, False, False, False]


# -- the registered method: folders, names, SANA --------------------------------------------------
SAMPLES = [
    Sample(id="p1", prompt=PAIR, entities=("cow", "horse"), seed=1),
    Sample(id="Pair Two", prompt="a cat and a dog", entities=("cat", "dog"), seed=2),
]


def _write_folder(root, samples, size=(32, 32)):
    for s in samples:
        for k, entity in enumerate(s.entities):
            arr = np.zeros(size, dtype=np.uint8)
            arr[:, k * size[1] // 2 : (k + 1) * size[1] // 2] = 255
            folder = FolderSource(root).path(s.id, entity).parent
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(FolderSource(root).path(s.id, entity))


def test_method_reads_a_folder_of_masks(tiny_backbone, tmp_path):
    _write_folder(tmp_path, SAMPLES)
    assert (tmp_path / "pair-two" / "cat.png").is_file()
    method = get_method("deleaker", masks=str(tmp_path))
    method.prepare(tiny_backbone, SAMPLES)
    outputs = method.generate(tiny_backbone, SAMPLES)
    for out in outputs:
        assert out.extra["mask_source"] == str(tmp_path)
        first, second = out.extra["mask_tokens"].values()
        assert first == second == 128  # half of the 16x16 grid each
    plain = get_method("deleaker").generate(tiny_backbone, SAMPLES[:1])[0]
    assert "mask_source" not in plain.extra


def test_folder_errors_name_the_file_and_the_layout(tiny_backbone, tmp_path):
    _write_folder(tmp_path, SAMPLES[:1])
    method = get_method("deleaker", masks=str(tmp_path))
    with pytest.raises(ConfigError, match="'cat' of sample 'Pair Two'.*pair-two/cat.png") as info:
        method.prepare(tiny_backbone, SAMPLES)
    assert "<folder>/<sample id>/<entity>.png" in info.value.hint
    Image.fromarray(np.zeros((32, 16), dtype=np.uint8)).save(tmp_path / "p1" / "cow.png")
    with pytest.raises(ConfigError, match="p1/cow.png is 16x32 pixels.*32x32"):
        method.prepare(tiny_backbone, SAMPLES[:1])
    with pytest.raises(ConfigError, match="no such folder"):
        get_method("deleaker", masks=str(tmp_path / "absent"))


def test_sources_by_name_and_module_path():
    assert resolve_source("attention") is None
    assert "oracle" in MASK_SOURCES.names()  # registered by the toy world's plug-ins
    with pytest.raises(UnknownNameError, match="Did you mean 'oracle'"):
        get_method("deleaker", masks="oracel")
    source = resolve_source("slim_leakage.toy.masks:oracle_masks")
    assert source is MASK_SOURCES.get("oracle")
    with pytest.raises(ConfigError, match="cannot import"):
        resolve_source("slim_leakage.toy.masks:nothing_here")


def test_sana_takes_given_masks_through_the_common_shape(tiny_sana):
    from slim_leakage.methods.deleaker import sana as S

    pair = Sample(id="p1", prompt="A Cow and a horse in a field", entities=("cow", "horse"), seed=3)
    triplet = Sample(
        id="t1", prompt="a cat, a dog and a fox", entities=("cat", "dog", "fox"), seed=4
    )
    samples = [pair, triplet]
    options = {**FROZEN, "beta1": 0.0, "history_stop": (0.34, 0.0), "edit_start": (0.34, 0.0)}

    def run(**extra):
        with S.install(
            tiny_sana.pipe,
            [list(s.entities) for s in samples],
            [s.prompt for s in samples],
            **S.install_options(tiny_sana),
            **options,
            **extra,
        ) as state:
            images = tiny_sana.generate([s.prompt for s in samples], [s.seed for s in samples])
        return state, images

    state, normal = run()
    given = [{e: m.clone() for e, m in state.final_masks(b).items()} for b in range(2)]
    assert all(m.any() for masks in given for m in masks.values())
    again, out = run(masks=given)
    for b in range(2):
        diff = np.abs(np.asarray(out[b], dtype=int) - np.asarray(normal[b], dtype=int)).max()
        assert diff <= 1, diff
        for entity, mask in given[b].items():
            assert torch.equal(again.final_masks(b)[entity], mask)


# -- the toy world's oracle masks ------------------------------------------------------------------
def test_oracle_masks_segment_the_vanilla_image_of_the_same_seed():
    from slim_leakage.backbones import load_backbone
    from slim_leakage.slim import load_samples
    from slim_leakage.toy.masks import oracle_masks
    from slim_leakage.toy.reading import read_image

    toy = load_backbone("toy", device="cpu")
    samples = load_samples("toy-pairs", limit=2)
    masks = oracle_masks(toy, samples)
    vanilla = toy.generate([s.prompt for s in samples], [s.seed for s in samples])
    for s, m, image in zip(samples, masks, vanilla):
        assert list(m) == list(s.entities)
        for reading in read_image(image, list(s.entities)):
            expected = reading.mask if reading.found else np.zeros((64, 64), dtype=bool)
            assert np.array_equal(m[reading.noun], expected)
    method = get_method("deleaker", masks="oracle")
    outputs = method.generate(toy, samples)
    for out, m in zip(outputs, masks):
        assert out.extra["mask_source"] == "oracle"
        for entity, tokens in out.extra["mask_tokens"].items():
            grid = m[entity].reshape(16, 4, 16, 4).mean(axis=(1, 3)) >= 0.5
            assert tokens == int(grid.sum())
    with pytest.raises(ConfigError, match="not a toy entity"):
        oracle_masks(toy, SAMPLES)
