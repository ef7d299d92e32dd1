"""Memory options of the diffusers presets: the component table, the fit check, and loading
with a quantisation scheme on the CPU (nothing downloaded: the tiny pipeline goes through the
same ``from_pretrained`` path as real weights)."""

from __future__ import annotations

import numpy as np
import pytest

from slim_leakage.backbones import BACKBONES
from slim_leakage.backbones.memory import (
    GB,
    SCHEMES,
    MemoryOptions,
    estimate,
    parse_bytes,
)
from slim_leakage.backbones.memory_table import COMPONENTS
from slim_leakage.errors import ConfigError


def _plan(preset="flux-dev", device="cuda", **args):
    return BACKBONES.get(preset).check_args(args, device=device)[1]


# -- the component table is the real models' parameter count ------------------------------------
def _recount():
    torch = pytest.importorskip("torch")
    from diffusers import (
        AutoencoderDC,
        AutoencoderKL,
        FluxTransformer2DModel,
        SanaTransformer2DModel,
    )
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        Gemma2Config,
        Gemma2Model,
        T5Config,
        T5EncoderModel,
    )

    vit = ("EfficientViTBlock",) * 3
    builders = {
        ("flux-dev", "transformer"): lambda: FluxTransformer2DModel(guidance_embeds=True),
        ("flux-schnell", "transformer"): lambda: FluxTransformer2DModel(guidance_embeds=False),
        ("flux-dev", "text_encoder_2"): lambda: T5EncoderModel(
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
        ("flux-dev", "text_encoder"): lambda: CLIPTextModel(
            CLIPTextConfig(
                vocab_size=49408,
                hidden_size=768,
                intermediate_size=3072,
                num_hidden_layers=12,
                num_attention_heads=12,
                max_position_embeddings=77,
            )
        ),
        ("flux-dev", "vae"): lambda: AutoencoderKL(
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            block_out_channels=(128, 256, 512, 512),
            layers_per_block=2,
            latent_channels=16,
            use_quant_conv=False,
            use_post_quant_conv=False,
        ),
        ("sana", "transformer"): lambda: SanaTransformer2DModel(
            in_channels=32,
            out_channels=32,
            num_attention_heads=70,
            attention_head_dim=32,
            num_layers=20,
            num_cross_attention_heads=20,
            cross_attention_head_dim=112,
            cross_attention_dim=2240,
            caption_channels=2304,
            mlp_ratio=2.5,
            sample_size=32,
            norm_elementwise_affine=False,
        ),
        ("sana", "text_encoder"): lambda: Gemma2Model(
            Gemma2Config(
                vocab_size=256000,
                hidden_size=2304,
                intermediate_size=9216,
                num_hidden_layers=26,
                num_attention_heads=8,
                num_key_value_heads=4,
                head_dim=256,
            )
        ),
        ("sana", "vae"): lambda: AutoencoderDC(
            encoder_block_types=("ResBlock",) * 3 + vit,
            decoder_block_types=("ResBlock",) * 3 + vit,
            upsample_block_type="interpolate",
            downsample_block_type="Conv",
        ),
    }
    with torch.device("meta"):
        for (preset, name), build in builders.items():
            model = build()
            yield preset, name, model, torch


def test_component_table_counts_the_published_configurations():
    for preset, name, model, torch in _recount():
        row = next(c for c in COMPONENTS[preset] if c.name == name)
        params = [p.numel() for p in model.parameters()]
        linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
        assert (row.params, row.linear_params) == (sum(params), linear), (preset, name)
        assert row.largest_tensor == max(params), (preset, name)
        if name == "text_encoder_2":
            kept = sum(m.weight.numel() for n, m in model.named_modules() if n.endswith(".wo"))
            assert row.fp32_in_fp16 == kept
            assert list(model._keep_in_fp32_modules) == ["wo"]


# -- options and plans ---------------------------------------------------------------------------
def test_sizes_parse_with_units():
    assert parse_bytes("24GB") == 24 * GB
    assert parse_bytes("22.5GiB") == int(22.5 * 2**30)
    assert parse_bytes("16000 MB") == 16 * GB
    for bad in ("24", "lots", "24 parsecs", ""):
        with pytest.raises(ConfigError, match="is not a size") as info:
            parse_bytes(bad)
        assert "max_memory=24GB" in info.value.hint


@pytest.mark.parametrize(
    "args, needle, hint",
    [
        ({"offload": "disk"}, "offload='disk' is not an offload mode", "none|model|group|seq"),
        ({"cast": "int4"}, "cast='int4' is not a layerwise casting mode", "none|float8"),
        ({"cast": "float8", "quantize": "bnb-nf4"}, "do not combine", "Give one of them"),
        ({"quantize": "int3"}, "quantize='int3' is not a quantisation scheme", "torchao-int8"),
        ({"max_memory": "big"}, "max_memory='big' is not a size", "max_memory=24GB"),
        ({"text_dtype": "int8"}, "text_dtype='int8' is not a dtype", "bfloat16"),
        ({"heigth": 512}, "heigth", "height"),
    ],
)
def test_bad_arguments_name_the_value_and_the_choices(args, needle, hint):
    with pytest.raises(ConfigError) as info:
        _plan(**args)
    text = f"{info.value.message} {info.value.hint}"
    assert needle in text and hint in text, text


def test_a_24gb_card_gets_int8_and_a_large_one_everything_exact():
    plan = _plan(max_memory="24GB")
    assert (plan.offload, plan.quantize, plan.chosen) == ("none", "torchao-int8", True)
    assert plan.estimate.peak_bytes <= 24 * GB
    assert "quantize=torchao-int8" in plan.summary("flux-dev")
    assert "chosen for 24.0 GB (max_memory=24GB)" in plan.summary("flux-dev")
    big = _plan(max_memory="80GB")
    assert (big.offload, big.quantize) == ("none", "none")
    # fixing one option makes max_memory choose the other only
    fixed = _plan(max_memory="30GB", quantize="none")
    assert (fixed.offload, fixed.quantize) == ("model", "none")


def test_the_paper_preset_is_all_float16_and_float32_text_is_one_option_away():
    plan = _plan()  # flux-dev: every component float16, as the official code
    assert (plan.dtype, plan.text_dtype) == ("float16", "float16")
    assert _plan(text_dtype="float32").text_dtype == "float32"
    # another FLUX checkpoint in float16 keeps diffusers' advice: text encoders in float32
    assert _plan("tiny-random", dtype="float16").text_dtype == "float32"
    bf16 = _plan(dtype="bfloat16")
    assert (bf16.dtype, bf16.text_dtype) == ("bfloat16", "bfloat16")
    assert _plan("sana").text_dtype == "float16"  # the fp16 T5 advice is FLUX's
    with pytest.raises(ConfigError, match="disagree"):
        BACKBONES.get("flux-dev").check_args({"dtype": "bfloat16"}, device="cuda", dtype="float16")


def test_a_setting_that_cannot_fit_is_refused_with_the_numbers():
    with pytest.raises(ConfigError) as info:
        _plan(max_memory="24GB", offload="none", quantize="none", cast="none", text_dtype="float32")
    message = info.value.message
    assert "does not fit 24.0 GB (max_memory=24GB)" in message
    assert "transformer 23.8 GB" in message and "text_encoder_2 19.0 GB" in message
    assert "max_memory=24GB picks the cheapest setting" in info.value.hint
    assert "quantize=torchao-int8" in info.value.hint
    with pytest.raises(ConfigError, match="No memory setting of flux-dev fits 1.0 GB"):
        _plan(max_memory="1GB")


def test_estimates_fall_with_each_option():
    kwargs = dict(family="flux", dtype="float16", text_dtype="float16", height=512, width=512)
    comps = COMPONENTS["flux-dev"]
    peak = {
        (o, q): estimate(comps, offload=o, quantize=q, text_len=256, **kwargs).peak_bytes
        for o in ("none", "model", "sequential")
        for q in ("none", "torchao-int8", "bnb-nf4")
    }
    assert peak["none", "none"] > peak["model", "none"] > peak["sequential", "none"]
    assert peak["none", "none"] > peak["none", "torchao-int8"] > peak["none", "bnb-nf4"]
    # fp16 weights: 11.9e9 params x 2 bytes for the transformer, T5 with its wo kept in fp32
    setting = estimate(comps, offload="none", quantize="none", text_len=256, **kwargs)
    parts = dict(setting.parts)
    assert parts["transformer"] == 11_901_408_320 * 2
    assert parts["text_encoder_2"] == (4_762_310_656 - 1_006_632_960) * 2 + 1_006_632_960 * 4


def test_cpu_refuses_offload_gpu_only_schemes_and_auto():
    with pytest.raises(ConfigError, match="offload=model on the CPU"):
        _plan("tiny-random", device="cpu", offload="model")
    with pytest.raises(ConfigError, match="quantize=bnb-nf4 needs a GPU") as info:
        _plan("tiny-random", device="cpu", quantize="bnb-nf4")
    assert "torchao-int8" in info.value.hint
    with pytest.raises(ConfigError, match="max_memory=auto reads the free memory"):
        _plan("tiny-random", device="cpu", max_memory="auto")


def test_presets_without_memory_options_refuse_them():
    class Plain(type(BACKBONES.get("tiny-random"))):
        memory_options = False

    with pytest.raises(ConfigError, match="does not take offload/quantize"):
        Plain().check_args({"offload": "model"}, device="cpu")
    settings, plan = Plain().check_args({"height": 64}, device="cpu")
    assert settings.height == 64 and plan.quantize == "none"


def test_split_keeps_generation_settings_apart():
    options, rest = MemoryOptions.split({"offload": "model", "height": 64, "dtype": "fp16"})
    assert options.offload == "model" and options.dtype == "fp16" and rest == {"height": 64}


def test_every_scheme_names_a_backend_extra():
    from pathlib import Path

    import tomllib

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    extras = pyproject["project"]["optional-dependencies"]
    for scheme in SCHEMES.values():
        assert scheme.package in extras, scheme
    assert any(s.cpu for s in SCHEMES.values())


# -- loading with the CPU scheme -----------------------------------------------------------------
def test_tiny_pipeline_loads_quantised_through_diffusers_configs():
    pytest.importorskip("torchao")
    from slim_leakage.backbones import load_backbone

    plain = load_backbone("tiny-random", device="cpu")
    quant = load_backbone("tiny-random", device="cpu", quantize="torchao-int8")
    weight = quant.pipe.transformer.transformer_blocks[0].attn.to_q.weight
    assert "torchao" in type(weight).__module__
    t5_weight = quant.pipe.text_encoder_2.encoder.block[0].layer[0].SelfAttention.q.weight
    assert "torchao" in type(t5_weight).__module__
    assert quant.describe()["memory"]["quantize"] == "torchao-int8"
    a = np.asarray(plain.generate(["a cow and a horse"], [1])[0]).astype(int)
    b = np.asarray(quant.generate(["a cow and a horse"], [1])[0]).astype(int)
    # int8 weights move the tiny model's image by at most a couple of levels
    assert np.abs(a - b).max() <= 2


def test_text_encoders_in_another_dtype_give_the_denoiser_its_own():
    from slim_leakage.backbones import load_backbone

    torch = pytest.importorskip("torch")
    bb = load_backbone("tiny-random", device="cpu", dtype="bfloat16", text_dtype="float32")
    assert bb.pipe.text_encoder_2.dtype == torch.float32
    assert bb.pipe.transformer.dtype == torch.bfloat16
    embeds = bb.pipe.encode_prompt("a cow", prompt_2=None, max_sequence_length=32)
    assert all(t.dtype == torch.bfloat16 for t in embeds)
    assert bb.describe()["memory"]["text_dtype"] == "float32"
    assert bb.generate(["a cow and a horse"], [1])[0].size == (32, 32)


# -- the run resolves memory options before anything is written or loaded -----------------------
def _run(tmp_path, monkeypatch, **args):
    from slim_leakage import preflight
    from slim_leakage.run import Run, RunConfig

    # a CUDA run is planned on a machine without one: the device check is another test's
    monkeypatch.setattr(preflight, "check_device", lambda device: None)

    lines: list[str] = []
    config = RunConfig(
        method="vanilla",
        backbone="flux-dev",
        backbone_args=args,
        device="cuda",
        judge="none",
        config="toy-pairs",
        limit=1,
        out=str(tmp_path / "run"),
    )
    return Run(config, log=lines.append), lines


def test_a_run_says_its_memory_setting_first(tmp_path, monkeypatch):
    run, lines = _run(tmp_path, monkeypatch, max_memory="24GB")
    run.resolve()
    assert lines and "quantize=torchao-int8" in lines[0] and "24.0 GB" in lines[0]
    assert not (tmp_path / "run").exists()


def test_a_run_refuses_a_setting_that_cannot_fit_before_writing(tmp_path, monkeypatch):
    run, _ = _run(
        tmp_path, monkeypatch, max_memory="24GB", quantize="none", offload="none", cast="none"
    )
    with pytest.raises(ConfigError, match="does not fit 24.0 GB"):
        run.resolve()
    assert not (tmp_path / "run").exists()


def test_the_memory_table_in_the_docs_is_what_the_estimate_gives():
    """docs/run.md's table of estimated peaks, recomputed row by row (to 0.1 GB)."""
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "run.md").read_text()
    table = text.split("Estimated peak GPU memory in GB", 1)[1].split("\n\n", 2)[1]
    columns = [
        ("none", "none", "none"),
        ("model", "none", "none"),
        ("none", "torchao-int8", "none"),
        ("model", "torchao-int8", "none"),
        ("none", "bnb-nf4", "none"),
        ("none", "none", "float8"),
        ("group", "none", "none"),
        ("sequential", "none", "none"),
    ]
    rows = [r for r in table.splitlines()[2:] if r.startswith("|")]
    assert len(rows) >= 5
    for row in rows:
        preset, dtypes, size, *figures = [c.strip() for c in row.strip("|").split("|")]
        dtype, text_dtype = (d.split()[0] for d in dtypes.split("/"))
        width, height = (int(n) for n in size.split("x"))
        p = BACKBONES.get(preset)
        for (offload, quantize, cast), shown in zip(columns, figures, strict=True):
            setting = estimate(
                COMPONENTS[preset],
                family=p.family,
                offload=offload,
                quantize=quantize,
                cast=cast,
                dtype=dtype,
                text_dtype=text_dtype,
                height=height,
                width=width,
                text_len=p.settings.max_sequence_length,
            )
            assert f"{setting.peak_bytes / GB:.1f}" == shown, (row, offload, quantize)


