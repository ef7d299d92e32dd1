"""Conformance: every registered backbone preset keeps the backbone contract.

Parametrised over ``BACKBONES.names()``, so a built-in or plug-in preset is covered without
writing a test. Every preset must describe itself without loading anything, reject bad
generation settings before loading, and fail with a clear error when its weights are missing.
Presets that build offline (``Preset.offline``: weights built in code or shipped in the
package, such as ``tiny-random``, ``tiny-sana`` and ``toy``) are also loaded on the CPU and
must expose their family, settings and tokenizer, describe themselves as JSON, and generate one
deterministic image per prompt and seed. Presets that need a download (``flux-dev``,
``flux-schnell``, ``sana``) get the cheap checks only.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from slim_leakage.backbones import BACKBONES, GenerationSettings, load_backbone
from slim_leakage.backbones.base import BUILT_IN, Preset
from slim_leakage.errors import ConfigError, ModelNotFoundError

PROMPTS = ["a cow and a horse in a field", "a cat and a dog"]
SEEDS = [3, 4]
PLUGIN = "conformance-plugin"


class _PluginPreset(Preset):
    """A third-party-style preset: a FLUX pipeline of its own sizes, built in code."""

    name = PLUGIN
    family = "flux"
    model_id = BUILT_IN + "conformance-plugin"
    settings = GenerationSettings(
        height=16, width=16, num_inference_steps=2, guidance_scale=1.0, max_sequence_length=32
    )
    description = "a plug-in preset registered by the conformance test"

    def build(self, *, path: str, device: str, dtype: str):
        from slim_leakage.backbones.tiny import FluxSizes, build_flux_pipeline

        sizes = FluxSizes(num_layers=1, num_single_layers=2, attention_head_dim=8)
        return build_flux_pipeline(sizes, seed=11).to(device)


# Registered while the tests are collected, so the parametrisation below covers it exactly as
# it covers the built-ins; removed when this module's tests are done.
if PLUGIN not in BACKBONES.names():
    BACKBONES.register(PLUGIN, _PluginPreset())


@pytest.fixture(scope="module", autouse=True)
def _unregister_plugin():
    yield
    BACKBONES.unregister(PLUGIN)


NAMES = BACKBONES.names()
OFFLINE = [n for n in NAMES if BACKBONES.get(n).offline]


@pytest.fixture(params=NAMES)
def name(request):
    return request.param


@pytest.fixture(scope="module")
def loaded():
    """Offline presets loaded once each, on the CPU."""
    pytest.importorskip("diffusers")
    cache: dict = {}

    def get(preset_name: str):
        if preset_name not in cache:
            cache[preset_name] = load_backbone(preset_name, device="cpu")
        return cache[preset_name]

    return get


@pytest.fixture(params=OFFLINE)
def offline(request, loaded):
    return request.param, loaded(request.param)


def test_the_plugin_is_covered():
    assert PLUGIN in NAMES and PLUGIN in OFFLINE
    assert {"tiny-random", "tiny-sana", "toy"} <= set(OFFLINE)
    assert not {"flux-dev", "flux-schnell", "sana"} & set(OFFLINE)


def test_describes_itself_without_loading(name):
    preset = BACKBONES.get(name)
    info = preset.describe()
    json.dumps(info, allow_nan=False)
    assert info["name"] == name, "the registry name is what run manifests record"
    assert info["family"] and info["description"].strip() and info["model_id"]
    assert info["settings"] == dataclasses.asdict(preset.settings)
    assert isinstance(preset.settings, GenerationSettings)
    assert info["offline"] is preset.offline


def test_built_in_presets_describe_without_heavy_imports():
    builtins = [n for n in NAMES if BACKBONES.origin(n) == "builtin"]
    code = (
        "import sys, json\n"
        "from slim_leakage.backbones import BACKBONES\n"
        f"print(json.dumps([BACKBONES.get(n).describe()['name'] for n in {builtins!r}]))\n"
        "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    names, heavy = out.stdout.strip().splitlines()
    assert json.loads(names) == builtins and heavy == "[]", out.stdout + out.stderr


def test_bad_settings_fail_before_anything_loads(name):
    pytest.importorskip("diffusers")
    with pytest.raises(ConfigError, match="no option 'stepz'"):
        load_backbone(name, device="cpu", stepz=3)
    with pytest.raises(ConfigError, match="num_inference_steps"):
        load_backbone(name, device="cpu", num_inference_steps=0)


def test_missing_weights_are_a_clear_error(name, tmp_path):
    preset = BACKBONES.get(name)
    if preset.model_id.startswith(BUILT_IN):
        pytest.skip(f"{name} builds its weights in code")
    pytest.importorskip("diffusers")
    with pytest.raises(ModelNotFoundError) as info:
        load_backbone(name, path=str(tmp_path), device="cpu")
    assert str(tmp_path) in info.value.message
    assert info.value.hint and info.value.hint.strip()


def test_loads_with_its_family_settings_and_tokenizer(offline):
    name, backbone = offline
    preset = BACKBONES.get(name)
    assert backbone.name == name and backbone.family == preset.family
    assert backbone.settings == preset.settings
    assert backbone.device == "cpu" and backbone.dtype == "float32"
    # methods find entity tokens by character offsets in the attention's text
    enc = backbone.tokenizer(PROMPTS[0], return_offsets_mapping=True)
    assert len(enc["input_ids"]) == len(enc["offset_mapping"]) > 0
    info = backbone.describe()
    json.dumps(info, allow_nan=False)
    assert info["name"] == name and info["family"] == preset.family
    assert info["settings"] == dataclasses.asdict(preset.settings)
    assert info["device"] == "cpu" and info["dtype"] == "float32" and info["model_id"]
    kwargs = backbone.pipe_kwargs()
    s = preset.settings
    assert (kwargs["height"], kwargs["width"]) == (s.height, s.width)
    assert kwargs["num_inference_steps"] == s.num_inference_steps


def test_generates_one_deterministic_image_per_prompt_and_seed(offline):
    _, backbone = offline
    s = backbone.settings
    images = backbone.generate(PROMPTS, SEEDS)
    assert len(images) == len(PROMPTS)
    for image in images:
        assert image.size == (s.width, s.height) and image.mode == "RGB"
    again = backbone.generate(PROMPTS[1:], SEEDS[1:])[0]
    other_seed = backbone.generate(PROMPTS[1:], [SEEDS[1] + 1])[0]
    batched, alone = (np.asarray(x, dtype=int) for x in (images[1], again))
    # CPU kernels may block a batch of one differently: one level at most, on few values
    diff = np.abs(batched - alone)
    assert diff.max() <= 1 and (diff > 0).mean() <= 0.005, (diff.max(), (diff > 0).mean())
    assert np.array_equal(
        np.asarray(again), np.asarray(backbone.generate(PROMPTS[1:], SEEDS[1:])[0])
    )
    assert not np.array_equal(np.asarray(again), np.asarray(other_seed))
    with pytest.raises(ConfigError, match="2 prompts but 1 seeds"):
        backbone.generate(PROMPTS, SEEDS[:1])
