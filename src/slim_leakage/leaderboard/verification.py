"""Verification records: the maintainers' signed re-judge of one entry, and their check.

An entry is *verified* only by a record in ``leaderboard/verifications/<entry>.json`` that
``slim-eval verify-entry`` wrote (:mod:`.rejudge`) and signed with the maintainers' Ed25519 key
(:mod:`.signing`). :func:`check_record` accepts a record only when its signature checks against
the leaderboard's public key (itself pinned by fingerprint in ``pinned.json``), the SHA-256 it
names is the entry file's, byte for byte, the judge it used is the one pinned now for the
entry's dataset family, and its decision is "verified". Nothing an entry says about itself
counts.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from .._io import sha256_bytes
from ..errors import ValidationError
from .pinned import Pinned
from .schema import (
    BOOL,
    FLOAT,
    INT,
    OPT_FLOAT,
    OPT_INT,
    OPT_STR,
    STR,
    T,
    check_structure,
    obj,
)
from .signing import check_signature, load_public_key, public_key_sha256, sign

#: The value of a record's ``schema`` field.
RECORD_SCHEMA = "slim-leakage/verification-record"
#: The record version ``verify-entry`` writes (2: the images were regenerated; a version 1
#: record only re-judged submitted images and verifies nothing any more).
RECORD_VERSION = 2
#: Largest record file read.
MAX_RECORD_BYTES = 16 * 1024 * 1024
#: Folder of the records inside the leaderboard folder.
RECORDS_FOLDER = "verifications"

_OPT_BOOL = T("bool", nullable=True)
_SHARE_CHECK = obj(
    entry=(OPT_FLOAT, True),
    rejudged=(OPT_FLOAT, True),
    interval=(T("list", nullable=True, item=FLOAT), True),
    inside=(_OPT_BOOL, True),
)

#: One earlier verification attempt, as a later record carries it (so a rejection sticks).
ATTEMPT = obj(
    date=(STR, True),
    file=(STR, True),
    sha256=(STR, True),
    name=(STR, True),
    verified=(BOOL, True),
    reasons=(T("list", item=STR), True),
)

#: The record (the signed part of a record file).
RECORD_V2 = obj(
    schema=(STR, True),
    schema_version=(INT, True),
    entry=(
        obj(
            file=(STR, True),
            sha256=(STR, True),
            name=(STR, True),
            submitter=(OPT_STR, True),
            method=(STR, True),
            dataset_config=(STR, True),
            schema_version=(INT, True),
        ),
        True,
    ),
    judge=(
        obj(
            family=(STR, True),
            backend=(STR, True),
            model_id=(OPT_STR, True),
            served_model_id=(OPT_STR, True),
            prompt_versions=(T("map", item=STR), True),
            deterministic=(BOOL, True),
        ),
        True,
    ),
    date=(STR, True),
    package=(obj(version=(STR, True), git_commit=(OPT_STR, True)), True),
    source=(obj(dirty=(_OPT_BOOL, True)), True),
    images=(obj(run=(STR, True), checked=(INT, True)), True),
    reproduction=(
        obj(
            method=(STR, True),
            method_config=(T("any"), True),
            backbone=(STR, True),
            dataset_config=(STR, True),
            dataset_fingerprint=(OPT_STR, True),
            judged=(STR, True),
            tolerance=(STR, True),
            compared=(INT, True),
            identical=(INT, True),
            matching=(INT, True),
            mismatched_samples=(T("list", item=STR), True),
        ),
        True,
    ),
    sampling=(
        obj(
            mode=(STR, True),
            size=(INT, True),
            seed=(OPT_INT, True),
            rule=(STR, True),
            sample_ids=(T("list", item=STR), True),
            seed_signature=(OPT_STR, True),
        ),
        True,
    ),
    samples=(
        T(
            "list",
            item=obj(
                sample_id=(STR, True),
                entry_label=(OPT_STR, True),
                entry_error=(OPT_STR, True),
                entry_order_flip=(BOOL, True),
                label=(OPT_STR, True),
                error=(OPT_STR, True),
                order_flip=(BOOL, True),
                second_label=(OPT_STR, False),
                agree=(_OPT_BOOL, True),
                vanilla_match=(BOOL, True),
                method_match=(BOOL, True),
            ),
        ),
        True,
    ),
    agreement=(
        obj(
            compared=(INT, True),
            agreed=(INT, True),
            share=(OPT_FLOAT, True),
            threshold=(FLOAT, True),
            rule=(STR, True),
            self_agreement=(
                obj(
                    nullable=True, compared=(INT, True), agreed=(INT, True), share=(OPT_FLOAT, True)
                ),
                True,
            ),
        ),
        True,
    ),
    distribution=(
        obj(
            counts=(T("map", item=INT), True),
            bootstrap=(obj(n_boot=(INT, True), seed=(INT, True)), True),
            mitigation=(_SHARE_CHECK, True),
            degradation=(_SHARE_CHECK, True),
        ),
        True,
    ),
    # the entry's single-image leak flags checked on the regenerated images (models table)
    leak_flags=(
        obj(
            nullable=True,
            compared=(INT, True),
            agreed=(INT, True),
            share=(OPT_FLOAT, True),
            differing=(T("list", item=STR), True),
            threshold=(FLOAT, True),
        ),
        False,
    ),
    judge_errors=(
        obj(
            entry=(INT, True),
            n_samples=(INT, True),
            rate=(FLOAT, True),
            limit=(FLOAT, True),
            rejudged=(INT, True),
        ),
        True,
    ),
    image_metrics=(T("any"), True),
    decision=(obj(verified=(BOOL, True), reasons=(T("list", item=STR), True)), True),
    history=(T("list", item=ATTEMPT), True),
    attempt=(INT, True),
)

#: A record file: the record and its signature.
RECORD_FILE_V2 = obj(
    record=(RECORD_V2, True),
    signature=(obj(algorithm=(STR, True), public_key_sha256=(STR, True), value=(STR, True)), True),
)


@dataclasses.dataclass(frozen=True)
class Verification:
    """Whether one entry is verified, and why (not).

    Attributes:
        status: ``verified`` (a valid record says so), ``rejected`` (a valid record says the
            re-judge did not reproduce the entry) or ``unverified`` (no valid record).
        reasons: Why the status is what it is (empty when verified).
        record: The record when its signature and hash checked, else ``None``.
    """

    status: str
    reasons: tuple[str, ...] = ()
    record: dict[str, Any] | None = None

    @property
    def verified(self) -> bool:
        """The status is ``verified``."""
        return self.status == "verified"

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form (without the record)."""
        return {"status": self.status, "reasons": list(self.reasons)}


