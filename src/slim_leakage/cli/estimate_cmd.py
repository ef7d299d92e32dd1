"""`slim-eval estimate`: calls, tokens and cost of judging a dataset config, before spending."""

from __future__ import annotations

from ._common import print_json_last


def add_parser(sub) -> None:
    """Register ``slim-eval estimate`` on the subcommand parsers."""
    p = sub.add_parser(
        "estimate",
        help="estimate judge calls, tokens and cost for a dataset config (no API call)",
        description="Estimate the judge calls per stage, tokens (images included) and cost of "
        "judging a SLIM config, from the real prompts and the pricing table. Makes no API call.",
    )
    p.add_argument("--judge", required=True, help="judge backend (see `slim-eval ls judges`)")
    p.add_argument("--config", default="pairs", help="dataset config or samples file (pairs)")
    p.add_argument("--limit", type=int, default=None, help="only the first N samples")
    p.add_argument(
        "--judge-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="judge option, e.g. model=gemini-2.5-pro (repeatable)",
    )
    p.add_argument("--methods", type=int, default=1, help="methods judged (default 1)")
    p.add_argument("--image-size", type=int, default=512, help="image side in pixels (512)")
    p.add_argument("--no-references", action="store_true", help="no reference images")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=run)


def run(args) -> int:
    """Run ``slim-eval estimate``; returns the exit code."""
    from .._config import parse_kv
    from ..errors import UsageError
    from ..judge.estimate import estimate
    from ..slim import load_samples

    if args.image_size < 1:
        raise UsageError(
            f"--image-size {args.image_size} must be positive.", hint="Pass --image-size 512"
        )
    options = parse_kv(args.judge_arg, option="--judge-arg")
    from ..judge import JUDGES

    JUDGES.get(args.judge)  # an unknown judge fails before the dataset is read
    samples = load_samples(args.config, limit=args.limit)
    result = estimate(
        args.judge,
        samples,
        options=options,
        image_size=(args.image_size, args.image_size),
        methods=args.methods,
        references=not args.no_references,
    )
    result["config"] = args.config
    if args.json:
        print_json_last(result)
        return 0
    print(
        f"judge {result['judge']} / {result['model']}: {result['samples']} samples, "
        f"{result['methods']} method(s), config {args.config}"
    )
    print(
        f"  {'STAGE':<18} {'CALLS':>7} {'INPUT TOKENS':>13} {'OUTPUT TOKENS':>14} "
        f"{'THINKING':>9} {'COST $':>9}"
    )
    for stage, n in result["calls"].items():
        print(
            f"  {stage:<18} {n:>7} {result['input_tokens'][stage]:>13} "
            f"{result['output_tokens'][stage]:>14} {result['thinking_tokens'][stage]:>9} "
            f"{result['cost_usd_by_stage'][stage]:>9.4f}"
        )
    print(
        f"  {'total':<18} {result['calls_total']:>7} {result['input_tokens_total']:>13} "
        f"{result['output_tokens_total']:>14} {result['thinking_tokens_total']:>9} "
        f"{result['cost_usd']:>9.4f}"
    )
    leak = result["leakage"]
    print(
        f"  leakage rate checks: {leak['calls_with_cache']} extra calls with the cache, "
        f"{leak['calls_without_cache']} without (${leak['cost_usd_without_cache']:.2f})"
    )
    a = result["assumptions"]
    print(
        f"  image tokens: {result['image_tokens']} ({a['tokens_per_image']} per "
        f"{a['image_size'][0]}x{a['image_size'][1]} image)"
    )
    if a["thinking_tokens_per_call"]:
        print(
            f"  thinking: {a['thinking_tokens_per_call']} tokens per call assumed, billed as output"
        )
    if result["priced"]:
        print(f"  estimated cost: ${result['cost_usd']:.2f} (repairs and retries not included)")
        if result["cost_usd_batch"] is not None:
            print(
                f"  in batch mode (--judge-arg batch=true): ${result['cost_usd_batch']:.2f}, "
                f"answers within a day (batch price: {result['price_per_mtok_batch']['source']})"
            )
    else:
        print(
            f"  estimated cost: unknown (model {result['model']!r} is not in the pricing "
            "table: no price in slim_leakage/judge/models.py)"
        )
    return 0
