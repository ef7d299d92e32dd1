"""`slim-eval run` (also a bare `slim-eval --method X ...`): generate, judge and score a method."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path


def _default(field: str) -> str:
    """A RunConfig default as the help texts show it (the defaults live in RunConfig only)."""
    from ..run import RunConfig

    value = {f.name: f.default for f in dataclasses.fields(RunConfig)}[field]
    return ",".join(value) if isinstance(value, tuple) else str(value)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "run",
        help="generate, judge and score a method on SLIM (the main job)",
        description=(
            "Generate the vanilla and method images for every selected SLIM sample, judge each "
            "pair, and write metrics and a report into --out. Re-running the same command "
            "resumes: finished images and verdicts are kept."
        ),
    )
    add_run_options(p, out_help="run directory (default runs/<method>-<backbone>-<config>)")
    p.add_argument("--json", action="store_true", help="print metrics.json as the last line")
    p.set_defaults(func=run)


def add_run_options(p, *, out_help: str) -> None:
    """The options of a run (RunConfig's fields), shared by ``run`` and ``sweep``."""
    from ..image_metrics import IMAGE_METRICS

    p.add_argument(
        "--method",
        default=None,
        help=f"registered method (default: {_default('method')}; see `slim-eval ls methods`)",
    )
    p.add_argument(
        "--method-arg",
        action="append",
        default=[],
        metavar="K=V",
        help="method option, repeatable (e.g. alpha=1.6)",
    )
    p.add_argument(
        "--backbone", default=None, help=f"backbone preset (default: {_default('backbone')})"
    )
    p.add_argument(
        "--backbone-path", default=None, help="local folder or hub id with the backbone weights"
    )
    p.add_argument(
        "--backbone-arg",
        action="append",
        default=[],
        metavar="K=V",
        help="generation setting, repeatable (height=512, num_inference_steps=20, ...)",
    )
    p.add_argument(
        "--device", default=None, help="torch device (default: cuda if available, else cpu)"
    )
    p.add_argument(
        "--share-gpus",
        action="store_true",
        help="under accelerate launch/torchrun, allow more processes than visible GPUs "
        "(default: each process takes cuda:LOCAL_RANK, and too many processes are refused)",
    )
    p.add_argument(
        "--dtype",
        default=None,
        choices=["float32", "float16", "bfloat16"],
        help="weights dtype (default: the preset's on GPU, float32 on CPU)",
    )
    p.add_argument(
        "--judge",
        default=None,
        help=f"judge backend, or 'none' to only generate (default: {_default('judge')})",
    )
    p.add_argument(
        "--judge-arg",
        action="append",
        default=[],
        metavar="K=V",
        help="judge option, repeatable (model=..., base_url=..., concurrency=...)",
    )
    p.add_argument(
        "--config",
        default=None,
        help=f"SLIM config or a samples .jsonl/.parquet (default: {_default('config')})",
    )
    p.add_argument("--limit", type=int, default=None, help="only the first N samples")
    p.add_argument(
        "--ids", default=None, help="comma-separated sample ids, or @FILE with one id per line"
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help=f"images per pipeline call (default {_default('batch_size')})",
    )
    p.add_argument("--out", default=None, help=out_help)
    p.add_argument(
        "--run-config",
        default=None,
        metavar="FILE",
        help="JSON file of run options (the command line overrides it)",
    )
    p.add_argument(
        "--no-references", action="store_true", help="skip single-entity reference images"
    )
    p.add_argument(
        "--image-metrics",
        default=None,
        help=f"comma-separated: {','.join(IMAGE_METRICS)}, or none "
        f"(default {_default('image_metrics')})",
    )
    p.add_argument(
        "--allow-downloads",
        action="store_true",
        help="let the image metrics download missing network weights (default: local cache only)",
    )
    p.add_argument("--no-report", action="store_true", help="do not write report.html")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _read_ids(value: str | None) -> tuple[str, ...] | None:
    """The ids ``--ids`` names (``None`` when it is not given); an empty selection is refused.

    ``--ids a,b`` lists them; ``--ids @FILE`` reads one id per line (UTF-8, blank lines and
    surrounding spaces ignored).
    """
    from ..errors import ConfigError

    if value is None:
        return None
    if value.startswith("@"):
        path = Path(value[1:])
        if path.is_dir():
            raise ConfigError(
                f"--ids file {path} is a folder.", hint="Give @FILE with one sample id per line."
            )
        if not path.is_file():
            raise ConfigError(
                f"--ids file {path} does not exist.", hint="Give @FILE with one sample id per line."
            )
        ids = []
        for number, raw in enumerate(path.read_bytes().splitlines(), 1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8").strip()
            except UnicodeDecodeError as exc:
                raise ConfigError(
                    f"--ids file {path}:{number} is not UTF-8 text ({exc.reason} at byte "
                    f"{exc.start}).",
                    hint="Save the file as UTF-8 text with one sample id per line.",
                ) from None
            if line:
                ids.append(line)
        if not ids:
            raise ConfigError(
                f"--ids file {path} names no sample id (it is empty).",
                hint="Write one sample id per line, or leave --ids out to run every sample.",
            )
        return tuple(ids)
    ids = tuple(v.strip() for v in value.split(",") if v.strip())
    if not ids:
        raise ConfigError(
            f"--ids {value!r} names no sample id.",
            hint="Give --ids a,b (or @FILE), or leave --ids out to run every sample.",
        )
    return ids


def build_run_config(args):
    """Merge RunConfig's defaults < --run-config file < command line into a validated RunConfig.

    Only the options given on the command line are set here; everything left out comes from
    the file, else from :class:`~slim_leakage.run.RunConfig`.
    """
    from .._config import build_config, parse_kv
    from ..errors import ConfigError
    from ..run import RunConfig

    values: dict = {}
    if args.run_config:
        path = Path(args.run_config)
        try:
            file_values = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:  # ValueError: not JSON, or not UTF-8
            raise ConfigError(
                f"Cannot read --run-config {path}: {exc}.",
                hint="Give a JSON object of run options.",
            ) from exc
        if not isinstance(file_values, dict):
            raise ConfigError(
                f"--run-config {path} must hold a JSON object, not {type(file_values).__name__}.",
                hint='Write the run options as one object, e.g. {"method": "deleaker"}.',
            )
        values.update(file_values)
    cli_values = {
        "method": args.method,
        "backbone": args.backbone,
        "backbone_path": args.backbone_path,
        "device": args.device,
        "dtype": args.dtype,
        "judge": args.judge,
        "config": args.config,
        "limit": args.limit,
        "batch_size": args.batch_size,
        "out": args.out,
    }
    values.update({k: v for k, v in cli_values.items() if v is not None})
    for key, option, items in (
        ("method_args", "--method-arg", args.method_arg),
        ("backbone_args", "--backbone-arg", args.backbone_arg),
        ("judge_args", "--judge-arg", args.judge_arg),
    ):
        given = parse_kv(items, option=option)
        current = values.get(key)
        if current is None or isinstance(current, dict):
            values[key] = {**(current or {}), **given}
        # else: the file's value is not a mapping; RunConfig refuses it by name
    ids = _read_ids(args.ids)
    if ids is not None:
        values["ids"] = ids
    if args.no_references:
        values["references"] = False
    if args.no_report:
        values["report"] = False
    if getattr(args, "share_gpus", False):
        values["share_gpus"] = True
    if args.allow_downloads:
        values["allow_downloads"] = True
    if args.no_progress:
        values["progress"] = False
    if args.image_metrics is not None:
        names = [m.strip() for m in args.image_metrics.split(",") if m.strip()]
        values["image_metrics"] = () if names == ["none"] else tuple(names)
    return build_config(RunConfig, values, owner="run")


def run(args) -> int:
    from ..run import Run
    from .summary import print_summary

    config = build_run_config(args)
    runner = Run(config)
    runner.resolve()  # once: execute() below does not resolve again
    print(
        f"slim-eval: method {config.method} on backbone {config.backbone}, judge {config.judge}, "
        f"dataset {config.config} ({len(runner.samples)} samples) -> {config.out_dir}",
        flush=True,
    )
    metrics = runner.execute()
    if metrics is None:  # a non-zero rank of a distributed run
        return 0
    print_summary(metrics, config.out_dir)
    if args.json:
        print(json.dumps(metrics, sort_keys=True))
    return 0
