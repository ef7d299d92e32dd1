"""Bad inputs, table A: names, options and values of `run`, samples files, ids, devices."""

from __future__ import annotations

import json

from .bad_inputs import (
    _finished_run,
    _images_folder,
    _labels_csv,
    _png,
    _sample_variant,
    _tampered_run,
)
from .common import (
    SAMPLES,
)


def cases(k: dict) -> list[dict]:
    """This table's cases (see ``bad_inputs.bad_input_cases`` for their keys)."""
    ws = k["ws"]
    url = k["url"]
    cache = k["cache"]
    run = k["run"]
    replace = k["replace"]
    return [
        {
            "name": "unknown method",
            "argv": lambda: run(method="deleakr"),
            "code": 2,
            "names": ["deleakr", "deleaker"],
        },
        {
            "name": "unknown backbone",
            "argv": lambda: replace(run(), "--backbone", "flux-devv"),
            "code": 2,
            "names": ["flux-devv", "flux-dev"],
        },
        {
            "name": "unknown judge",
            "argv": lambda: replace(run(), "--judge", "openai-compatibel"),
            "code": 2,
            "names": ["openai-compatibel", "openai-compatible"],
        },
        {
            "name": "unknown dataset config",
            "argv": lambda: replace(run(), "--config", "pairz"),
            "code": 2,
            "names": ["pairz", "pairs"],
        },
        {
            "name": "method-arg typo",
            "argv": lambda: run("--method-arg", "instructon=x"),
            "code": 2,
            "names": ["instructon", "instruction"],
        },
        {
            "name": "method-arg bad value",
            "argv": lambda: run("--method-arg", "position=middle"),
            "code": 2,
            "names": ["middle", "position"],
        },
        {
            "name": "method-arg without =",
            "argv": lambda: run("--method-arg", "position"),
            "code": 2,
            "names": ["position", "key=value"],
        },
        {
            "name": "method-arg twice",
            "argv": lambda: run(
                "--method-arg", "position=prefix", "--method-arg", "position=suffix"
            ),
            "code": 2,
            "names": ["position", "twice"],
        },
        {
            "name": "deleaker option typo",
            "argv": lambda: run("--method-arg", "alpah=1.6", method="deleaker"),
            "code": 2,
            "names": ["alpah", "alpha"],
        },
        {
            "name": "backbone-arg typo",
            "argv": lambda: run("--backbone-arg", "num_inferance_steps=2"),
            "code": 2,
            "names": ["num_inferance_steps", "num_inference_steps"],
        },
        {
            "name": "backbone-arg bad value",
            "argv": lambda: run("--backbone-arg", "height=tall"),
            "code": 2,
            "names": ["tall", "height"],
        },
        {
            "name": "judge-arg typo",
            "argv": lambda: run("--judge-arg", "concurrancy=4"),
            "code": 2,
            "names": ["concurrancy", "concurrency"],
        },
        {
            "name": "judge-arg bad value",
            "argv": lambda: run("--judge-arg", "rpm=-5"),
            "code": 2,
            "names": ["rpm", "-5"],
        },
        {
            "name": "limit zero",
            "argv": lambda: run("--limit", "0"),
            "code": 2,
            "names": ["limit", "0"],
        },
        {
            "name": "negative batch size",
            "argv": lambda: replace(run(), "--batch-size", "-1"),
            "code": 2,
            "names": ["batch_size", "-1"],
        },
        {
            "name": "unknown image metric",
            "argv": lambda: replace(run(), "--image-metrics", "lpipz"),
            "code": 2,
            "names": ["lpipz", "lpips"],
        },
        {
            "name": "unknown sample id",
            "argv": lambda: run("--ids", "s1,nope"),
            "code": 2,
            "names": ["nope"],
        },
        {
            "name": "missing ids file",
            "argv": lambda: run("--ids", "@" + str(ws.path("no.txt"))),
            "code": 2,
            "names": ["no.txt"],
        },
        {
            "name": "run-config not JSON",
            "argv": lambda: run("--run-config", str(_labels_csv(ws, "rc.json", b"{method: x"))),
            "code": 2,
            "names": ["rc.json"],
        },
        {
            "name": "run-config unknown key",
            "argv": lambda: run(
                "--run-config", str(_labels_csv(ws, "rc2.json", b'{"metod": "vanilla"}'))
            ),
            "code": 2,
            "names": ["metod", "method"],
        },
        {
            "name": "samples file missing",
            "argv": lambda: replace(run(), "--config", str(ws.path("nope.jsonl"))),
            "code": 2,  # a path that does not exist: the input (docs/cli.md)
            "names": ["nope.jsonl"],
        },
        {
            "name": "entity absent from prompt",
            "argv": lambda: run(
                samples=_sample_variant(
                    ws, "absent.jsonl", lambda rows: rows[0].update(entities=["cow", "zebra"])
                )
            ),
            "code": 2,
            "names": ["zebra"],
        },
        {
            "name": "empty prompt",
            "argv": lambda: run(
                samples=_sample_variant(ws, "empty.jsonl", lambda rows: rows[1].update(prompt=""))
            ),
            "code": 1,
            "names": ["s2", "prompt"],
        },
        {
            "name": "samples not UTF-8",
            "argv": lambda: replace(
                run(),
                "--config",
                str(
                    _labels_csv(
                        ws,
                        "latin.jsonl",
                        json.dumps(SAMPLES[0]).replace("cow", "c\u00f6w").encode("latin-1") + b"\n",
                    )
                ),
            ),
            "code": 1,
            "names": ["latin.jsonl", "UTF-8"],
        },
        {
            "name": "samples malformed JSON line",
            "argv": lambda: replace(
                run(),
                "--config",
                str(
                    _labels_csv(
                        ws, "torn.jsonl", (json.dumps(SAMPLES[0]) + '\n{"id": "s2", \n').encode()
                    )
                ),
            ),
            "code": 1,
            "names": ["torn.jsonl", "2"],
        },
        {
            "name": "images: corrupt PNG",
            "argv": lambda: run(
                "--method-arg",
                "folder="
                + str(
                    _images_folder(
                        ws,
                        "img-corrupt",
                        lambda f: (f / "s2.png").write_bytes(b"\x89PNG\r\n\x1a\nnope"),
                    )
                ),
                method="images",
            ),
            "code": 1,
            "names": ["s2"],
        },
        {
            "name": "images: mis-sized PNG",
            "argv": lambda: run(
                "--method-arg",
                "folder="
                + str(
                    _images_folder(ws, "img-size", lambda f: (f / "s3.png").write_bytes(_png(48)))
                ),
                method="images",
            ),
            "code": 1,
            "names": ["s3", "48"],
        },
        {
            "name": "images: missing image",
            "argv": lambda: run(
                "--method-arg",
                "folder="
                + str(_images_folder(ws, "img-missing", lambda f: (f / "s4.png").unlink())),
                method="images",
            ),
            "code": 1,
            "names": ["s4"],
        },
        {
            "name": "images: folder missing",
            "argv": lambda: run(
                "--method-arg", "folder=" + str(ws.path("no-such-folder")), method="images"
            ),
            "code": 2,
            "names": ["no-such-folder"],
        },
        {
            "name": "resume with other options (finished run kept)",
            "argv": lambda: run(
                "--method-arg", "position=prefix", out=_finished_run(ws, "guard-mismatch").name
            ),
            "code": 2,
            "names": ["position"],
            "guard": "guard-mismatch",
        },
        {
            "name": "openai judge without key",
            "argv": lambda: replace(run(), "--judge", "openai"),
            "code": 2,
            "names": ["OPENAI_API_KEY"],
            "env": {"OPENAI_API_KEY": ""},
        },
        {
            "name": "judge: generation path with ..",
            "argv": lambda: [
                "judge",
                str(_tampered_run(ws, "tamper-dotdot", "dotdot")),
                "--judge",
                "openai-compatible",
                "--judge-arg",
                f"base_url={url}",
                "--judge-arg",
                f"cache_dir={cache}",
                "--no-progress",
            ],
            "code": 1,
            "names": ["..", "s1"],
        },
        {
            "name": "judge: absolute generation path",
            "argv": lambda: [
                "judge",
                str(_tampered_run(ws, "tamper-abs", "absolute")),
                "--judge",
                "openai-compatible",
                "--judge-arg",
                f"base_url={url}",
                "--judge-arg",
                f"cache_dir={cache}",
                "--no-progress",
            ],
            "code": 1,
            "names": ["tamper-abs-outside.png"],
        },
    ]
