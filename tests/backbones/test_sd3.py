"""The Stable Diffusion 3.5 presets: model-card settings, the memory table's counts, the tiny
pipeline built in code."""

from __future__ import annotations

import pytest

from slim_leakage.backbones import BACKBONES
from slim_leakage.backbones.memory_table import COMPONENTS


def test_sd35_large_has_the_model_card_settings():
    preset = BACKBONES.get("sd35-large")
    s = preset.settings
    assert preset.family == "sd3" and not preset.offline
    assert (s.height, s.width, s.num_inference_steps, s.guidance_scale) == (1024, 1024, 28, 3.5)
    assert s.max_sequence_length == 256 and preset.dtype == "bfloat16"
    assert {c.name for c in preset.components} == {
        "transformer",
        "text_encoder",
        "text_encoder_2",
        "text_encoder_3",
        "vae",
    }
    tiny = BACKBONES.get("tiny-sd3")
    assert tiny.family == "sd3" and tiny.offline and tiny.settings.guidance_scale > 1


def test_memory_table_counts_the_published_configurations():
    """Recount SD3.5 Large's models on the meta device from their published configurations."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    from diffusers import SD3Transformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, T5Config, T5EncoderModel

    from slim_leakage.backbones.tiny import flux_autoencoder

    def clip(hidden, ff, layers, heads, act):
        config = CLIPTextConfig(
            vocab_size=49408,
            hidden_size=hidden,
            intermediate_size=ff,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            projection_dim=hidden,
            max_position_embeddings=77,
            hidden_act=act,
        )
        return CLIPTextModelWithProjection(config)

    builders = {
        # transformer/config.json of stabilityai/stable-diffusion-3.5-large
        "transformer": lambda: SD3Transformer2DModel(
            sample_size=128,
            patch_size=2,
            in_channels=16,
            num_layers=38,
            attention_head_dim=64,
            num_attention_heads=38,
            joint_attention_dim=4096,
            caption_projection_dim=2432,
            pooled_projection_dim=2048,
            out_channels=16,
            pos_embed_max_size=192,
            qk_norm="rms_norm",
        ),
        "text_encoder": lambda: clip(768, 3072, 12, 12, "quick_gelu"),
        "text_encoder_2": lambda: clip(1280, 5120, 32, 20, "gelu"),
        "text_encoder_3": lambda: T5EncoderModel(
            T5Config(
                d_model=4096,
                d_kv=64,
                d_ff=10240,
                num_layers=24,
                num_heads=64,
                vocab_size=32128,
                feed_forward_proj="gated-gelu",
            )
        ),
        "vae": lambda: flux_autoencoder(
            (128, 256, 512, 512), latent_channels=16, norm_num_groups=32, layers_per_block=2
        ),
    }
    with torch.device("meta"):
        for name, build in builders.items():
            model = build()
            row = next(c for c in COMPONENTS["sd35-large"] if c.name == name)
            params = [p.numel() for p in model.parameters()]
            linear = sum(
                m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear)
            )
            assert (row.params, row.linear_params, row.largest_tensor) == (
                sum(params),
                linear,
                max(params),
            ), name


def test_tiny_pipeline_is_the_sd3_classes():
    pytest.importorskip("diffusers")
    from slim_leakage.backbones.sd3 import tiny_sd3_backbone

    backbone = tiny_sd3_backbone()
    pipe = backbone.pipe
    assert type(pipe).__name__ == "StableDiffusion3Pipeline"
    assert type(pipe.transformer).__name__ == "SD3Transformer2DModel"
    assert pipe.tokenizer_max_length == 77
    assert backbone.pipe_kwargs()["max_sequence_length"] == 32
    assert backbone.tokenizer is pipe.tokenizer_3 and backbone.clip_tokenizer is pipe.tokenizer
    # the SD3.5 Medium-style dual attention block keeps an image-only attn2
    assert "transformer_blocks.0.attn2.processor" in pipe.transformer.attn_processors
