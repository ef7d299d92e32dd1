"""Each reliability check of ``benchmarks/reliability.py`` at a small count.

The benchmark prints the full figures (20 kills, 21 fault runs, 2000 fuzz cases); these tests run
the same code on a few cases so a regression shows up in the suite.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time

import pytest


def test_line_checker_sees_torn_and_broken_lines(bench, tmp_path):
    (tmp_path / "verdicts.jsonl").write_bytes(b'{"a": 1}\n{"a": ')
    (tmp_path / "generations.jsonl").write_bytes(b'{"a": 1}\nnot json\n')
    problems = bench.line_problems(tmp_path)
    assert "verdicts.jsonl: last line has no newline" in problems
    assert "generations.jsonl:2: not JSON" in problems


def test_kill_9_then_resume_loses_nothing(bench, workspace):
    # seed 4 draws "70 ms after the first verdict is appended": mid-judging, fixed every time
    rng = random.Random(4)
    row = bench.kill_trial(workspace, 900, rng)
    assert row["killed"], row
    assert row["verdicts_once"] and row["lines_whole"] and row["metrics_equal"], row
    assert row["survived"]


@pytest.mark.parametrize("kind", ["429", "wrong_schema", "max_tokens", "safety"])
def test_judge_faults_end_in_labels_or_counted_errors(bench, workspace, kind):
    row = bench.fault_run(workspace, kind, 0.3, seed=1)
    assert row["faults_injected"] > 0, row
    assert row["completed"], row["error"]
    assert row["labelled"] + row["judge_errors"] == workspace.n_samples
    assert row["labels_correct"] == row["labelled"]  # a fault never turns into a wrong label


FAST_BAD_INPUTS = {
    "unknown method",
    "unknown backbone",
    "method-arg typo",
    "backbone-arg typo",
    "entity absent from prompt",
    "empty prompt",
    "labels CSV not UTF-8",
    "entry NaN share",
    "entry huge number",
    "judge: generation path with ..",
    "report: image symlink leaving the run",
    "resume with other options (finished run kept)",
    "duplicate id, judge none (images overwritten before)",
    "ids that name one file (a slash and a dash)",
    "several bad lines at once",
    "run-config boolean for an integer",
    "judge server not reachable",
    "resume after a manifest judge edit (kept)",
    "resume after an unknown label mid-file (kept)",
    "agree: a reference run of other images",
}


def test_bad_inputs_get_one_clear_message(bench, workspace):
    figures = bench.check_bad_inputs(workspace, log=lambda msg: None, only=FAST_BAD_INPUTS)
    assert figures["bad_inputs_tried"] == len(FAST_BAD_INPUTS)
    assert [r for r in figures["bad_input_rows"] if not r["handled"]] == []
    assert figures["data_loss_cases"] == 0


def test_lost_work_sees_a_replaced_or_shared_image(bench, tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(b"second")
    rows = [
        {"role": "vanilla", "sample_id": "s1", "path": "images/a.png", "sha256": "1" * 64},
        {"role": "vanilla", "sample_id": "S1", "path": "images/a.png", "sha256": "2" * 64},
    ]
    (tmp_path / "generations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    lost = bench.lost_work(tmp_path)
    assert "images/a.png: written for 2 images" in lost
    assert "images/a.png: replaced" in lost and "images/a.png: overwritten" in lost
    assert bench.lost_work(tmp_path / "nothing") == []


def test_bad_input_judge_flags_a_generic_exception(bench):
    case = {"code": 1, "kind": "error", "names": ["x.csv"]}
    err = "error: UnicodeDecodeError: 'utf-8' codec can't decode byte 0xfc\nhint: run again\n"
    wrong = bench.judge_bad_input(case, 1, "", err)
    assert any("unexpected exception" in w for w in wrong)
    assert "message does not name 'x.csv'" in wrong
    good = "error: Labels file 'x.csv' is not UTF-8 text.\nhint: Save it as UTF-8.\n"
    assert bench.judge_bad_input(case, 1, "", good) == []


def test_no_secret_reaches_any_written_file(bench, workspace):
    figures = bench.check_secrets(workspace, log=lambda msg: None)
    assert figures["secrets_steps"] == {"run": 0, "submit": 0, "judge": 0, "report": 0}
    assert figures["secrets_files_scanned"] > 10
    assert figures["secrets_requests_with_key_header"] > 0  # the keys were really used
    assert figures["secrets_found"] == 0, figures["secrets_where"]


def test_secret_scanner_finds_plain_and_encoded_keys(bench, tmp_path):
    import base64

    (tmp_path / "plain.json").write_text(json.dumps({"k": bench.FAKE_ARG_KEY}))
    header = b"Authorization: Bearer " + bench.FAKE_OPENAI_KEY.encode()
    (tmp_path / "b64.txt").write_bytes(base64.b64encode(header))
    (tmp_path / "clean.txt").write_text("nothing here")
    scanned, where = bench.scan_for_secrets([tmp_path])
    assert scanned == 3
    assert sorted(w.split(":")[0].rsplit("/", 1)[1] for w in where) == ["b64.txt", "plain.json"]


def test_second_process_is_refused_and_records_stay_whole(bench, workspace):
    run = bench._finished_run(workspace, "locked")
    before = bench.tree_digest(run)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"f = open({str(run / '.lock')!r}, 'a+')\n"
            "fcntl.flock(f.fileno(), fcntl.LOCK_EX)\n"
            "f.seek(0); f.truncate(); f.write(f'pid {os.getpid()} on test'); f.flush()\n"
            "print('held', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        code, _, err = bench.cli(
            bench.run_argv(run, workspace.samples, workspace.url, workspace.path("lock-c")),
            env={"OPENAI_API_KEY": bench.FAKE_OPENAI_KEY},
        )
        assert time.monotonic() - t0 < 30  # refused at once, not after waiting
    finally:
        holder.kill()
        holder.wait()
    assert code == 1
    assert f"in use by pid {holder.pid}" in err and "hint:" in err
    assert bench.tree_digest(run) == before
    assert bench.line_problems(run) == []


def test_fuzzed_entries_never_crash_or_pass_changed_numbers(bench):
    figures = bench.check_fuzz(150, seed=1, log=lambda msg: None)
    assert figures["fuzz_cases"] == 150
    assert figures["fuzz_protected_changes"] > 30  # the strategy does reach the numbers
    assert figures["fuzz_crashes"] == 0, figures["fuzz_examples"]
    assert figures["fuzz_wrongly_accepted"] == 0, figures["fuzz_examples"]


def test_fuzz_oracle_marks_aggregate_and_verdict_changes(bench):
    entry, _, _ = bench.fuzz_base_entry(n=6)
    changed = json.loads(json.dumps(entry))
    changed["verdicts"][0]["order_flip"] = not changed["verdicts"][0]["order_flip"]
    assert bench._protected_change(entry, changed)
    renamed = json.loads(json.dumps(entry))
    renamed["name"] = "another name"
    assert not bench._protected_change(entry, renamed)
    as_float = json.loads(json.dumps(entry))
    as_float["metrics"]["n_samples"] = float(as_float["metrics"]["n_samples"])
    assert bench.same_json(entry["metrics"]["n_samples"], as_float["metrics"]["n_samples"])
