"""The one check of a run request: each question, and what the libraries may print."""

from __future__ import annotations

import logging

import pytest

from slim_leakage.errors import ConfigError, Problems
from slim_leakage.preflight import (
    Preflight,
    check_backbone_path,
    check_device,
    check_out_dir,
)


def test_problems_are_collected_and_raised_together():
    Preflight().finish()  # nothing found: nothing raised
    check = Preflight()
    assert check.attempt(lambda: 3) == 3
    assert check.attempt(check_device, "gpu") is None
    check.attempt(check_out_dir, __import__("pathlib").Path(__file__))
    with pytest.raises(Problems) as info:
        check.finish()
    assert str(info.value).splitlines()[0] == (
        "2 problems in this run request; nothing was started:"
    )
    one = Preflight()
    one.attempt(check_device, "gpu")
    with pytest.raises(ConfigError, match="'gpu' is not a device name"):
        one.finish()


@pytest.mark.parametrize("device", [None, "cpu", "cpu:0"])
def test_the_cpu_is_always_there(device):
    check_device(device)


# ids without "gpu": that word marks tests that need a GPU (conftest)
@pytest.mark.parametrize(
    "device", ["gpu", "cuda:", "CUDA", "cuda:-1", "meta", "cuda:0 "], ids=lambda d: f"[{d}]"
)
def test_a_device_name_torch_would_not_take_is_refused(device):
    with pytest.raises(ConfigError, match="is not a device name"):
        check_device(device)


def test_an_accelerator_the_machine_lacks_is_refused(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="'cuda:1': this machine has no cuda device"):
        check_device("cuda:1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    check_device("cuda:1")
    with pytest.raises(ConfigError, match="has 2 cuda device\\(s\\), numbered 0 to 1") as info:
        check_device("cuda:2")
    assert info.value.hint == "Use --device cuda:0 ... cuda:1."


def test_the_output_folder_must_be_new_a_run_or_a_stopped_start(tmp_path):
    check_out_dir(tmp_path / "new")
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text("{}")
    (run / "notes.txt").write_text("mine")
    check_out_dir(run)  # a run (resumed): its own business
    started = tmp_path / "started"
    (started / "shards").mkdir(parents=True)
    (started / ".lock").write_text("pid 1")
    check_out_dir(started)  # stopped before its manifest
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "metrics.json").write_text("my own file")
    with pytest.raises(ConfigError, match="already holds other files \\('metrics.json'\\)"):
        check_out_dir(mine)
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        check_out_dir(mine / "metrics.json")


def test_a_local_backbone_path_must_exist(tmp_path):
    check_backbone_path(None)
    check_backbone_path("black-forest-labs/FLUX.1-dev")  # a hub id: the loader's business
    check_backbone_path(str(tmp_path))
    for path in (str(tmp_path / "missing"), "./missing-weights", "~/missing-weights"):
        with pytest.raises(ConfigError, match="does not exist"):
            check_backbone_path(path)


def test_library_warnings_that_quote_a_prompt_become_one_note():
    pytest.importorskip("diffusers")
    from diffusers.utils import logging as diffusers_logging

    from slim_leakage.progress import library_output

    notes, printed = [], []

    class Keep(logging.Handler):
        def emit(self, record):
            printed.append(record.getMessage())

    root = diffusers_logging.get_logger()
    keep = Keep()
    root.addHandler(keep)
    pipeline = diffusers_logging.get_logger("diffusers.pipelines.flux.pipeline_flux")
    huge = "a cow " * 100_000
    try:
        with library_output(progress=True, note=notes.append):
            for _ in range(3):
                pipeline.warning(
                    "The following part of your input was truncated because CLIP can only "
                    f"handle sequences up to 77 tokens: {[huge]}"
                )
            pipeline.warning("something else")
        pipeline.warning("after")
    finally:
        root.removeHandler(keep)
    assert printed == ["something else", "after"]
    assert len(notes) == 1 and len(notes[0]) < 200
    assert "CLIP can only handle sequences up to 77 tokens" in notes[0]


def test_no_progress_turns_the_library_bars_off_and_back_on():
    pytest.importorskip("diffusers")
    from diffusers.utils import logging as diffusers_logging
    from huggingface_hub.utils import are_progress_bars_disabled

    from slim_leakage.progress import library_output

    assert diffusers_logging.is_progress_bar_enabled()
    with library_output(progress=False, note=print):
        assert not diffusers_logging.is_progress_bar_enabled()
        assert are_progress_bars_disabled()
    assert diffusers_logging.is_progress_bar_enabled() and not are_progress_bars_disabled()
    with library_output(progress=True, note=print):
        assert diffusers_logging.is_progress_bar_enabled()
