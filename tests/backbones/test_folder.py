"""``--backbone images``: a round trip through an "external" generator and a folder of files.

The toy model stands in for a hosted model: it draws every row of the exported prompts file,
the images are saved as files, and a vanilla run on the folder must measure exactly what a
vanilla run on the toy model measures.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("diffusers")

from slim_leakage.backbones import load_backbone  # noqa: E402
from slim_leakage.backbones.folder import export_rows, find_image  # noqa: E402
from slim_leakage.cli.main import main  # noqa: E402
from slim_leakage.errors import ConfigError, DatasetError, ModelNotFoundError  # noqa: E402
from slim_leakage.run import RunConfig, evaluate  # noqa: E402
from slim_leakage.slim import load_samples  # noqa: E402

LIMIT = 3


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """The exported prompts and the toy model's image of every row, as files."""
    folder = tmp_path_factory.mktemp("external")
    code = main(
        [
            "dataset",
            "export-prompts",
            "--config",
            "toy-pairs",
            "--limit",
            str(LIMIT),
            "--width",
            "64",
            "--height",
            "64",
            "--out",
            str(folder / "prompts.jsonl"),
        ]
    )
    assert code == 0
    rows = [json.loads(line) for line in (folder / "prompts.jsonl").read_text().splitlines()]
    toy = load_backbone("toy", device="cpu")
    for row in rows:
        (image,) = toy.generate([row["prompt"]], [row["seed"]])
        image.save(folder / f"{row['id']}.png")
    return folder, rows


def _config(out, **kw):
    base = dict(
        out=str(out),
        method="vanilla",
        judge="oracle",
        config="toy-pairs",
        limit=LIMIT,
        image_metrics=(),
        report=False,
        progress=False,
        device="cpu",
    )
    return RunConfig(**{**base, **kw})


def test_export_rows_name_every_image_the_run_asks_for(folder):
    _, rows = folder
    samples = load_samples("toy-pairs", limit=LIMIT)
    assert rows == export_rows(samples, width=64, height=64)
    assert [r["id"] for r in rows[:LIMIT]] == [s.id for s in samples]
    refs = rows[LIMIT:]
    assert {r["entity"] for r in refs} == {e for s in samples for e in s.entities}
    assert all(r["seed"] == 0 and r["prompt"].startswith(("a ", "an ")) for r in refs)


def test_a_folder_run_measures_what_the_generator_run_measures(folder, tmp_path):
    path, _ = folder
    on_folder = evaluate(
        _config(
            tmp_path / "f",
            backbone="images",
            backbone_args={"folder": str(path), "label": "toy via files"},
        )
    )
    on_model = evaluate(_config(tmp_path / "m", backbone="toy"))
    assert on_folder["leakage"]["vanilla"] == on_model["leakage"]["vanilla"]
    from slim_leakage.rundir import load_run

    manifest = load_run(tmp_path / "f").manifest["backbone"]
    assert manifest["name"] == "images" and manifest["label"] == "toy via files"
    assert manifest["folder"] == str(path) and len(manifest["prompts_sha256"]) == 64


def test_every_image_is_checked_when_the_backbone_loads(folder, tmp_path):
    path, rows = folder
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "prompts.jsonl").write_text((path / "prompts.jsonl").read_text())
    for row in rows[1:]:
        (broken / f"{row['id']}.png").write_bytes((path / f"{row['id']}.png").read_bytes())
    with pytest.raises(DatasetError, match=f"{rows[0]['id']}.*missing"):
        load_backbone("images", folder=str(broken))
    from PIL import Image

    Image.new("RGB", (32, 32)).save(broken / f"{rows[0]['id']}.png")
    with pytest.raises(DatasetError, match="32x32, but prompts.jsonl asks for 64x64"):
        load_backbone("images", folder=str(broken))
    backbone = load_backbone("images", folder=str(broken), resize="true")
    assert backbone.generate([rows[0]["prompt"]], [rows[0]["seed"]])[0].size == (64, 64)
    with pytest.raises(DatasetError, match="no image for prompt 'a cat on the moon'"):
        backbone.generate(["a cat on the moon"], [1])
    Image.new("RGB", (64, 64)).save(broken / f"{rows[0]['id']}_{rows[0]['seed']}.jpg")
    assert find_image(broken, rows[0]["id"], rows[0]["seed"]).suffix == ".jpg"


def test_argument_errors(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no prompts file"):
        load_backbone("images", folder=str(tmp_path))
    with pytest.raises(ConfigError, match="generation setting"):
        load_backbone("images", folder=str(tmp_path), num_inference_steps=4)
    with pytest.raises(ConfigError, match="does not exist"):
        load_backbone("images", folder=str(tmp_path / "nope"))


def test_methods_that_need_a_generator_are_refused(folder, tmp_path):
    path, _ = folder
    with pytest.raises(ConfigError, match="family 'images'"):
        evaluate(
            _config(
                tmp_path / "d",
                method="deleaker",
                backbone="images",
                backbone_args={"folder": str(path)},
            )
        )
