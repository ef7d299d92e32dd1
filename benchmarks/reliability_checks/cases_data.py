"""Bad inputs as data: rows of (name, argv template, expected exit code, names), built into
the runner's case dicts by :func:`cases`.

Placeholders in an argv template or a name are made lazily, one set per case:

- ``{run}``: a fresh copy of the finished reference run; the case is guarded (the run must
  come out byte-for-byte unchanged, else it counts as lost work);
- ``{missing}``, ``{file}``, ``{empty}``, ``{others}``: a path that does not exist, a plain
  file, an empty folder, a folder of someone's files with no run in it;
- ``{keep}``: a folder holding ``notes.txt`` and ``entry.json`` that must not change (guarded);
- ``{tmp}``: a fresh empty folder for outputs; ``{link}``: a link to a file;
- ``{samples}``: the workspace's samples file; ``{one}``: a samples file whose one sample has
  a single entity.

A row's ``names`` must appear in the error output (see ``bad_inputs.judge_bad_input``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .bad_inputs import _finished_run

#: Commands given a path that holds no run: (what, argv with ``{p}`` for that path).
NO_RUN_COMMANDS = (
    ("report", ["report", "{p}"]),
    ("submit", ["submit", "{p}", "--out", "{tmp}/entry.json"]),
    ("judge", ["judge", "{p}", "--judge", "oracle"]),
    ("annotate", ["annotate", "{p}", "--annotator", "ann"]),
    ("agree --run", ["agree", "--run", "{p}", "--reference-run", "{run}"]),
    ("agree --reference-run", ["agree", "--run", "{run}", "--reference-run", "{p}"]),
    ("toy leakage", ["toy", "leakage", "{p}"]),
)
#: The paths that hold no run: (placeholder, how the case names it).
NO_RUN_PATHS = (
    ("missing", "a missing folder"),
    ("file", "a file"),
    ("empty", "an empty folder"),
    ("others", "a folder of other files"),
)
#: A run's records, which no command may write over (not even with --force).
RUN_RECORDS = (
    "manifest.json",
    "samples.jsonl",
    "generations.jsonl",
    "judgements.jsonl",
    "verdicts.jsonl",
    "metrics.json",
    "images",
    "images/vanilla/s1.png",
    ".lock",
    "judged/other.html",
)
#: Output paths that are not a regular file the command may create: (path, what is named).
NOT_A_FILE = (
    ("/dev/full", "not a regular file"),
    ("/dev/null", "not a regular file"),
    ("{tmp}", "is a folder"),
    ("{link}", "is a link"),
    ("{file}/x.json", "is a file, not a folder"),
)
#: Commands that write one output file where they are told: (what, argv with ``{t}``).
WRITERS = (
    ("report --out", ["report", "{run}", "--out", "{t}"]),
    ("submit --out", ["submit", "{run}", "--out", "{t}"]),
    ("annotate --labels", ["annotate", "{run}", "--annotator", "ann", "--labels", "{t}"]),
)

#: Command lines the parser refuses: (name, argv, names).
PARSER_ROWS = (
    ("run --limit not a number", ["run", "--limit", "abc"], ["--limit", "abc"]),
    ("run --limit a fraction", ["run", "--limit", "1.5"], ["--limit", "1.5"]),
    ("run --batch-size not a number", ["run", "--batch-size", "x"], ["--batch-size"]),
    ("run unknown option", ["run", "--bogus"], ["--bogus"]),
    ("run --dtype not a dtype", ["run", "--dtype", "float8"], ["float8"]),
    ("run --method without a value", ["run", "--method"], ["--method"]),
    ("bare unknown option", ["--version-x"], ["--version-x"]),
    ("unknown subcommand", ["frobnicate"], ["frobnicate"]),
    ("estimate without --judge", ["estimate"], ["--judge"]),
    ("estimate --limit not a number", ["estimate", "--judge", "openai", "--limit", "x"], ["x"]),
    ("estimate --methods not a number", ["estimate", "--judge", "openai", "--methods", "x"], ["x"]),
    ("estimate --image-size not a number", ["estimate", "--judge", "openai", "--image-size", "x"], ["x"]),
    ("judge without --judge", ["judge", "{run}"], ["--judge"]),
    ("judge --limit not a number", ["judge", "{run}", "--judge", "oracle", "--limit", "x"], ["x"]),
    ("submit without --out", ["submit", "{run}"], ["--out"]),
    ("annotate without --annotator", ["annotate", "{run}"], ["--annotator"]),
    ("annotate --port not a number", ["annotate", "{run}", "--annotator", "a", "--port", "x"], ["x"]),
    ("agree without a reference", ["agree", "--run", "{run}"], ["--human", "--reference-run"]),
    ("agree with two references", ["agree", "--run", "{run}", "--human", "a.csv", "--reference-run", "{run}"], ["--reference-run"]),
    ("agree --n-boot not a number", ["agree", "--run", "{run}", "--reference-run", "{run}", "--n-boot", "x"], ["x"]),
    ("toy render without entities", ["toy", "render"], ["entities"]),
    ("toy render --scale not a number", ["toy", "render", "tiger", "--out", "{tmp}/t.png", "--scale", "x"], ["x"]),
    ("toy unknown subcommand", ["toy", "frob"], ["frob"]),
    ("dataset unknown subcommand", ["dataset", "frob"], ["frob"]),
    ("report without a run", ["report"], ["RUN"]),
    ("validate without an entry", ["validate"], ["validate"]),
    ("report unknown option", ["report", "{run}", "--bogus"], ["--bogus"]),
    ("submit unknown option", ["submit", "{run}", "--out", "{tmp}/e.json", "--bogus"], ["--bogus"]),
    ("sweep --grid without a value", ["sweep", "--grid"], ["--grid"]),
)  # fmt: skip

#: ``--limit`` below 1 is refused alike by every command that takes it: (name, argv, names).
LIMIT_ROWS = (
    ("estimate --limit 0", ["estimate", "--judge", "openai", "--config", "{samples}", "--limit", "0"], ["limit=0"]),
    ("estimate --limit negative", ["estimate", "--judge", "openai", "--config", "{samples}", "--limit", "-3"], ["limit=-3"]),
    ("judge --limit 0", ["judge", "{run}", "--judge", "oracle", "--limit", "0"], ["limit"]),
    ("judge --limit negative", ["judge", "{run}", "--judge", "oracle", "--limit", "-2"], ["limit"]),
)  # fmt: skip


#: Values the commands refuse after parsing: (name, argv, code, names).
VALUE_ROWS = (
    ("estimate: samples file missing", ["estimate", "--judge", "openai", "--config", "{missing}.jsonl"], 2, ["{missing}.jsonl"]),
    ("estimate: unknown judge", ["estimate", "--judge", "nope", "--config", "{samples}"], 2, ["nope"]),
    ("estimate: image size 0", ["estimate", "--judge", "openai", "--config", "{samples}", "--image-size", "0"], 2, ["--image-size 0"]),
    ("estimate: no methods", ["estimate", "--judge", "openai", "--config", "{samples}", "--methods", "0"], 2, ["methods=0"]),
    ("annotate: port out of range", ["annotate", "{run}", "--annotator", "a", "--port", "70000"], 2, ["70000"]),
    ("annotate: annotator with a comma", ["annotate", "{run}", "--annotator", "a,b"], 2, ["'a,b'"]),
    ("annotate: empty annotator", ["annotate", "{run}", "--annotator", " "], 2, ["Annotator name"]),
    ("toy render: unknown entity", ["toy", "render", "unicorn", "--out", "{tmp}/u.png"], 2, ["unicorn"]),
    ("toy render: scale 0", ["toy", "render", "tiger", "--out", "{tmp}/t.png", "--scale", "0"], 2, ["--scale 0"]),
    ("toy render: over an existing file (kept)", ["toy", "render", "tiger", "--out", "{keep}/notes.txt"], 2, ["already exists"]),
    ("toy render: to a device", ["toy", "render", "tiger", "--out", "/dev/full"], 2, ["not a regular file"]),
    ("toy measure: over an existing file (kept)", ["toy", "measure", "--out", "{keep}/entry.json"], 2, ["already exists"]),
    ("agree: labels file missing", ["agree", "--run", "{run}", "--human", "{missing}.csv"], 2, ["{missing}.csv"]),
    ("judge: unknown judge", ["judge", "{run}", "--judge", "nope"], 2, ["nope"]),
    ("run: samples path is a plain file without .jsonl", ["run", "--config", "{file}", "--judge", "none", "--out", "{tmp}/out"], 2, ["neither .parquet nor .jsonl"]),
)  # fmt: skip


def _fixtures(ws, tag: str) -> dict[str, str]:
    """The placeholder paths of one case (nothing made yet)."""
    base = ws.path(f"data-{tag}")
    return {
        "missing": str(base / "missing"),
        "file": str(base / "plain.txt"),
        "empty": str(base / "empty"),
        "others": str(base / "others"),
        "keep": str(base / "keep"),
        "tmp": str(base / "tmp"),
        "link": str(base / "link.json"),
        "one": str(base / "one.jsonl"),
        "samples": str(ws.samples),
        "run": str(ws.path(f"data-run-{tag}")),
    }


def _make(ws, tag: str, paths: dict[str, str], used: str) -> None:
    """Make the fixtures the case's argv uses."""
    base = ws.path(f"data-{tag}")
    base.mkdir(parents=True, exist_ok=True)
    if "{file}" in used or "{link}" in used:
        Path(paths["file"]).write_text("someone's notes\n")
    if "{link}" in used and not os.path.lexists(paths["link"]):
        os.symlink(paths["file"], paths["link"])
    if "{empty}" in used:
        Path(paths["empty"]).mkdir(exist_ok=True)
    if "{others}" in used:
        Path(paths["others"]).mkdir(exist_ok=True)
        (Path(paths["others"]) / "holiday.jpg").write_bytes(b"\xff\xd8 not a run")
    if "{keep}" in used:
        Path(paths["keep"]).mkdir(exist_ok=True)
        (Path(paths["keep"]) / "notes.txt").write_text("mine\n")
        (Path(paths["keep"]) / "entry.json").write_text('{"signed": true}\n')
    if "{tmp}" in used:
        Path(paths["tmp"]).mkdir(exist_ok=True)
    if "{one}" in used:
        row = {"id": "solo", "prompt": "a cow in a field", "entities": ["cow"], "seed": 1}
        Path(paths["one"]).write_text(json.dumps(row) + "\n")
    if "{run}" in used:
        _finished_run(ws, Path(paths["run"]).name)


