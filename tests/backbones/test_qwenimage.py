"""Qwen-Image backbones: the preset's model-card settings, the tiny pipeline's call, the
byte-level tokenizer built in code, and the memory table's counts of the real models."""

from __future__ import annotations

import dataclasses

import pytest

from slim_leakage.backbones import BACKBONES
from slim_leakage.backbones.memory_table import COMPONENTS


def test_the_preset_has_the_model_cards_settings():
    preset = BACKBONES.get("qwen-image")
    assert preset.family == "qwenimage" and preset.model_id == "Qwen/Qwen-Image"
    s = preset.settings
    assert (s.height, s.width, s.num_inference_steps, s.true_cfg_scale) == (1328, 1328, 50, 4.0)
    assert s.max_sequence_length == 512 and preset.dtype == "bfloat16"
    assert [c.name for c in preset.components] == ["transformer", "text_encoder", "vae"]
    tiny = BACKBONES.get("tiny-qwenimage")
    assert tiny.offline and tiny.family == "qwenimage" and tiny.settings.true_cfg_scale == 4.0


def test_the_call_uses_true_cfg_with_the_model_cards_negative_prompt(monkeypatch):
    pytest.importorskip("diffusers")
    from slim_leakage.backbones.qwenimage import tiny_qwenimage_backbone

    backbone = tiny_qwenimage_backbone()
    kwargs = backbone.pipe_kwargs()
    assert kwargs["true_cfg_scale"] == 4.0 and kwargs["negative_prompt"] == " "
    assert "guidance_scale" not in kwargs and kwargs["max_sequence_length"] == 64
    seen = {}
    original = type(backbone.pipe).encode_prompt

    def spy(self, prompt, *args, **kw):
        seen.setdefault("prompts", []).append(prompt)
        return original(self, prompt, *args, **kw)

    monkeypatch.setattr(type(backbone.pipe), "encode_prompt", spy)
    backbone.generate(["a cow", "a dog"], [1, 2])
    assert seen["prompts"] == [["a cow", "a dog"], [" ", " "]]  # the second pass: true CFG
    plain = tiny_qwenimage_backbone(true_cfg_scale=1.0)
    assert "negative_prompt" not in plain.pipe_kwargs()
    assert backbone.describe()["negative_prompt"] == " "


def test_the_tokenizer_is_byte_level_with_exact_offsets():
    pytest.importorskip("transformers")
    from slim_leakage.backbones.qwenimage import make_qwen2_tokenizer

    tok = make_qwen2_tokenizer(["okapi"])
    text = "<|im_start|>user\nA zebra, an okapi and ünïcode 42<|im_end|>"
    enc = tok(text, return_offsets_mapping=True)
    pieces = tok.convert_ids_to_tokens(enc.input_ids)
    assert pieces[0] == "<|im_start|>" and pieces[-1] == "<|im_end|>" and "Ġokapi" in pieces
    assert tok.decode(enc.input_ids) == text  # every byte has a token
    for (s, e), piece in zip(enc.offset_mapping, pieces):
        if piece == "Ġokapi":
            assert text[s:e].strip() == "okapi"


def _recount():
    torch = pytest.importorskip("torch")
    from diffusers import AutoencoderKLQwenImage, QwenImageTransformer2DModel
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    # Qwen2.5-VL-7B-Instruct's config.json (text and vision towers)
    text = dict(
        hidden_size=3584,
        intermediate_size=18944,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        vocab_size=152064,
        rope_scaling={"mrope_section": [16, 24, 24], "rope_type": "default"},
        tie_word_embeddings=False,
    )
    vision = dict(
        depth=32,
        hidden_size=1280,
        intermediate_size=3420,
        num_heads=16,
        out_hidden_size=3584,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
        window_size=112,
        fullatt_block_indexes=[7, 15, 23, 31],
    )
    builders = {
        "transformer": lambda: QwenImageTransformer2DModel(),
        "vae": lambda: AutoencoderKLQwenImage(),
        "text_encoder": lambda: Qwen2_5_VLForConditionalGeneration(
            Qwen2_5_VLConfig(
                text_config=text,
                vision_config=vision,
                vocab_size=152064,
                tie_word_embeddings=False,
            )
        ),
    }
    with torch.device("meta"):
        for name, build in builders.items():
            yield name, build(), torch


def test_memory_table_counts_the_published_configurations():
    for name, model, torch in _recount():
        row = next(c for c in COMPONENTS["qwen-image"] if c.name == name)
        params = [p.numel() for p in model.parameters()]
        linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
        assert (row.params, row.linear_params, row.largest_tensor) == (
            sum(params),
            linear,
            max(params),
        ), name


def test_the_fit_check_uses_the_joint_sequence():
    from slim_leakage.backbones.memory import activation_bytes

    qwen = activation_bytes("qwenimage", 1328, 1328, 512, "bfloat16")["denoise"]
    tokens = 512 + (1328 // 16) ** 2
    assert qwen == 16 * tokens * 3072 * 2 + 64 * 2**20
    preset = BACKBONES.get("qwen-image")
    settings, plan = preset.check_args({}, device="cpu")
    assert dataclasses.asdict(settings) == dataclasses.asdict(preset.settings)
