"""Verification records: signatures, the entry's exact bytes, the pinned judge, the key."""

import json
import os
import stat

import pytest

from slim_leakage.leaderboard import signing
from slim_leakage.leaderboard.build import build_entry
from slim_leakage.leaderboard.pinned import load_pinned, parse_pinned
from slim_leakage.leaderboard.validate import validate_file
from slim_leakage.leaderboard.verification import record_path
from slim_leakage.records import LABELS
from slim_leakage.rundir import load_run

from .conftest import Maintainers, sign_verification


@pytest.fixture
def verified(run_factory, tmp_path, maintainers, fake_slim):
    """A leaderboard folder with one entry and its signed record; returns (folder, entry path)."""
    folder = maintainers.install(tmp_path / "lb")
    run = run_factory("run", labels=[LABELS[i % 5] for i in range(10)])
    path = folder / "entries" / "deleaker.json"
    path.parent.mkdir()
    path.write_text(
        json.dumps(build_entry(load_run(run), submitted="2026-11-28", submitter="tests"), indent=2)
    )
    sign_verification(path, run, maintainers, dataset=fake_slim)
    return folder, path


def _status(path, maintainers, fake_slim, **kw):
    report = validate_file(
        path, pinned=kw.pop("pinned", maintainers.pinned), dataset=fake_slim, **kw
    )
    assert report.ok, report.problems
    return report.status, list(report.verification.reasons)


def _record(path):
    return json.loads(record_path(path).read_text())


def _write_record(path, doc):
    record_path(path).write_text(json.dumps(doc))


def test_a_signed_record_of_the_exact_bytes_verifies(verified, maintainers, fake_slim):
    _, path = verified
    assert _status(path, maintainers, fake_slim) == ("verified", [])
    # the record file may be reformatted: the signature covers the canonical JSON
    _write_record(path, _record(path))
    assert _status(path, maintainers, fake_slim)[0] == "verified"


def test_without_a_record_nothing_is_verified(verified, maintainers, fake_slim):
    _, path = verified
    record_path(path).unlink()
    assert _status(path, maintainers, fake_slim) == (
        "unverified",
        ["no verification record (verifications/deleaker.json)"],
    )


def test_a_record_changed_after_signing_does_not_check(verified, maintainers, fake_slim):
    _, path = verified
    doc = _record(path)
    doc["record"]["agreement"]["agreed"] -= 1
    _write_record(path, doc)
    status, reasons = _status(path, maintainers, fake_slim)
    assert status == "unverified"
    assert reasons == [
        "the verification record's signature does not check: the signature does not match the "
        "record (it was changed after signing)"
    ]


def test_a_record_signed_by_another_key_does_not_check(verified, maintainers, fake_slim, tmp_path):
    _, path = verified
    forger = Maintainers(tmp_path / "forger")
    doc = _record(path)
    _write_record(path, forger.sign_unchecked(doc["record"]))
    status, reasons = _status(path, maintainers, fake_slim)
    assert status == "unverified" and "signed by key" in reasons[0]
    # the forger's fingerprint copied into the signature block does not help either
    doc["signature"]["value"] = forger.sign_unchecked(doc["record"])["signature"]["value"]
    _write_record(path, doc)
    assert "the signature does not match" in _status(path, maintainers, fake_slim)[1][0]


def test_a_swapped_public_key_file_is_not_the_pinned_key(
    verified, maintainers, fake_slim, tmp_path
):
    folder, path = verified
    forger = Maintainers(tmp_path / "forger")
    (folder / signing.PUBLIC_KEY_FILE).write_bytes(forger.public_path.read_bytes())
    _write_record(path, forger.sign_unchecked(_record(path)["record"]))
    status, reasons = _status(path, maintainers, fake_slim)
    assert status == "unverified"
    assert reasons[0].startswith("the record cannot be checked: the public key")
    assert "pinned.json pins" in reasons[0]


def test_one_byte_changes_the_hash(verified, maintainers, fake_slim):
    _, path = verified
    raw = path.read_bytes()
    path.write_bytes(raw + b"\n")
    status, reasons = _status(path, maintainers, fake_slim)
    assert status == "unverified" and reasons[0].startswith(
        "the entry changed after it was verified"
    )


def test_a_record_verifies_one_entry_file(verified, maintainers, fake_slim):
    folder, path = verified
    copy = folder / "entries" / "copy.json"
    copy.write_bytes(path.read_bytes())
    record_path(copy).write_bytes(record_path(path).read_bytes())
    status, reasons = _status(copy, maintainers, fake_slim)
    assert status == "unverified"
    assert reasons == ["the record verifies the entry file 'deleaker.json', not 'copy.json'"]


def test_a_record_made_with_a_judge_no_longer_pinned_does_not_count(
    verified, maintainers, fake_slim
):
    _, path = verified
    raw = json.loads(json.dumps(maintainers.pinned_raw))
    raw["families"]["slim"]["judge"]["model_id"] = "a-newer-model"
    status, reasons = _status(path, maintainers, fake_slim, pinned=parse_pinned(raw))
    assert status == "unverified"
    assert reasons[0].startswith(
        "verified with a judge that is not pinned now: record judge.model_id"
    )
    raw = json.loads(json.dumps(maintainers.pinned_raw))
    raw["families"]["slim"]["judge"]["served_model_ids"] = ["served-x"]
    doc = _record(path)
    doc["record"]["judge"]["served_model_id"] = "served-y"
    _write_record(path, maintainers.sign(doc["record"]))
    status, reasons = _status(path, maintainers, fake_slim, pinned=parse_pinned(raw))
    assert status == "unverified" and "served_model_id is 'served-y'" in reasons[0]


