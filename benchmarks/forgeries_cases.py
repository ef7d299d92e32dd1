"""The first forgery kinds: claims of verification, records, labels, figures, display.

Each kind starts from the real base entry (``forgeries_kit.make_base``); see
``benchmarks/forgeries.py`` for the method and the goals.
"""

# ruff: noqa: F405 - Case, FORGED, recompute ... come from the kit's star import
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from forgeries_kit import *  # noqa: F403 - the kit's vocabulary is the point of this file
from forgeries_kit import (  # the private helpers the cases compose
    _as_v1,
    _bootstrap,
    _cheaper,
    _degradations,
    _del,
    _edit_base,
    _entry_forgery,
    _error_without_hashes,
    _errors_within_limit,
    _first_label,
    _flip,
    _raise_mitigation,
    _record_forgery,
    _rejected_record,
    _replace_key,
    _rows,
    _set,
    _shuffle_labels,
    _signature_from_other,
    _stale_pin_record,
    _swap_image,
    _swap_rows,
    _tamper_record,
    _to_error,
    _with_copied_record,
    _write,
)  # fmt: skip


def cases() -> list[tuple[Case, Callable[[Base, Path], None]]]:  # noqa: F405
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
