"""``--backbone diffusers``: a tiny pipeline saved with save_pretrained and loaded by path."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest

pytest.importorskip("diffusers")

from slim_leakage.backbones import BACKBONES, load_backbone  # noqa: E402
from slim_leakage.backbones.generic import (  # noqa: E402
    PipelineBackbone,
    detect_family,
    pipeline_defaults,
    wrap_pipeline,
)
from slim_leakage.errors import ConfigError, ModelNotFoundError  # noqa: E402

SMALL = {"height": 16, "width": 16, "num_inference_steps": 2}


@pytest.fixture(scope="module")
def flux_folder(tmp_path_factory):
    from slim_leakage.backbones.tiny import build_tiny_flux_pipeline

    folder = tmp_path_factory.mktemp("tiny-flux")
    pipe = build_tiny_flux_pipeline(seed=3)
    pipe.save_pretrained(folder)
    return folder, pipe


def test_loads_a_saved_pipeline_by_path_with_its_own_defaults(flux_folder):
    folder, original = flux_folder
    backbone = load_backbone("diffusers", device="cpu", pretrained=str(folder), **SMALL)
    assert isinstance(backbone, PipelineBackbone)
    assert backbone.family == "flux" and type(backbone.pipe).__name__ == "FluxPipeline"
    # what the pipeline's __call__ declares is what the backbone uses when not overridden
    call = inspect.signature(type(original).__call__).parameters
    assert backbone.settings.guidance_scale == call["guidance_scale"].default
    assert backbone.settings.max_sequence_length == call["max_sequence_length"].default
    assert backbone.settings.num_inference_steps == 2 and backbone.settings.height == 16
    info = backbone.describe()
    json.dumps(info, allow_nan=False)
    assert info["pipeline_class"] == "FluxPipeline" and info["pretrained"] == str(folder)
    assert info["model_id"] == str(folder) and info["family"] == "flux"
    assert "max_sequence_length" in info["settings_passed"]
    assert set(info["settings_passed"]) <= set(call)  # only what its __call__ takes
    images = backbone.generate(["a cat and a dog"], [5])
    assert images[0].size == (16, 16)
    # the same weights give the same pixels as the pipeline built in code, at the same kwargs
    direct = original(
        prompt=["a cat and a dog"],
        generator=backbone.generators([5]),
        output_type="pil",
        **backbone.pipe_kwargs(),
    ).images[0]
    assert np.array_equal(np.asarray(images[0]), np.asarray(direct))


def test_defaults_are_read_from_the_pipeline(flux_folder):
    _, pipe = flux_folder
    defaults = pipeline_defaults(pipe)
    assert defaults["height"] == pipe.default_sample_size * pipe.vae_scale_factor
    assert defaults["num_inference_steps"] == 28  # FluxPipeline.__call__'s default


def test_family_from_the_pipeline_class_or_its_transformer():
    from slim_leakage.backbones.sana import build_tiny_sana_pipeline
    from slim_leakage.backbones.tiny import build_tiny_flux_pipeline

    assert detect_family(build_tiny_flux_pipeline()) == "flux"
    sana = build_tiny_sana_pipeline()
    assert detect_family(sana) == "sana"

    class MyPipeline:
        transformer = sana.transformer

    assert detect_family(MyPipeline()) == "sana"

    class OtherPipeline:
        transformer = None

    assert detect_family(OtherPipeline()) == "other"


def test_a_sana_pipeline_becomes_a_sana_backbone():
    from slim_leakage.backbones.sana import SanaBackbone, build_tiny_sana_pipeline

    backbone = wrap_pipeline(build_tiny_sana_pipeline(), overrides=SMALL)
    assert isinstance(backbone, SanaBackbone) and backbone.family == "sana"
    assert backbone.name == "diffusers"


def test_refuses_a_pipeline_that_is_not_text_to_image():
    class ImageToImagePipeline:
        components: dict = {}

        def __call__(self, prompt, image, num_inference_steps=10):
            return None

    with pytest.raises(ConfigError, match="not text-to-image.*requires 'image'"):
        wrap_pipeline(ImageToImagePipeline())


def test_argument_errors_before_loading(tmp_path):
    with pytest.raises(ConfigError, match="needs the checkpoint"):
        load_backbone("diffusers", device="cpu")
    with pytest.raises(ConfigError, match="no option 'stepz'"):
        load_backbone("diffusers", device="cpu", pretrained="org/name", stepz=1)
    with pytest.raises(ModelNotFoundError, match=str(tmp_path)):
        load_backbone("diffusers", device="cpu", pretrained=str(tmp_path))
    info = BACKBONES.get("diffusers").describe()
    assert info["offline"] is False and "pretrained=" in info["description"]


def test_run_with_a_saved_pipeline_records_it(flux_folder, tmp_path):
    from slim_leakage.run import RunConfig, evaluate
    from slim_leakage.rundir import load_run

    folder, _ = flux_folder
    out = tmp_path / "run"
    evaluate(
        RunConfig(
            out=str(out),
            method="vanilla",
            backbone="diffusers",
            backbone_args={"pretrained": str(folder), **SMALL},
            judge="none",
            config="toy-pairs",
            limit=2,
            references=False,
            image_metrics=(),
            report=False,
            progress=False,
            device="cpu",
        )
    )
    manifest = load_run(out).manifest
    assert manifest["backbone"]["pipeline_class"] == "FluxPipeline"
    assert manifest["backbone"]["family"] == "flux"
    assert manifest["identity"]["backbone"]["args"]["pretrained"] == str(folder)


def test_evaluate_takes_a_ready_pipeline_or_backbone(tmp_path):
    from slim_leakage.backbones.tiny import build_tiny_flux_pipeline
    from slim_leakage.run import evaluate
    from slim_leakage.rundir import load_run

    common = dict(
        method="vanilla",
        judge="none",
        config="toy-pairs",
        limit=1,
        references=False,
        image_metrics=(),
        report=False,
        progress=False,
    )
    pipe = build_tiny_flux_pipeline(seed=4)
    evaluate(out=str(tmp_path / "pipe"), backbone=pipe, backbone_args=SMALL, **common)
    run = load_run(tmp_path / "pipe")
    assert run.manifest["backbone"]["pipeline_class"] == "FluxPipeline"
    assert run.manifest["backbone"]["settings"]["height"] == 16
    assert run.manifest["identity"]["backbone"]["name"] == "diffusers"
    backbone = wrap_pipeline(pipe, name="my-flux", overrides=SMALL)
    evaluate(out=str(tmp_path / "bb"), backbone=backbone, **common)
    assert load_run(tmp_path / "bb").manifest["backbone"]["name"] == "my-flux"
    with pytest.raises(ConfigError, match="keeps its own settings"):
        evaluate(out=str(tmp_path / "x"), backbone=backbone, backbone_args=SMALL, **common)
    with pytest.raises(ConfigError, match="not a preset name, a Backbone or a diffusers"):
        evaluate(out=str(tmp_path / "y"), backbone=42, **common)


def test_deleaker_runs_on_a_pipeline_of_its_family(flux_folder, tmp_path):
    from slim_leakage.run import RunConfig, evaluate
    from slim_leakage.rundir import load_run

    folder, _ = flux_folder
    out = tmp_path / "deleaker"
    evaluate(
        RunConfig(
            out=str(out),
            method="deleaker",
            backbone="diffusers",
            backbone_args={"pretrained": str(folder), "max_sequence_length": 32, **SMALL},
            judge="none",
            config="toy-pairs",
            limit=1,
            references=False,
            image_metrics=(),
            report=False,
            progress=False,
            device="cpu",
        )
    )
    run = load_run(out)
    assert {g.role for g in run.generations} == {"vanilla", "method"}
    assert run.manifest["backbone"]["family"] == "flux"


def test_a_method_checks_the_family_once_the_pipeline_is_loaded(flux_folder):
    from slim_leakage.methods import get_method

    deleaker = get_method("deleaker")
    deleaker.check_backbone(BACKBONES.get("diffusers"))  # "auto": not known before loading
    _, pipe = flux_folder
    backbone = wrap_pipeline(pipe, overrides=SMALL)
    deleaker.check_backbone(backbone)
    backbone.family = "other"
    with pytest.raises(ConfigError, match="family 'other'"):
        deleaker.check_backbone(backbone)