def record_path(entry_path: str | Path, records: str | Path | None = None) -> Path:
    """Where the record of an entry file lives.

    Args:
        entry_path: The entry file (``leaderboard/entries/x.json``).
        records: The records folder; by default ``verifications/`` beside the entry's folder.
    """
    entry_path = Path(entry_path)
    folder = Path(records) if records is not None else entry_path.parent.parent / RECORDS_FOLDER
    return folder / entry_path.name


def default_public_key(entry_path: str | Path, pinned: Pinned) -> Path:
    """The public key file of the leaderboard folder an entry file sits in."""
    return Path(entry_path).parent.parent / pinned.key_file


@dataclasses.dataclass
class KeyCheck:
    """The leaderboard's public key, loaded once, or why it cannot be used.

    Attributes:
        key: The Ed25519 public key, or ``None``.
        problem: Why there is no usable key (missing file, not the pinned fingerprint).
    """

    key: Any = None
    problem: str | None = None


def load_checked_key(path: str | Path, pinned: Pinned) -> KeyCheck:
    """Load the public key at ``path`` and compare its fingerprint with ``pinned.json``'s."""
    try:
        key = load_public_key(path)
    except ValidationError as exc:
        return KeyCheck(problem=exc.message)
    digest = public_key_sha256(key)
    if digest != pinned.key_sha256:
        return KeyCheck(
            problem=(
                f"the public key {str(path)!r} has fingerprint {digest[:16]}..., pinned.json pins "
                f"{pinned.key_sha256[:16]}..."
            )
        )
    return KeyCheck(key=key)


def read_record(path: str | Path) -> tuple[Any, str | None]:
    """``(parsed JSON, None)``, or ``(None, why)`` when the file is missing or not JSON."""
    from .strictjson import loads_strict

    path = Path(path)
    if not path.is_file():
        return None, f"no verification record ({path.parent.name}/{path.name})"
    try:
        if path.stat().st_size > MAX_RECORD_BYTES:
            return None, f"the verification record {path.name} is above {MAX_RECORD_BYTES} bytes"
        return loads_strict(path.read_bytes(), where=f"the verification record {path.name}"), None
    except ValidationError as exc:
        return None, exc.message


