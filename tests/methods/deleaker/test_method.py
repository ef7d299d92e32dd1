"""The registered ``deleaker`` method and the mask overlays."""

from __future__ import annotations

import subprocess
import sys

import pytest

from slim_leakage.errors import ConfigError, EntityNotFoundError
from slim_leakage.methods import METHODS, get_method
from slim_leakage.records import Sample


def test_registered_with_its_contract():
    cls = METHODS.get("deleaker")
    assert cls.needs == ("entities",)
    assert {"flux", "sana", "sd3", "flux2", "qwenimage", "zimage"} <= set(cls.families)
    info = cls.info()
    assert {"alpha", "beta1", "beta2", "self_identity"} <= set(info["options"])
    assert get_method("deleaker", alpha="1.4").config.alpha == 1.4
    with pytest.raises(ConfigError, match="alpah"):
        get_method("deleaker", alpah=1.4)


def test_importing_the_method_loads_no_torch():
    code = (
        "import sys; import slim_leakage.methods.deleaker.method, slim_leakage.methods.deleaker;"
        "from slim_leakage import deleaker;"
        "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def backbone():
    pytest.importorskip("diffusers")
    from slim_leakage.backbones import load_backbone

    return load_backbone("tiny-random", device="cpu", dtype="float32", num_inference_steps=3)


SAMPLES = [
    Sample(id="p1", prompt="a cow and a horse in a field", entities=("cow", "horse"), seed=1),
    Sample(id="t1", prompt="a cat, a dog and a fox", entities=("cat", "dog", "fox"), seed=2),
]


def test_prepare_names_the_sample_entity_and_prompt(backbone):
    method = get_method("deleaker")
    method.prepare(backbone, SAMPLES)
    bad = Sample(id="bad7", prompt="a cowboy and a horse", entities=("cow", "horse"), seed=1)
    with pytest.raises(EntityNotFoundError, match="'bad7'.*'cow'.*'a cowboy and a horse'"):
        method.prepare(backbone, [*SAMPLES, bad])
    long = Sample(
        id="long1",
        prompt="a cow " + "and a field " * 200 + "and a horse",
        entities=("cow", "horse"),
        seed=1,
    )
    with pytest.raises(EntityNotFoundError, match="'long1'.*'horse'.*max_sequence_length=256"):
        method.prepare(backbone, [long])


def test_generate_batches_with_masks_and_overlays(backbone):
    import numpy as np

    method = get_method("deleaker", smoothing=False)
    outputs = method.generate(backbone, SAMPLES)
    vanilla = backbone.generate([s.prompt for s in SAMPLES], [s.seed for s in SAMPLES])
    assert len(outputs) == 2
    for sample, out, van in zip(SAMPLES, outputs, vanilla):
        assert set(out.extra["mask_tokens"]) == set(sample.entities)
        assert all(n > 0 for n in out.extra["mask_tokens"].values())
        assert out.extra["mask_grid"] == [16, 16]
        assert set(out.overlays) == set(sample.entities)
        assert all(o.size == out.image.size for o in out.overlays.values())
        assert not np.array_equal(np.asarray(out.image), np.asarray(van))
    single = method.generate(backbone, SAMPLES[1:])[0]
    assert np.array_equal(np.asarray(single.image), np.asarray(outputs[1].image))
    assert single.extra == outputs[1].extra


def test_save_mask_overlays(tmp_path):
    import numpy as np
    from PIL import Image

    from slim_leakage.methods.deleaker import mask_overlay, save_mask_overlays

    image = Image.new("RGB", (8, 4), (0, 0, 0))
    mask = np.zeros((2, 4), dtype=bool)
    mask[0, 0] = True
    over = np.asarray(mask_overlay(image, mask, (200, 100, 0), opacity=0.5))
    assert tuple(over[0, 0]) == (100, 50, 0) and tuple(over[3, 7]) == (0, 0, 0)
    assert over[:2, :2].any(-1).all() and not over[2:, :].any()  # nearest upscaling x2
    paths = save_mask_overlays({"blue jay": {0: ~mask, 3: mask}}, image, tmp_path, prefix="s1_")
    assert paths["blue jay"].name == "s1_blue_jay.png"
    saved = np.asarray(Image.open(paths["blue jay"]))
    assert saved[0, 0].any() and not saved[3, 7].any()  # the last step's mask was drawn
    with pytest.raises(ConfigError, match="step 5"):
        save_mask_overlays({"cow": {0: mask}}, image, tmp_path, step=5)
    with pytest.raises(ConfigError, match="2-D"):
        mask_overlay(image, np.zeros(4, dtype=bool))
