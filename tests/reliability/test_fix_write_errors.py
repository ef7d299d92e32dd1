"""Regression test: run.py / cli: a full or read-only disk is one clear message."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from slim_leakage.errors import (
    OutputWriteError,
    RunError,
)


# -- run.py / cli: a full or read-only disk is one clear message ---------------------------------
@pytest.mark.parametrize(
    ("number", "hint_word"), [(errno.ENOSPC, "disk space"), (errno.EROFS, "writable")]
)
def test_write_failure_names_the_folder_and_the_fix(
    tmp_path, cli, monkeypatch, number, hint_word, run_args
):
    def full(self):
        raise OSError(number, os.strerror(number))

    monkeypatch.setattr("slim_leakage.run.Run._execute", full)
    code, _, err = cli(*run_args())
    assert code == 1
    assert "Traceback" not in err
    assert f"error: Cannot write {tmp_path / 'out'}: {os.strerror(number)}." in err
    assert hint_word in err


def test_write_error_is_also_an_oserror():
    from slim_leakage.rundir import write_error

    exc = write_error("/x/y", OSError(errno.ENOSPC, "No space left on device"))
    assert isinstance(exc, OutputWriteError) and isinstance(exc, OSError)
    assert isinstance(exc, RunError) and exc.exit_code == 1


def test_lock_in_an_unwritable_folder_is_a_write_error(tmp_path, monkeypatch):
    from slim_leakage.rundir import RunLock

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "r"))

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(OutputWriteError, match="Cannot write") as info:
        RunLock(tmp_path / "r" / ".lock").__enter__()
    assert "writable" in info.value.hint


def test_other_os_errors_get_one_line_naming_the_file(tmp_path, cli):
    from slim_leakage.records import Sample
    from slim_leakage.rundir import RunDir

    run = tmp_path / "run"
    sample = Sample(id="s1", prompt="a cow and a horse", entities=("cow", "horse"), seed=1)
    RunDir(run).open_manifest({"m": 1}, samples=[sample], describe=lambda: {})
    (run / "metrics.json").mkdir(parents=True)  # a folder where a file should be
    code, _, err = cli("report", str(run))
    assert code == 1
    assert "Traceback" not in err
    assert err.startswith(f"error: cannot access {run / 'metrics.json'}: ")
    assert "hint:" in err
