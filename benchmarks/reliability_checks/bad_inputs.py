"""The `bad_inputs` check: every case of the tables (cases_*.py) run through the CLI and judged."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .common import (
    FAKE_OPENAI_KEY,
    SAMPLES,
    Workspace,
    child_env,
    cli,
    run_argv,
    tree_digest,
    write_samples,
)

# -- 3. bad inputs -------------------------------------------------------------------------------
_PNG_1x1 = None


def _png(size: int, shade: int = 128) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (size, size), (shade, 255 - shade, shade // 2)).save(buf, format="PNG")
    return buf.getvalue()


def _finished_run(ws: Workspace, name: str) -> Path:
    """A copy of the reference run (a finished run that bad inputs must not touch)."""
    dst = ws.path(name)
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(ws.reference(), dst, symlinks=True)
    return dst


def _valid_entry(ws: Workspace) -> Path:
    path = ws.path("entry.json")
    if not path.exists():
        code, _, err = cli(["submit", str(ws.reference()), "--out", str(path)])
        if code != 0:
            raise RuntimeError(f"submit failed: {err}")
    return path


def _entry_variant(ws: Workspace, name: str, change: Callable[[dict], Any]) -> Path:
    entry = json.loads(_valid_entry(ws).read_text())
    change(entry)
    path = ws.path(name)
    path.write_text(json.dumps(entry, allow_nan=True))
    return path


def _sample_variant(ws: Workspace, name: str, change: Callable[[list], Any]) -> Path:
    rows = copy.deepcopy(SAMPLES[: ws.n_samples])
    change(rows)
    return write_samples(ws.path(name), rows)


def _images_folder(ws: Workspace, name: str, writer: Callable[[Path], None]) -> Path:
    folder = ws.path(name)
    folder.mkdir(exist_ok=True)
    for s in SAMPLES[: ws.n_samples]:
        (folder / f"{s['id']}.png").write_bytes(_png(32))
    writer(folder)
    return folder


def _tampered_run(ws: Workspace, name: str, how: str) -> Path:
    """A finished run whose ``generations.jsonl`` points outside the run directory."""
    run = _finished_run(ws, name)
    outside = ws.path(f"{name}-outside.png")
    outside.write_bytes(_png(32, 7))
    rows = [json.loads(line) for line in (run / "generations.jsonl").read_text().splitlines()]
    for row in rows:
        if row["role"] == "method" and row["sample_id"] == "s1":
            if how == "dotdot":
                row["path"] = f"../{outside.name}"
            elif how == "absolute":
                row["path"] = str(outside)
            else:  # symlink: the recorded path stays inside, the file is a link leaving it
                target = run / row["path"]
                target.unlink()
                target.symlink_to(outside)
            row["sha256"] = hashlib.sha256(outside.read_bytes()).hexdigest()
    (run / "generations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def _labels_csv(ws: Workspace, name: str, data: bytes) -> Path:
    path = ws.path(name)
    path.write_bytes(data)
    return path


_BAD_VERDICT = '{"sample_id": "s9", "method": "instruction-prompt", "label": "better"}'


def _folder(ws: Workspace, name: str) -> Path:
    path = ws.path(name)
    path.mkdir(exist_ok=True)
    return path


def _own_folder(ws: Workspace, name: str) -> Path:
    """A folder of someone's own files (a run must not write beside them)."""
    path = _folder(ws, name)
    (path / "report.html").write_text("my own report")
    (path / "notes.txt").write_text("my own notes")
    return path


def _one_long_prompt(rows: list) -> None:
    """Keep the first sample only, its prompt grown to about 500 KB."""
    rows[0]["prompt"] += " and hay" * 62_500
    del rows[1:]


def _first_only(rows: list) -> None:
    del rows[1:]


def _edit_json(name: str, path: tuple, value: Any) -> Callable[[Path], None]:
    def edit(run: Path) -> None:
        data = json.loads((run / name).read_text())
        where = data
        for key in path[:-1]:
            where = where[key]
        where[path[-1]] = value
        (run / name).write_text(json.dumps(data, indent=2))

    return edit