def check_record(
    doc: Any,
    *,
    entry_bytes: bytes,
    entry_file: str,
    config: str,
    key: KeyCheck,
    pinned: Pinned,
) -> Verification:
    """Decide whether a record verifies an entry (see the module docstring).

    Args:
        doc: The record file's parsed JSON.
        entry_bytes: The entry file's bytes, as read.
        entry_file: The entry file's name.
        config: The entry's dataset config (to find its pinned judge).
        key: The leaderboard's public key (:func:`load_checked_key`).
        pinned: The pinned configuration.
    """

    def unverified(*why: str) -> Verification:
        return Verification("unverified", tuple(why))

    version = doc.get("record", {}).get("schema_version") if isinstance(doc, dict) else None
    if isinstance(doc.get("record") if isinstance(doc, dict) else None, dict) and version == 1:
        return unverified(
            "the record is version 1: it re-judged submitted images without regenerating "
            "them, which verifies nothing now; the maintainers verify the entry again"
        )
    problems = check_structure(doc, RECORD_FILE_V2, root="record file")
    if problems:
        shown = "; ".join(problems[:3]) + ("; ..." if len(problems) > 3 else "")
        return unverified(f"the verification record is malformed: {shown}")
    if key.key is None:
        return unverified(f"the record cannot be checked: {key.problem}")
    why = check_signature(doc["record"], doc["signature"], key.key)
    if why:
        return unverified(f"the verification record's signature does not check: {why}")
    record = doc["record"]
    if record["schema"] != RECORD_SCHEMA or record["schema_version"] != RECORD_VERSION:
        return unverified(
            f"the record is {record['schema']!r} version {record['schema_version']}, not "
            f"{RECORD_SCHEMA!r} version {RECORD_VERSION}"
        )
    digest = sha256_bytes(entry_bytes)
    changed = record["entry"]["sha256"] != digest or record["entry"]["file"] != entry_file
    if changed and record["entry"]["file"] == entry_file:
        earlier = rejected_attempts(record)
        if earlier:
            return Verification("rejected", (earlier_text(earlier, len(record["history"]) + 1),))
    if record["entry"]["sha256"] != digest:
        return unverified(
            f"the entry changed after it was verified: it hashes to {digest[:16]}..., the "
            f"record verified {record['entry']['sha256'][:16]}..."
        )
    if record["entry"]["file"] != entry_file:
        return unverified(
            f"the record verifies the entry file {record['entry']['file']!r}, not {entry_file!r}"
        )
    if record["source"]["dirty"]:
        return unverified(
            "the record was signed from a working tree whose code differs from its commit"
        )
    sampling = record["sampling"]
    if sampling["mode"] != "all":
        from .sampling import check_seed

        why = check_seed(
            key.key, digest, sampling["seed"] or 0, sampling.get("seed_signature") or ""
        )
        if why:
            return unverified(why)
    pin = pinned.for_config(config)
    if pin is None:
        return unverified(f"no judge is pinned for dataset config {config!r}")
    judge = record["judge"]
    diffs = pin.differences(judge, where="record judge")
    if judge["family"] != pin.family:
        diffs.insert(
            0, f"the record is for family {judge['family']!r}, the entry's is {pin.family!r}"
        )
    if judge["deterministic"] != pin.deterministic:
        diffs.append("the record's rule for determinism is not the pinned judge's")
    if diffs:
        return unverified("verified with a judge that is not pinned now: " + "; ".join(diffs))
    if not record["decision"]["verified"]:
        return Verification(
            "rejected",
            tuple(record["decision"]["reasons"]) or ("the re-judge did not reproduce the entry",),
            record,
        )
    return Verification("verified", (), record)


def rejected_attempts(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The rejected attempts a record knows of: its history's and its own decision."""
    out = [a for a in record.get("history", []) if not a.get("verified")]
    if not record["decision"]["verified"]:
        out.append(
            {
                "date": record["date"],
                "sha256": record["entry"]["sha256"],
                "file": record["entry"]["file"],
                "name": record["entry"]["name"],
                "reasons": record["decision"]["reasons"],
            }
        )
    return out


def earlier_text(rejected: list[dict[str, Any]], attempts: int) -> str:
    """One line saying an earlier version was rejected, with the history."""
    last = rejected[-1]
    why = "; ".join(last.get("reasons", [])[:1]) or "did not reproduce"
    return (
        f"rejected earlier: {len(rejected)} of {attempts} verification attempt(s) rejected; "
        f"last {str(last['date'])[:10]} ({last['file']}, {last['sha256'][:12]}...): {why}"
    )


def sign_record(record: dict[str, Any], private_key: Any, pinned: Pinned) -> dict[str, Any]:
    """The record file of ``record``, signed with ``private_key``.

    Raises:
        UsageError: If the key is not the one ``pinned.json`` pins (its records would never
            check).
    """
    from ..errors import UsageError

    digest = public_key_sha256(private_key.public_key())
    if digest != pinned.key_sha256:
        raise UsageError(
            f"The private key's public half has fingerprint {digest[:16]}..., but pinned.json "
            f"pins {pinned.key_sha256[:16]}...",
            hint="Sign with the maintainers' current key, or pin a new key first "
            "(`slim-eval leaderboard keygen`, docs/leaderboard.md).",
        )
    return {"record": record, "signature": sign(record, private_key)}
