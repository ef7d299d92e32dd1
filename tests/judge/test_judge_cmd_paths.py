"""`slim-eval judge RUN` never sends a file from outside the run to a judge API."""

import importlib

import pytest
from PIL import Image

from slim_leakage.errors import DatasetError, RunError
from slim_leakage.records import Generation, Sample


def _run_dir(tmp_path, vanilla_target):
    run = tmp_path / "run"
    (run / "images" / "m").mkdir(parents=True)
    sample = Sample(id="s1", prompt="a cow and a horse", entities=("cow", "horse"), seed=1)
    (run / "samples.jsonl").write_text(sample.to_json() + "\n")
    Image.new("RGB", (8, 8)).save(run / "images" / "m" / "s1.png")
    rows = [
        Generation(sample_id="s1", role="vanilla", method="vanilla", path=vanilla_target, sha256="0" * 64, seed=1, width=8, height=8),
        Generation(sample_id="s1", role="method", method="m", path="images/m/s1.png", sha256="0" * 64, seed=1, width=8, height=8),
    ]  # fmt: skip
    (run / "generations.jsonl").write_text("".join(g.to_json() + "\n" for g in rows))
    return run


def test_link_leading_out_of_the_run_is_refused(tmp_path):
    load_items = importlib.import_module("slim_leakage.cli.judge_cmd").load_items
    secret = tmp_path / "secret.png"
    Image.new("RGB", (8, 8)).save(secret)
    run = _run_dir(tmp_path, "images/vanilla/s1.png")
    (run / "images" / "vanilla").mkdir()
    (run / "images" / "vanilla" / "s1.png").symlink_to(secret)
    with pytest.raises(RunError, match="leads outside the run directory"):
        load_items(run, "m", None)


def test_dotdot_path_is_refused(tmp_path):
    load_items = importlib.import_module("slim_leakage.cli.judge_cmd").load_items
    Image.new("RGB", (8, 8)).save(tmp_path / "outside.png")
    run = _run_dir(tmp_path, "images/m/s1.png")
    gens = run / "generations.jsonl"  # an edited record, written around the record class
    gens.write_text(gens.read_text().replace('"images/m/s1.png"', '"../outside.png"', 1))
    with pytest.raises(DatasetError, match="not a path inside the run directory"):
        load_items(run, "m", None)


def test_files_inside_the_run_are_accepted(tmp_path):
    load_items = importlib.import_module("slim_leakage.cli.judge_cmd").load_items
    run = _run_dir(tmp_path, "images/m/s1.png")
    items = load_items(run, "m", None)
    assert items[0].vanilla_image == run / "images" / "m" / "s1.png"