# -- group offload, layerwise casting and the bfloat16 text step ---------------------------------
def test_the_ladder_steps_through_text_bf16_casting_and_group_offload(monkeypatch):
    # 36 GB: everything resident does not fit in float16 (37.8), bfloat16 text encoders do
    step = _plan(max_memory="36GB")
    got = (step.offload, step.quantize, step.cast, step.text_dtype)
    assert got == ("none", "none", "none", "bfloat16")
    assert "text_dtype=bfloat16" in step.estimate.name()
    # a given text dtype is kept: no text step
    assert _plan(max_memory="36GB", text_dtype="float16").offload == "model"
    # without torchao the int8 rung is passed over for float8 storage
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torchao" else real(name, *a)
    )
    cast = _plan(max_memory="30GB", offload="none", text_dtype="float16")
    assert (cast.quantize, cast.cast) == ("none", "float8")
    assert cast.describe()["cast"] == "float8"
    # exact weights on a 16 GB card: group offload, before sequential
    group = _plan(max_memory="16GB", quantize="none", cast="none")
    assert (group.offload, group.quantize) == ("group", "none")
    assert dict(group.estimate.parts)["text_encoder_2 group"] > 0  # T5 moves whole


def test_group_and_cast_estimates_follow_the_table():
    comps = COMPONENTS["flux-dev"]
    kwargs = dict(family="flux", dtype="float16", text_dtype="float16", height=512, width=512)
    cast = estimate(comps, offload="none", quantize="none", cast="float8", text_len=256, **kwargs)
    parts = dict(cast.parts)
    assert parts["transformer"] == 8_653_744_128 + (11_901_408_320 - 8_653_744_128) * 2
    group = estimate(comps, offload="group", quantize="none", text_len=256, **kwargs)
    t5 = (4_762_310_656 - 1_006_632_960) * 2 + 1_006_632_960 * 4
    assert dict(group.parts)["text_encoder_2 group"] == t5  # no top-level block list: whole


