"""Z-Image backbones: the Turbo preset's model-card settings, the tiny pipeline's call and chat
template, and the memory table's counts of the real models."""

from __future__ import annotations

import pytest

from slim_leakage.backbones import BACKBONES
from slim_leakage.backbones.memory_table import COMPONENTS


def test_the_preset_has_the_model_cards_settings():
    preset = BACKBONES.get("z-image-turbo")
    assert preset.family == "zimage" and preset.model_id == "Tongyi-MAI/Z-Image-Turbo"
    s = preset.settings
    assert (s.height, s.width, s.num_inference_steps, s.guidance_scale) == (1024, 1024, 9, 0.0)
    assert s.max_sequence_length == 512 and preset.dtype == "bfloat16"
    assert [c.name for c in preset.components] == ["transformer", "text_encoder", "vae"]
    tiny = BACKBONES.get("tiny-zimage")
    assert tiny.offline and tiny.family == "zimage" and tiny.settings.guidance_scale == 0.0


def test_the_call_passes_the_text_length_and_no_cfg_at_zero_guidance(monkeypatch):
    pytest.importorskip("diffusers")
    from slim_leakage.backbones.zimage import tiny_zimage_backbone

    backbone = tiny_zimage_backbone()
    kwargs = backbone.pipe_kwargs()
    assert kwargs["max_sequence_length"] == 64 and kwargs["guidance_scale"] == 0.0
    batches = []
    original = type(backbone.pipe.transformer).forward

    def spy(self, x, *args, **kw):
        batches.append(len(x))
        return original(self, x, *args, **kw)

    monkeypatch.setattr(type(backbone.pipe.transformer), "forward", spy)
    prompts = ["a cow", "a dog"]
    backbone.generate(prompts, [1, 2])
    assert prompts == ["a cow", "a dog"]  # the pipeline rewrites its own copy, not ours
    assert set(batches) == {2}  # no unconditional half at guidance 0
    batches.clear()
    tiny_zimage_backbone(guidance_scale=2.0).generate(["a cow"], [1])
    assert set(batches) == {2}  # CFG: [conditional ; unconditional] in one call


def _recount():
    torch = pytest.importorskip("torch")
    from diffusers import AutoencoderKL, ZImageTransformer2DModel
    from transformers import Qwen3Config, Qwen3Model

    builders = {
        "transformer": lambda: ZImageTransformer2DModel(),
        # Qwen3-4B's config.json
        "text_encoder": lambda: Qwen3Model(
            Qwen3Config(
                vocab_size=151936,
                hidden_size=2560,
                intermediate_size=9728,
                num_hidden_layers=36,
                num_attention_heads=32,
                num_key_value_heads=8,
                head_dim=128,
                tie_word_embeddings=True,
            )
        ),
        "vae": lambda: AutoencoderKL(
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            block_out_channels=(128, 256, 512, 512),
            layers_per_block=2,
            latent_channels=16,
            use_quant_conv=False,
            use_post_quant_conv=False,
        ),
    }
    with torch.device("meta"):
        for name, build in builders.items():
            yield name, build(), torch


def test_memory_table_counts_the_published_configurations():
    for name, model, torch in _recount():
        row = next(c for c in COMPONENTS["z-image-turbo"] if c.name == name)
        params = [p.numel() for p in model.parameters()]
        linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
        assert (row.params, row.linear_params, row.largest_tensor) == (
            sum(params),
            linear,
            max(params),
        ), name
