"""`slim-eval judge`: judge (or re-judge) the images of a finished run with any judge.

Reads ``RUN/samples.jsonl`` and ``RUN/generations.jsonl``, judges every sample's method image
against its vanilla image, and writes ``judgements.jsonl``, ``verdicts.jsonl`` and
``summary.json`` into ``--out`` (default ``RUN/judged/<backend>-<model>``), so the run's own
verdicts stay untouched. Finished samples are skipped on a second call; the answer cache makes
re-asking free anyway.
"""

from __future__ import annotations

import json
from pathlib import Path


def add_parser(sub) -> None:
    """Register ``slim-eval judge`` on the subcommand parsers."""
    p = sub.add_parser(
        "judge",
        help="judge the images of a run with a judge backend",
        description="Judge (or re-judge) a finished run's images: extraction -> typicality -> "
        "ranking for each sample, through the answer cache.",
    )
    p.add_argument("run_dir", metavar="RUN", help="a run directory (from `slim-eval run`)")
    p.add_argument("--judge", required=True, help="judge backend (see `slim-eval ls judges`)")
    p.add_argument(
        "--judge-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="judge option, e.g. model=..., base_url=..., concurrency=16 (repeatable)",
    )
    p.add_argument(
        "--method", default=None, help="method whose images to judge (default: the run's method)"
    )
    p.add_argument("--out", default=None, help="output folder (default RUN/judged/<judge>)")
    p.add_argument("--limit", type=int, default=None, help="only the first N samples")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print only the JSON summary")
    p.set_defaults(func=run)


def load_items(run_dir: Path, method: str | None = None, limit: int | None = None):
    """The :class:`~slim_leakage.judge.JudgeItem` list of a run directory.

    Raises:
        UsageError: If the run lacks its records or a sample lacks an image.
    """
    from ..errors import UsageError
    from ..judge import JudgeItem
    from ..rundir import RunDir, inside_run

    run = RunDir(run_dir)
    for path in (run.samples_path, run.merged.generations_path):
        if not path.is_file():
            raise UsageError(
                f"{str(run_dir)!r} has no {path.name}; it is not a finished run directory.",
                hint="Run `slim-eval run --out DIR ...` first, or point at its folder.",
            )
    samples = list(run.samples())
    if limit is not None:
        from .._api_checks import check_limit

        check_limit(limit, what="--limit")  # N >= 1, as everywhere
        samples = samples[:limit]
    gens = run.merged.generations()
    methods = sorted({g.method for g in gens if g.role == "method"})
    if method is None:
        manifest = run.read_manifest()
        if manifest is not None:
            method = manifest.get("method", {}).get("name")
        if method is None and len(methods) == 1:
            method = methods[0]
    if method not in methods:
        raise UsageError(
            f"The run has no images of method {method!r}.",
            hint=f"Methods in this run: {', '.join(methods) or '(none)'}; pass --method.",
        )
    vanilla = {g.sample_id: g.path for g in gens if g.role == "vanilla"}
    made = {g.sample_id: g.path for g in gens if g.role == "method" and g.method == method}
    refs = {g.entity: g.path for g in gens if g.role == "reference" and g.entity}
    items = []
    for s in samples:
        if s.id not in vanilla or s.id not in made:
            raise UsageError(
                f"Sample {s.id!r} has no {'vanilla' if s.id not in vanilla else method} image "
                "in this run.",
                hint="Finish the run first (run the same `slim-eval run` command again).",
            )
        # Only files inside the run are ever sent to a judge API, whatever a record or a
        # link in the run directory says.
        items.append(
            JudgeItem(
                sample=s,
                method=method,
                vanilla_image=inside_run(run_dir, vanilla[s.id]),
                method_image=inside_run(run_dir, made[s.id]),
                reference_images={e: inside_run(run_dir, refs[e]) for e in s.entities if e in refs},
            )
        )
    return items


def run(args) -> int:
    """Run ``slim-eval judge``; returns the exit code."""
    from .._config import parse_kv
    from .._io import atomic_write_json
    from ..judge import get_judge
    from ..records import LABELS
    from ..rundir import Records, RunDir

    run_dir = Path(args.run_dir)
    items = load_items(run_dir, args.method, args.limit)
    judge = get_judge(args.judge, **parse_kv(args.judge_arg, option="--judge-arg"))
    info = judge.describe()
    out = (
        Path(args.out)
        if args.out
        else RunDir(run_dir).judged_dir(info["backend"], info["model_id"])
    )
    out.mkdir(parents=True, exist_ok=True)
    records = Records(out)
    records.repair()
    done = {v.sample_id: v for v in records.verdicts()}
    todo = [i for i in items if i.sample.id not in done]
    judge.use_run_dir(out)  # batch ids, so a killed batch-mode run resumes by polling
    # Each verdict is kept as soon as it exists, so a run stopped by a quota resumes from there.
    verdicts = judge.judge(
        todo,
        on_stage=records.append,
        on_verdict=records.append,
        progress=not args.no_progress and not args.json,
    )
    for v in verdicts:
        done[v.sample_id] = v
    ordered = [done[i.sample.id] for i in items]
    labelled = [v for v in ordered if v.label is not None]
    counts = {label: sum(v.label == label for v in labelled) for label in LABELS}
    summary = {
        "run": str(run_dir),
        "method": items[0].method if items else args.method,
        "judge": info,
        "n_samples": len(ordered),
        "n_labelled": len(labelled),
        "judge_errors": len(ordered) - len(labelled),
        "counts": counts,
        "distribution": {k: (n / len(labelled) if labelled else None) for k, n in counts.items()},
        "order_flip_rate": (
            sum(v.order_flip for v in labelled) / len(labelled) if labelled else None
        ),
        "stats": judge.stats.to_dict(),
        "out": str(out),
    }
    atomic_write_json(out / "summary.json", summary)
    if not args.json:
        print(
            f"judged {len(ordered)} samples of {summary['method']!r} with "
            f"{info['backend']}/{info['model_id']} -> {out}"
        )
        for label in LABELS:
            share = summary["distribution"][label]
            print(f"  {label:<18} {counts[label]:>5}  {'' if share is None else f'{share:6.1%}'}")
        s = judge.stats
        print(
            f"  judge errors {summary['judge_errors']}, order flips {s.order_flips}, "
            f"calls {s.calls}, cache hits {s.cache_hits}, cost ${s.cost_usd:.4f}"
        )
    print(json.dumps(summary, sort_keys=True, default=str))
    return 0
