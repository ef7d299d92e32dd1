"""Judge throughput against the local protocol server with an injected per-request latency.

N samples go through the full protocol (two extractions, two typicality ratings, two ranking
orders) with the real OpenAI SDK against ``slim_leakage.judge.testing`` running in a separate
process, so the server does not compete with the client for the interpreter. The ideal is what
the concurrency allows: ``concurrency / latency`` requests per second. ``efficiency`` is the
achieved request rate over that ideal. A second judge on the same cache then re-runs the same
samples: ``rerun_calls`` must be 0.

The judge pass runs ``--repeats`` times (default 3), each judge with a fresh cache:
``efficiency`` is the median, ``efficiency_runs`` each pass's (a small shared machine's speed
drifts between runs). Server-side counts are per pass (``server_connections_per_pass``: the
TCP connections the server accepted, which a client keeping its connections alive keeps low).

On a small shared machine the SDK's own per-request CPU cost, not the judge, can be what keeps
the rate below the ideal. So the same backend object also sends the same number of requests with
the same concurrency straight through ``Backend.complete`` (the very requests the protocol
sends, recorded in-process first, replayed without their dependencies, cache, limiter or
parsing), before and after the judge run: ``transport_efficiency`` is that floor's rate over
the ideal, and ``relative_efficiency`` (efficiency / transport_efficiency) is the share of what
the SDK and server allow that the full protocol achieves, measured side by side. For the
``gemini`` backend the same requests also go through the plain SDK call (``contents`` a list,
the SDK's default config), alternating with the backend's own path, which sends the same
bodies: ``plain_sdk_cpu_ms_per_call`` and ``own_path_cpu_ms_per_call`` are the client CPU each
costs per call (the lower of two rounds each).

Then the real services' shapes, against an in-process server with ``shapes="real"`` and the
Gemini backend: ``retry_info_wait_s`` is the gap between a 429 whose only wait is a
``RetryInfo`` body and the next request any worker sends, and ``retry_info_honoured`` is true
when that gap is at least the given delay; ``hopeless_retries`` counts the calls a run spends
asking again a request that could not succeed (the same body after a safety block or a blocked
prompt, or with the same output limit after MAX_TOKENS), with both backends at a 20 % rate of
each such shape: it must be 0.

Usage: python benchmarks/judge_throughput.py [--samples 200] [--concurrency 32]
       [--latency 0.1] [--repeats 3] [--backend openai-compatible|gemini] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def make_items(root: Path, n: int):
    from PIL import Image

    from slim_leakage.judge import JudgeItem
    from slim_leakage.records import Sample

    items = []
    for i in range(n):
        sample = Sample(
            id=f"s{i}",
            prompt=f"a cat and a cheetah on a lawn, take {i}",
            entities=("cat", "cheetah"),
            seed=i,
        )
        paths = {}
        for k, role in enumerate(("vanilla", "method", "ref-cat", "ref-cheetah")):
            path = root / f"{i}-{role}.png"
            Image.new("RGB", (64, 64), (i % 256, (i // 256) * 16 + k, 40 * k)).save(path)
            paths[role] = path
        items.append(
            JudgeItem(
                sample,
                "bench",
                paths["vanilla"],
                paths["method"],
                {"cat": paths["ref-cat"], "cheetah": paths["ref-cheetah"]},
            )
        )
    return items


def protocol_requests(items) -> tuple[list, float]:
    """The requests the protocol sends for ``items``, recorded in-process (no HTTP), and the
    CPU seconds per request the protocol engine itself used (answers included)."""
    from slim_leakage.judge import Judge
    from slim_leakage.judge.backends.base import Backend, BackendResponse
    from slim_leakage.judge.testing import RecordedRequest, default_answer

    class Recorder(Backend):
        name = "recorder"
        default_model = "recorder"

        def __init__(self) -> None:
            super().__init__()
            self.seen = []

        async def complete(self, requests):
            out = []
            for r in requests:
                self.seen.append(r)
                shas = tuple(im.sha256 for im in r.images)
                recorded = RecordedRequest("-", "", "", r.stage, r.text, shas, r.schema, {}, False)
                out.append(BackendResponse(text=default_answer(recorded)))
            return out

    recorder = Recorder()
    cpu = time.process_time()
    Judge(recorder, cache=False, concurrency=32).judge(items, progress=False)
    return recorder.seen, (time.process_time() - cpu) / len(recorder.seen)


async def plain_gemini_call(backend, request) -> None:
    """One request as the plain ``generate_content`` call sends it: ``contents`` a list of one
    ``Content``, a typed config with the SDK's defaults (the simple reference of the judge's
    path, which sends the same body)."""
    client = backend._get_client()
    config = backend._config(request)
    response = await backend.call(
        client.aio.models.generate_content(
            model=backend.model, contents=backend._contents(request), config=config
        )
    )
    backend.answer(response, config.max_output_tokens)


async def transport_floor(judge, requests, concurrency: int, plain: bool = False):
    """Wall and client CPU seconds to send ``requests`` straight through the backend (with
    ``plain``, through :func:`plain_gemini_call` instead of the backend's own path)."""
    import asyncio

    slots = asyncio.Semaphore(concurrency)

    async def one(request):
        async with slots:
            if plain:
                await plain_gemini_call(judge.backend, request)
            else:
                await judge.backend.complete([request])

    start, cpu = time.perf_counter(), time.process_time()
    try:
        await asyncio.gather(*(one(r) for r in requests))
    finally:
        await judge.backend.aclose()
    return time.perf_counter() - start, time.process_time() - cpu


def retry_info_gap(root: Path, delay: float = 0.5) -> float:
    """Seconds from a RetryInfo-only 429 to the next request any worker sends."""
    from slim_leakage.judge import get_judge
    from slim_leakage.judge.testing import Reply, ScriptedServer

    with ScriptedServer(shapes="real") as server:
        server.push(Reply.real("retry_info", retry_after=delay))
        judge = get_judge(
            "gemini", base_url=server.url, cache_dir=str(root / "ri-cache"), concurrency=8
        )
        judge.notify = lambda line: None
        (root / "ri").mkdir()
        judge.judge(make_items(root / "ri", 4), progress=False)
    hit = next(r for r in server.requests if r.reply == "shape:retry_info")
    # Requests already on their way when the 429 was answered land soon after it: within a
    # few milliseconds on a quiet machine, 21 ms once under load. A fifth of a second, well
    # short of the 0.5 s asked, separates those from requests sent after the 429 was read.
    later = [r.time - hit.time for r in server.requests if r.time > hit.time + 0.2]
    return min(later)


def hopeless_calls(root: Path, samples: int = 12) -> dict:
    """Calls spent asking again what could not succeed, per backend (see the docstring)."""
    from slim_leakage.judge import get_judge
    from slim_leakage.judge.testing import ScriptedServer
    from slim_leakage.judge.testing.wire import output_limit

    final = {"shape:safety", "shape:blocked_prompt"}
    out = {}
    for backend in ("gemini", "openai"):
        rates = {"safety": 0.2, "blocked_prompt": 0.2, "max_tokens": 0.2}
        with ScriptedServer(shapes="real", fault_rates=rates, seed=7) as server:
            base = server.url if backend == "gemini" else server.openai_base_url
            judge = get_judge(backend, base_url=base, cache_dir=str(root / f"h-{backend}-cache"))
            judge.notify = lambda line: None
            (root / f"h-{backend}").mkdir()
            judge.judge(make_items(root / f"h-{backend}", samples), progress=False)
        spent, hopeless = 0, set()
        for r in server.requests:
            same = (r.stage, r.text, r.images)
            if same in hopeless or (same, output_limit(r)) in hopeless:
                spent += 1
            if r.reply in final:
                hopeless.add(same)
            elif r.reply == "shape:max_tokens":
                hopeless.add((same, output_limit(r)))
        out[backend] = {"calls": len(server.requests), "hopeless_retries": spent}
    return out


def server_stats(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/_stats", timeout=10) as response:
        return json.loads(response.read())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument(
        "--repeats", type=int, default=3, help="judge passes; the median is reported"
    )
    parser.add_argument(
        "--backend", default="openai-compatible", choices=["openai-compatible", "gemini"]
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args(argv)

    from slim_leakage.judge import get_judge

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "img").mkdir()
        items = make_items(root / "img", args.samples)
        server = subprocess.Popen(
            [sys.executable, "-m", "slim_leakage.judge.testing", "--latency", str(args.latency)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            url = server.stdout.readline().strip()
            options = {"cache_dir": str(root / "cache"), "concurrency": args.concurrency}
            if args.backend == "gemini":
                os.environ.setdefault("GEMINI_API_KEY", "local-benchmark")
                options["base_url"] = url
            else:
                options["base_url"] = f"{url}/v1"
            import asyncio

            judge = get_judge(args.backend, **options)
            # The floor replays the very requests the protocol sends, minus their dependencies.
            replay, engine_cpu = protocol_requests(items)
            n_floor = len(replay)
            (floor_1, cpu_1) = asyncio.run(transport_floor(judge, replay, args.concurrency))
            stats = server_stats(url)
            floor_calls, server_cpu_before = stats["requests"], stats["cpu_s"]
            connections_before = stats["connections"]
            # The judge pass, ``--repeats`` times with a fresh cache each (the first judge's
            # cache serves the rerun): a small shared machine's speed drifts from one run to
            # the next, so the median of a few is the figure and the spread is printed.
            passes = []
            for k in range(args.repeats):
                if k:
                    judge = get_judge(args.backend, **{**options, "cache_dir": str(root / f"c{k}")})
                start, cpu = time.perf_counter(), time.process_time()
                judged = judge.judge(items, progress=False)
                passes.append((time.perf_counter() - start, time.process_time() - cpu))
                if k == 0:
                    verdicts, first_judge = judged, judge
            judge = first_judge
            stats = server_stats(url)
            calls = (stats["requests"] - floor_calls) // args.repeats
            server_cpu = (stats["cpu_s"] - server_cpu_before) / args.repeats
            connections = (stats["connections"] - connections_before) / args.repeats
            wall = statistics.median(w for w, _ in passes)
            judge_cpu = statistics.median(c for _, c in passes)
            (floor_2, cpu_2) = asyncio.run(transport_floor(judge, replay, args.concurrency))
            plain_cpu = None
            if args.backend == "gemini":
                # the same requests through the plain SDK call, between two more floors of
                # the judge's own path: the CPU each costs per call, measured side by side
                plain, own = [], []
                for _ in range(2):
                    own.append(asyncio.run(transport_floor(judge, replay, args.concurrency))[1])
                    floor = transport_floor(judge, replay, args.concurrency, plain=True)
                    plain.append(asyncio.run(floor)[1])
                plain_cpu = (min(plain) / n_floor, min(own) / n_floor)
            floor_calls = server_stats(url)["requests"] - args.repeats * calls

            rerun = get_judge(args.backend, **options)
            start = time.perf_counter()
            again = rerun.judge(items, progress=False)
            rerun_wall = time.perf_counter() - start
            rerun_calls = server_stats(url)["requests"] - args.repeats * calls - floor_calls
        finally:
            server.terminate()
            server.wait(timeout=10)
        os.environ.setdefault("GEMINI_API_KEY", "local-benchmark")
        os.environ.setdefault("OPENAI_API_KEY", "local-benchmark")
        retry_gap = retry_info_gap(root)
        hopeless = hopeless_calls(root)

    ideal_rps = args.concurrency / args.latency
    achieved_rps = calls / wall
    floor_rps = n_floor / ((floor_1 + floor_2) / 2)
    efficiency = achieved_rps / ideal_rps
    transport = floor_rps / ideal_rps
    result = {
        "backend": args.backend,
        "samples": args.samples,
        "concurrency": args.concurrency,
        "latency_s": args.latency,
        "calls": calls,
        "calls_per_sample": calls / args.samples,
        "wall_s": round(wall, 3),
        "ideal_s": round(calls / ideal_rps, 3),
        "achieved_rps": round(achieved_rps, 1),
        "ideal_rps": round(ideal_rps, 1),
        "efficiency": round(efficiency, 4),
        "efficiency_runs": [round(calls / w / ideal_rps, 4) for w, _ in passes],
        "transport_rps": round(floor_rps, 1),
        "transport_efficiency": round(transport, 4),
        "relative_efficiency": round(efficiency / transport, 4),
        "transport_cpu_ms_per_call": round(1000 * (cpu_1 + cpu_2) / (2 * n_floor), 3),
        "judge_cpu_ms_per_call": round(1000 * judge_cpu / calls, 3),
        "engine_cpu_ms_per_call": round(1000 * engine_cpu, 3),
        "plain_sdk_cpu_ms_per_call": None if plain_cpu is None else round(1000 * plain_cpu[0], 3),
        "own_path_cpu_ms_per_call": None if plain_cpu is None else round(1000 * plain_cpu[1], 3),
        "server_cpu_ms_per_call": round(1000 * server_cpu / calls, 3),
        "server_connections_per_pass": round(connections, 1),
        "judge_errors": sum(v.label is None for v in verdicts),
        "order_flips": judge.stats.order_flips,
        "rerun_calls": rerun_calls,
        "rerun_wall_s": round(rerun_wall, 3),
        "rerun_identical": again == verdicts,
        "retry_info_delay_s": 0.5,
        "retry_info_wait_s": round(retry_gap, 3),
        "retry_info_honoured": retry_gap >= 0.5,
        "hopeless_retries": sum(v["hopeless_retries"] for v in hopeless.values()),
        "hopeless_runs": hopeless,
        "cpu_count": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    if not args.json:
        for key, value in result.items():
            print(f"{key:>16}: {value}")
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