def _cut_short(name: str) -> Callable[[Path], None]:
    def edit(run: Path) -> None:
        data = (run / name).read_bytes()
        (run / name).write_bytes(data[: len(data) // 2])

    return edit


def _insert_line(name: str, after: int, text: str) -> Callable[[Path], None]:
    def edit(run: Path) -> None:
        lines = (run / name).read_text().splitlines()
        lines.insert(after, text)
        (run / name).write_text("\n".join(lines) + "\n")

    return edit


def _edited_run(ws: Workspace, name: str, edit: Callable[[Path], None]) -> Path:
    """A copy of the finished reference run, edited by hand."""
    run = _finished_run(ws, name)
    edit(run)
    return run


def _command_on(command: str, run_dir: Path, run: Callable, ws: Workspace) -> list[str]:
    if command == "resume":
        return run(out=run_dir.name)
    if command == "submit":
        return ["submit", str(run_dir), "--out", str(ws.path(f"{run_dir.name}.json"))]
    return [command, str(run_dir)]


def _samples_edited_after_a_run(ws: Workspace, name: str, run: Callable) -> list[str]:
    """Generate two samples into ``name``, then edit a prompt in the samples file in place."""
    path = write_samples(ws.path(f"{name}.jsonl"), copy.deepcopy(SAMPLES[:2]))
    argv = run(out=name, samples=path, judge=False)
    code, _, err = cli(argv)
    if code != 0:
        raise RuntimeError(f"the run to edit failed ({code}): {err.strip()[-500:]}")
    rows = copy.deepcopy(SAMPLES[:2])
    rows[0]["prompt"] = "a cow and a horse by a lake"
    write_samples(path, rows)
    return argv


def _other_images_run(ws: Workspace, name: str) -> Path:
    """A copy of the reference run whose method images are other pictures (another backbone)."""
    run = _finished_run(ws, name)
    rows = [json.loads(line) for line in (run / "generations.jsonl").read_text().splitlines()]
    for row in rows:
        if row["role"] == "method":
            row["sha256"] = hashlib.sha256(row["sha256"].encode()).hexdigest()
    (run / "generations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def lost_work(root: Path) -> list[str]:
    """Finished work a run directory lost: an image file two records claim, or one whose
    bytes are no longer those its record names (overwritten)."""
    from slim_leakage._io import iter_jsonl

    if not (root / "generations.jsonl").is_file():
        return []
    try:
        rows = list(iter_jsonl(root / "generations.jsonl"))
    except Exception as exc:  # noqa: BLE001 - an unreadable record file is lost work too
        return [f"generations.jsonl unreadable: {exc}"]
    owners: dict[str, set] = {}
    digests: dict[str, set] = {}
    latest: dict[str, str] = {}
    for row in rows:
        owner = (row.get("role"), row.get("sample_id"), row.get("entity"))
        owners.setdefault(row.get("path"), set()).add(owner)
        digests.setdefault(row.get("path"), set()).add(row.get("sha256"))
        latest[row.get("path")] = row.get("sha256")
    lost = [
        f"{path}: written for {len(who)} images" for path, who in owners.items() if len(who) > 1
    ]
    # one file, recorded with two contents: a later image replaced an earlier one (the run is
    # on the CPU, where an image drawn again has the same bytes)
    lost += [f"{path}: replaced" for path, seen in digests.items() if len(seen) > 1]
    for path, digest in latest.items():
        image = root / path
        if image.is_file() and hashlib.sha256(image.read_bytes()).hexdigest() != digest:
            lost.append(f"{path}: overwritten")
    return lost


def case_kit(ws: Workspace) -> dict:
    """The helpers every case table uses (fresh output folders, argv edits, entry, samples and
    edited-run cases), as a mapping the tables unpack."""
    url, cache = ws.url, ws.path("bad-cache")

    counter = iter(range(1000))

    def run(*extra, out=None, method="instruction-prompt", samples=None, judge=True):
        # A fresh --out per case, so one case's leftovers cannot answer for another.
        return run_argv(
            ws.path(out or f"bad-out-{next(counter)}"),
            samples or ws.samples,
            url if judge else None,
            cache,
            method=method,
            extra=list(extra),
        )

    def replace(argv: list[str], option: str, value: str) -> list[str]:
        argv = list(argv)
        argv[argv.index(option) + 1] = value
        return argv

    def entry_case(name, change, names):
        return {
            "name": name,
            "argv": lambda: ["validate", str(_entry_variant(ws, f"{name}.json", change))],
            "code": 1,
            "names": names,
            "kind": "problems",
        }

    def first_row(entry):
        return entry["verdicts"][0]

    def swap(argv: list[str], old: str, new: str) -> list[str]:
        return [new if a == old else a for a in argv]

    def samples_case(name, change, code, names):
        # generation only: a samples problem must be refused whatever the judge
        path = f"samples-{next(counter)}.jsonl"
        return {
            "name": name,
            "argv": lambda: run(samples=_sample_variant(ws, path, change), judge=False),
            "code": code,
            "names": names,
        }

    def edited_case(command, what, edit, names):
        name = f"edited-{command}-{next(counter)}"
        return {
            "name": f"{command} after {what} (kept)",
            "argv": lambda: _command_on(command, _edited_run(ws, name, edit), run, ws),
            "code": 1,
            "names": names,
            "guard": name,
        }

    with socket.socket() as sock:  # a local port nothing listens on once released
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    return {
        "ws": ws,
        "url": url,
        "cache": cache,
        "counter": counter,
        "run": run,
        "replace": replace,
        "entry_case": entry_case,
        "first_row": first_row,
        "swap": swap,
        "samples_case": samples_case,
        "edited_case": edited_case,
        "closed_port": closed_port,
    }


def bad_input_cases(ws: Workspace) -> list[dict]:
    """The table of bad inputs: argv, expected exit code and the text the message must name.

    Each case is a dict: ``name``, ``argv`` (a callable building it, so files are made lazily),
    ``code`` (expected exit code), ``names`` (strings the error output must contain),
    ``kind`` (``error``: one error line and a hint; ``problems``: validation problems;
    ``output``: a command that works and must say ``names``, never print ``absent`` or a line
    longer than ``max_line``), ``guard`` (a directory that must not change), ``env`` (extra
    environment), ``child`` (run in a child process, so the libraries' own log handlers, which
    hold the process's first stderr, are seen too), ``sandbox`` (``readonly`` / ``full``).
    """
    from . import cases_a, cases_b, cases_c, cases_data

    k = case_kit(ws)
    cases = [
        *cases_a.cases(k),
        *cases_b.cases(k),
        *cases_c.cases(k),
        *cases_data.cases(k),
    ]
    for case in cases:
        case.setdefault("kind", "error")
    return cases


def _sandboxed(case: dict, argv: list[str], ws: Workspace) -> tuple[int, str, str]:
    """Run a case in a child process with its output folder on a read-only or tiny tmpfs."""
    if shutil.which("unshare") is None:
        return -1, "", "unshare is not available: cannot make a read-only or full folder"
    folder = ws.path("ro" if case["sandbox"] == "readonly" else "full")
    folder.mkdir(exist_ok=True)
    mount = (
        f"mount -t tmpfs -o size=1m,ro tmpfs {folder}"
        if case["sandbox"] == "readonly"
        else f"mount -t tmpfs -o size=24k tmpfs {folder}"
    )
    cmd = " ".join(
        [mount, "&&", "exec", sys.executable, "-m", "slim_leakage.cli"] + [f"'{a}'" for a in argv]
    )
    proc = subprocess.run(
        ["unshare", "-rm", "sh", "-c", cmd],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc.returncode, proc.stdout, proc.stderr


def judge_bad_input(case: dict, code: int, stdout: str, stderr: str) -> list[str]:
    """What is wrong with the answer to a bad input (empty: handled)."""
    wrong = []
    text = stdout + stderr
    if code != case["code"]:
        wrong.append(f"exit {code}, expected {case['code']}")
    if "Traceback" in text:
        wrong.append("printed a traceback")
    if case["kind"] == "output":
        for absent in case.get("absent", ()):
            if absent in text:
                wrong.append(f"printed {absent!r}")
        longest = max((len(line) for line in text.splitlines()), default=0)
        if longest > case.get("max_line", 10_000):
            wrong.append(f"printed a line of {longest} characters")
        where = text
    elif case["kind"] == "error":
        errors = [line for line in stderr.splitlines() if line.startswith("error:")]
        if len(errors) != 1:
            wrong.append(f"{len(errors)} error lines")
        elif (
            errors[0].startswith("error: ")
            and ": " in errors[0][7:40]
            and errors[0][7:8].isupper()
            and errors[0][7:].split(":", 1)[0].isidentifier()
        ):
            wrong.append(f"unexpected exception: {errors[0][:160]}")
        if not any(line.startswith("hint:") for line in stderr.splitlines()):
            wrong.append("no hint")
        # several problems at once are one error whose lines list them ("  - ...")
        where = "\n".join(
            line for line in stderr.splitlines() if line.startswith(("error:", "hint:", "  - "))
        )
    else:
        where = text
    for name in case["names"]:
        if name not in where:
            wrong.append(f"message does not name {name!r}")
    return wrong


def check_bad_inputs(ws: Workspace, log=print, only: set[str] | None = None) -> dict:
    """Try every bad input; the ``bad_inputs_*`` figures."""
    rows = []
    for case in bad_input_cases(ws):
        if only and case["name"] not in only:
            continue
        argv = case["argv"]()
        guard = ws.path(case["guard"]) if case.get("guard") else None
        before = tree_digest(guard) if guard else None
        if case.get("sandbox"):
            code, out, err = _sandboxed(case, argv, ws)
        elif case.get("child"):
            proc = subprocess.run(
                [sys.executable, "-m", "slim_leakage.cli", *argv],
                env=child_env(),
                capture_output=True,
                text=True,
                timeout=600,
            )
            code, out, err = proc.returncode, proc.stdout, proc.stderr
        else:
            env = {"OPENAI_API_KEY": FAKE_OPENAI_KEY, **case.get("env", {})}
            code, out, err = cli(argv, env=env)
        wrong = judge_bad_input(case, code, out, err)
        lost = []
        if guard is not None and tree_digest(guard) != before:
            wrong.append("finished output changed")
            lost.append(f"{guard.name} changed")
        out_dir = (
            Path(argv[argv.index("--out") + 1]) if argv[0] == "run" and "--out" in argv else None
        )
        if out_dir is not None and case["code"] == 2 and guard is None and out_dir.is_dir():
            wrong.append("a usage error left a run directory behind")
        if out_dir is not None and out_dir.is_dir() and out_dir != guard:
            lost += lost_work(out_dir)  # a guarded run was edited on purpose; its check is above
        if lost:
            wrong.append(f"work lost: {'; '.join(lost)[:200]}")
        message = " | ".join(line for line in (out + err).splitlines() if line.strip())[-300:]
        rows.append(
            {
                "name": case["name"],
                "handled": not wrong,
                "data_lost": bool(lost),
                "wrong": wrong,
                "message": message,
            }
        )
        log(f"bad input {case['name']!r}: {wrong or 'ok'}")
    return {
        "bad_inputs_tried": len(rows),
        "bad_inputs_handled": sum(r["handled"] for r in rows),
        "data_loss_cases": sum(r["data_lost"] for r in rows),
        "bad_input_rows": rows,
    }
