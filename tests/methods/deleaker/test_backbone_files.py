"""Every DeLeaker backbone file has the shape method.py relies on, and keeps its promises.

Parametrised over ``BACKBONE_FILES``, so a new family's file is covered by being registered
there. Each family runs on the cheapest built-in backbone preset of that family that loads offline
(``tiny-random`` for FLUX, ``tiny-sana`` for SANA).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from slim_leakage.backbones import BACKBONES, load_backbone
from slim_leakage.errors import ConfigError, EntityNotFoundError
from slim_leakage.methods.deleaker.method import BACKBONE_FILES, backbone_file

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

PROMPTS = ["a cow and a horse in a field", "a cat, a dog and a fox"]
ENTITIES = [["cow", "horse"], ["cat", "dog", "fox"]]
SEEDS = [3, 4]
LOOSE = {"smoothing": False, "beta1": 0.0}  # random tiny attention: keep the masks non-empty


@pytest.fixture(scope="module", params=sorted(BACKBONE_FILES))
def family(request):
    """``(family name, its module, a loaded offline backbone of that family)``."""
    name = request.param
    builtins = [BACKBONES.get(n) for n in BACKBONES.names() if BACKBONES.origin(n) == "builtin"]
    offline = [p for p in builtins if p.family == name and p.offline]
    if not offline:
        pytest.skip(f"no registered {name} preset loads offline")
    cheapest = min(
        offline,
        key=lambda p: p.settings.height * p.settings.width * p.settings.num_inference_steps,
    )
    return name, backbone_file(name), load_backbone(cheapest.name, device="cpu")


def test_the_table_covers_the_method_families():
    from slim_leakage.methods import METHODS

    assert METHODS.get("deleaker").families == tuple(BACKBONE_FILES)


def test_module_has_the_shape(family):
    _, module, _ = family
    for attr in ("install", "entity_spans", "install_options"):
        assert callable(getattr(module, attr, None)), attr
    json.dumps(module.EXTRA, allow_nan=False)


def test_entity_spans_point_inside_the_text_and_missing_entities_are_errors(family):
    _, module, backbone = family
    spans = module.entity_spans(backbone, PROMPTS[1], ENTITIES[1])
    assert list(spans) == ENTITIES[1]
    # a family whose text sequence is longer than max_sequence_length (SD3: 77 CLIP tokens
    # before T5's) says how long it is with text_length(backbone)
    text_length = getattr(module, "text_length", lambda b: b.settings.max_sequence_length)
    limit = text_length(backbone)
    assert all(ts and all(0 <= t < limit for t in ts) for ts in spans.values())
    with pytest.raises(EntityNotFoundError, match="'eagle'"):
        module.entity_spans(backbone, PROMPTS[0], ["cow", "eagle"])


def _run(module, backbone, implementation, **options):
    with module.install(
        backbone.pipe,
        ENTITIES,
        prompts=PROMPTS,
        implementation=implementation,
        **module.install_options(backbone),
        **options,
    ) as run:
        images = backbone.generate(PROMPTS, SEEDS)
    return run, images


def _processors(transformer) -> dict:
    """Every attention processor of the model (Z-Image's has no ``attn_processors``)."""
    if hasattr(transformer, "attn_processors"):
        return dict(transformer.attn_processors)
    return {n: m.processor for n, m in transformer.named_modules() if hasattr(m, "processor")}


def test_fast_and_reference_processors_agree_and_are_restored(family):
    _, module, backbone = family
    transformer = backbone.pipe.transformer
    before = _processors(transformer)
    assert before
    fast_run, fast = _run(module, backbone, "fast", **LOOSE)
    ref_run, ref = _run(module, backbone, "reference", **LOOSE)
    assert all(_processors(transformer)[k] is v for k, v in before.items())
    for b, entities in enumerate(ENTITIES):
        f_masks, r_masks = fast_run.batch_masks[b], ref_run.batch_masks[b]
        assert list(f_masks) == entities and f_masks.keys() == r_masks.keys()
        for entity in entities:
            assert f_masks[entity].keys() == r_masks[entity].keys()
            for step, mask in f_masks[entity].items():
                assert torch.equal(mask, r_masks[entity][step])
            assert fast_run.final_masks(b)[entity].any(), (b, entity)
        diff = np.abs(np.asarray(fast[b], dtype=int) - np.asarray(ref[b], dtype=int)).max()
        assert diff <= 1, diff


def test_unknown_implementation_is_refused(family):
    _, module, backbone = family
    with (
        pytest.raises(ConfigError, match="implementation='magic'"),
        module.install(
            backbone.pipe,
            ENTITIES,
            prompts=PROMPTS,
            implementation="magic",
            **module.install_options(backbone),
        ),
    ):
        pass
