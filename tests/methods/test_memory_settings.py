"""DeLeaker, regional prompting and the prompt baselines under the memory options, on the tiny
FLUX and the CPU: quantised linear layers (``quantize=torchao-int8``, loaded through diffusers'
quantization configs) and accelerate's offload hooks.

The offload hooks are installed as diffusers installs them, with the CPU as the execution
device: ``enable_model_cpu_offload(device="cpu")`` for model offload, and ``accelerate.cpu_offload``
per component for sequential offload (what ``enable_sequential_cpu_offload`` calls). CLIP is
left without sequential hooks: with the CPU as execution device, accelerate's tied-tensor
bookkeeping leaves its token embedding a plain tensor after the first call (a CPU-only case;
the methods never touch CLIP).

Tolerances: hooks move the same weights, so images must be identical; int8 weights move the
tiny model's images by at most 2 of 255 levels, with a mean under 0.25 levels (measured: at
most 1, mean 0.06-0.08).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from slim_leakage.backbones import load_backbone  # noqa: E402
from slim_leakage.methods import get_method  # noqa: E402
from slim_leakage.records import Sample  # noqa: E402

SAMPLES = [
    Sample(id="p1", prompt="a cow and a horse in a field", entities=("cow", "horse"), seed=3),
    Sample(
        id="t1",
        prompt="a cat sitting while a dog and a fox are playing",
        entities=("cat", "dog", "fox"),
        seed=4,
        kind="triplet",
    ),
]


def _sequential_hooks(backbone):
    from accelerate import cpu_offload

    for name in ("transformer", "text_encoder_2", "vae"):
        cpu_offload(getattr(backbone.pipe, name), torch.device("cpu"), offload_buffers=True)
    return backbone


def _model_hooks(backbone):
    backbone.pipe.enable_model_cpu_offload(device="cpu")
    return backbone


#: Two steps keep the suite quick; every block still runs inside DeLeaker's windows.
STEPS = {"num_inference_steps": 2}


@pytest.fixture(scope="module")
def plain():
    return load_backbone("tiny-random", device="cpu", **STEPS)


@pytest.fixture(scope="module", params=["quantized", "sequential-hooks", "model-hooks"])
def variant(request):
    if request.param == "quantized":
        pytest.importorskip("torchao")
        quantized = load_backbone("tiny-random", device="cpu", quantize="torchao-int8", **STEPS)
        return request.param, quantized
    backbone = load_backbone("tiny-random", device="cpu", **STEPS)
    hooks = _sequential_hooks if request.param == "sequential-hooks" else _model_hooks
    return request.param, hooks(backbone)


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    from slim_leakage.methods.layouts import plan_layouts, write_layouts

    path = tmp_path_factory.mktemp("layouts") / "layouts.jsonl"
    write_layouts(path, plan_layouts(SAMPLES))
    return str(path)


METHODS = {
    "vanilla": {},
    "deleaker": {"smoothing": False},  # random attention: keep the masks (see test_flux.py)
    "instruction-prompt": {},
    "regional-prompting": {"layouts": None},
}


@pytest.fixture(scope="module")
def expected(plain, layouts):
    """Each method's images on the plain backbone (computed once per method)."""
    cache: dict = {}

    def get(method_name):
        if method_name not in cache:
            method = _method(method_name, layouts)
            method.prepare(plain, SAMPLES)
            cache[method_name] = method.generate(plain, SAMPLES)
        return cache[method_name]

    return get


def _method(name, layouts):
    return get_method(name, **{k: (layouts if v is None else v) for k, v in METHODS[name].items()})


def _processors(backbone):
    return {k: type(v) for k, v in backbone.pipe.transformer.attn_processors.items()}


@pytest.mark.parametrize("method_name", list(METHODS))
def test_methods_give_the_plain_images_under_memory_options(
    method_name, variant, layouts, expected
):
    kind, backbone = variant
    method = _method(method_name, layouts)
    before = _processors(backbone)
    method.prepare(backbone, SAMPLES)
    got = method.generate(backbone, SAMPLES)
    assert _processors(backbone) == before  # every processor restored
    for exp, out in zip(expected(method_name), got):
        diff = np.abs(np.asarray(exp.image).astype(int) - np.asarray(out.image).astype(int))
        if kind == "quantized":
            assert diff.max() <= 2 and diff.mean() < 0.25, (diff.max(), diff.mean())
        else:
            assert diff.max() == 0
    if method_name == "deleaker":
        for out in got:
            assert all(n > 0 for n in out.extra["mask_tokens"].values()), out.extra
        vanilla = get_method("vanilla").generate(backbone, SAMPLES[:1])[0].image
        assert np.abs(np.asarray(vanilla).astype(int) - np.asarray(got[0].image)).max() > 0


def test_hooks_really_offload(variant):
    kind, backbone = variant
    weight = backbone.pipe.transformer.transformer_blocks[0].attn.to_q.weight
    if kind == "sequential-hooks":
        assert weight.device.type == "meta"  # loaded only inside each forward
    elif kind == "model-hooks":
        assert backbone.pipe._all_hooks
    else:
        assert "torchao" in type(weight).__module__
