"""How much each offline backbone leaks: one vanilla run per preset, and the toy oracle's check.

Every registered preset with ``offline=True`` (weights built in code or shipped: ``tiny-random``,
``tiny-sana``, ``toy``, and any family's ``tiny-<family>``) runs the same vanilla run: the toy
SLIM config (``toy-pairs`` by default, ``--limit`` samples) judged by the ``oracle`` judge, so
every backbone is read by the same exact judge on the same prompts and seeds. Each preset runs
in its own subprocess, so its peak memory is its own: on CUDA the run's
``torch.cuda.max_memory_allocated``, on the CPU the subprocess's peak resident set
(``ru_maxrss``: model, activations and the Python process together; compare, do not add).

Per backbone: the leakage rate of its images (share of checked samples whose image leaks) and of
its entities (share of the entities found that borrow a feature), with 95% bootstrap intervals,
the seconds per image and the peak memory. The random-weight presets draw noise: the oracle
finds few or no entities in them, and their rates say so (``n`` of the entity rate).

For the ``toy`` backbone the judge-side rate (the run's ``metrics.json`` ``leakage``, from the
judge's ``check_leakage`` through the cache) is compared with the oracle's exact reading of the
same image files (``slim_leakage.toy.reading.read_image``, what ``slim-eval toy leakage`` runs):
per entity, whether found and leaking agree, and the two rates.

Usage:
    OMP_NUM_THREADS=1 python benchmarks/model_leakage.py --limit 24 --json
    python benchmarks/model_leakage.py --backbones toy,tiny-random --limit 8
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def offline_presets() -> list[str]:
    """The registered presets whose weights need no download, in registry order."""
    from slim_leakage.backbones import BACKBONES

    return [n for n in BACKBONES.names() if getattr(BACKBONES.get(n), "offline", False)]


def run_one(name: str, out: Path, config: str, limit: int, device: str | None) -> dict:
    """One vanilla run of ``name`` judged by the oracle; its figures (in this process)."""
    from slim_leakage.run import RunConfig, evaluate

    t0 = time.perf_counter()
    metrics = evaluate(
        RunConfig(
            out=str(out),
            method="vanilla",
            backbone=name,
            judge="oracle",
            config=config,
            limit=limit,
            image_metrics=(),
            report=False,
            progress=False,
            device=device,
        )
    )
    wall = time.perf_counter() - t0
    leak = metrics["leakage"]["vanilla"]
    cost = metrics["extra"]["cost"].get("vanilla") or {}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    return {
        "backbone": name,
        "samples": metrics["n_samples"],
        "checked": leak["n_checked"],
        "check_errors": leak["errors"],
        "image_rate": leak["images"]["rate"],
        "image_ci95": leak["images"]["ci95"],
        "image_k_n": [leak["images"]["k"], leak["images"]["n"]],
        "entity_rate": leak["entities"]["rate"],
        "entity_ci95": leak["entities"]["ci95"],
        "entity_k_n": [leak["entities"]["k"], leak["entities"]["n"]],
        "seconds_per_image": cost.get("seconds_per_image"),
        "peak_memory_bytes": cost.get("peak_memory_bytes") or rss,
        "peak_memory_source": "cuda max_memory_allocated"
        if cost.get("peak_memory_bytes")
        else "process peak RSS",
        "judge_calls": metrics["leakage"]["judge_usage"]["calls"],
        "run_seconds": round(wall, 2),
    }


def toy_agreement(run_dir: Path) -> dict:
    """Judge-side checks of a toy run against the oracle's exact reading of the same files."""
    from PIL import Image

    from slim_leakage._io import iter_jsonl
    from slim_leakage.leakage import latest_checks
    from slim_leakage.rundir import LEAKAGE, load_run
    from slim_leakage.toy.reading import read_image

    run = load_run(run_dir)
    checks = latest_checks(iter_jsonl(run_dir / LEAKAGE))
    found_agree = leak_agree = entities = 0
    exact_k = exact_n = judge_k = judge_n = 0
    for sample in run.samples:
        row = checks.get(("vanilla", sample.id))
        if row is None or row["leaky"] is None:
            continue
        with Image.open(run.image_path(sample.id, "vanilla")) as image:
            readings = read_image(image.convert("RGB"), list(sample.entities))
        for entity, reading in zip(sample.entities, readings):
            entities += 1
            present, leaks = row["present"][entity], row["entities"][entity]
            found_agree += present == reading.found
            leak_agree += (leaks and present) == (reading.leaks and reading.found)
            exact_n += reading.found
            exact_k += reading.found and reading.leaks
            judge_n += present
            judge_k += present and leaks
    return {
        "entities": entities,
        "found_agreement": round(found_agree / entities, 4) if entities else None,
        "leak_agreement": round(leak_agree / entities, 4) if entities else None,
        "exact_entity_rate": round(exact_k / exact_n, 4) if exact_n else None,
        "exact_k_n": [exact_k, exact_n],
        "judge_entity_rate": round(judge_k / judge_n, 4) if judge_n else None,
        "judge_k_n": [judge_k, judge_n],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", help="comma-separated presets (default: every offline one)")
    parser.add_argument("--config", default="toy-pairs", help="SLIM config (toy-pairs)")
    parser.add_argument("--limit", type=int, default=24, help="samples per backbone (24)")
    parser.add_argument("--device", default=None, help="cpu, cuda ... (default: CUDA if any)")
    parser.add_argument("--out", help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child: run this preset only
    args = parser.parse_args()

    if args.one:
        figures = run_one(args.one, Path(args.out), args.config, args.limit, args.device)
        if args.one == "toy":
            figures["toy_agreement"] = toy_agreement(Path(args.out))
        print(json.dumps(figures))
        return 0

    names = args.backbones.split(",") if args.backbones else offline_presets()
    work = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="model-leakage-"))
    rows = []
    for name in names:
        cmd = [sys.executable, __file__, "--one", name, "--out", str(work / name)]
        cmd += ["--config", args.config, "--limit", str(args.limit)]
        if args.device:
            cmd += ["--device", args.device]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            rows.append({"backbone": name, "error": " | ".join(tail)})
        else:
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        row = rows[-1]
        if "error" in row:
            print(f"{name:<16} error: {row['error']}")
            continue
        ci, eci = row["image_ci95"] or [None, None], row["entity_ci95"] or [None, None]
        print(
            f"{name:<16} images {row['image_k_n'][0]}/{row['image_k_n'][1]} = "
            f"{row['image_rate']} {ci}  entities {row['entity_k_n'][0]}/{row['entity_k_n'][1]}"
            f" = {row['entity_rate']} {eci}  {row['seconds_per_image']:.3f} s/image  "
            f"peak {row['peak_memory_bytes'] / 2**20:.0f} MiB ({row['peak_memory_source']})"
        )
        if "toy_agreement" in row:
            print(f"{'':<16} toy oracle agreement: {row['toy_agreement']}")
    result = {
        "benchmark": "model_leakage",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "threads": os.environ.get("OMP_NUM_THREADS"),
        },
        "config": args.config,
        "limit": args.limit,
        "judge": "oracle",
        "backbones": rows,
    }
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
