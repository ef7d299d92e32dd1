"""Conformance: every registered method keeps the method contract on the tiny backbones.

Parametrised over ``METHODS.names()`` and over the tiny FLUX and SANA backbones (a method runs
on those its ``families`` allow), so a built-in or plug-in method is covered without
writing a test. Inputs a method declares in ``needs`` are provided by convention: ``images``
through a ``folder`` option (a folder of correctly sized images named by sample id), ``layout``
through a ``layouts`` option (a frozen layout file).
"""

from __future__ import annotations

import dataclasses
import json
import types

import numpy as np
import pytest

from slim_leakage._config import build_config
from slim_leakage.errors import ConfigError, SlimError
from slim_leakage.methods import METHODS, Method, MethodOutput, get_method
from slim_leakage.records import Sample

KNOWN_NEEDS = {"entities", "layout", "images"}

SAMPLES = [
    Sample(id="c1", prompt="a cow and a horse in a field", entities=("cow", "horse"), seed=3),
    Sample(
        id="c2",
        prompt="a cat sitting while a dog and a fox are playing",
        entities=("cat", "dog", "fox"),
        seed=4,
        kind="triplet",
    ),
]


def _inputs(method_cls, backbone, tmp_path) -> dict:
    """Options providing what the method declares in ``needs``."""
    from PIL import Image

    options: dict = {}
    if "images" in method_cls.needs:
        folder = tmp_path / "external"
        folder.mkdir()
        for i, s in enumerate(SAMPLES):
            size = (backbone.settings.width, backbone.settings.height)
            Image.new("RGB", size, (40 * i, 100, 200)).save(folder / f"{s.id}.png")
        options["folder"] = str(folder)
    if "layout" in method_cls.needs:
        from slim_leakage.methods.layouts import plan_layouts, write_layouts

        path = tmp_path / "layouts.jsonl"
        write_layouts(path, plan_layouts(SAMPLES))
        options["layouts"] = str(path)
    return options


def _supports(method_cls, family: str) -> bool:
    return method_cls.families is None or family in method_cls.families


@pytest.fixture(params=METHODS.names())
def method_name(request):
    return request.param


@pytest.fixture(params=["tiny_backbone", "tiny_sana"])
def any_backbone(request):
    """Each tiny backbone family in turn: FLUX (``tiny-random``) and SANA."""
    return request.getfixturevalue(request.param)


def test_info_declares_needs_backbones_and_options(method_name):
    cls = METHODS.get(method_name)
    assert issubclass(cls, Method)
    info = cls.info()
    assert set(info["needs"]) <= KNOWN_NEEDS, info["needs"]
    assert info["backbones"] and all(isinstance(b, str) for b in info["backbones"])
    assert info["description"].strip(), "a method needs a one-line description"
    assert dataclasses.is_dataclass(cls.Config) and cls.Config.__dataclass_params__.frozen
    assert cls.__doc__ and cls.__doc__.strip(), "a method documents what it needs and its source"
    json.dumps(info)


def test_unknown_option_is_rejected_with_the_known_ones(method_name):
    cls = METHODS.get(method_name)
    with pytest.raises(ConfigError, match="no option 'surely_not_an_option'"):
        build_config(cls.Config, {"surely_not_an_option": 1}, owner=method_name)


def test_unsupported_backbone_is_a_clear_error(method_name, tiny_backbone, tmp_path):
    cls = METHODS.get(method_name)
    if cls.families is None:
        pytest.skip(f"{method_name} runs on any backbone")
    method = get_method(method_name, **_inputs(cls, tiny_backbone, tmp_path))
    alien = types.SimpleNamespace(name="alien-net", family="alien", settings=tiny_backbone.settings)
    with pytest.raises(ConfigError, match="does not support the 'alien-net' backbone") as info:
        method.prepare(alien, SAMPLES)
    for family in cls.families:
        assert family in info.value.hint


def test_generates_one_deterministic_output_per_sample(method_name, any_backbone, tmp_path):
    tiny_backbone = any_backbone
    cls = METHODS.get(method_name)
    if not _supports(cls, tiny_backbone.family):
        pytest.skip(f"{method_name} does not run on {tiny_backbone.family}")
    method = get_method(method_name, **_inputs(cls, tiny_backbone, tmp_path))
    method.prepare(tiny_backbone, SAMPLES)
    outputs = method.generate(tiny_backbone, SAMPLES)
    assert len(outputs) == len(SAMPLES)
    size = (tiny_backbone.settings.width, tiny_backbone.settings.height)
    for out in outputs:
        assert isinstance(out, MethodOutput)
        assert out.image.size == size and out.image.mode == "RGB"
        json.dumps(out.extra, allow_nan=False)
        for name, overlay in out.overlays.items():
            assert isinstance(name, str) and hasattr(overlay, "save")
    # The same sample alone gives the same pixels (one seed per sample, no batch coupling).
    # CPU matrix kernels may pick another blocking for another batch size, which can move a
    # pixel by one level after rounding (seen on tiny SANA: 1 level in 0.03% of values); a
    # coupling between images would change far more.
    again = method.generate(tiny_backbone, SAMPLES[1:])
    alone = np.asarray(again[0].image).astype(int)
    batched = np.asarray(outputs[1].image).astype(int)
    diff = np.abs(alone - batched)
    assert diff.max() <= 1 and (diff > 0).mean() <= 0.005, (diff.max(), (diff > 0).mean())
    json.dumps(method.config_dict())


def test_bad_inputs_fail_in_prepare_not_later(method_name, any_backbone, tmp_path):
    tiny_backbone = any_backbone
    cls = METHODS.get(method_name)
    if not _supports(cls, tiny_backbone.family):
        pytest.skip(f"{method_name} does not run on {tiny_backbone.family}")
    if not cls.needs:
        pytest.skip(f"{method_name} needs nothing beyond the prompt")
    method = get_method(method_name, **_inputs(cls, tiny_backbone, tmp_path))
    stranger = Sample(id="stranger", prompt="a bat and an owl", entities=("bat", "owl"), seed=9)
    if cls.needs != ("entities",):
        # the layout or image inputs were made for SAMPLES: the stranger has none
        with pytest.raises(SlimError, match="stranger"):
            method.prepare(tiny_backbone, [stranger])
        return
    # Entity-only methods: a well-formed sample is accepted, and one whose entity is not a word
    # of its prompt either fails in prepare, naming the sample, or is generated without error.
    method.prepare(tiny_backbone, [stranger])
    absent = Sample(id="absent", prompt="a bat and an owl", entities=("bat", "eagle"), seed=9)
    try:
        method.prepare(tiny_backbone, [absent])
    except SlimError as exc:
        assert "absent" in str(exc) and "eagle" in str(exc), str(exc)
    else:
        (out,) = method.generate(tiny_backbone, [absent])
        assert isinstance(out, MethodOutput)
