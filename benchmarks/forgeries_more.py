"""More forgery kinds: images not made by the declared method, hostile files, rejections shed,
injected Markdown, mixed rankings and borrowed names.

Each kind starts from the real base entry (``forgeries_kit.make_base``); see
``benchmarks/forgeries.py`` for the method and the goals. The image forgeries make real
images (toy renders, swapped files, other sizes, decompression bombs) and entries consistent
with them, so that only reproduction can refuse them.
"""

# ruff: noqa: F405 - Case, FORGED, recompute ... come from the kit's star import
from __future__ import annotations

import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path

from forgeries_kit import *  # noqa: F403 - the kit's vocabulary is the point of this file
from forgeries_kit import (  # the private helpers the cases compose
    _degradations,
    _entry_forgery,
    _raise_mitigation,
    _record_forgery,
    _rejected_record,
    _set,
    _write,
)  # fmt: skip

BIG = 10**400


# -- image forgeries: a forged run folder and an entry that fits it ------------------------------
def _png(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _run_forgery(edit: Callable[[Any, dict], None], *, declare: dict | None = None):
    """Copy the base run, let ``edit(run_data, entry)`` replace images (it records each new
    hash and label in the entry's rows), recompute the aggregates, write both."""

    def apply(base, folder: Path) -> None:
        from slim_leakage.rundir import load_run

        run = folder / "run"
        shutil.copytree(base.run, run)
        entry = base.entry
        edit(load_run(run), entry)
        for key, value in (declare or {}).items():
            entry[key] = value
            if key == "method":
                entry["metrics"]["method"] = value["name"]
        recompute(entry)  # noqa: F405
        _write(folder, f"entries/{FORGED}", entry_text(entry))  # noqa: F405

    return apply


def _put(data, entry: dict, sid: str, role: str, png: bytes, label: str | None = None) -> None:
    from slim_leakage._io import sha256_bytes

    data.image_path(sid, role).write_bytes(png)
    row = next(r for r in entry["verdicts"] if r["sample_id"] == sid)
    row[f"{role}_sha256"] = sha256_bytes(png)
    if label is not None:
        row.update(label=label, error=None, order_flip=False)


def _oracle_label(data, sid: str, vanilla: Path, method: Path) -> str | None:
    from slim_leakage.judge import JudgeItem, get_judge

    sample = next(s for s in data.samples if s.id == sid)
    item = JudgeItem(sample, data.method, vanilla, method, {})
    return get_judge("oracle").judge([item], progress=False)[0].label


def _hand_drawn(data, entry: dict) -> None:
    """Method images drawn with the toy renderer: every entity clean, in the vanilla layout."""
    import numpy as np
    from PIL import Image

    from slim_leakage.toy import world

    rng = np.random.default_rng(7)
    for row in entry["verdicts"]:
        sample = next(s for s in data.samples if s.id == row["sample_id"])
        try:
            drawn = world.render(world.place(tuple(sample.entities), rng)).image
        except Exception:  # noqa: BLE001 - an entity the renderer lacks: leave the sample
            continue
        image = Image.fromarray(drawn)
        size = Image.open(data.image_path(row["sample_id"], "vanilla")).size
        if image.size != size:
            image = image.resize(size)
        png = _png(image)
        path = data.image_path(row["sample_id"], "method")
        path.write_bytes(png)
        label = _oracle_label(
            data, row["sample_id"], data.image_path(row["sample_id"], "vanilla"), path
        )
        _put(data, entry, row["sample_id"], "method", png, label)


def _best_of_two(data, entry: dict) -> None:
    """Per sample, the better of DeLeaker's image and the vanilla run's (the same pixels as the
    vanilla image): every degradation becomes "no change"."""
    for row in _degradations(entry):
        png = data.image_path(row["sample_id"], "vanilla").read_bytes()
        _put(data, entry, row["sample_id"], "method", png, "no-change")


def _leakier_baseline(data, entry: dict) -> None:
    """The no-op ``vanilla`` method declared, its baseline swapped for DeLeaker's degraded
    (leakier) images: the untouched vanilla images now look like mitigations."""
    for row in entry["verdicts"]:
        sid = row["sample_id"]
        vanilla = data.image_path(sid, "vanilla").read_bytes()
        method = data.image_path(sid, "method").read_bytes()
        degraded = row["label"] in ("degradation-minor", "degradation-major")
        _put(data, entry, sid, "method", vanilla, "mitigation-major" if degraded else "no-change")
        if degraded:
            _put(data, entry, sid, "vanilla", method)


def _swap_roles(data, entry: dict) -> None:
    """Vanilla and method images swapped and every label mirrored."""
    mirror = {
        "mitigation-major": "degradation-major",
        "mitigation-minor": "degradation-minor",
        "degradation-major": "mitigation-major",
        "degradation-minor": "mitigation-minor",
        "no-change": "no-change",
    }
    for row in entry["verdicts"]:
        sid = row["sample_id"]
        vanilla = data.image_path(sid, "vanilla").read_bytes()
        method = data.image_path(sid, "method").read_bytes()
        _put(data, entry, sid, "vanilla", method)
        _put(
            data, entry, sid, "method", vanilla, mirror.get(row["label"]) if row["label"] else None
        )


def _shift_samples(data, entry: dict) -> None:
    """Each sample given the next sample's images (a run of other prompts)."""
    rows = entry["verdicts"]
    pngs = [(data.image_path(r["sample_id"], "vanilla").read_bytes(),
             data.image_path(r["sample_id"], "method").read_bytes()) for r in rows]  # fmt: skip
    for row, (van, met) in zip(rows, pngs[1:] + pngs[:1]):
        _put(data, entry, row["sample_id"], "vanilla", van)
        _put(data, entry, row["sample_id"], "method", met)


def _one_image(make: Callable[[], bytes], role: str = "method"):
    """The first sample's image replaced by ``make()`` (hash recorded, label kept)."""

    def edit(data, entry: dict) -> None:
        _put(data, entry, entry["verdicts"][0]["sample_id"], role, make())

    return edit


def _sized(w: int, h: int) -> bytes:
    from PIL import Image

    return _png(Image.new("RGB", (w, h), (120, 60, 30)))


def _bomb() -> bytes:
    """A few KiB of PNG declaring 30,000 x 30,000 one-bit pixels."""
    from PIL import Image

    return _png(Image.new("1", (30000, 30000)))


def _checkerboard() -> bytes:
    """A 2 KiB-ish PNG of a 4,096 x 4,096 one-bit checkerboard (millions of components)."""
    import numpy as np
    from PIL import Image

    board = (np.add.outer(np.arange(4096), np.arange(4096)) % 2).astype(bool)
    return _png(Image.fromarray(board))


def _rewrite_entities(data, entry: dict) -> None:
    """The run's samples.jsonl rewritten (each sample's entities swapped for its first one
    twice) and the labels raised as a judge reading those lists would: verification must read
    the shipped config's entities, never the run's."""
    path = data.path / "samples.jsonl"
    lines = []
    for line in path.read_text().splitlines():
        doc = json.loads(line)
        doc["entities"] = [doc["entities"][0]] * len(doc["entities"])
        lines.append(json.dumps(doc))
    path.write_text("\n".join(lines) + "\n")
    _raise_mitigation(12)(entry)


def _symlinked_image(base, folder: Path) -> None:
    """The first method image a link to a file outside the run."""
    from slim_leakage.rundir import load_run

    run = folder / "run"
    shutil.copytree(base.run, run)
    outside = folder / "outside.png"
    target = load_run(run).image_path(base.entry["verdicts"][0]["sample_id"], "method")
    outside.write_bytes(target.read_bytes())
    target.unlink()
    target.symlink_to(outside)
    _write(folder, f"entries/{FORGED}", base.raw)


# -- subset grinding ------------------------------------------------------------------------------
def _ground_subset(base, folder: Path) -> None:
    """12 labels raised, then the entry's whitespace ground until the old hash-seeded draw of
    half the samples misses every raised row (the draw the submitter could compute)."""
    from slim_leakage._io import sha256_bytes
    from slim_leakage.metrics import splitmix64

    entry = base.entry
    before = {r["sample_id"]: r["label"] for r in entry["verdicts"]}
    _raise_mitigation(12)(entry)
    recompute(entry)  # noqa: F405
    forged = {r["sample_id"] for r in entry["verdicts"] if r["label"] != before[r["sample_id"]]}
    labelled = [r["sample_id"] for r in entry["verdicts"] if r["label"] is not None]
    size = max(1, len(labelled) // 2)
    best, best_hits = entry_text(entry), None  # noqa: F405
    for k in range(400):
        data = entry_text(entry).replace(b"{", b"{" + b" " * k, 1)  # noqa: F405
        seed = int(sha256_bytes(data)[:16], 16)
        keys = [int(x) for x in splitmix64(seed, len(labelled))]
        drawn = {sid for _, sid in sorted(zip(keys, labelled))[:size]}
        hits = len(drawn & forged)
        if best_hits is None or hits < best_hits:
            best, best_hits = data, hits
        if hits == 0:
            break
    _write(folder, f"entries/{FORGED}", best)


# -- records, history, names ---------------------------------------------------------------------
def _rejected_then(edit: Callable[[Path], None]):
    """The maintainers' real rejection of a forged entry, then the forger's ``edit``."""

    def apply(base, folder: Path) -> None:
        _record_forgery(_rejected_record, _raise_mitigation(9))(base, folder)
        edit(folder)

    return apply


def _one_byte(folder: Path) -> None:
    path = folder / "entries" / FORGED
    path.write_bytes(path.read_bytes().replace(b"{", b"{ ", 1))


def _rename_file(folder: Path) -> None:
    (folder / "entries" / FORGED).rename(folder / "entries" / "forged-2.json")


def _rename_display(folder: Path) -> None:
    path = folder / "entries" / FORGED
    entry = json.loads(path.read_bytes())
    entry["name"] = "DeLeaker, a new method (toy)"
    path.unlink()
    _write(folder, "entries/fresh.json", entry_text(entry))  # noqa: F405


def _twin(name: str, *, sign: bool = True):
    """A copy of the verified entry under another file and a display name that reads the same,
    with a real maintainers' record (it did reproduce), dated after the base's."""

    def apply(base, folder: Path) -> None:
        from slim_leakage._io import sha256_bytes

        entry = base.entry
        entry["name"] = name
        data = entry_text(entry)  # noqa: F405
        _write(folder, f"entries/{FORGED}", data)
        if sign:
            record = base.record["record"]
            record["entry"].update(file=FORGED, sha256=sha256_bytes(data), name=name)
            record["date"] = "2999-01-01T00:00:00+00:00"
            _write(folder, f"verifications/{FORGED}", maintainers_record(base, record))  # noqa: F405

    return apply


def _signed(change: Callable[[dict], Any]):
    """A record the maintainers' key signed, for the forged entry, with ``change`` applied
    before signing (what a careless or old procedure would have produced)."""

    def make(base, data: bytes) -> dict:
        from slim_leakage._io import sha256_bytes

        record = base.record["record"]
        record["entry"].update(file=FORGED, sha256=sha256_bytes(data))
        change(record)
        return maintainers_record(base, record)  # noqa: F405

    return make


def _v1_record(record: dict) -> None:
    record["schema_version"] = 1
    for key in ("source", "reproduction", "history", "attempt"):
        record.pop(key, None)


def _declared(method: dict | None = None, preset: str | None = None):
    def change(entry: dict) -> None:
        if method is not None:
            entry["method"] = method
            entry["metrics"]["method"] = method["name"]
        if preset is not None:
            entry["backbone"]["preset"] = preset

    return change


def _raw_edit(change: Callable[[bytes], bytes]):
    def apply(base, folder: Path) -> None:
        _write(folder, f"entries/{FORGED}", change(base.raw))

    return apply


def _nest(depth: int):
    """``method.config.nested`` holding ``depth`` nested lists, written as text (a JSON
    writer would stop at its own recursion limit; a forger's editor does not)."""

    def edit(data: bytes) -> bytes:
        nested = b"[" * depth + b'"deep"' + b"]" * depth
        return data.replace(b'"config": {', b'"config": {"nested": ' + nested + b", ", 1)

    return _raw_edit(edit)


def _with_name(name: str):
    return _entry_forgery(_set(("name",), name), consistent=False)


def cases() -> list:
    """The kinds of this file (see the module docstring)."""
    big_notes = "x" * (17 * 1024 * 1024)

    def smoothing_off(entry: dict) -> None:
        entry["method"]["config"]["smoothing"] = False

    return [
        # -- images the declared method did not make: only regeneration refuses them ------------
        (Case("method images drawn by hand with the toy renderer, labels from the oracle", "verify"),
         _run_forgery(_hand_drawn)),
        (Case("per-sample best of DeLeaker's and the vanilla run's images", "verify"),
         _run_forgery(_best_of_two)),
        (Case("no-op vanilla method declared, a leakier baseline swapped in", "verify"),
         _run_forgery(_leakier_baseline, declare={"method": {"name": "vanilla", "config": {}}})),
        (Case("DeLeaker's run submitted as instruction-prompt", "verify", options={"subset": 0.15}),
         _entry_forgery(_declared({"name": "instruction-prompt", "config": {}}))),
        (Case("DeLeaker's run declared with smoothing=false", "verify", options={"subset": 0.15}),
         _entry_forgery(smoothing_off)),
        (Case("entity lists rewritten in the run's samples.jsonl, labels raised", "verify"),
         _run_forgery(_rewrite_entities)),
        (Case("vanilla and method images swapped, labels mirrored", "verify"),
         _run_forgery(_swap_roles)),
        (Case("every sample given the next sample's images", "verify"),
         _run_forgery(_shift_samples)),
        (Case("one method image replaced by a flat picture of the right size", "verify"),
         _run_forgery(_one_image(lambda: _sized(64, 64)))),
        (Case("one vanilla image replaced by a flat picture of the right size", "verify"),
         _run_forgery(_one_image(lambda: _sized(64, 64), "vanilla"))),
        (Case("one method image of another size (128 x 128)", "verify"),
         _run_forgery(_one_image(lambda: _sized(128, 128)))),
        (Case("one method image declaring 30,000 x 30,000 pixels (decompression bomb)", "verify"),
         _run_forgery(_one_image(_bomb))),
        (Case("one method image a 4,096-pixel checkerboard PNG", "verify"),
         _run_forgery(_one_image(_checkerboard))),
        (Case("one method image a text file with a .png name", "verify"),
         _run_forgery(_one_image(lambda: b"not a png at all"))),
        (Case("one method image a truncated PNG", "verify"),
         _run_forgery(_one_image(lambda: _sized(64, 64)[:60]))),
        (Case("one method image a link to a file outside the run", "verify"), _symlinked_image),
        (Case("12 labels raised, whitespace ground against the hash-seeded subset", "verify",
              options={"subset": 0.5}), _ground_subset),
        (Case("the images method declared (pictures made elsewhere)", "verify"),
         _entry_forgery(_declared({"name": "images", "config": {"folder": "run"}}))),
        (Case("a method outside the package's registry declared", "verify"),
         _entry_forgery(_declared({"name": "my-private-method", "config": {}}))),
        (Case("a backbone preset outside the registry declared", "verify"),
         _entry_forgery(_declared(preset="my-finetuned-flux"))),
        (Case("method.name with a capital (DeLeaker)", "verify"),
         _entry_forgery(_declared({"name": "DeLeaker", "config": {}}))),
        (Case("method config with an option the method does not have", "verify"),
         _entry_forgery(_set(("method", "config", "secret_boost"), 3))),
        (Case("images method with a maintainers' record", "verified"),
         _record_forgery(_signed(lambda r: None), _declared({"name": "images", "config": {}}))),
        (Case("plug-in method with a maintainers' record", "ranked"),
         _record_forgery(_signed(lambda r: None), _declared({"name": "my-plugin", "config": {}}))),
        # -- the data set is the shipped one, by name only ----------------------------------------
        (Case("dataset.config a file path", "valid"),
         _entry_forgery(_set(("dataset", "config"), "/tmp/toy-pairs.jsonl"), consistent=False)),
        (Case("dataset.config a relative path to the shipped file", "valid"),
         _entry_forgery(_set(("dataset", "config"), "./toy-pairs.jsonl"), consistent=False)),
        (Case("dataset.config in capitals", "valid"),
         _entry_forgery(_set(("dataset", "config"), "TOY-PAIRS"), consistent=False)),
        (Case("dataset.config with a trailing space", "valid"),
         _entry_forgery(_set(("dataset", "config"), "toy-pairs "), consistent=False)),
        (Case("dataset.fingerprint of another config", "valid"),
         _entry_forgery(_set(("dataset", "fingerprint"), "ab" * 32), consistent=False)),
        # -- hostile JSON -------------------------------------------------------------------------
        (Case("duplicate key: a second name", "valid"),
         _raw_edit(lambda b: b.replace(b'  "name":', b'  "name": "shadow",\n  "name":', 1))),
        (Case("duplicate key inside a verdict row (two labels)", "valid"),
         _raw_edit(lambda b: b.replace(b'"label":', b'"label": "mitigation-major", "label":', 1))),
        (Case("duplicate key: a second metrics block", "valid"),
         _raw_edit(lambda b: b.replace(b'  "metrics": {', b'  "metrics": {}, "metrics": {', 1))),
        (Case("a 400-digit integer as a count", "valid"),
         _entry_forgery(_set(("metrics", "judge_errors"), BIG), consistent=False)),
        (Case("a 400-digit integer in method.config", "valid"),
         _entry_forgery(_set(("method", "config", "alpha"), BIG), consistent=False)),
        (Case("an integer of 2^53 + 1 as n_samples", "valid"),
         _entry_forgery(_set(("dataset", "n_samples"), 2**53 + 1), consistent=False)),
        (Case("a negative 400-digit integer as an image size", "valid"),
         _entry_forgery(_set(("cost", "method"), {"seconds_per_image": 1.0,
                                                  "peak_memory_bytes": -BIG}), consistent=False)),
        (Case("method.config nested 100,000 levels deep", "valid"), _nest(100_000)),
        (Case("method.config nested 40 levels deep", "valid"), _nest(40)),
        (Case("a lone surrogate in the display name", "valid"), _with_name("DeLeaker \ud800")),
        (Case("a lone surrogate in the notes", "valid"),
         _entry_forgery(_set(("notes",), "fine \udfff"), consistent=False)),
        (Case("a lone surrogate as a key of method.config", "valid"),
         _entry_forgery(_set(("method", "config", "\udc00"), 1), consistent=False)),
        (Case("a 17 MiB entry (padded notes)", "valid"),
         _entry_forgery(_set(("notes",), big_notes), consistent=False)),
        (Case("Infinity in method.config", "valid"),
         _entry_forgery(_set(("method", "config", "alpha"), float("inf")), consistent=False)),
        (Case("an entry file that is not UTF-8", "valid"),
         _raw_edit(lambda b: b.replace(b'"deleaker (toy)"', '"délé (toy)"'.encode("latin-1"), 1))),
        (Case("an entry that is a JSON list", "valid"), _raw_edit(lambda b: b"[" + b + b"]")),
        (Case("an entry with a byte-order mark", "valid"), _raw_edit(lambda b: b"\xef\xbb\xbf" + b)),
        # -- names -------------------------------------------------------------------------------
        (Case("a display name of invisible characters only", "valid"), _with_name("\u200b\u200d")),
        (Case("a display name with a right-to-left override", "valid"),
         _with_name("DeLeaker \u202e(toy)")),
        (Case("a display name with a line break", "valid"), _with_name("DeLeaker\n| 1 | fake |")),
        (Case("a display name of 500 characters", "valid"), _with_name("D" * 500)),
        (Case("a verified twin whose name differs in case", "ranked"), _twin("DELEAKER (TOY)")),
        (Case("a verified twin whose name has a zero-width space", "ranked"),
         _twin("deleaker\u200b (toy)")),
        (Case("a verified twin whose name is written in full-width letters", "ranked"),
         _twin("ｄｅｌｅａｋｅｒ (toy)")),
        (Case("a verified twin whose name has doubled spaces", "ranked"), _twin("deleaker  (toy)")),
        (Case("a verified version 2 entry naming no submitter", "ranked"),
         _record_forgery(_signed(lambda r: None), _as_v2)),
        # -- records that must not count -----------------------------------------------------------
        (Case("maintainers' version 1 record (re-judged, not regenerated)", "verified"),
         _record_forgery(_signed(_v1_record), _raise_mitigation(9))),
        (Case("maintainers' record signed from a changed working tree", "verified"),
         _record_forgery(_signed(lambda r: r["source"].update(dirty=True)))),
        (Case("maintainers' record with a subset seed of the forger's choosing", "verified"),
         _record_forgery(_signed(_forged_seed), _raise_mitigation(9))),
        (Case("record with a duplicate decision key appended", "verified"),
         _record_with_duplicate_decision),
        (Case("a 17 MiB record file", "verified"),
         lambda base, folder: (
             _write(folder, f"entries/{FORGED}", base.raw),
             _write(folder, f"verifications/{FORGED}", b" " * (17 * 1024 * 1024) + b"{}"),
         )),
        # -- rejections stick ---------------------------------------------------------------------
        (Case("rejected entry edited by one byte", "shed"), _rejected_then(_one_byte)),
        (Case("rejected entry moved to another file name", "shed", target="forged-2.json"),
         _rejected_then(_rename_file)),
        (Case("rejected entry renamed (file and display name), same submitter and method", "shed",
              target="fresh.json"),
         _rejected_then(_rename_display)),
        (Case("rejected entry relabelled again and resubmitted", "shed"),
         _rejected_then(lambda folder: _relabel(folder))),
        # -- Markdown and HTML injection ----------------------------------------------------------
        (Case("a name that closes the cell and adds a fake verified row", "inject"),
         _with_name("x | 1 | fake | toy | +99% | 99% | 0% | 0% | 0 | n/a | n/a | n/a | n/a | 1 | verified")),
        (Case("a name holding the README's end marker", "inject"),
         _with_name("x <!-- leaderboard:end --> y")),
        (Case("a name holding a Markdown link", "inject"), _with_name("[DeLeaker](https://evil.example)")),
        (Case("a name holding a Markdown image", "inject"), _with_name("![badge](https://evil.example/v.svg)")),
        (Case("a name holding a script tag", "inject"), _with_name("<script>alert(1)</script>")),
        (Case("a name holding an img onerror", "inject"), _with_name('<img src=x onerror="alert(1)">')),
        (Case("a submitter holding a Markdown link", "inject"),
         _entry_forgery(_set(("submitter",), "[maintainers](https://evil.example)"), consistent=False)),
        (Case("a backbone preset holding a pipe and a link", "inject"),
         _entry_forgery(_declared(preset="toy | [x](y)"))),
        (Case("an entry file name with a pipe and brackets", "ranked", target="x|[y](z).json"),
         lambda base, folder: _write(folder, "entries/x|[y](z).json", base.raw)),
        # -- like with like -----------------------------------------------------------------------
        (Case("an entry judged by another judge ranked beside the pinned ones", "mixed"),
         _entry_forgery(_set(("judge", "model_id"), "toy-oracle-v0"), consistent=False)),
        (Case("an entry judged by another backend ranked beside the pinned ones", "mixed"),
         _entry_forgery(_set(("judge", "backend"), "gemini"), consistent=False)),
        (Case("self-reported backbone shown as reproduced", "measured",
              options={"figure": "backbone"}), _entry_forgery(_set(("backbone", "preset"), "toy"))),
        (Case("self-reported peak memory shown as measured", "measured",
              options={"figure": "memory"}),
         _entry_forgery(_set(("cost", "method"), {"seconds_per_image": 0.1,
                                                  "peak_memory_bytes": 1024}), consistent=False)),
    ]  # fmt: skip


def _as_v2(entry: dict) -> None:
    entry["schema_version"] = 2
    entry.pop("submitter", None)


def _forged_seed(record: dict) -> None:
    record["sampling"].update(mode="subset", seed=1, seed_signature="AAAA", size=4)


def _relabel(folder: Path) -> None:
    path = folder / "entries" / FORGED
    entry = json.loads(path.read_bytes())
    for row in entry["verdicts"][:3]:
        if row["label"] is not None:
            row["label"] = "mitigation-minor"
    recompute(entry)  # noqa: F405
    path.write_bytes(entry_text(entry))  # noqa: F405


def _record_with_duplicate_decision(base, folder: Path) -> None:
    """A real rejected record with a second ``decision`` key appended (last one wins in a
    lenient reader)."""
    _record_forgery(_rejected_record, _raise_mitigation(9))(base, folder)
    path = folder / "verifications" / FORGED
    text = path.read_text()
    forged = '"decision": {"verified": true, "reasons": []}, '
    path.write_text(text.replace('"record": {', '"record": {' + forged, 1))
