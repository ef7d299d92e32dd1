"""Bad inputs, table B: judges, finished runs edited by hand, reports and entries."""

from __future__ import annotations

import math

from .bad_inputs import (
    _folder,
    _labels_csv,
    _sample_variant,
    _tampered_run,
)


def cases(k: dict) -> list[dict]:
    """This table's cases (see ``bad_inputs.bad_input_cases`` for their keys)."""
    ws = k["ws"]
    url = k["url"]
    cache = k["cache"]
    run = k["run"]
    replace = k["replace"]
    first_row = k["first_row"]
    entry_case = k["entry_case"]
    samples_case = k["samples_case"]
    return [
        {
            "name": "judge: image symlink leaving the run",
            "argv": lambda: [
                "judge",
                str(_tampered_run(ws, "tamper-link", "symlink")),
                "--judge",
                "openai-compatible",
                "--judge-arg",
                f"base_url={url}",
                "--judge-arg",
                f"cache_dir={cache}",
                "--no-progress",
            ],
            "code": 1,
            "names": ["s1"],
        },
        {
            "name": "submit: generation path with ..",
            "argv": lambda: [
                "submit",
                str(_tampered_run(ws, "tamper-submit", "dotdot")),
                "--out",
                str(ws.path("tampered-entry.json")),
            ],
            "code": 1,
            "names": [".."],
        },
        {
            "name": "report: image symlink leaving the run",
            "argv": lambda: ["report", str(_tampered_run(ws, "tamper-report", "symlink"))],
            "code": 1,
            "names": ["s1"],
        },
        {
            "name": "labels CSV not UTF-8",
            "argv": lambda: [
                "agree",
                "--run",
                str(ws.reference()),
                "--human",
                str(
                    _labels_csv(
                        ws,
                        "latin.csv",
                        "sample_id,method,annotator,label\ns1,x,j\u00fcrgen,no-change\n".encode(
                            "latin-1"
                        ),
                    )
                ),
            ],
            "code": 1,
            "names": ["latin.csv"],
        },
        {
            "name": "labels CSV missing columns",
            "argv": lambda: [
                "agree",
                "--run",
                str(ws.reference()),
                "--human",
                str(_labels_csv(ws, "cols.csv", b"sample_id,label\ns1,no-change\n")),
            ],
            "code": 1,
            "names": ["cols.csv", "annotator"],
        },
        {
            "name": "labels CSV unknown label",
            "argv": lambda: [
                "agree",
                "--run",
                str(ws.reference()),
                "--human",
                str(
                    _labels_csv(
                        ws,
                        "lab.csv",
                        b"sample_id,method,annotator,label\ns1,instruction-prompt,a,better\n",
                    )
                ),
            ],
            "code": 1,
            "names": ["better"],
        },
        {
            "name": "labels CSV binary garbage",
            "argv": lambda: [
                "agree",
                "--run",
                str(ws.reference()),
                "--human",
                str(_labels_csv(ws, "bin.csv", b"\x00\x01\x02,\x00\n\xff\xfe")),
            ],
            "code": 1,
            "names": ["bin.csv"],
        },
        entry_case(
            "entry wrong type",
            lambda e: e["metrics"].update(n_labelled="4"),
            ["metrics.n_labelled"],
        ),
        entry_case("entry unknown field", lambda e: e.update(score=1.0), ["score"]),
        entry_case(
            "entry NaN share",
            lambda e: e["metrics"]["distribution"].update({"no-change": math.nan}),
            ["distribution"],
        ),
        entry_case(
            "entry huge number",
            lambda e: e["dataset"].update(n_samples=10**400),
            ["dataset.n_samples"],
        ),
        entry_case(
            "entry infinite interval",
            lambda e: e["metrics"]["intervals"].update({"no-change": [0.0, math.inf]}),
            ["intervals"],
        ),
        entry_case(
            "entry changed label",
            lambda e: first_row(e).update(
                label="mitigation-major"
                if first_row(e)["label"] != "mitigation-major"
                else "no-change"
            ),
            ["counts"],
        ),
        {
            "name": "entry not JSON",
            "argv": lambda: ["validate", str(_labels_csv(ws, "notjson.json", b"{'schema': 1}"))],
            "code": 1,
            "names": ["notjson.json"],
            "kind": "problems",
        },
        {
            "name": "entry not UTF-8",
            "argv": lambda: [
                "validate",
                str(
                    _labels_csv(ws, "latin-entry.json", '{"name": "J\u00fcrgen"}'.encode("latin-1"))
                ),
            ],
            "code": 1,
            "names": ["latin-entry.json"],
            "kind": "problems",
        },
        {
            "name": "entry missing file",
            "argv": lambda: ["validate", str(ws.path("missing-entry.json"))],
            "code": 1,
            "names": ["missing-entry.json"],
            "kind": "problems",
        },
        # -- samples whose ids or entities would share a file, and fields of the wrong type --
        *[
            samples_case(name, change, code, names)
            for name, change, code, names in (
                (
                    "duplicate id, judge none (images overwritten before)",
                    lambda rows: rows[1].update(id="s1"),
                    1,
                    ["'s1' is used 2 times", ":1", ":2"],
                ),
                (
                    "ids that name one file (a slash and a dash)",
                    lambda rows: (rows[0].update(id="a-b"), rows[1].update(id="A_b")),
                    1,
                    ["'a-b'", "'A_b'", "a-b.png"],
                ),
                ("id with a slash", lambda rows: rows[0].update(id="a/b"), 1, ["'a/b'", "'/'"]),
                ("id with a space", lambda rows: rows[0].update(id="s 1"), 1, ["'s 1'", "' '"]),
                ("id too long", lambda rows: rows[0].update(id="x" * 200), 1, ["200 characters"]),
                ("id starting with a dot", lambda rows: rows[0].update(id=".s1"), 1, ["'.s1'"]),
                ("empty id", lambda rows: rows[0].update(id=""), 1, [":1", "id ''"]),
                ("id not a text", lambda rows: rows[0].update(id=7), 1, [":1", "'id'"]),
                (
                    "an entity named twice in a sample",
                    lambda rows: rows[0].update(entities=["cow", "Cow"]),
                    1,
                    ["'cow'", "'Cow'"],
                ),
                (
                    "entities written two ways (one reference file)",
                    lambda rows: rows[1].update(
                        prompt="a Cow and a cheetah near a river", entities=["Cow", "cheetah"]
                    ),
                    1,
                    ["'cow'", "'Cow'", "images/reference/cow.png"],
                ),
                ("seed as text", lambda rows: rows[0].update(seed="1"), 1, [":1", "'seed'"]),
                ("seed with a fraction", lambda rows: rows[0].update(seed=1.5), 1, ["'seed'"]),
                ("negative seed", lambda rows: rows[0].update(seed=-1), 1, ["seed -1"]),
                ("seed past 64 bits", lambda rows: rows[0].update(seed=2**64), 1, ["seed 1844"]),
                ("seed as a boolean", lambda rows: rows[0].update(seed=True), 1, ["'seed'"]),
                (
                    "entities as one string",
                    lambda rows: rows[0].update(entities="cow and horse"),
                    1,
                    [":1", "'entities'"],
                ),
                (
                    "entity not a text",
                    lambda rows: rows[0].update(entities=["cow", 2]),
                    1,
                    ["item 2"],
                ),
                ("prompt not a text", lambda rows: rows[0].update(prompt=5), 1, ["'prompt'"]),
                ("seed missing", lambda rows: rows[0].pop("seed"), 1, [":1", "'seed'"]),
                (
                    "unknown sample field",
                    lambda rows: rows[0].update(sed=1),
                    1,
                    ["'sed'", "Did you mean 'seed'"],
                ),
                (
                    "several bad lines at once",
                    lambda rows: (rows[1].update(seed=0.5), rows[2].update(id="")),
                    1,
                    ["2 problems", ":2", ":3"],
                ),
            )
        ],
        {
            "name": "duplicate id, judged",
            "argv": lambda: run(
                samples=_sample_variant(
                    ws, "dup-judged.jsonl", lambda rows: rows[3].update(id="s2")
                )
            ),
            "code": 1,
            "names": ["'s2' is used 2 times"],
        },
        {
            "name": "samples line not an object",
            "argv": lambda: replace(
                run(), "--config", str(_labels_csv(ws, "array.jsonl", b'["s1", "a cow"]\n'))
            ),
            "code": 1,
            "names": ["array.jsonl:1", "JSON object"],
        },
        {
            "name": "samples file empty",
            "argv": lambda: replace(run(), "--config", str(_labels_csv(ws, "none.jsonl", b"\n"))),
            "code": 1,
            "names": ["none.jsonl", "no samples"],
        },
        {
            "name": "samples path is a folder",
            "argv": lambda: replace(run(), "--config", str(_folder(ws, "samples.d.jsonl"))),
            "code": 2,
            "names": ["samples.d.jsonl", "is a folder"],
        },
        # -- the selection ---------------------------------------------------------------------
        {
            "name": "--ids of separators only",
            "argv": lambda: run("--ids", ", ,"),
            "code": 2,
            "names": ["', ,'", "no sample id"],
        },
        {
            "name": "--ids file empty",
            "argv": lambda: run("--ids", "@" + str(_labels_csv(ws, "ids-empty.txt", b"\n \n"))),
            "code": 2,
            "names": ["ids-empty.txt", "empty"],
        },
        {
            "name": "--ids file not UTF-8",
            "argv": lambda: run("--ids", "@" + str(_labels_csv(ws, "ids.txt", b"s1\ns\xfc2\n"))),
            "code": 2,
            "names": ["ids.txt:2", "UTF-8"],
        },
        {
            "name": "--ids file is a folder",
            "argv": lambda: run("--ids", "@" + str(_folder(ws, "ids.d"))),
            "code": 2,
            "names": ["ids.d", "folder"],
        },
        # -- run-config files with values of the wrong type ------------------------------------
    ]