def test_group_and_cast_counts_are_the_real_models():
    """The FLUX transformer's block-level group and castable parameters, recounted on meta."""
    import re

    torch = pytest.importorskip("torch")
    from diffusers import FluxTransformer2DModel
    from diffusers.hooks._common import _GO_LC_SUPPORTED_PYTORCH_LAYERS
    from diffusers.hooks.layerwise_casting import DEFAULT_SKIP_MODULES_PATTERN

    def count(module):
        return sum(p.numel() for p in module.parameters())

    for preset, guidance in (("flux-dev", True), ("flux-schnell", False)):
        with torch.device("meta"):
            model = FluxTransformer2DModel(guidance_embeds=guidance)
        lists = [c for _, c in model.named_children() if isinstance(c, torch.nn.ModuleList)]
        rest = count(model) - sum(count(c) for c in lists)
        largest = max(count(b) for c in lists for b in c)
        skip = (*DEFAULT_SKIP_MODULES_PATTERN, *model._skip_layerwise_casting_patterns)

        def castable(module, prefix="", skip=skip):
            if any(re.search(p, prefix) for p in skip):
                return 0
            if isinstance(module, _GO_LC_SUPPORTED_PYTORCH_LAYERS):
                return count(module)
            return sum(
                castable(c, f"{prefix}.{n}" if prefix else n) for n, c in module.named_children()
            )

        transformer = COMPONENTS[preset][0]
        assert transformer.group_params == rest + largest, preset
        assert transformer.castable_params == castable(model), preset


