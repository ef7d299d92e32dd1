"""How fast SLIM lists, loads and builds, against the slower ways of doing the same thing.

Measured side by side in one process (ratios mean more than absolute times on a shared CPU):

- ``describe_configs()`` reads the dataset card; the alternative reads every Parquet file to
  count its rows. ``card_speedup`` = data time / card time.
- ``load_slim("pairs")`` wraps the Parquet table in memory; the alternative is
  ``datasets.load_dataset(folder, "pairs")`` with an empty cache (it converts to Arrow on disk
  first). ``load_speedup`` = load_dataset time / load_slim time.
- A cold ``describe_configs()`` in a fresh interpreter (what ``slim-eval ls configs`` pays)
  against a fresh interpreter that only imports ``datasets`` (what reading through ``datasets``
  would pay before any work). ``cold_list_speedup`` = import-datasets time / cold-list time.
- ``load_samples("pairs")`` (typed records) and a full ``build_slim`` into a temporary folder.

Usage: python benchmarks/slim_load.py [--repeat 20] [--json]
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


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="timed repetitions (best is kept)")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    import datasets
    import pyarrow.parquet as pq

    from slim_leakage.slim import data_root, describe_configs, load_samples, load_slim
    from slim_leakage.slim.builder import build_slim
    from slim_leakage.slim.hub_format import data_path

    root = data_root()
    names = [c["name"] for c in describe_configs()]

    def count_from_data() -> int:
        return sum(pq.read_table(data_path(root, n)).num_rows for n in names)

    assert sum(c["rows"] for c in describe_configs()) == count_from_data()
    t_card = _best(describe_configs, args.repeat)
    t_data = _best(count_from_data, args.repeat)

    load_slim("pairs")  # warm imports before timing
    t_load_slim = _best(lambda: load_slim("pairs"), args.repeat)
    load_dataset_times = []
    for _ in range(max(3, args.repeat // 5)):
        with tempfile.TemporaryDirectory() as cache:
            start = time.perf_counter()
            ds = datasets.load_dataset(str(root), "pairs", split="test", cache_dir=cache)
            load_dataset_times.append(time.perf_counter() - start)
    assert ds.num_rows == load_slim("pairs").num_rows
    t_load_dataset = min(load_dataset_times)

    n_pairs = len(load_samples("pairs"))
    t_samples = _best(lambda: load_samples("pairs"), args.repeat)

    def cold(code: str) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        return time.perf_counter() - start

    cold_runs = max(3, args.repeat // 5)
    t_cold_list = min(
        cold("from slim_leakage.slim import describe_configs; describe_configs()")
        for _ in range(cold_runs)
    )
    t_cold_datasets = min(cold("import datasets") for _ in range(cold_runs))

    build_times = []
    for _ in range(3):
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            report = build_slim(out)
            build_times.append(time.perf_counter() - start)
    t_build = min(build_times)

    result = {
        "configs": len(names),
        "rows": sum(report.rows.values()),
        "describe_configs_s": round(t_card, 6),
        "count_rows_from_data_s": round(t_data, 6),
        "card_speedup": round(t_data / t_card, 2),
        "load_slim_s": round(t_load_slim, 6),
        "load_dataset_fresh_cache_s": round(t_load_dataset, 6),
        "load_speedup": round(t_load_dataset / t_load_slim, 2),
        "cold_list_configs_s": round(t_cold_list, 4),
        "cold_import_datasets_s": round(t_cold_datasets, 4),
        "cold_list_speedup": round(t_cold_datasets / t_cold_list, 2),
        "load_samples_pairs_s": round(t_samples, 6),
        "samples_per_s": round(n_pairs / t_samples),
        "build_slim_s": round(t_build, 4),
        "build_slim_s_spread": round(statistics.pstdev(build_times), 4),
    }
    if not args.json:
        for key, value in result.items():
            print(f"{key:28s} {value}")
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
