#!/usr/bin/env python3
"""Refuse a pull request that mixes a leaderboard submission with anything that decides trust.

A submission adds entry files to ``leaderboard/entries/``. The trust of every badge rests on
files a submission must never touch: the public key, ``pinned.json`` (both copies), the
verification records, the package's code, the scripts, and other submitters' entries. This
check lists the files a pull request changes (``git diff --name-status BASE...HEAD``) and
refuses it, one line per reason, when

- it changes an entry it does not add (an existing entry is the submitter's only through a new
  file; a verified or rejected one is never edited), or deletes one, and also changes a
  protected path; or
- it adds or changes an entry together with any protected path (the key, ``pinned.json``,
  ``verifications/``, ``src/``, ``benchmarks/``, ``scripts/``, ``leaderboard/*.sh``,
  ``leaderboard/*.py``, ``pyproject.toml``, CI configuration); or
- the entries it touches name more than one submitter, or it edits an entry whose submitter
  differs from the one it adds.

Maintainers' pull requests (new records, a rotated key) change no entry and pass. Exit 0: the
pull request may be reviewed as a submission or as a maintainers' change; exit 1: refused.

Usage: python leaderboard/check_pr.py [--base origin/main] [--head HEAD]
       python leaderboard/check_pr.py --changes FILE   (lines "A<TAB>path", as git prints them)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ENTRIES = "leaderboard/entries/"
#: Paths (prefixes) a submission may never touch, with what they decide.
PROTECTED = (
    ("leaderboard/verification-key", "the leaderboard's public key"),
    ("leaderboard/pinned.json", "the pinned judges and key fingerprint"),
    ("src/slim_leakage/leaderboard/pinned.json", "the shipped pinned judges"),
    ("leaderboard/verifications/", "the maintainers' signed records"),
    ("leaderboard/schema/", "the entry schemas"),
    ("leaderboard/check_pr.py", "this check"),
    ("leaderboard/make_toy_entries.sh", "the maintainers' script"),
    ("src/", "the package's code"),
    ("benchmarks/", "the benchmarks"),
    ("scripts/", "the scripts"),
    ("tests/", "the tests"),
    ("pyproject.toml", "the package's dependencies"),
    (".github/", "the CI configuration"),
    (".gitlab-ci.yml", "the CI configuration"),
)


def protected(path: str) -> str | None:
    """What a protected path decides (``None``: not protected)."""
    for prefix, what in PROTECTED:
        if path == prefix or path.startswith(prefix):
            return what
    return None


def _submitter(text: str | None) -> str | None:
    try:
        doc = json.loads(text or "")
    except ValueError:
        return None
    return doc.get("submitter") if isinstance(doc, dict) else None


def check(
    changes: list[tuple[str, str]],
    *,
    old_text=lambda path: None,
    new_text=lambda path: None,
) -> list[str]:
    """Why the pull request is refused (empty: it is not).

    Args:
        changes: ``(status, path)`` pairs as ``git diff --name-status`` gives them (``A``
            added, ``M`` modified, ``D`` deleted, ``R...`` renamed: the new path).
        old_text: The text of a path before the pull request (for an edited entry's
            submitter), or ``None``.
        new_text: The text of a path after it, or ``None``.
    """
    entries = [(s[0], p) for s, p in changes if p.startswith(ENTRIES)]
    if not entries:
        return []
    reasons = []
    for _status, path in changes:
        what = protected(path)
        if what:
            reasons.append(
                f"{path}: a pull request that submits entries may not change {what}; send "
                "it as a separate pull request"
            )
    added = {p for s, p in entries if s == "A"}
    submitters = {_submitter(new_text(p)) for p in added}
    for status, path in entries:
        if status == "A":
            continue
        if status == "D":
            reasons.append(f"{path}: deletes an entry; only the maintainers remove entries")
            continue
        if not path.endswith(".json") or status.startswith("R"):
            reasons.append(f"{path}: renames or adds a non-entry file under entries/")
            continue
        before, after = _submitter(old_text(path)), _submitter(new_text(path))
        if before != after:
            reasons.append(f"{path}: changes the entry's submitter ({before!r} -> {after!r})")
        submitters.add(before)
        reasons.append(
            f"{path}: changes an existing entry; submit a new entry file instead (a record "
            "binds the old one's name and bytes, and its history stays)"
        )
    if len(submitters) > 1:
        reasons.append(
            f"the entries touched name {len(submitters)} submitters "
            f"({', '.join(sorted(map(str, submitters)))}); one submitter per pull request"
        )
    return reasons


def _git(*args: str) -> str | None:
    out = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
    return out.stdout if out.returncode == 0 else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="origin/main", help="the branch the PR goes into")
    parser.add_argument("--head", default="HEAD", help="the PR's head")
    parser.add_argument("--changes", type=Path, help="a file of 'STATUS<TAB>PATH' lines")
    args = parser.parse_args(argv)
    if args.changes:
        lines = args.changes.read_text().splitlines()
        old = new = lambda path: None  # noqa: E731
    else:
        diff = _git("diff", "--name-status", f"{args.base}...{args.head}")
        if diff is None:
            print(f"check_pr: cannot diff {args.base}...{args.head}", file=sys.stderr)
            return 2
        lines = diff.splitlines()

        def old(path: str) -> str | None:
            return _git("show", f"{args.base}:{path}")

        def new(path: str) -> str | None:
            return _git("show", f"{args.head}:{path}")

    changes = []
    for line in lines:
        parts = line.split("\t")
        if len(parts) >= 2:
            changes.append((parts[0], parts[-1]))
    reasons = check(changes, old_text=old, new_text=new)
    for reason in reasons:
        print(f"refused: {reason}")
    if not reasons:
        print(f"ok: {len(changes)} changed path(s); no submission mixed with protected paths")
    return 1 if reasons else 0


if __name__ == "__main__":
    sys.exit(main())
