"""Forgeries: every way a submitter might try to earn a rank without earning it, as cases.

Each kind starts from a real entry: a toy-world run made here (`slim-eval --method deleaker`,
the embedded toy backbone and the oracle judge), submitted with `slim-eval submit`, and verified
with `slim-eval verify-entry` under a throwaway maintainers' key generated for the check (it
stands in for the project's key, whose private half a forger does not hold; the pinned
configuration is the shipped one with this key's fingerprint). A kind copies that leaderboard
folder, tampers with it the way a forger would, and asks for what the forger wants:

- ``verified``: the forged entry shown as verified by ``validate`` and the page;
- ``ranked``: the forged entry ranked on the page;
- ``valid``: the forged entry accepted by ``validate`` at all (tampers that must be refused);
- ``verify``: a "verified" decision from the maintainers' own ``verify-entry`` re-judge;
- ``measured``: a self-reported figure shown on the page without its "self-reported" mark;
- ``interval``: a net-mitigation interval other than the one the leaderboard computes itself.

A forgery is *accepted* when the forger gets it. ``forgeries_accepted`` must be 0.

Usage: python benchmarks/forgeries.py [--run RUN] [--json]   (also run by reliability.py)
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BASE = "base.json"
FORGED = "forged.json"
#: What a forger wants, per goal (see the module docstring).
GOALS = ("verified", "ranked", "valid", "verify", "measured", "interval")


@dataclasses.dataclass
class Base:
    """The real entry every forgery starts from, and the maintainers' side of the check.

    Attributes:
        folder: A leaderboard folder: the public key, ``entries/base.json`` and its signed
            record in ``verifications/base.json``.
        run: The run directory holding the entry's images.
        raw: The entry file's bytes.
        pinned: The pinned configuration (the shipped one, with the throwaway key's fingerprint).
        key: The throwaway maintainers' private key.
        pinned_raw: ``pinned``'s JSON.
        dataset: The dataset resolver validation uses.
    """

    folder: Path
    run: Path
    raw: bytes
    pinned: Any
    key: Any
    pinned_raw: dict
    dataset: Callable

    @property
    def entry(self) -> dict:
        """A fresh copy of the entry's JSON."""
        return json.loads(self.raw)

    @property
    def record(self) -> dict:
        """A fresh copy of the entry's signed record file."""
        return json.loads((self.folder / "verifications" / BASE).read_text())


def _cli(argv: list[str]) -> tuple[int, str, str]:
    from slim_leakage.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def _must(argv: list[str]) -> str:
    code, out, err = _cli(argv)
    if code != 0:
        raise RuntimeError(f"slim-eval {' '.join(argv)} failed ({code}): {err or out}")
    return out


def entry_text(entry: dict) -> bytes:
    """An entry file's bytes as `slim-eval submit` writes them."""
    return (json.dumps(entry, indent=2, ensure_ascii=False, allow_nan=True) + "\n").encode()


def make_base(
    root: Path,
    *,
    run: Path | None = None,
    limit: int | None = None,
    dataset=None,
    run_args: tuple[str, ...] = (),
) -> Base:
    """Run (unless ``run`` is given), submit and verify the real entry under a throwaway key.

    Args:
        root: An empty working folder.
        run: A finished toy run to use instead of making one.
        limit: Only the first N samples of ``toy-pairs`` (tests; needs ``dataset``).
        dataset: The dataset resolver (default: the shipped SLIM).
        run_args: More ``slim-eval run`` options (tests: ``--no-references`` ...).
    """
    from slim_leakage.leaderboard import signing, validate
    from slim_leakage.leaderboard.pinned import load_pinned, parse_pinned
    from slim_leakage.leaderboard.rejudge import verify_entry_file
    from slim_leakage.leaderboard.verification import sign_record

    root.mkdir(parents=True, exist_ok=True)
    if run is None:
        run = root / "run"
        argv = ["--method", "deleaker", "--out", str(run), "--no-progress", *run_args]
        _must(argv + (["--limit", str(limit)] if limit else []))
    folder = root / "leaderboard"
    (folder / "entries").mkdir(parents=True)
    private_pem, public_pem = signing.generate_key_pair()
    signing.write_private_key(root / "maintainers.pem", private_pem)
    key = signing.load_private_key(root / "maintainers.pem")
    (folder / signing.PUBLIC_KEY_FILE).write_bytes(public_pem)
    raw = json.loads(json.dumps(load_pinned().raw))
    raw["verification_key"]["sha256"] = signing.public_key_sha256(key.public_key())
    pinned = parse_pinned(raw)
    (folder / "pinned.json").write_text(json.dumps(raw, indent=2))
    entry_path = folder / "entries" / BASE
    partial = ["--partial"] if limit else []  # a head of toy-pairs, checked against `dataset`
    _must(["submit", str(run), "--out", str(entry_path), "--name", "deleaker (toy)", *partial])
    dataset = dataset or validate.shipped_dataset
    record = verify_entry_file(entry_path, run, pinned=pinned, dataset=dataset, image_metrics=())
    if not record["decision"]["verified"]:
        raise RuntimeError(f"the real entry does not verify: {record['decision']}")
    doc = sign_record(record, key, pinned)
    (folder / "verifications").mkdir()
    (folder / "verifications" / BASE).write_text(json.dumps(doc, indent=2) + "\n")
    return Base(folder, run, entry_path.read_bytes(), pinned, key, raw, dataset)


# -- what a forger can do -----------------------------------------------------------------------
def recompute(entry: dict) -> dict:
    """Make every aggregate consistent with the (changed) rows, as a careful forger would."""
    from slim_leakage.leaderboard.validate import recompute_aggregates
    from slim_leakage.metrics import AGGREGATE_FIELDS

    again = recompute_aggregates(entry)
    entry["metrics"].update({k: again[k] for k in AGGREGATE_FIELDS})
    entry["metrics"]["extra"]["bootstrap"] = again["extra"]["bootstrap"]
    return entry


def _rows(entry: dict, *labels: str) -> list[dict]:
    """The rows with one of ``labels`` (any labelled row when none has one)."""
    rows = [r for r in entry["verdicts"] if r["label"] in labels]
    return rows or [r for r in entry["verdicts"] if r["label"] is not None]


def _degradations(entry: dict) -> list[dict]:
    return _rows(entry, "degradation-minor", "degradation-major")


def _to_error(row: dict) -> None:
    row.update(label=None, error="judge failed", order_flip=False)


def forger_key():
    """A key the forger made (any key but the maintainers')."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate()


def forged_record(base: Base, entry_bytes: bytes, file: str = FORGED, *, key=None) -> dict:
    """The base record retargeted at ``entry_bytes`` and signed with ``key`` (a forger's)."""
    from slim_leakage._io import sha256_bytes
    from slim_leakage.leaderboard import signing

    record = base.record["record"]
    record["entry"].update(file=file, sha256=sha256_bytes(entry_bytes))
    return {"record": record, "signature": signing.sign(record, key or forger_key())}


def maintainers_record(base: Base, record: dict) -> dict:
    """A record really signed with the maintainers' key (what they would publish)."""
    from slim_leakage.leaderboard.verification import sign_record

    return sign_record(record, base.key, base.pinned)


# -- the cases ----------------------------------------------------------------------------------
@dataclasses.dataclass
class Case:
    """One forged leaderboard folder (or forged entry to re-judge) and what the forger wants.

    Attributes:
        name: What was forged.
        goal: One of :data:`GOALS`.
        target: The entry file the goal is about.
        options: ``verify-entry`` options (``subset``), or the figure for ``measured``.
    """

    name: str
    goal: str
    target: str = FORGED
    options: dict = dataclasses.field(default_factory=dict)


def _write(folder: Path, rel: str, data: bytes | dict | str) -> None:
    path = folder / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, dict):
        data = json.dumps(data, indent=2) + "\n"
    path.write_bytes(data if isinstance(data, bytes) else data.encode())


def _entry_forgery(change: Callable[[dict], Any], *, consistent: bool = True):
    """A forgery that changes the entry (aggregates recomputed when ``consistent``)."""

    def apply(base: Base, folder: Path) -> None:
        entry = base.entry
        change(entry)
        if consistent:
            recompute(entry)
        _write(folder, f"entries/{FORGED}", entry_text(entry))

    return apply


def _with_copied_record(change: Callable[[dict], Any], *, consistent: bool = True):
    """As :func:`_entry_forgery`, plus the base's real record copied beside the forgery."""

    def apply(base: Base, folder: Path) -> None:
        _entry_forgery(change, consistent=consistent)(base, folder)
        _write(folder, f"verifications/{FORGED}", base.record)

    return apply


def _edit_base(change: Callable[[bytes], bytes]):
    """Edit the verified entry's bytes in place (its real record stays)."""

    def apply(base: Base, folder: Path) -> None:
        path = folder / "entries" / BASE
        path.write_bytes(change(path.read_bytes()))

    return apply


def _record_forgery(make: Callable[[Base, bytes], dict], change=None):
    """A forged entry (``change`` applied, recomputed) with a record ``make(base, bytes)``."""

    def apply(base: Base, folder: Path) -> None:
        entry = base.entry
        if change:
            change(entry)
            recompute(entry)
        data = entry_text(entry)
        _write(folder, f"entries/{FORGED}", data)
        _write(folder, f"verifications/{FORGED}", make(base, data))

    return apply


def _raise_mitigation(count: int):
    def change(entry: dict) -> None:
        rows = [r for r in entry["verdicts"] if r["label"] != "mitigation-major"]
        for row in rows[:count]:
            row["label"] = "mitigation-major"

    return change


def _shuffle_labels(entry: dict) -> None:
    rows = [r for r in entry["verdicts"] if r["label"] is not None]
    labels = [r["label"] for r in rows]
    for row, label in zip(rows, labels[1:] + labels[:1]):
        row["label"] = label


def _errors_within_limit(entry: dict) -> None:
    n = len(entry["verdicts"])
    for row in _degradations(entry)[: max(1, int(0.05 * n))]:
        _to_error(row)


def _set(path: tuple, value: Any):
    def change(entry: dict) -> None:
        doc = entry
        for key in path[:-1]:
            doc = doc[key]
        doc[path[-1]] = value

    return change


def _del(path: tuple):
    def change(entry: dict) -> None:
        doc = entry
        for key in path[:-1]:
            doc = doc[key]
        del doc[path[-1]]

    return change


def _as_v1(entry: dict) -> None:
    entry["schema_version"] = 1
    entry["unverified"] = False


def _bootstrap(n_boot: int, seed: int):
    def change(entry: dict) -> None:
        entry["metrics"]["extra"]["bootstrap"].update(n_boot=n_boot, seed=seed)

    return change


def _stale_pin_record(base: Base, data: bytes) -> dict:
    """A record the maintainers really signed, under a judge that is no longer pinned."""
    from slim_leakage._io import sha256_bytes

    record = base.record["record"]
    record["entry"].update(file=FORGED, sha256=sha256_bytes(data))
    record["judge"]["model_id"] = "toy-oracle-v0"
    return maintainers_record(base, record)


def _rejected_record(base: Base, data: bytes) -> dict:
    """The maintainers' real record of this forged entry: re-judged and rejected."""
    from slim_leakage._io import sha256_bytes

    record = base.record["record"]
    record["entry"].update(file=FORGED, sha256=sha256_bytes(data))
    record["decision"] = {"verified": False, "reasons": ["labels did not reproduce"]}
    return maintainers_record(base, record)


def _tamper_record(change: Callable[[dict], Any]):
    """The base record (copied for the forged entry) changed after signing."""

    def make(base: Base, data: bytes) -> dict:
        from slim_leakage._io import sha256_bytes

        doc = base.record
        doc["record"]["entry"].update(file=FORGED, sha256=sha256_bytes(data))
        change(doc)
        return doc

    return make


def _replace_key(base: Base, folder: Path) -> None:
    """The forger's key as the folder's public key (and in the folder's pinned.json)."""
    from slim_leakage.leaderboard import signing

    key = forger_key()
    (folder / signing.PUBLIC_KEY_FILE).write_bytes(signing.public_pem(key))
    raw = json.loads(json.dumps(base.pinned_raw))
    raw["verification_key"]["sha256"] = signing.public_key_sha256(key.public_key())
    (folder / "pinned.json").write_text(json.dumps(raw))
    entry = base.entry
    _raise_mitigation(9)(entry)
    recompute(entry)
    data = entry_text(entry)
    _write(folder, f"entries/{FORGED}", data)
    _write(folder, f"verifications/{FORGED}", forged_record(base, data, key=key))


def _swap_image(base: Base, folder: Path) -> None:
    """A run directory whose method image of one sample was replaced (entry unchanged)."""
    run = folder / "run"
    shutil.copytree(base.run, run)
    first = base.entry["verdicts"][0]["sample_id"]
    from slim_leakage.rundir import load_run

    path = load_run(run).image_path(first, "method")
    vanilla = load_run(run).image_path(first, "vanilla")
    path.write_bytes(vanilla.read_bytes())
    _write(folder, f"entries/{FORGED}", base.raw)


def cases() -> list[tuple[Case, Callable[[Base, Path], None]]]:
    """Every forgery kind with the tamper that makes it."""
    same_record = _record_forgery(lambda b, d: forged_record(b, d))
    return [
        # -- the entry claims verification ---------------------------------------------------
        (Case("v1 entry declaring the pinned judge with unverified: false", "verified"),
         _entry_forgery(_as_v1, consistent=False)),
        (Case("v1 entry with unverified: false and the base record copied", "verified"),
         _with_copied_record(_as_v1, consistent=False)),
        (Case('v2 entry with "verified": true', "valid"),
         _entry_forgery(_set(("verified",), True), consistent=False)),
        (Case('v2 entry with "unverified": false', "valid"),
         _entry_forgery(_set(("unverified",), False), consistent=False)),
        (Case("notes claim maintainers' verification, no record", "verified"),
         _entry_forgery(_set(("notes",), "Verified by the maintainers."), consistent=False)),
        # -- a verified entry edited afterwards ----------------------------------------------
        (Case("verified entry edited by one byte (a space)", "verified", BASE),
         _edit_base(lambda b: b[:1] + b" " + b[2:])),
        (Case("verified entry: trailing newline removed", "verified", BASE),
         _edit_base(lambda b: b.rstrip(b"\n"))),
        (Case("verified entry re-serialised (same JSON, other layout)", "verified", BASE),
         _edit_base(lambda b: json.dumps(json.loads(b)).encode())),
        (Case("verified entry: display name changed", "verified", BASE),
         _edit_base(lambda b: b.replace(b'"deleaker (toy)"', b'"DeLeaker v2 (toy)"', 1))),
        (Case("verified entry: one label changed, aggregates left", "valid", BASE),
         _edit_base(lambda b: entry_text(_first_label(json.loads(b), "mitigation-major")))),
        (Case("verified entry: one label changed, aggregates recomputed", "verified", BASE),
         _edit_base(
             lambda b: entry_text(recompute(_first_label(json.loads(b), "mitigation-major")))
         )),
        (Case("verified entry: self-reported cost lowered", "verified", BASE),
         _edit_base(lambda b: entry_text(_cheaper(json.loads(b))))),
        # -- records -------------------------------------------------------------------------
        (Case("signed record reused for another entry", "verified"),
         _with_copied_record(_set(("name",), "another method (toy)"), consistent=False)),
        (Case("verified entry copied under a second name with its record", "verified"),
         lambda base, folder: (
             _write(folder, f"entries/{FORGED}", base.raw),
             _write(folder, f"verifications/{FORGED}", base.record),
         )),
        (Case("record of a forged entry signed by another key", "verified"), same_record),
        (Case("forged record and the public key file replaced by the forger's", "verified"),
         _replace_key),
        (Case("base record edited after signing: forged entry's hash written in", "verified"),
         _record_forgery(_tamper_record(lambda d: None), _raise_mitigation(9))),
        (Case("record edited after signing: a rejected decision flipped", "verified"),
         _record_forgery(
             lambda b, d: _flip(_rejected_record(b, d)), _raise_mitigation(9)
         )),
        (Case("record with the signature of another record", "verified"),
         _record_forgery(_signature_from_other(), _raise_mitigation(9))),
        (Case("record with its signature algorithm renamed", "verified"),
         _record_forgery(_tamper_record(lambda d: d["signature"].update(algorithm="none")))),
        (Case("record with an extra top-level field", "verified"),
         _record_forgery(_tamper_record(lambda d: d.update(override=True)))),
        (Case("record without a signature", "verified"),
         _record_forgery(_tamper_record(lambda d: d.pop("signature")))),
        (Case("record that is not JSON", "verified"),
         lambda base, folder: (
             _write(folder, f"entries/{FORGED}", base.raw),
             _write(folder, f"verifications/{FORGED}", b'{"record": '),
         )),
        (Case("maintainers' record made under a judge no longer pinned", "verified"),
         _record_forgery(_stale_pin_record, _raise_mitigation(9))),
        (Case("maintainers' record that rejected the entry", "ranked"),
         _record_forgery(_rejected_record, _raise_mitigation(9))),
        (Case("no record at all, a large net mitigation", "ranked"),
         _entry_forgery(_raise_mitigation(40))),
        # -- labels: the maintainers' re-judge must refuse ----------------------------------
        (Case("9 labels raised to mitigation-major, aggregates recomputed", "verify"),
         _entry_forgery(_raise_mitigation(9))),
        (Case("one label changed, aggregates recomputed", "verify"),
         _entry_forgery(_raise_mitigation(1))),
        (Case("labels rotated among samples (same shares), recomputed", "verify"),
         _entry_forgery(_shuffle_labels)),
        (Case("every degradation turned into a judge error, recomputed", "verify"),
         _entry_forgery(lambda e: [_to_error(r) for r in _degradations(e)])),
        (Case("degradations turned into judge errors within the 5% limit", "verify"),
         _entry_forgery(_errors_within_limit)),
        (Case("degradations relabelled no-change, recomputed", "verify"),
         _entry_forgery(lambda e: [r.update(label="no-change") for r in _degradations(e)])),
        (Case("order flips forged on no-change rows, recomputed", "verify"),
         _entry_forgery(lambda e: [r.update(order_flip=True) for r in _rows(e, "no-change")[:5]])),
        (Case("12 labels raised, re-judged on a subset of half the samples", "verify",
              options={"subset": 0.5}),
         _entry_forgery(_raise_mitigation(12))),
        (Case("method image replaced in the run, entry unchanged", "verify"), _swap_image),
        (Case("method image hash set to the vanilla image's hash", "verify"),
         _entry_forgery(
             lambda e: e["verdicts"][0].update(method_sha256=e["verdicts"][0]["vanilla_sha256"]),
             consistent=False,
         )),
        (Case("entry claims another judge (so no pin applies)", "verify"),
         _entry_forgery(_set(("judge", "backend"), "gemini"), consistent=False)),
        # -- figures that must be refused outright --------------------------------------------
        (Case("dataset.sample_ids_sha256 set to zeros", "valid"),
         _entry_forgery(_set(("dataset", "sample_ids_sha256"), "0" * 64), consistent=False)),
        (Case("dataset.sample_ids_sha256 removed", "valid"),
         _entry_forgery(_del(("dataset", "sample_ids_sha256")), consistent=False)),
        (Case("submitted date 2026-13-45", "valid"),
         _entry_forgery(_set(("submitted",), "2026-13-45"), consistent=False)),
        (Case("submitted date 'yesterday'", "valid"),
         _entry_forgery(_set(("submitted",), "yesterday"), consistent=False)),
        (Case("submitted date in the future", "valid"),
         _entry_forgery(_set(("submitted",), "2999-01-01"), consistent=False)),
        (Case("interval bound above 1", "valid"),
         _entry_forgery(_set(("metrics", "intervals", "no-change"), [0.5, 1.2]), consistent=False)),
        (Case("interval with low above high", "valid"),
         _entry_forgery(_set(("metrics", "intervals", "no-change"), [0.9, 0.1]), consistent=False)),
        (Case("negative share", "valid"),
         _entry_forgery(_set(("metrics", "distribution", "no-change"), -0.1), consistent=False)),
        (Case("NaN share", "valid"),
         _entry_forgery(_set(("metrics", "distribution", "no-change"), float("nan")),
                        consistent=False)),
        (Case("infinite cost", "valid"),
         _entry_forgery(_set(("cost", "method"), {"seconds_per_image": float("inf"),
                                                  "peak_memory_bytes": None}), consistent=False)),
        (Case("negative cost", "valid"),
         _entry_forgery(_set(("cost", "method"), {"seconds_per_image": -1.0,
                                                  "peak_memory_bytes": None}), consistent=False)),
        (Case("negative LPIPS", "valid"),
         _entry_forgery(_set(("metrics", "lpips"), -0.2), consistent=False)),
        (Case("bootstrap n_boot 10^12 (to stall the validator)", "valid"),
         _entry_forgery(_bootstrap(10**12, 0), consistent=False)),
        (Case("judge error without image hashes (cannot be re-judged)", "valid"),
         _entry_forgery(_error_without_hashes)),
        (Case("rows swapped out of dataset order", "valid"),
         _entry_forgery(_swap_rows, consistent=False)),
        # -- what the page displays -----------------------------------------------------------
        (Case("self-reported cost lowered tenfold", "measured", options={"figure": "cost"}),
         _entry_forgery(_cheaper, consistent=False)),
        (Case("self-reported LPIPS of 0.0", "measured", options={"figure": "lpips"}),
         _entry_forgery(_set(("metrics", "lpips"), 0.0), consistent=False)),
        (Case("package version claimed 9.9.9", "measured", options={"figure": "package"}),
         _entry_forgery(_set(("package", "version"), "9.9.9"), consistent=False)),
        (Case("bootstrap n_boot 1, intervals recomputed (a point interval)", "interval"),
         _entry_forgery(_bootstrap(1, 0))),
        (Case("bootstrap seed changed, intervals recomputed", "interval"),
         _entry_forgery(_bootstrap(1000, 12345))),
    ]  # fmt: skip


def _first_label(entry: dict, label: str) -> dict:
    row = next(r for r in entry["verdicts"] if r["label"] not in (None, label))
    row["label"] = label
    return entry


def _cheaper(entry: dict) -> dict:
    method = entry["cost"]["method"] or {"peak_memory_bytes": None}
    seconds = method.get("seconds_per_image") or 1.0
    entry["cost"]["method"] = {**method, "seconds_per_image": round(seconds / 10, 6)}
    return entry


def _flip(doc: dict) -> dict:
    doc["record"]["decision"] = {"verified": True, "reasons": []}
    return doc


def _signature_from_other():
    def make(base: Base, data: bytes) -> dict:
        doc = forged_record(base, data)
        # a genuine maintainers' signature, but of another record
        doc["signature"] = _stale_pin_record(base, data)["signature"]
        return doc

    return make


def _error_without_hashes(entry: dict) -> None:
    row = _degradations(entry)[0]
    _to_error(row)
    row["vanilla_sha256"] = row["method_sha256"] = None


def _swap_rows(entry: dict) -> None:
    rows = entry["verdicts"]
    rows[0], rows[1] = rows[1], rows[0]


# -- judging a case -----------------------------------------------------------------------------
def judge_case(case: Case, base: Base, folder: Path) -> tuple[bool, str]:
    """Whether the forger got what it wanted, and what the leaderboard said instead."""
    from slim_leakage.errors import SlimError
    from slim_leakage.leaderboard.render import collect, figure_texts, html_page
    from slim_leakage.leaderboard.validate import validate_file
    from slim_leakage.metrics import net_mitigation

    target = folder / "entries" / case.target
    if case.goal == "verify":
        from slim_leakage.leaderboard.rejudge import verify_entry_file

        run = folder / "run" if (folder / "run").is_dir() else base.run
        subset = case.options.get("subset")
        if subset is not None:
            labelled = sum(1 for r in base.entry["verdicts"] if r["label"] is not None)
            subset = max(1, int(subset * labelled))
        try:
            record = verify_entry_file(
                target,
                run,
                pinned=base.pinned,
                dataset=base.dataset,
                subset=subset,
                image_metrics=(),
            )
        except SlimError as exc:
            return False, f"verify-entry refused: {exc.message.splitlines()[0]}"
        decision = record["decision"]
        return decision["verified"], "; ".join(decision["reasons"])[:200] or "verified"
    report = validate_file(target, pinned=base.pinned, dataset=base.dataset)
    if case.goal == "valid":
        return report.ok, (report.problems[0] if report.problems else "valid")[:200]
    if not report.ok:
        return False, f"invalid: {report.problems[0]}"[:200]
    try:
        rows = collect(folder, pinned=base.pinned, dataset=base.dataset)
    except SlimError as exc:
        return False, f"render refused: {' '.join(exc.message.split())}"[:200]
    row = next(r for r in rows if r.file == case.target)
    said = f"{row.report.status}; " + "; ".join(row.report.unranked)
    if case.goal == "verified":
        return row.verified, said[:200]
    if case.goal == "ranked":
        return row.rank is not None, said[:200]
    if case.goal == "measured":
        text = figure_texts(row.to_dict())[case.options["figure"]]
        page = html_page([row])
        marked = text.endswith("(self-reported)") and 'class="self-reported"' in page
        return not marked, text
    if case.goal == "interval":
        labels = [r["label"] for r in row.entry["verdicts"] if r["label"] is not None]
        own = net_mitigation(labels, n_boot=1000, seed=0)[1]
        return row.net_interval != own, f"interval {row.net_interval} (own {own})"
    raise ValueError(f"unknown goal {case.goal!r}")


#: Unforged controls: the real entry must get each of these, or the check proves nothing.
CONTROLS = (
    Case("control: the real entry is verified", "verified", BASE),
    Case("control: the real entry is ranked", "ranked", BASE),
    Case("control: the real entry passes the maintainers' re-judge", "verify", BASE),
    Case("control: a re-serialised copy of the real entry is valid", "valid"),
)


def check_forgeries(
    root: Path,
    *,
    run: Path | None = None,
    limit: int | None = None,
    dataset=None,
    base: Base | None = None,
    log=print,
) -> dict:
    """Make the base entry, then try every forgery kind against it.

    Args:
        root: An empty working folder.
        run: A finished toy run to start from (default: make one).
        limit: Only the first N samples (tests; needs ``dataset``).
        dataset: The dataset resolver (default: the shipped SLIM).
        base: A base made by :func:`make_base` (then ``run``, ``limit``, ``dataset`` are unused).
        log: Where progress lines go.

    Returns:
        ``forgeries_tried``, ``forgeries_accepted``, the accepted kinds, per-goal counts, the
        controls passed (the real entry itself is verified, ranked, re-judged and valid) and
        one row per kind.

    Raises:
        RuntimeError: If a control fails (the harness could then accept nothing at all).
    """
    started = time.perf_counter()
    base = base or make_base(root / "base", run=run, limit=limit, dataset=dataset)
    log(f"forgeries: base entry made and verified in {time.perf_counter() - started:.0f} s")
    controls = []
    for case in CONTROLS:
        folder = root / "control"
        shutil.copytree(base.folder, folder)
        _write(folder, f"entries/{FORGED}", entry_text(base.entry))
        got, said = judge_case(case, base, folder)
        controls.append({"kind": case.name, "passed": got, "said": said})
        shutil.rmtree(folder)
    if not all(c["passed"] for c in controls):
        raise RuntimeError(f"a control failed, the forgery check would prove nothing: {controls}")
    rows = []
    for i, (case, apply) in enumerate(cases()):
        folder = root / f"case-{i:02d}"
        shutil.copytree(base.folder, folder)
        apply(base, folder)
        t0 = time.perf_counter()
        try:
            accepted, said = judge_case(case, base, folder)
        except Exception as exc:  # noqa: BLE001 - a crash is counted, and is no acceptance
            accepted, said = False, f"crash: {type(exc).__name__}: {exc}"[:200]
        rows.append(
            {
                "kind": case.name,
                "goal": case.goal,
                "accepted": accepted,
                "said": said,
                "seconds": round(time.perf_counter() - t0, 2),
            }
        )
        log(f"forgery {'ACCEPTED' if accepted else 'refused'}: {case.name} -> {said[:120]}")
        shutil.rmtree(folder, ignore_errors=True)
    goals = {g: sum(1 for r in rows if r["goal"] == g) for g in GOALS}
    return {
        "forgeries_tried": len(rows),
        "forgeries_accepted": sum(1 for r in rows if r["accepted"]),
        "forgeries_accepted_kinds": [r["kind"] for r in rows if r["accepted"]],
        "forgeries_crashed": sum(1 for r in rows if r["said"].startswith("crash:")),
        "forgery_goals": goals,
        "forgery_controls_passed": len(controls),
        "forgery_rows": rows,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a finished toy deleaker run to start from")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="slim-forgeries-") as tmp:
        figures = check_forgeries(Path(tmp), run=args.run, log=log)
    print(json.dumps(figures, sort_keys=True) if args.json else json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()
