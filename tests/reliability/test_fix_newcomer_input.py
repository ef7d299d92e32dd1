"""Regression tests: a newcomer's mistakes are refused before any work, one line each.

Every case here used to overwrite images, run the wrong samples, or fail only after the
weights loaded. Each must now exit before a run directory exists or a backbone loads.
"""

from __future__ import annotations

import json
import socket

import pytest

ROW = {"prompt": "a cow and a horse", "entities": ["cow", "horse"], "seed": 1}


def _samples(tmp_path, *rows, name="mine.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _run(tmp_path, samples, *extra):
    return [
        "run", "--method", "vanilla", "--backbone", "tiny-random", "--config", str(samples),
        "--out", str(tmp_path / "out"), "--no-progress", "--image-metrics", "none", *extra,
    ]  # fmt: skip


def _refused(tmp_path, cli, argv, code):
    got, _, err = cli(*argv)
    assert got == code, err
    assert "hint:" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
    return err


@pytest.mark.parametrize("judge", [("--judge", "none"), ()])
def test_two_rows_with_one_id_are_refused_before_anything_is_drawn(
    tmp_path, cli, no_weights, judge
):
    samples = _samples(tmp_path, {"id": "s1", **ROW}, {"id": "s1", **ROW, "seed": 2})
    # with the default judge (the toy oracle) on tiny-random's noise and non-toy words, the
    # same refusal lists those problems too, as usage errors (exit 2)
    err = _refused(tmp_path, cli, _run(tmp_path, samples, *judge), 1 if judge else 2)
    assert f"{samples}:1, {samples}:2: the sample id 's1' is used 2 times." in err
    assert judge or "cannot judge images of --backbone tiny-random" in err


def test_ids_that_name_one_file_are_refused(tmp_path, cli, no_weights):
    samples = _samples(tmp_path, {"id": "a-b", **ROW}, {"id": "A_b", **ROW}, {"id": "a/c", **ROW})
    err = _refused(tmp_path, cli, _run(tmp_path, samples, "--judge", "none"), 1)
    assert "2 problems in this run request; nothing was started:" in err
    assert f"{samples}:1 and {samples}:2: the sample ids 'a-b' and 'A_b' both name" in err
    assert f"{samples}:3: the sample id 'a/c' has the character(s) '/'" in err


@pytest.mark.parametrize(
    ("ids", "named"),
    [
        (",, ,", "--ids ',, ,' names no sample id"),
        ("@empty", "names no sample id (it is empty)"),
        ("@latin", "latin.txt:2 is not UTF-8 text"),
        ("@folder", "is a folder"),
    ],
)
def test_an_empty_or_unreadable_selection_is_refused(tmp_path, cli, no_weights, ids, named):
    (tmp_path / "empty.txt").write_text("\n  \n")
    (tmp_path / "latin.txt").write_bytes(b"s1\nj\xfcrgen\n")
    (tmp_path / "folder").mkdir()
    files = {"@empty": "empty.txt", "@latin": "latin.txt", "@folder": "folder"}
    if ids in files:
        ids = "@" + str(tmp_path / files[ids])
    samples = _samples(tmp_path, {"id": "s1", **ROW})
    err = _refused(tmp_path, cli, _run(tmp_path, samples, "--judge", "none", "--ids", ids), 2)
    assert named in err


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"batch_size": 2.5}, "batch_size=2.5 is a number with a fraction"),
        ({"limit": True}, "limit=True is a boolean"),
        ({"method_args": "x=1"}, "method_args='x=1' is a text"),
        ({"ids": []}, "The selection of sample ids is empty"),
        ([1, 2], "must hold a JSON object, not list"),
    ],
)
def test_run_config_files_with_values_of_the_wrong_type(tmp_path, cli, no_weights, options, named):
    config = tmp_path / "run.json"
    config.write_text(json.dumps(options))
    samples = _samples(tmp_path, {"id": "s1", **ROW})
    argv = _run(tmp_path, samples, "--judge", "none", "--run-config", str(config))
    assert named in _refused(tmp_path, cli, argv, 2)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"seed": 1.5}, ":1: Sample field 'seed' is a number with a fraction"),
        ({"seed": -3}, ":1: Sample 's1': seed -3 is outside 0"),
        ({"entities": "cow and horse"}, ":1: Sample field 'entities' is a text"),
        ({"id": ""}, ":1: A sample has the id ''"),
    ],
)
def test_samples_of_the_wrong_type_name_their_line(tmp_path, cli, no_weights, change, named):
    samples = _samples(tmp_path, {"id": "s1", **ROW, **change})
    err = _refused(tmp_path, cli, _run(tmp_path, samples, "--judge", "none"), 1)
    assert f"{samples}{named}" in err


def test_devices_paths_and_judges_are_checked_before_the_weights(tmp_path, cli, no_weights):
    samples = _samples(tmp_path, {"id": "s1", **ROW})
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once released
    argv = _run(
        tmp_path, samples, "--device", "gpu:0", "--backbone-path", "./no-such-weights",
        "--judge", "openai-compatible", "--judge-arg", f"base_url=http://127.0.0.1:{port}/v1",
        "--judge-arg", f"cache_dir={tmp_path / 'cache'}",
    )  # fmt: skip
    err = _refused(tmp_path, cli, argv, 2)
    assert "3 problems in this run request" in err
    assert "--device 'gpu:0' is not a device name" in err
    assert "--backbone-path './no-such-weights' does not exist" in err
    assert f"server at 127.0.0.1:{port} cannot be reached" in err


def test_an_unreachable_judge_alone_is_a_failure_not_a_usage_error(tmp_path, cli, no_weights):
    samples = _samples(tmp_path, {"id": "s1", **ROW})
    argv = _run(tmp_path, samples, "--judge", "openai-compatible", "--judge-arg",
                "base_url=http://127.0.0.1:9/v1")  # fmt: skip
    assert "127.0.0.1:9 cannot be reached" in _refused(tmp_path, cli, argv, 1)


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (("--judge", "oracle", "--judge-arg", "model=gpt-4o"), "has no model choice"),
        (("--judge", "none", "--judge-arg", "model=x"), "but the judge is 'none'"),
    ],
)
def test_judge_options_that_cannot_apply_are_refused(tmp_path, cli, no_weights, extra, named):
    samples = _samples(tmp_path, {"id": "s1", **ROW})
    assert named in _refused(tmp_path, cli, _run(tmp_path, samples, *extra), 2)


def test_an_output_folder_of_other_files_is_left_alone(tmp_path, cli, no_weights):
    samples = _samples(tmp_path, {"id": "s1", **ROW})
    mine = tmp_path / "out"
    mine.mkdir()
    (mine / "report.html").write_text("my own report")
    code, _, err = cli(*_run(tmp_path, samples, "--judge", "none"))
    assert code == 2 and "already holds other files ('report.html')" in err
    assert [p.name for p in mine.iterdir()] == ["report.html"]
    assert (mine / "report.html").read_text() == "my own report"
