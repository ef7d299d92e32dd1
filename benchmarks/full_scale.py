"""Full-scale rehearsal: the whole SLIM ``pairs`` config through the real run path, four ranks.

What a researcher with a 4-GPU node and a paid Gemini key runs, with the two expensive things
replaced: the backbone by a stand-in that draws each 512x512 image in milliseconds (a registered
preset whose pipeline draws the prompt's words as shapes from the sample's seed; everything
around it is the product's: ``Run``, the method ``instruction-prompt``, the run directory, the
shards and their merge), and the Gemini API by the local protocol server
(``python -m slim_leakage.judge.testing --shapes real``, in its own process) answering every
request after a fixed latency through the real ``google-genai`` SDK.

Four rank processes get the environment torchrun / ``accelerate launch --num_processes 4``
give their workers (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, ACCELERATE_USE_CPU). This
machine has no GPU, so each worker tells the run's device choice that four GPUs are visible
(``rundir.processes.visible_devices``, the one function that asks torch); the run then places
each rank on the GPU it would take on a 4-GPU node and records it in the manifest, while the
stand-in draws on the CPU (``loaded_on``). Then rank 0 merges, scores and writes the report
(thumbnails, since the run has more than 50 samples), and ``slim-eval submit`` and
``slim-eval validate`` run on the result as separate commands. Headless Chromium opens the
report (when installed).

The same is done at ``--small`` samples (default 96, the first of the config) before the full
run, each with its own judge cache, so ``cost_growth`` (wall seconds per sample at full size
over the same at the small size) shows whether anything grows faster than the samples.
Image metrics (LPIPS, KID) are left out: their networks' weights are not on this machine.

Usage: python benchmarks/full_scale.py [--samples 1338] [--small 96] [--ranks 4]
       [--latency 2.0] [--concurrency 8] [--keep DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAND_IN = "stand-in-512"


# -- the worker: one rank of the run ----------------------------------------------------------------
def register_stand_in() -> None:
    """Register the stand-in preset: a pipeline that draws, not one that denoises."""
    from types import SimpleNamespace

    from PIL import Image, ImageDraw

    from slim_leakage.backbones import BACKBONES, Backbone, GenerationSettings
    from slim_leakage.backbones.base import BUILT_IN, Preset

    class DrawingPipe:
        """Draws each prompt's longer words as coloured shapes, placed by the image's seed."""

        def set_progress_bar_config(self, **_: object) -> None:
            pass

        def __call__(self, *, prompt, generator, height, width, **_: object):
            import random

            images = []
            for text, gen in zip(prompt, generator):
                rng = random.Random(gen.initial_seed())
                image = Image.new("RGB", (width, height), (rng.randrange(90, 200), 170, 220))
                draw = ImageDraw.Draw(image)
                draw.rectangle([0, int(height * 0.6), width, height], fill=(80, 140, 60))
                for word in [w for w in re.findall(r"[a-z]+", text.lower()) if len(w) > 3][:10]:
                    code = zlib.crc32(word.encode())
                    colour = (code & 255, (code >> 8) & 255, (code >> 16) & 255)
                    x, y, r = rng.randrange(width), rng.randrange(height), rng.randrange(20, 90)
                    shape = draw.ellipse if code & 1 else draw.rectangle
                    shape([x - r, y - r, x + r, y + r], fill=colour, outline=(20, 20, 20))
                images.append(image)
            return SimpleNamespace(images=images)

    class StandInPreset(Preset):
        name = STAND_IN
        family = "flux"
        model_id = f"{BUILT_IN}{STAND_IN}"
        settings = GenerationSettings(height=512, width=512, num_inference_steps=1)
        description = "benchmark stand-in: draws 512x512 images from the prompt and seed"

        def load(self, *, path=None, device=None, dtype=None, **overrides) -> Backbone:
            settings, _ = self.check_args(overrides, device="cpu", dtype=dtype)
            return Backbone(
                name=self.name,
                family=self.family,
                pipe=DrawingPipe(),
                settings=settings,
                device="cpu",  # it draws on the CPU whatever GPU the rank was placed on
                dtype="float32",
                model_id=self.model_id,
            )

    BACKBONES.register(STAND_IN, StandInPreset(), replace=True)


def worker(args) -> int:
    """One rank: the product's run, on the stand-in backbone and the local Gemini server."""
    from slim_leakage.rundir import processes

    # a 4-GPU node, simulated: the count torch would report there
    processes.visible_devices = lambda kind="cuda": args.gpus
    register_stand_in()
    from slim_leakage.run import RunConfig, evaluate

    config = RunConfig(
        out=args.out,
        method="instruction-prompt",
        backbone=STAND_IN,
        judge="gemini",
        judge_args={
            "base_url": args.server,
            "cache_dir": args.cache,
            "concurrency": args.concurrency,
        },
        config="pairs",
        limit=args.limit,
        batch_size=4,
        image_metrics=(),
        progress=False,
    )
    evaluate(config)
    return 0


