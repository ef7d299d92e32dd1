"""The pull-request check: a submission never travels with what decides trust."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "leaderboard" / "check_pr.py"


@pytest.fixture(scope="module")
def check_pr():
    spec = importlib.util.spec_from_file_location("slim_check_pr", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _entry(submitter):
    return json.dumps({"name": "x", "submitter": submitter})


def test_a_plain_submission_passes(check_pr):
    texts = {"leaderboard/entries/mine.json": _entry("alice")}
    assert check_pr.check([("A", "leaderboard/entries/mine.json")], new_text=texts.get) == []
    # two new entries of one submitter pass too
    texts["leaderboard/entries/mine-2.json"] = _entry("alice")
    changes = [("A", p) for p in texts]
    assert check_pr.check(changes, new_text=texts.get) == []


def test_a_maintainers_change_without_entries_passes(check_pr):
    changes = [
        ("M", "leaderboard/pinned.json"),
        ("M", "leaderboard/verification-key-ed25519.pub.pem"),
        ("A", "leaderboard/verifications/mine.json"),
    ]
    assert check_pr.check(changes) == []


@pytest.mark.parametrize(
    "path",
    [
        "leaderboard/verification-key-ed25519.pub.pem",
        "leaderboard/pinned.json",
        "src/slim_leakage/leaderboard/pinned.json",
        "leaderboard/verifications/other.json",
        "src/slim_leakage/leaderboard/verification.py",
        "scripts/anything.sh",
        "leaderboard/make_toy_entries.sh",
        "leaderboard/check_pr.py",
        "benchmarks/forgeries.py",
        "pyproject.toml",
        ".github/workflows/ci.yml",
    ],
)
def test_a_submission_with_a_protected_path_is_refused(check_pr, path):
    texts = {"leaderboard/entries/mine.json": _entry("alice")}
    changes = [("A", "leaderboard/entries/mine.json"), ("M", path)]
    reasons = check_pr.check(changes, new_text=texts.get)
    assert len(reasons) == 1 and reasons[0].startswith(f"{path}: a pull request that submits")


def test_editing_or_deleting_an_existing_entry_is_refused(check_pr):
    old = {"leaderboard/entries/theirs.json": _entry("bob")}
    new = {"leaderboard/entries/theirs.json": _entry("alice")}
    reasons = check_pr.check(
        [("M", "leaderboard/entries/theirs.json")], old_text=old.get, new_text=new.get
    )
    assert any("changes the entry's submitter ('bob' -> 'alice')" in r for r in reasons)
    assert any("changes an existing entry" in r for r in reasons)
    reasons = check_pr.check([("D", "leaderboard/entries/theirs.json")])
    assert reasons == ["leaderboard/entries/theirs.json: deletes an entry; only the maintainers "
                       "remove entries"]  # fmt: skip
    # another submitter's entry edited beside one's own submission
    texts = {"leaderboard/entries/mine.json": _entry("alice"), **new}
    changes = [("A", "leaderboard/entries/mine.json"), ("M", "leaderboard/entries/theirs.json")]
    reasons = check_pr.check(changes, old_text=old.get, new_text=texts.get)
    assert any("name 2 submitters" in r for r in reasons)


def test_the_script_reads_git_and_exits_1_on_refusal(tmp_path):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("config", "user.email", "t@example.invalid")
    git("config", "user.name", "t")
    (tmp_path / "leaderboard" / "entries").mkdir(parents=True)
    (tmp_path / "leaderboard" / "pinned.json").write_text("{}")
    git("add", ".")
    git("commit", "-q", "-m", "base", "--allow-empty")
    git("checkout", "-q", "-b", "pr")
    (tmp_path / "leaderboard" / "entries" / "mine.json").write_text(_entry("alice"))
    git("add", ".")
    git("commit", "-q", "-m", "submit")
    run = [sys.executable, str(SCRIPT), "--base", "main"]
    done = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("ok:"), done.stdout + done.stderr
    (tmp_path / "leaderboard" / "pinned.json").write_text('{"forged": true}')
    git("commit", "-q", "-am", "and the pins")
    done = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 1
    assert "refused: leaderboard/pinned.json: a pull request that submits entries" in done.stdout
