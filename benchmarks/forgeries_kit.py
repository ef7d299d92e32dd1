"""The forgery harness's kit: the real base entry, the case type and what a forger can do.

Shared by ``benchmarks/forgeries.py`` (the harness) and the case lists
``forgeries_cases.py`` and ``forgeries_more.py``; see ``forgeries.py`` for the method.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

BASE = "base.json"
FORGED = "forged.json"
#: What a forger wants, per goal (see the module docstring).
GOALS = (
    "verified",
    "ranked",
    "valid",
    "verify",
    "measured",
    "interval",
    "shed",
    "inject",
    "mixed",
)
#: The code state the harness's records name: the check concerns forgeries, not the tree the
#: benchmark happens to run from (``verify-entry`` itself refuses a changed tree).
CLEAN_SOURCE = {"version": "bench", "git_commit": "0" * 40, "dirty": False}


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
        regenerated: The maintainers' regenerations, by declaration (:meth:`regeneration`).
    """

    folder: Path
    run: Path
    raw: bytes
    pinned: Any
    key: Any
    pinned_raw: dict
    dataset: Callable
    regenerated: dict = dataclasses.field(default_factory=dict)

    def regeneration(self, entry: dict, ids: list[str]) -> Path | None:
        """The maintainers' regeneration of ``ids`` as ``entry`` declares them (made once per
        declaration and reused: it depends on nothing else), or ``None`` when the declaration
        cannot be regenerated (then ``verify-entry`` refuses on its own)."""
        from slim_leakage.leaderboard.regenerate import regenerate, why_not_reproducible

        try:
            if why_not_reproducible(entry):
                return None
            key = json.dumps(
                [entry["method"], entry["backbone"]["preset"], entry["dataset"]["config"]],
                sort_keys=True,
            )
        except (KeyError, TypeError, AttributeError):
            return None
        done = self.regenerated.get(key)
        if done is not None and set(ids) <= done[1]:
            return done[0]
        out = self.folder.parent / f"regenerated-{len(self.regenerated)}"
        wanted = sorted(set(ids) | (done[1] if done else set()))
        shutil.rmtree(out, ignore_errors=True)
        regenerate(
            entry, [r["sample_id"] for r in entry["verdicts"] if r["sample_id"] in wanted], out
        )
        self.regenerated[key] = (out, set(wanted))
        return out

    def verify(self, path: Path, run: Path, subset: int | None = None) -> dict:
        """What the maintainers' ``verify-entry`` decides (unsigned record), their way: subset
        seed from their key's signature, images regenerated from the declaration."""
        from slim_leakage._io import sha256_bytes
        from slim_leakage.leaderboard.rejudge import prepare_entry, rejudge
        from slim_leakage.leaderboard.sampling import choose_samples, subset_seed

        raw, entry, pin = prepare_entry(path, pinned=self.pinned, dataset=self.dataset)
        seed, signature = subset_seed(self.key, sha256_bytes(raw))
        ids = choose_samples(entry, seed, subset)[0]
        return rejudge(
            entry, raw, run, pin=pin, entry_file=path.name, subset=subset, seed=seed,
            seed_signature=signature, image_metrics=(), source=CLEAN_SOURCE,
            regenerated=self.regeneration(entry, ids),
        )  # fmt: skip

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
    try:
        return (json.dumps(entry, indent=2, ensure_ascii=False, allow_nan=True) + "\n").encode()
    except UnicodeEncodeError:  # a lone surrogate: written escaped (ensure_ascii), as JSON allows
        return (json.dumps(entry, indent=2, allow_nan=True) + "\n").encode()


def make_base(
    root: Path,
    *,
    run: Path | None = None,
    limit: int | None = None,
    dataset=None,
    run_args: tuple[str, ...] = ("--no-references", "--image-metrics", "none", "--no-report"),
) -> Base:
    """Run (unless ``run`` is given), submit and verify the real entry under a throwaway key.

    Args:
        root: An empty working folder.
        run: A finished toy run to use instead of making one.
        limit: Only the first N samples of ``toy-pairs`` (tests; needs ``dataset``).
        dataset: The dataset resolver (default: the shipped SLIM).
        run_args: More ``slim-eval run`` options (default: no reference images, which the
            oracle does not read, no image metrics, no report).
    """
    from slim_leakage.leaderboard import signing, validate
    from slim_leakage.leaderboard.pinned import load_pinned, parse_pinned
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
    _must(
        ["submit", str(run), "--out", str(entry_path), "--name", "deleaker (toy)",
         "--submitter", "base-submitter", *partial]
    )  # fmt: skip
    dataset = dataset or validate.shipped_dataset
    base = Base(folder, run, entry_path.read_bytes(), pinned, key, raw, dataset)
    record = base.verify(entry_path, run)
    if not record["decision"]["verified"]:
        raise RuntimeError(f"the real entry does not verify: {record['decision']}")
    doc = sign_record(record, key, pinned)
    (folder / "verifications").mkdir()
    (folder / "verifications" / BASE).write_text(json.dumps(doc, indent=2) + "\n")
    return base


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
