"""Verification history: rejections stick to an entry's file name and display name.

A record verifies one entry file's exact bytes. Were that all, a rejected entry could shed its
rejection by a one-byte edit (the record no longer applies: "unverified", a clean slate) or by
moving to a new file name. So every record carries the attempts before it (``history``, signed
with it), ``verify-entry`` gathers them from every record linked to the entry, and the check
shows an entry as "rejected earlier" when a linked record rejected an earlier version:

- linked are the record of the same entry file, and every record of an entry with the same
  display name (compared as :func:`.names.name_key` compares names) or the same submitter,
  method and method config (the same declaration: one submitter's two configs of a method are
  two entries);
- only records whose signature checks against the leaderboard's key count (a forger cannot
  invent a history, and cannot erase one without changing ``verifications/``, which a pull
  request review refuses).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .names import name_key
from .schema import check_structure
from .signing import check_signature
from .verification import RECORD_FILE_V2, KeyCheck, read_record, rejected_attempts


def attempt_summary(record: dict[str, Any]) -> dict[str, Any]:
    """One attempt as later records carry it (:data:`.verification.ATTEMPT`)."""
    return {
        "date": record["date"],
        "file": record["entry"]["file"],
        "sha256": record["entry"]["sha256"],
        "name": record["entry"]["name"],
        "verified": bool(record["decision"]["verified"]),
        "reasons": list(record["decision"]["reasons"])[:3],
    }


def signed_records(folder: str | Path, key: KeyCheck) -> list[dict[str, Any]]:
    """Every record in ``folder`` that is well formed and signed by the leaderboard's key."""
    folder = Path(folder)
    if key.key is None or not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob("*.json")):
        doc, _ = read_record(path)
        if doc is None or check_structure(doc, RECORD_FILE_V2, root="record file"):
            continue
        if check_signature(doc["record"], doc["signature"], key.key) is None:
            out.append(doc["record"])
    return out


def _linked(record: dict[str, Any], entry_file: str, entry: dict[str, Any]) -> bool:
    e = record["entry"]
    if e["file"] == entry_file or name_key(e["name"]) == name_key(entry["name"]):
        return True
    submitter = entry.get("submitter")
    return bool(submitter) and (
        name_key(e.get("submitter") or "") == name_key(submitter)
        and e["method"] == entry["method"]["name"]
        and record.get("reproduction", {}).get("method_config") == entry["method"]["config"]
    )


def prior_attempts(
    folder: str | Path, entry_file: str, entry: dict[str, Any], key: KeyCheck
) -> list[dict[str, Any]]:
    """The attempts linked to an entry, oldest first, without repeats (a new record's
    ``history``)."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for record in signed_records(folder, key):
        if not _linked(record, entry_file, entry):
            continue
        for attempt in [*record.get("history", []), attempt_summary(record)]:
            seen.setdefault((attempt["sha256"], attempt["date"]), attempt)
    return sorted(seen.values(), key=lambda a: a["date"])


def linked_rejections(
    folder: str | Path, entry_file: str, entry: dict[str, Any], key: KeyCheck, sha256: str
) -> tuple[list[dict[str, Any]], int]:
    """``(rejected attempts, attempts in all)`` linked to an entry (``sha256``: its bytes'
    hash; kept for callers that tell versions apart)."""
    rejected: dict[tuple[str, str], dict[str, Any]] = {}
    attempts: set[tuple[str, str]] = set()
    for record in signed_records(folder, key):
        if not _linked(record, entry_file, entry):
            continue
        for attempt in [*record.get("history", []), attempt_summary(record)]:
            attempts.add((attempt["sha256"], attempt["date"]))
        for attempt in rejected_attempts(record):  # the same bytes under a new file count too
            rejected.setdefault((attempt["sha256"], attempt["date"]), attempt)
    return sorted(rejected.values(), key=lambda a: a["date"]), len(attempts)
