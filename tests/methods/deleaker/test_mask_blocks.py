"""``mask_blocks``: the mask history from the double- or the single-stream blocks only (FLUX)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from slim_leakage.errors import ConfigError  # noqa: E402
from slim_leakage.methods.deleaker import DeLeakerConfig, deleaker  # noqa: E402

PAIR = "a cow and a horse in a field"
LOOSE = {"smoothing": False, "beta1": 0.0}


@pytest.fixture(scope="module")
def pipe():
    from slim_leakage.backbones.tiny import build_tiny_flux_pipeline

    return build_tiny_flux_pipeline(seed=3, num_layers=2, num_single_layers=2)


def _run(pipe, implementation, **options):
    with deleaker(pipe, ["cow", "horse"], implementation=implementation, **options) as run:
        fed = []
        original = run.feeds_history
        run.feeds_history = lambda offset: fed.append(offset) or original(offset)
        out = pipe(
            prompt=PAIR,
            height=32,
            width=32,
            num_inference_steps=3,
            max_sequence_length=256,
            generator=torch.Generator().manual_seed(1),
            output_type="latent",
        ).images
    return out, run, {o for o in fed if original(o)}


@pytest.mark.parametrize("which, blocks", [("double", {0, 1}), ("single", {2, 3})])
def test_history_from_one_block_type_fast_equals_reference(pipe, which, blocks):
    fast, fast_run, fed = _run(pipe, "fast", mask_blocks=which, **LOOSE)
    ref, ref_run, _ = _run(pipe, "reference", mask_blocks=which, **LOOSE)
    assert fed == blocks
    torch.testing.assert_close(fast, ref, atol=1e-4, rtol=1e-4)
    for entity in ("cow", "horse"):
        for step, mask in fast_run.masks[entity].items():
            assert torch.equal(mask, ref_run.masks[entity][step])
    every, every_run, fed_all = _run(pipe, "fast", **LOOSE)
    assert fed_all == {0, 1, 2, 3}
    assert any(
        not torch.equal(fast_run.masks[e][2], every_run.masks[e][2]) for e in ("cow", "horse")
    )


def test_mask_blocks_is_checked():
    with pytest.raises(ConfigError, match="mask_blocks='both'"):
        DeLeakerConfig(mask_blocks="both")


def test_sana_refuses_mask_blocks(tiny_sana):
    from slim_leakage.methods.deleaker import sana as S

    context = S.install(tiny_sana.pipe, ["cow", "horse"], "a cow and a horse", mask_blocks="single")
    with pytest.raises(ConfigError, match="no meaning on SANA"):
        context.__enter__()
