"""`slim-eval sweep`: run a method's variants, each its own run, sharing images and the judge."""

from __future__ import annotations

import json


def add_parser(sub) -> None:
    from .run_cmd import add_run_options

    p = sub.add_parser(
        "sweep",
        help="run variants of a method's options (a grid, a file or a preset) side by side",
        description=(
            "Run every variant as its own run directory under one sweep folder (--out), "
            "generating the vanilla and reference images once and judging with one judge (one "
            "answer cache), then write sweep.json, sweep.md and sweep.html. Re-running the "
            "same command resumes. Every run option applies to all variants; --method-arg "
            "sets the options the variants share."
        ),
    )
    add_run_options(p, out_help="sweep folder (default runs/sweep-<method>-<backbone>-<config>)")
    p.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="K=V1,V2",
        help="a method option and its values, repeatable: every combination is a variant",
    )
    p.add_argument(
        "--sweep-file",
        metavar="FILE",
        help='JSON: {"variants": [{"name": ..., "method_args": {...}}], "grid": {K: [...]}}',
    )
    p.add_argument(
        "--preset",
        choices=("paper-ablation",),
        help="paper-ablation: DeLeaker's ablation rows (components removed, text-text added, "
        "each alone, no temporal or spatial smoothing)",
    )
    p.add_argument("--json", action="store_true", help="print sweep.json as the last line")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..sweep import (
        check_variants,
        file_variants,
        grid_variants,
        preset_variants,
        run_sweep,
        sweep_dir,
    )
    from .run_cmd import build_run_config

    base = build_run_config(args)
    variants = []
    if args.preset:
        variants += preset_variants(args.preset, base.method)
    if args.sweep_file:
        variants += file_variants(args.sweep_file)
    variants += grid_variants(args.grid)
    check_variants(variants)
    print(
        f"slim-eval sweep: {len(variants)} variants of {base.method} on backbone "
        f"{base.backbone}, judge {base.judge}, dataset {base.config} -> {sweep_dir(base)}",
        flush=True,
    )
    summary = run_sweep(base, variants, preset=args.preset)
    root = sweep_dir(base)
    print((root / "sweep.md").read_text(encoding="utf-8"))
    print(f"wrote {root / 'sweep.json'}, {root / 'sweep.md'} and {root / 'sweep.html'}")
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    return 0
