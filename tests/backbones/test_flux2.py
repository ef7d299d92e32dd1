"""The FLUX.2 presets: model-card settings, the tiny [klein]-shaped pipeline built in code, and
its Qwen3-style tokenizer."""

from __future__ import annotations

import pytest

from slim_leakage.backbones import BACKBONES


def test_presets_have_the_model_card_settings():
    dev, klein = BACKBONES.get("flux2-dev"), BACKBONES.get("flux2-klein")
    assert dev.family == klein.family == "flux2" and not (dev.offline or klein.offline)
    d, k = dev.settings, klein.settings
    assert (d.height, d.width, d.num_inference_steps, d.guidance_scale) == (1024, 1024, 50, 4.0)
    assert (k.height, k.width, k.num_inference_steps, k.guidance_scale) == (1024, 1024, 4, 1.0)
    assert d.max_sequence_length == k.max_sequence_length == 512
    assert (dev.pipeline, klein.pipeline) == ("Flux2Pipeline", "Flux2KleinPipeline")
    tiny = BACKBONES.get("tiny-flux2")
    assert tiny.family == "flux2" and tiny.offline and tiny.settings.guidance_scale > 1


def test_tiny_pipeline_is_the_flux2_klein_classes():
    pytest.importorskip("diffusers")
    from slim_leakage.backbones.flux2 import tiny_flux2_backbone

    backbone = tiny_flux2_backbone()
    pipe = backbone.pipe
    assert type(pipe).__name__ == "Flux2KleinPipeline"
    assert type(pipe.transformer).__name__ == "Flux2Transformer2DModel"
    assert type(pipe.text_encoder).__name__ == "Qwen3ForCausalLM"
    # the pipeline reads hidden states 9, 18 and 27: they exist, and make the text width
    assert pipe.text_encoder.config.num_hidden_layers >= 27
    assert pipe.transformer.config.joint_attention_dim == 3 * pipe.text_encoder.config.hidden_size
    assert backbone.pipe_kwargs()["max_sequence_length"] == 64
    text = backbone.tokenizer.apply_chat_template(
        [{"role": "user", "content": "a cow"}],
        tokenize=False,
        add_generation_prompt=True,
        enable_thinking=False,
    )
    # Qwen3's rendering of one user turn with thinking off
    assert (
        text == "<|im_start|>user\na cow<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    )
    ids = backbone.tokenizer(text)["input_ids"]
    assert backbone.tokenizer.convert_ids_to_tokens(ids[:2]) == ["<|im_start|>", "user"]


def test_memory_table_counts_the_published_configurations():
    """Recount FLUX.2 [dev]'s models on the meta device (the [klein] presets are not tabulated:
    their transformer configuration was not available, so they get no fit check)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    from diffusers import AutoencoderKLFlux2, Flux2Transformer2DModel
    from transformers import Mistral3Config, Mistral3ForConditionalGeneration

    from slim_leakage.backbones.memory_table import COMPONENTS

    mistral = Mistral3Config(
        spatial_merge_size=2,
        multimodal_projector_bias=False,
        projector_hidden_act="gelu",
        text_config=dict(
            model_type="mistral",
            head_dim=128,
            hidden_size=5120,
            intermediate_size=32768,
            num_attention_heads=32,
            num_hidden_layers=40,
            num_key_value_heads=8,
            vocab_size=131072,
            tie_word_embeddings=False,
        ),
        vision_config=dict(
            model_type="pixtral",
            head_dim=64,
            hidden_size=1024,
            image_size=1540,
            intermediate_size=4096,
            num_attention_heads=16,
            num_hidden_layers=24,
            patch_size=14,
        ),
        tie_word_embeddings=False,
    )
    builders = {
        "transformer": Flux2Transformer2DModel,
        "vae": AutoencoderKLFlux2,
        "text_encoder": lambda: Mistral3ForConditionalGeneration(mistral),
    }
    assert BACKBONES.get("flux2-dev").components == COMPONENTS["flux2-dev"]
    assert BACKBONES.get("flux2-klein").components == ()
    with torch.device("meta"):
        for name, build in builders.items():
            model = build()
            row = next(c for c in COMPONENTS["flux2-dev"] if c.name == name)
            params = [p.numel() for p in model.parameters()]
            linear = sum(
                m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear)
            )
            assert (row.params, row.linear_params, row.largest_tensor) == (
                sum(params),
                linear,
                max(params),
            ), name