# -- the driver -------------------------------------------------------------------------------------
def launcher_env(rank: int, ranks: int) -> dict[str, str]:
    """What ``accelerate launch --num_processes RANKS`` (through torchrun) gives one worker."""
    return {
        "RANK": str(rank),
        "WORLD_SIZE": str(ranks),
        "LOCAL_RANK": str(rank),
        "LOCAL_WORLD_SIZE": str(ranks),
        "GROUP_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29500",
        "ACCELERATE_USE_CPU": "False",
    }


def base_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    env.setdefault("OMP_NUM_THREADS", "1")
    env["GEMINI_API_KEY"] = "local-benchmark"  # the local server needs one, any will do
    for name in ("GOOGLE_API_KEY", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        env.pop(name, None)
    return env


def wait_all(procs: list[subprocess.Popen], what: str, check: bool = True) -> list[dict]:
    """Wait for each process; its CPU seconds and peak RSS from the kernel (``wait4``)."""
    out = []
    for proc in procs:
        err = proc.stderr.read() if proc.stderr else ""
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if check and proc.returncode != 0:
            raise SystemExit(f"{what} failed (exit {proc.returncode}):\n{err[-4000:]}")
        out.append(
            {
                "cpu_s": usage.ru_utime + usage.ru_stime,
                "peak_rss_mb": usage.ru_maxrss / 1024,  # Linux: kilobytes
            }
        )
    return out


def run_command(cmd: list[str], env: dict, what: str, check: bool = True) -> tuple[dict, str]:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    usage = wait_all([proc], what, check=check)[0]
    return usage, out


def server_stats(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/_stats", timeout=30) as reply:
        return json.loads(reply.read())


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def open_in_chromium(page: Path, n: int) -> dict:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        return {"report_open_s": None, "report_rows_shown": None}
    with tempfile.TemporaryDirectory() as profile:
        cmd = [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            f"--user-data-dir={profile}",
            "--dump-dom",
            page.resolve().as_uri(),
        ]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        seconds = time.perf_counter() - t0
    shown = re.search(r"(\d+) of (\d+) samples shown", done.stdout)
    broken = re.search(r'data-images-broken="(\d+)"', done.stdout)
    return {
        "report_open_s": round(seconds, 2),
        "report_rows_shown": int(shown.group(1)) if shown else None,
        "report_rows_expected": n,
        "report_images_broken": int(broken.group(1)) if broken else None,
    }


def one_scale(n: int, args, root: Path, server: str) -> dict:
    """Run, report, submit and validate ``n`` samples with ``args.ranks`` ranks."""
    out, cache = root / f"run-{n}", root / f"cache-{n}"
    env = base_env()
    before = server_stats(server)["requests"]
    t0 = time.perf_counter()
    ranks = []
    for rank in range(args.ranks):
        cmd = [sys.executable, __file__, "--worker", "--out", str(out), "--limit", str(n)]
        cmd += ["--server", server, "--cache", str(cache), "--gpus", str(args.ranks)]
        cmd += ["--concurrency", str(args.concurrency)]
        ranks.append(
            subprocess.Popen(
                cmd,
                env={**env, **launcher_env(rank, args.ranks)},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    usage = wait_all(ranks, f"the run at {n} samples")
    run_s = time.perf_counter() - t0
    cli = [sys.executable, "-m", "slim_leakage.cli"]
    entry = root / f"entry-{n}.json"
    # a run of part of the config is submitted as a preview entry (`submit` refuses it as a
    # complete one); validate then rejects it for covering part of the config, which is kept
    from slim_leakage._io import iter_jsonl
    from slim_leakage.slim import load_samples

    partial = ["--partial"] if n < len(load_samples("pairs")) else []
    command = [*cli, "submit", str(out), "--out", str(entry), *partial]
    submit, _ = run_command(command, env, "submit")
    command = [*cli, "validate", str(entry), "--json"]
    validate, text = run_command(command, env, "validate", check=False)
    wall = time.perf_counter() - t0
    requests = server_stats(server)["requests"] - before
    checked = json.loads(text.strip().splitlines()[-1])["entries"][str(entry)]
    manifest = json.loads((out / "manifest.json").read_text())
    html_bytes = (out / "report.html").stat().st_size
    thumbs = out / "thumbs"
    thumb_bytes = folder_bytes(thumbs) if thumbs.is_dir() else 0
    usage += [submit, validate]
    result = {
        "samples": n,
        "wall_s": round(wall, 2),
        "run_s": round(run_s, 2),
        "cpu_s": round(sum(u["cpu_s"] for u in usage), 2),
        "peak_rss_mb": round(max(u["peak_rss_mb"] for u in usage), 1),
        "judge_requests": requests,
        "judge_calls_recorded": manifest["cost"]["judge"]["calls"],
        "labelled": json.loads((out / "metrics.json").read_text())["n_labelled"],
        "report_bytes": html_bytes + thumb_bytes,
        "report_html_bytes": html_bytes,
        "report_thumbnail_bytes": thumb_bytes,
        "report_thumbnails": sum(1 for _ in thumbs.rglob("*.jpg")) if thumbs.is_dir() else 0,
        "run_folder_bytes": folder_bytes(out),
        "rank_devices": [p.get("device") for p in manifest["processes"]],
        "rank_loaded_on": [p.get("loaded_on") for p in manifest["processes"]],
        # every rank's reference records: each entity's reference is drawn by one rank only
        "reference_images_drawn": sum(
            1
            for rank in range(args.ranks)
            for row in iter_jsonl(out / "shards" / f"rank-{rank}" / "generations.jsonl")
            if row.get("role") == "reference"
        ),
        "reference_entities": len(
            {e for s in iter_jsonl(out / "samples.jsonl") for e in s["entities"]}
        ),
        "validate_ok": checked["ok"],
        "validate_problems": [p[:200] for p in checked["problems"]],
    }
    result.update(open_in_chromium(out / "report.html", n))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=1338, help="the full size (pairs: 1338)")
    parser.add_argument("--small", type=int, default=96, help="the size cost_growth compares to")
    parser.add_argument("--ranks", type=int, default=4)
    parser.add_argument("--latency", type=float, default=2.0, help="seconds per judge request")
    parser.add_argument("--concurrency", type=int, default=8, help="judge requests per rank")
    parser.add_argument("--keep", metavar="DIR", help="work here and keep the runs")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    # the worker's options (one rank, started by the driver)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    for name in ("--out", "--server", "--cache"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--gpus", type=int, default=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)

    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="full-scale-"))
    root.mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen(
        [sys.executable, "-m", "slim_leakage.judge.testing", "--shapes", "real"]
        + ["--latency", str(args.latency)],
        env=base_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = server.stdout.readline().strip()
        scales = [one_scale(n, args, root, url) for n in (args.small, args.samples)]
        server_cpu_s = server_stats(url)["cpu_s"]
    finally:
        server.terminate()
        server.wait(timeout=30)
    small, full = scales
    growth = (full["wall_s"] / full["samples"]) / (small["wall_s"] / small["samples"])
    cpu_growth = (full["cpu_s"] / full["samples"]) / (small["cpu_s"] / small["samples"])
    result = {
        "samples": full["samples"],
        "report_bytes": full["report_bytes"],
        "rank_devices": full["rank_devices"],
        "wall_s": full["wall_s"],
        "peak_rss_mb": full["peak_rss_mb"],
        "judge_requests": full["judge_requests"],
        "cost_growth": round(growth, 3),
        "cpu_growth": round(cpu_growth, 3),
        "targets": {
            "report_bytes_le_25MB": full["report_bytes"] <= 25 * 10**6,
            "four_distinct_devices": len(set(full["rank_devices"])) == 4 == args.ranks,
            "cost_growth_le_1.25": growth <= 1.25,
        },
        "settings": {
            "ranks": args.ranks,
            "latency_s": args.latency,
            "judge_concurrency_per_rank": args.concurrency,
            "image_size": "512x512",
            "method": "instruction-prompt",
            "judge": "gemini (google-genai SDK) against the local server, shapes=real",
            "omp_num_threads": base_env()["OMP_NUM_THREADS"],
            "server_cpu_s": round(server_cpu_s, 2),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        },
        "scales": {str(s["samples"]): s for s in scales},
        "work_dir": str(root) if args.keep else None,
    }
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    text = json.dumps(result, indent=None if args.json else 2)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
