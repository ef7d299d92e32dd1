"""`slim-eval dataset`: build, import, verify and publish SLIM.

Subcommands are declared in :data:`DATASET_COMMANDS`; each target is an object (or module) with
``add_arguments(parser)`` and ``run(args) -> int``. Adding one is one line in that table.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from collections.abc import Callable
from typing import Any

from ._common import print_json_last

#: ``slim-eval dataset <name>`` -> (``"module:attr"`` or ``"module"`` with ``add_arguments`` and
#: ``run``, one-line help).
DATASET_COMMANDS: dict[str, tuple[str, str]] = {
    "build": ("slim_leakage.cli.dataset_cmd:BUILD", "build SLIM (pairs, triplets, controls) into a folder"),
    "import-official": ("slim_leakage.cli.dataset_cmd:IMPORT_OFFICIAL", "convert the published SLIM release to our schema"),
    "verify": ("slim_leakage.cli.dataset_cmd:VERIFY", "generate each sample's image and keep those a judge finds leaky"),
    "push": ("slim_leakage.cli.dataset_cmd:PUSH", "publish a SLIM folder to the hub (or a local mirror)"),
    "layouts": ("slim_leakage.methods.layouts", "write a layout file (boxes per entity) for layout methods"),
    "export-prompts": ("slim_leakage.cli.export_prompts_cmd", "write id, prompt, seed, size per image for an external generator (--backbone images)"),
}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Subcommand:
    """A ``slim-eval dataset`` subcommand: its options and its handler."""

    add_arguments: Callable[[Any], None]
    run: Callable[[Any], int]


def _resolve(target: str) -> Any:
    module, _, attr = target.partition(":")
    obj = importlib.import_module(module)
    return getattr(obj, attr) if attr else obj


def add_parser(sub) -> None:
    """Add ``slim-eval dataset`` and every subcommand of :data:`DATASET_COMMANDS`."""
    p = sub.add_parser("dataset", help="build, import, verify and publish the SLIM data set")
    inner = p.add_subparsers(dest="dataset_command", metavar="SUBCOMMAND")
    for name, (target, help_text) in DATASET_COMMANDS.items():
        command = _resolve(target)
        q = inner.add_parser(name, help=help_text, description=help_text)
        command.add_arguments(q)
        q.set_defaults(func=command.run)

    def show_help(args) -> int:
        p.print_help()
        return 0

    p.set_defaults(func=show_help)


def _say(args, text: str) -> None:
    # With --json the last stdout line is the JSON object; human lines then go to stderr.
    print(text, file=sys.stderr if getattr(args, "json", False) else sys.stdout)


# -- build -------------------------------------------------------------------------------------


def _build_args(p) -> None:
    p.add_argument("--out", default="slim", help="the Hub-layout folder to write (default: slim)")
    p.add_argument(
        "--package-copy",
        action="store_true",
        help="also copy the folder into the installed package (what load_slim reads)",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="rebuild in a temporary folder and compare with --out; write nothing, exit 1 on a difference",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object last")


def _build(args) -> int:
    import tempfile
    from pathlib import Path

    from ..slim import data_root
    from ..slim.builder import build_slim
    from ..slim.hub_format import copy_folder

    if args.check:
        from ..slim.hub_format import compare_folders

        with tempfile.TemporaryDirectory() as tmp:
            if (Path(args.out) / "data").is_dir():
                copy_folder(args.out, tmp)
            build_slim(tmp)
            differences = compare_folders(tmp, args.out)
        for line in differences:
            _say(args, f"differs: {line}")
        if args.json:
            print_json_last({"identical": not differences, "differences": differences})
        elif not differences:
            print(f"{args.out} is identical to a fresh build")
        return 1 if differences else 0
    report = build_slim(args.out)
    for name, rows in report.rows.items():
        subsets = ", ".join(f"{k} {v}" for k, v in report.subsets[name].items())
        _say(args, f"{name}: {rows} rows ({subsets})")
    copied = None
    if args.package_copy:
        copied = str(data_root())
        copy_folder(args.out, copied)
        _say(args, f"copied to the package data folder {copied}")
    _say(args, f"wrote {args.out}")
    if args.json:
        print_json_last(
            {
                "out": args.out,
                "rows": report.rows,
                "subsets": report.subsets,
                "package_copy": copied,
            }
        )
    return 0


BUILD = Subcommand(_build_args, _build)


# -- import-official ---------------------------------------------------------------------------


def _import_args(p) -> None:
    p.add_argument("source", metavar="PATH_OR_REPO", help="Parquet file, folder or hub id ORG/NAME")
    p.add_argument(
        "--out", default="slim-official", help="folder to write (default: slim-official)"
    )
    p.add_argument(
        "--on-error",
        choices=("reject", "skip"),
        default="reject",
        help="malformed rows: reject the import (default) or skip them (each one is reported)",
    )
    p.add_argument("--prefix", default="official", help="config name prefix (default: official)")
    p.add_argument(
        "--revision",
        default=None,
        help="hub commit (or branch, tag) of a hub id source; the commit read is recorded",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object last")


def _import(args) -> int:
    from ..slim.official import import_official

    report = import_official(
        args.source, args.out, on_error=args.on_error, prefix=args.prefix, revision=args.revision
    )
    for number, reason in report.skipped:
        print(f"skipped row {number}: {reason}", file=sys.stderr)
    for value, counts in report.per_subset.items():
        _say(args, f"{value}: {counts['rows']} rows, {counts['prompts']} prompts")
    for name, rows in report.configs.items():
        _say(args, f"{name}: {rows} rows")
    _say(
        args,
        f"read {report.rows_read} rows, wrote {report.rows_written}, skipped {len(report.skipped)}"
        + (f" into {report.out}" if report.out else ""),
    )
    if args.json:
        print_json_last(
            {
                "out": report.out,
                "rows_read": report.rows_read,
                "rows_written": report.rows_written,
                "skipped": [list(s) for s in report.skipped],
                "per_subset": report.per_subset,
                "configs": report.configs,
                "revision": report.revision,
                "commit": report.commit,
            }
        )
    return 0


IMPORT_OFFICIAL = Subcommand(_import_args, _import)


# -- verify ------------------------------------------------------------------------------------


def _verify_args(p) -> None:
    p.add_argument("--config", default="pairs", help="SLIM config or .parquet/.jsonl file")
    p.add_argument("--ids", nargs="*", default=None, help="only these sample ids")
    p.add_argument("--limit", type=int, default=None, help="only the first N samples")
    p.add_argument("--backbone", required=True, help="backbone preset (slim-eval ls backbones)")
    p.add_argument("--backbone-path", default=None, help="local weights overriding the preset's")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: CUDA if any)")
    p.add_argument("--dtype", default=None, help="float32, float16 or bfloat16")
    p.add_argument(
        "--backbone-arg", action="append", default=[], metavar="KEY=VALUE",
        help="generation setting override (height=512, num_inference_steps=20 ...)",
    )  # fmt: skip
    p.add_argument("--judge", required=True, help="judge backend (slim-eval ls judges)")
    p.add_argument(
        "--judge-arg", action="append", default=[], metavar="KEY=VALUE",
        help="judge or backend option (model=..., base_url=..., rpm=...)",
    )  # fmt: skip
    p.add_argument("--out", required=True, help="work folder (images, verdicts, dataset/)")
    p.add_argument("--name", default=None, help="verified config name (default: <config>-verified)")
    p.add_argument(
        "--keep", choices=("leaky", "all"), default="leaky",
        help="keep only leaky samples (default) or every decided one with its verdict",
    )  # fmt: skip
    p.add_argument("--batch-size", type=int, default=4, help="images per generation call")
    p.add_argument("--json", action="store_true", help="print one JSON object last")


def make_judge(name: str, options: dict[str, Any]):
    """Build the judge used by ``verify`` (tests replace this to script the verdicts)."""
    from ..judge import get_judge

    return get_judge(name, **options)


def _verify(args) -> int:
    from .._config import parse_kv
    from ..backbones import load_backbone
    from ..slim import load_samples
    from ..slim.builder import check_config_name
    from ..slim.load import config_label
    from ..slim.verify import verify_samples

    # Everything cheap is checked before the weights load.
    samples = load_samples(args.config, limit=args.limit, ids=args.ids)
    name = check_config_name(args.name or f"{config_label(args.config)}-verified")
    judge_options = parse_kv(args.judge_arg, option="--judge-arg")
    backbone_options = parse_kv(args.backbone_arg, option="--backbone-arg")
    judge = make_judge(args.judge, judge_options)
    backbone = load_backbone(
        args.backbone,
        path=args.backbone_path,
        device=args.device,
        dtype=args.dtype,
        **backbone_options,
    )

    def progress(stage: str, done: int, total: int) -> None:
        print(f"{stage}: {done}/{total}", file=sys.stderr)

    report = verify_samples(
        samples,
        backbone,
        judge,
        args.out,
        config=name,
        keep=args.keep,
        batch_size=args.batch_size,
        on_progress=progress,
    )
    _say(
        args,
        f"checked {report.checked}: {report.leaky} leaky, {report.clean} not leaky, "
        f"{report.errors} undecided; kept {report.kept} in {report.dataset_dir} ({report.config})",
    )
    if args.json:
        print_json_last(dataclasses.asdict(report))
    return 0


VERIFY = Subcommand(_verify_args, _verify)


# -- push --------------------------------------------------------------------------------------


def _push_args(p) -> None:
    p.add_argument("--repo-id", required=True, help="dataset repository ORG/NAME")
    p.add_argument("--folder", default="slim", help="the SLIM folder to publish (default: slim)")
    p.add_argument("--to-dir", default=None, help="write <DIR>/<ORG>/<NAME> instead of the hub")
    p.add_argument("--private", action="store_true", help="create the hub repository as private")
    p.add_argument("--token", default=None, help="hub token (default: your hub login)")
    p.add_argument("--message", default="Upload SLIM", help="hub commit message")
    p.add_argument("--json", action="store_true", help="print one JSON object last")


def _push(args) -> int:
    from ..slim.push import push_folder

    report = push_folder(
        args.folder,
        args.repo_id,
        to_dir=args.to_dir,
        private=args.private,
        token=args.token,
        message=args.message,
    )
    _say(args, f"published {len(report.files)} files of {args.folder} to {report.target}")
    if args.json:
        print_json_last(dataclasses.asdict(report))
    return 0


PUSH = Subcommand(_push_args, _push)