def _case(ws, tag: str, name: str, argv: list[str], code: int, names: list[str], **extra) -> dict:
    paths = _fixtures(ws, tag)
    used = " ".join(argv)

    def build() -> list[str]:
        _make(ws, tag, paths, used)
        return [a.format(**paths) for a in argv]

    case = {"name": name, "argv": build, "code": code, "names": [n.format(**paths) for n in names]}
    if "{run}" in used:
        case["guard"] = Path(paths["run"]).name
    elif "{keep}" in used:
        case["guard"] = f"data-{tag}/keep"
    case.update(extra)
    return case


def _rows(k: dict) -> list[tuple]:
    """Every data row as (name, argv template, code, names, extra)."""
    run, swap, replace = k["run"], k["swap"], k["replace"]
    rows: list[tuple] = []
    for what, argv in NO_RUN_COMMANDS:
        for kind, said in NO_RUN_PATHS:
            rows.append(
                (f"{what}: {said}", [a.replace("{p}", "{" + kind + "}") for a in argv], 2, ["{" + kind + "}"], {})
            )  # fmt: skip
    for record in RUN_RECORDS:
        for force in ((), ("--force",)):
            rows.append(
                (f"report --out over the run's {record}{' --force' if force else ''}",
                 ["report", "{run}", "--out", "{run}/" + record, *force], 2, ["record of the run"], {})
            )  # fmt: skip
        rows.append(
            (f"submit --out over the run's {record}", ["submit", "{run}", "--out", "{run}/" + record],
             2, ["record of the run"], {})
        )  # fmt: skip
    for record in RUN_RECORDS[:5]:
        rows.append(
            (f"submit --out over the run's {record} --force",
             ["submit", "{run}", "--out", "{run}/" + record, "--force"], 2, ["record of the run"], {})
        )  # fmt: skip
    for what, argv in WRITERS:
        for target, said in NOT_A_FILE:
            rows.append(
                (f"{what} {target.strip('{}')}", [a.replace("{t}", target) for a in argv], 2, [said], {})
            )  # fmt: skip
    rows += [
        ("report --out an existing file (kept)", ["report", "{run}", "--out", "{keep}/notes.txt"], 2, ["already exists", "--force"], {}),
        ("submit --out an existing entry (kept)", ["submit", "{run}", "--out", "{keep}/entry.json"], 2, ["already exists", "--force"], {}),
    ]  # fmt: skip
    for name, argv, names in PARSER_ROWS + LIMIT_ROWS:
        rows.append((name, argv, 2, names, {}))
    for name, argv, code, names in VALUE_ROWS:
        rows.append((name, argv, code, names, {}))

    # run requests that cannot work, refused before anything is made (tiny-random draws sizes
    # divisible by 2, the toy model by 4; the oracle reads toy images and toy words only)
    def plain():  # a fresh --out per case
        return run(judge=False)

    def toy():
        return swap(plain(), "tiny-random", "toy")

    rows += [
        ("height the model cannot draw", plain() + ["--backbone-arg", "height=33"], 2, ["height=33", "multiple of 2"], {}),
        ("width the model cannot draw", plain() + ["--backbone-arg", "width=31"], 2, ["width=31", "width=30"], {}),
        ("a one-pixel height", plain() + ["--backbone-arg", "height=1"], 2, ["height=1"], {}),
        ("toy height not a multiple of 4", toy() + ["--backbone-arg", "height=62"], 2, ["height=62", "multiple of 4"], {}),
        ("oracle on words outside the toy world", replace(toy(), "--judge", "oracle"), 2, ["toy-world entities", "cow"], {}),
        ("oracle with tiny-random and a one-entity sample", replace(run(judge=False, samples=Path("{one}")), "--judge", "oracle"), 2, ["tiny-random", "fewer than two entities"], {}),
        ("a one-entity sample", run(judge=False, samples=Path("{one}")), 1, ["fewer than two entities", "solo"], {}),
        ("entity past the text length", swap(run(judge=False, method="deleaker"), "max_sequence_length=64", "max_sequence_length=4"), 2, ["falls past max_sequence_length=4"], {}),
        ("sweep --grid without =", [*swap(plain(), "run", "sweep"), "--grid", "alpha"], 2, ["alpha"], {}),
        ("sweep --preset unknown", [*swap(plain(), "run", "sweep"), "--preset", "nope"], 2, ["nope"], {}),
    ]  # fmt: skip
    return rows


def cases(k: dict) -> list[dict]:
    """The data rows as the runner's cases."""
    ws = k["ws"]
    out = []
    for index, (name, argv, code, names, extra) in enumerate(_rows(k)):
        argv = [str(a) for a in argv]
        out.append(_case(ws, f"d{index}", name, argv, code, names, **extra))
    return out
