"""Bad inputs, table C: labels, estimates, references, prompts and full or read-only disks."""

from __future__ import annotations

from .bad_inputs import (
    _BAD_VERDICT,
    _cut_short,
    _edit_json,
    _finished_run,
    _first_only,
    _folder,
    _insert_line,
    _labels_csv,
    _one_long_prompt,
    _other_images_run,
    _own_folder,
    _sample_variant,
    _samples_edited_after_a_run,
)


def cases(k: dict) -> list[dict]:
    """This table's cases (see ``bad_inputs.bad_input_cases`` for their keys)."""
    ws = k["ws"]
    url = k["url"]
    closed_port = k["closed_port"]
    run = k["run"]
    replace = k["replace"]
    swap = k["swap"]
    edited_case = k["edited_case"]
    return [
        *[
            {
                "name": f"run-config {name}",
                "argv": (
                    lambda name=name, text=text: run(
                        "--run-config",
                        str(_labels_csv(ws, f"rc-{name.replace(' ', '-')}.json", text)),
                    )
                ),
                "code": 2,
                "names": names,
            }
            for name, text, names in (
                ("float for an integer", b'{"limit": 2.5}', ["limit=2.5"]),
                ("boolean for an integer", b'{"limit": true}', ["limit=True"]),
                ("text for a mapping", b'{"method_args": "x=1"}', ["method_args='x=1'"]),
                ("list for a text", b'{"backbone_path": ["w"]}', ["backbone_path=['w']"]),
                ("integer for a boolean", b'{"references": 0}', ["references=0"]),
                ("unknown dtype", b'{"dtype": "float64"}', ["'float64'", "float32"]),
                ("empty id list", b'{"ids": []}', ["ids is empty"]),
                ("not an object", b'["run"]', ["JSON object", "list"]),
                ("not UTF-8", '{"method": "v\u00e4nilla"}'.encode("latin-1"), ["not-UTF-8"]),
            )
        ],
        # -- devices, weights, judges and the output folder ------------------------------------
        {
            "name": "device that is not a device name",
            "argv": lambda: replace(run(), "--device", "gpu"),
            "code": 2,
            "names": ["'gpu'", "cpu"],
        },
        {
            "name": "device this machine lacks",
            "argv": lambda: replace(run(), "--device", "cuda:99"),
            "code": 2,
            "names": ["'cuda:99'"],
        },
        {
            "name": "backbone path that does not exist",
            "argv": lambda: run("--backbone-path", "./no-such-weights"),
            "code": 2,
            "names": ["./no-such-weights"],
        },
        {
            "name": "judge server not reachable",
            "argv": lambda: swap(
                run(), f"base_url={url}", f"base_url=http://127.0.0.1:{closed_port}/v1"
            ),
            "code": 1,
            "names": [f"127.0.0.1:{closed_port}", "cannot be reached"],
        },
        {
            "name": "judge base_url without a scheme",
            "argv": lambda: swap(run(), f"base_url={url}", "base_url=127.0.0.1:8000/v1"),
            "code": 2,
            "names": ["127.0.0.1:8000/v1", "http"],
        },
        {
            "name": "model for a judge with no model choice",
            "argv": lambda: (
                replace(run(judge=False), "--judge", "oracle") + ["--judge-arg", "model=gpt-4o"]
            ),
            "code": 2,
            "names": ["'gpt-4o'", "no model choice"],
        },
        {
            "name": "judge options with judge none",
            "argv": lambda: run(judge=False) + ["--judge-arg", "model=x"],
            "code": 2,
            "names": ["model", "'none'"],
        },
        {
            "name": "judge budget infinite",
            "argv": lambda: run("--judge-arg", "tpm=inf"),
            "code": 2,
            "names": ["tpm=inf", "finite"],
        },
        {
            "name": "judge rpm zero",
            "argv": lambda: run("--judge-arg", "rpm=0"),
            "code": 2,
            "names": ["rpm=0.0", "> 0"],
        },
        {
            "name": "backbone-arg not a number",
            "argv": lambda: run("--backbone-arg", "guidance_scale=nan"),
            "code": 2,
            "names": ["guidance_scale=nan", "finite"],
        },
        {
            "name": "method-arg for a method without options",
            "argv": lambda: run("--method-arg", "x=1", method="vanilla"),
            "code": 2,
            "names": ["'x'", "takes no options"],
        },
        {
            "name": "--out is a file",
            "argv": lambda: run(out=_labels_csv(ws, "out-file.txt", b"mine").name),
            "code": 2,
            "names": ["out-file.txt", "is a file"],
        },
        {
            "name": "--out holds someone's files (kept)",
            "argv": lambda: run(out=_own_folder(ws, "my-folder").name),
            "code": 2,
            "names": ["my-folder", "'report.html'"],
            "guard": "my-folder",
        },
        {
            "name": "rank environment broken",
            "argv": lambda: run(),
            "code": 2,
            "names": ["WORLD_SIZE='two'"],
            "env": {"WORLD_SIZE": "two"},
        },
        # -- a finished run edited by hand: refused, and left as it was ------------------------
        edited_case(
            "resume",
            "a manifest identity edit",
            _edit_json("manifest.json", ("identity", "method", "config", "position"), "prefix"),
            ["manifest.json", "identity.method.config.position"],
        ),
        edited_case(
            "resume",
            "a manifest judge edit",
            _edit_json("manifest.json", ("judge", "model_id"), "gpt-4o"),
            ["judge.model_id"],
        ),
        edited_case(
            "resume",
            "a manifest config_hash edit",
            _edit_json("manifest.json", ("config_hash",), "0" * 16),
            ["config_hash"],
        ),
        edited_case(
            "resume", "a manifest cut short", _cut_short("manifest.json"), ["manifest.json"]
        ),
        edited_case(
            "submit",
            "a manifest judge edit",
            _edit_json("manifest.json", ("judge", "model_id"), "gpt-4o"),
            ["judge.model_id"],
        ),
        edited_case(
            "report",
            "a manifest method edit",
            _edit_json("manifest.json", ("method", "config", "position"), "prefix"),
            ["method.config.position"],
        ),
        edited_case(
            "resume",
            "an empty record mid-file",
            _insert_line("generations.jsonl", 2, "{}"),
            ["generations.jsonl:3", "misses"],
        ),
        edited_case(
            "resume",
            "a broken line mid-file",
            _insert_line("generations.jsonl", 3, '{"sample_id": '),
            ["generations.jsonl:4", "not valid JSON"],
        ),
        edited_case(
            "resume",
            "an unknown label mid-file",
            _insert_line("verdicts.jsonl", 1, _BAD_VERDICT),
            ["verdicts.jsonl:2", "'better'"],
        ),
        edited_case(
            "submit",
            "an unknown label mid-file",
            _insert_line("verdicts.jsonl", 1, _BAD_VERDICT),
            ["verdicts.jsonl:2", "'better'"],
        ),
        {
            "name": "resume with samples edited under the same ids (kept)",
            "argv": lambda: _samples_edited_after_a_run(ws, "edited-samples", run),
            "code": 2,
            "names": ["other samples", "'s1'", "prompt"],
            "guard": "edited-samples",
        },
        {
            "name": "resume with another --ids (kept)",
            "argv": lambda: run("--ids", "s1,s2", out=_finished_run(ws, "guard-ids").name),
            "code": 2,
            # fewer samples than the run holds: refused with the counts and --limit/--ids
            "names": ["holds a run of 4 samples", "selects 2", "--limit"],
            "guard": "guard-ids",
        },
        {
            "name": "agree: a reference run of other images",
            "argv": lambda: [
                "agree",
                "--run",
                str(ws.reference()),
                "--reference-run",
                str(_other_images_run(ws, "other-images")),
            ],
            "code": 1,
            "names": ["other images", "'s1'"],
        },
        {
            "name": "agree: labels of unknown sample ids (said, not dropped)",
            "argv": lambda: [
                "agree",
                "--run",
                str(ws.reference()),
                "--human",
                str(
                    _labels_csv(
                        ws,
                        "unknown-ids.csv",
                        b"sample_id,method,annotator,label\ns1,instruction-prompt,a,no-change\n"
                        b"zz9,instruction-prompt,a,no-change\n",
                    )
                ),
            ],
            "code": 0,
            "names": ["1 reference sample id(s) are not in this run", "'zz9'"],
            "kind": "output",
        },
        {
            "name": "validate a folder",
            "argv": lambda: ["validate", str(_folder(ws, "entries.d"))],
            "code": 1,
            "names": ["entries.d", "is a folder"],
            "kind": "problems",
        },
        {
            "name": "estimate without --json prints no JSON",
            "argv": lambda: ["estimate", "--judge", "openai", "--config", str(ws.samples)],
            "code": 0,
            "names": ["STAGE", "estimated cost"],
            "absent": ['{"'],
            "kind": "output",
        },
        {
            # the toy oracle on tiny-random's noise (and non-toy words) used to judge every
            # sample and fail or report "no change"; it is refused before any work now
            "name": "oracle on tiny-random noise, refused before any work",
            "argv": lambda: replace(run(judge=False), "--judge", "oracle"),
            "code": 2,
            "names": ["cannot judge images of --backbone tiny-random", "toy-world entities"],
        },
        {
            "name": "a 500 KB prompt (never echoed)",
            "argv": lambda: (
                run(
                    samples=_sample_variant(ws, "long.jsonl", _one_long_prompt),
                    judge=False,
                )
                + ["--no-references"]
            ),
            "code": 0,
            "names": ["note: a prompt is longer than a text encoder reads"],
            "max_line": 400,
            "kind": "output",
            "child": True,
        },
        {
            "name": "--no-progress draws no library bars",
            "argv": lambda: (
                run(judge=False, samples=_sample_variant(ws, "one.jsonl", _first_only))
                + ["--no-references"]
            ),
            "code": 0,
            "names": ["results for instruction-prompt"],
            "absent": ["it/s]", "%|"],
            "kind": "output",
            "child": True,
        },
        {
            "name": "read-only output directory",
            "argv": lambda: run(out="ro/run"),
            "code": 1,
            "names": ["ro"],
            "sandbox": "readonly",
        },
        {
            "name": "full output directory",
            "argv": lambda: run(out="full/run"),
            "code": 1,
            "names": ["full"],
            "sandbox": "full",
        },
    ]
