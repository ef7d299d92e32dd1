"""The image-folder method: lookup by sample id (and seed), and clear errors for bad folders."""

from __future__ import annotations

import types

import numpy as np
import pytest
from PIL import Image

from slim_leakage.errors import ConfigError, DatasetError
from slim_leakage.methods import get_method
from slim_leakage.records import Sample

S1 = Sample(id="s1", prompt="a cow and a horse", entities=("cow", "horse"), seed=11)
S2 = Sample(id="s2", prompt="a cat and a dog", entities=("cat", "dog"), seed=12)


def _backbone(width=16, height=16):
    settings = types.SimpleNamespace(width=width, height=height)
    return types.SimpleNamespace(name="fake", family="flux", settings=settings)


def _save(path, color, size=(16, 16), mode="RGB"):
    Image.new(mode, size, color).save(path)


def test_reads_images_by_id_and_by_id_and_seed(tmp_path):
    _save(tmp_path / "s1.png", (255, 0, 0))
    _save(tmp_path / "s2_12.jpg", (0, 0, 255))
    method = get_method("images", folder=str(tmp_path), label="3dis")
    method.prepare(_backbone(), [S1, S2])
    out = method.generate(_backbone(), [S1, S2])
    assert np.asarray(out[0].image)[0, 0].tolist() == [255, 0, 0]
    assert np.asarray(out[1].image)[0, 0, 2] > 200
    assert out[0].extra["source"].endswith("s1.png")
    assert out[0].extra["external_method"] == "3dis"
    assert len(out[0].extra["source_sha256"]) == 64


def test_image_with_the_seed_wins_over_a_plain_one(tmp_path):
    _save(tmp_path / "s1.png", (255, 0, 0))
    _save(tmp_path / "s1_11.png", (0, 255, 0))
    out = get_method("images", folder=str(tmp_path)).generate(_backbone(), [S1])
    assert np.asarray(out[0].image)[0, 0].tolist() == [0, 255, 0]


def test_greyscale_and_rgba_images_become_rgb(tmp_path):
    _save(tmp_path / "s1.png", 128, mode="L")
    _save(tmp_path / "s2.png", (1, 2, 3, 4), mode="RGBA")
    out = get_method("images", folder=str(tmp_path)).generate(_backbone(), [S1, S2])
    assert all(o.image.mode == "RGB" for o in out)


def test_missing_image_names_the_sample_before_anything_runs(tmp_path):
    _save(tmp_path / "s1.png", (255, 0, 0))
    method = get_method("images", folder=str(tmp_path))
    with pytest.raises(DatasetError, match=r"'s2' \(seed 12\) has no image") as info:
        method.prepare(_backbone(), [S1, S2])
    assert "s2.png" in info.value.hint


def test_mis_sized_image_is_an_error_unless_resize(tmp_path):
    _save(tmp_path / "s1.png", (255, 0, 0), size=(20, 16))
    with pytest.raises(DatasetError, match=r"'s1'.*20x16.*16x16"):
        get_method("images", folder=str(tmp_path)).prepare(_backbone(), [S1])
    out = get_method("images", folder=str(tmp_path), resize=True).generate(_backbone(), [S1])
    assert out[0].image.size == (16, 16)


def test_ambiguous_and_unreadable_images_are_errors(tmp_path):
    _save(tmp_path / "s1.png", (255, 0, 0))
    _save(tmp_path / "s1.jpg", (255, 0, 0))
    with pytest.raises(DatasetError, match="several images"):
        get_method("images", folder=str(tmp_path)).prepare(_backbone(), [S1])
    (tmp_path / "s2.png").write_bytes(b"not an image")
    with pytest.raises(DatasetError, match=r"'s2': cannot read"):
        get_method("images", folder=str(tmp_path)).generate(_backbone(), [S2])


def test_folder_is_required_and_must_exist(tmp_path):
    with pytest.raises(ConfigError, match="needs folder=PATH"):
        get_method("images")
    with pytest.raises(ConfigError, match="does not exist"):
        get_method("images", folder=str(tmp_path / "nope")).prepare(_backbone(), [S1])


def test_missing_folder_is_refused_with_the_options():
    from slim_leakage.errors import ConfigError
    from slim_leakage.methods import get_method

    with pytest.raises(ConfigError, match="'/no/such/folder' does not exist"):
        get_method("images", folder="/no/such/folder")