def test_place_installs_group_offload_and_layerwise_casting():
    """What place() asks of diffusers, recorded on a stand-in pipeline (no GPU here)."""
    torch = pytest.importorskip("torch")
    from slim_leakage.backbones.memory import MemoryPlan

    calls = []

    class Model:
        def enable_layerwise_casting(self, **kwargs):
            calls.append(("cast", kwargs))

    class Pipe:
        transformer = Model()

        def enable_group_offload(self, **kwargs):
            calls.append(("group", kwargs))

    plan = MemoryPlan(offload="group", dtype="float16", cast="float8")
    BACKBONES.get("flux-dev").place(Pipe(), "cuda:1", plan)
    assert calls == [
        ("cast", {"storage_dtype": torch.float8_e4m3fn, "compute_dtype": torch.float16}),
        (
            "group",
            {
                "onload_device": torch.device("cuda:1"),
                "offload_device": torch.device("cpu"),
                "offload_type": "block_level",
                "num_blocks_per_group": 1,
            },
        ),
    ]


def test_tiny_pipeline_generates_with_float8_weights_on_the_cpu():
    """Layerwise casting for real (diffusers' hooks) on the tiny FLUX, against full precision."""
    pytest.importorskip("diffusers")
    from slim_leakage.backbones import load_backbone

    plain = load_backbone("tiny-random", device="cpu")
    cast = load_backbone("tiny-random", device="cpu", cast="float8")
    weight = cast.pipe.transformer.transformer_blocks[0].attn.to_q.weight
    assert str(weight.dtype) == "torch.float8_e4m3fn"
    assert cast.describe()["memory"]["cast"] == "float8"
    a = np.asarray(plain.generate(["a cow and a horse"], [1])[0]).astype(int)
    b = np.asarray(cast.generate(["a cow and a horse"], [1])[0]).astype(int)
    assert a.shape == b.shape and np.abs(a - b).mean() < 40  # close, not equal
