"""The shipped toy weights behind the `toy` backbone preset, and `slim-eval toy`."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("diffusers")

from slim_leakage.backbones import BACKBONES, load_backbone  # noqa: E402
from slim_leakage.errors import ModelNotFoundError  # noqa: E402
from slim_leakage.toy.backbone import WEIGHTS_DIR  # noqa: E402


def test_weights_ship_in_the_package_and_are_small():
    files = [p for p in WEIGHTS_DIR.rglob("*") if p.is_file()]
    assert (WEIGHTS_DIR / "model_index.json").is_file()
    assert sum(p.stat().st_size for p in files) <= 20 * 1024 * 1024


@pytest.fixture(scope="module")
def toy():
    return load_backbone("toy", device="cpu", num_inference_steps=4)


def test_preset_loads_with_flux_pipeline_and_generates(toy):
    from diffusers import FluxPipeline

    assert "toy" in BACKBONES.names()
    assert isinstance(toy.pipe, FluxPipeline) and toy.family == "flux"
    seen = []
    handle = toy.pipe.transformer.register_forward_pre_hook(
        lambda m, args, kwargs: seen.append(kwargs["hidden_states"].shape[1]), with_kwargs=True
    )
    a = toy.generate(["A tiger and a leopard", "A zebra"], [3, 4])
    handle.remove()
    b = toy.generate(["A zebra"], [4])
    assert a[0].size == (64, 64) and set(seen) == {256}  # a 16x16 token grid
    assert np.array_equal(np.asarray(a[1]), np.asarray(b[0]))  # per-image generators


def test_manifest_names_the_shipped_weights_and_their_digest(toy):
    from slim_leakage._io import sha256_folder
    from slim_leakage.toy.backbone import SHIPPED_ID

    d = toy.describe()
    assert d["model_id"] == SHIPPED_ID  # not the install path
    assert d["weights_sha256"] == sha256_folder(WEIGHTS_DIR)


def test_trained_model_draws_the_named_entity(toy):
    """A smoke check of training: a single-entity prompt gives a blob of the family colour."""
    from slim_leakage.toy.reading import read_image

    images = toy.generate(["A tiger"] * 4 + ["A trout"] * 4, list(range(8)), num_inference_steps=20)
    reads = [read_image(im, [n])[0] for im, n in zip(images, ["tiger"] * 4 + ["trout"] * 4)]
    assert sum(r.found for r in reads) >= 6
    # and in its own pattern (catches weights trained on another version of the world)
    assert sum(r.found and not r.control_fires for r in reads) >= 6


def test_loading_the_preset_raises_no_dtype_deprecation_warning():
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_backbone("toy", device="cpu")
    assert not [w for w in caught if "torch_dtype" in str(w.message)]


def test_bad_path_is_a_clear_error(tmp_path):
    with pytest.raises(ModelNotFoundError, match="model_index.json"):
        load_backbone("toy", path=str(tmp_path), device="cpu")


def test_cli_render(cli, tmp_path):
    code, out, _ = cli("toy", "render", "tiger", "okapi", "--out", str(tmp_path / "s.png"))
    assert code == 0 and "A tiger and an okapi" in out
    from PIL import Image

    assert Image.open(tmp_path / "s.png").size == (64, 64)
    code, _, err = cli("toy", "render", "cat", "--out", str(tmp_path / "c.png"))
    assert code == 2 and "Unknown toy entity 'cat'" in err


def test_measure_generation_structure(toy):
    """The in-generation measurement runs end to end on the shipped model (tiny sizes)."""
    from slim_leakage.toy.lab.measure import measure_generation

    r = measure_generation(toy.pipe, n_lookalike=2, n_mixed=1, n_single=2, steps=3, batch=3)
    assert r["n_images"] == 3
    assert r["vanilla_single"]["entities"] == 2
    assert r["vanilla"]["lookalike"]["entities"] == 4
    assert r["vanilla"]["mixed"]["entities"] == 2
    by_pattern = r["vanilla"]["lookalike"]["found_by_pattern"]
    assert sum(v["n"] for v in by_pattern.values()) == 4
    assert sum(v["k"] for v in by_pattern.values()) == r["vanilla"]["lookalike"]["found"]["k"]
    assert r["masks_without_edits_max_pixel_difference"] <= 2
    for key in ("masks_vanilla", "masks_vanilla_unsmoothed", "masks_deleaker"):
        assert set(r[key]) == {"lookalike", "mixed"}
    unsmoothed = [v for v in r["masks_vanilla_unsmoothed"].values() if v.get("n")]
    for v in unsmoothed:
        assert v["empty_masks"] <= v["n"]
        if v["own"] is not None:
            assert 0.0 <= v["own"] <= 1.0 and 0.0 <= v["other"] <= 1.0
            assert v["own"] + v["other"] <= 1.0 + 1e-9