def test_a_rejected_record_is_shown_as_rejected(verified, maintainers, fake_slim):
    _, path = verified
    doc = _record(path)
    doc["record"]["decision"] = {"verified": False, "reasons": ["3 labels did not reproduce"]}
    _write_record(path, maintainers.sign(doc["record"]))
    report = validate_file(path, pinned=maintainers.pinned, dataset=fake_slim)
    assert report.ok and not report.verified and report.status == "rejected"
    assert report.unranked == ["3 labels did not reproduce"]


@pytest.mark.parametrize(
    "mangle",
    [
        lambda doc: doc.pop("signature"),
        lambda doc: doc.update(extra=True),
        lambda doc: doc["signature"].update(value="not base64!"),
        lambda doc: doc["signature"].update(algorithm="rsa"),
        lambda doc: doc["record"].pop("decision"),
    ],
)
def test_a_malformed_record_verifies_nothing(verified, maintainers, fake_slim, mangle):
    _, path = verified
    doc = _record(path)
    mangle(doc)
    _write_record(path, doc)
    status, reasons = _status(path, maintainers, fake_slim)
    assert status == "unverified" and len(reasons) == 1, reasons


def test_signing_needs_the_pinned_key(verified, maintainers, tmp_path):
    from slim_leakage.errors import UsageError

    forger = Maintainers(tmp_path / "forger")
    with pytest.raises(UsageError, match="pinned.json pins"):
        forger.sign_with_pin(maintainers.pinned, {"a": 1})


def test_keygen_writes_a_private_key_only_its_owner_reads_and_pins_the_public_one(tmp_path, cli):
    repo_pinned = tmp_path / "pinned.json"
    repo_pinned.write_text(json.dumps(load_pinned().raw))
    private = tmp_path / "keys" / "new.pem"
    public = tmp_path / "lb" / signing.PUBLIC_KEY_FILE
    code, out, err = cli(
        "leaderboard", "keygen", "--private", str(private), "--public", str(public),
        "--pinned", str(repo_pinned),
    )  # fmt: skip
    assert code == 0, err
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    key = signing.load_private_key(private)
    pinned = parse_pinned(json.loads(repo_pinned.read_text()))
    assert pinned.key_sha256 == signing.public_key_sha256(key.public_key())
    assert pinned.key_file == signing.PUBLIC_KEY_FILE
    assert signing.public_key_sha256(signing.load_public_key(public)) == pinned.key_sha256
    assert pinned.families == load_pinned().families  # nothing else changed
    code, _, err = cli("leaderboard", "keygen", "--private", str(private), "--public", str(public))
    assert code == 2 and "never overwritten" in err


def test_the_repository_key_is_pinned_and_no_private_key_is_committed():
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    pinned = load_pinned()
    key = signing.load_public_key(repo / "leaderboard" / pinned.key_file)
    assert signing.public_key_sha256(key) == pinned.key_sha256
    for pem in repo.rglob("*.pem"):
        if ".venv" in pem.parts:
            continue
        assert b"PRIVATE KEY" not in pem.read_bytes(), pem


def test_canonical_bytes_ignore_layout_and_key_order():
    a = json.loads('{"b": [1, 2.5, "\u00e9"], "a": {"y": null, "x": true}}')
    b = {"a": {"x": True, "y": None}, "b": [1, 2.5, "\u00e9"]}
    assert signing.canonical_bytes(a) == signing.canonical_bytes(b)
    assert signing.canonical_bytes(b) == '{"a":{"x":true,"y":null},"b":[1,2.5,"\u00e9"]}'.encode()


def test_verify_entry_names_each_bad_input(verified, maintainers, cli, tmp_path, fake_slim):
    folder, path = verified
    key = str(maintainers.private_path)
    pinned = str(folder / "pinned.json")
    base = ["verify-entry", str(path), "--key", key, "--pinned", pinned]
    code, _, err = cli(*base)
    assert code == 2 and "--images" in err
    code, _, err = cli(*base, "--images", str(tmp_path), "--subset", "0")
    assert code == 2 and "--subset 0 is below 1" in err
    code, _, err = cli(*base, "--images", str(tmp_path), "--image-metrics", "fid")
    assert code == 2 and "'fid'" in err and "lpips" in err
    missing = str(tmp_path / "nope.pem")
    code, _, err = cli("verify-entry", str(path), "--key", missing, "--images", str(tmp_path))
    assert code == 2 and "nope.pem' does not exist" in err and "keygen" in err
    entry = json.loads(path.read_text())
    entry["dataset"]["config"] = "triplets"  # not a config the fake SLIM knows
    bad = folder / "entries" / "bad.json"
    bad.write_text(json.dumps(entry))
    code, _, err = cli("verify-entry", str(bad), "--key", key, "--images", str(tmp_path))
    assert code == 1 and "is not a valid entry" in err and "dataset.config" in err
    assert not record_path(bad).exists()
