"""Cost of checking a leaderboard entry, measured side by side in one process.

* the vectorised percentile bootstrap of ``metrics.aggregate`` against a plain Python loop over
  the *same* resampling draws (they must give the same intervals; ``speedup`` is loop / fast);
* ``validate_entry`` on a full-size entry (the shipped SLIM ``pairs`` config when it loads,
  else the same number of synthetic samples), and the agreement report of ``slim-eval agree``
  on 60 samples with three annotators (the size of the paper's human study).

Absolute times on a shared CPU mean little; the ratio and the order of magnitude are what this
script is for.

Usage: python benchmarks/leaderboard_validate.py [--samples 1338] [--n-boot 1000] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def _median_seconds(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _loop_intervals(labels, n_boot, seed):
    """The reference: shares counted in Python per resample, numpy's default percentile."""
    import numpy as np

    from slim_leakage.metrics import DECIMALS, bootstrap_indices
    from slim_leakage.records import LABELS

    draws = bootstrap_indices(len(labels), n_boot=n_boot, seed=seed).tolist()
    out = {}
    for label in LABELS:
        shares = [sum(1 for j in row if labels[j] == label) / len(labels) for row in draws]
        low, high = np.percentile(shares, [2.5, 97.5])
        out[label] = [round(float(low), DECIMALS), round(float(high), DECIMALS)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1338)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import numpy as np

    from slim_leakage.judge.agreement import HumanLabel, agreement
    from slim_leakage.leaderboard.testing import synthetic_entry
    from slim_leakage.leaderboard.validate import DatasetReference, validate_entry
    from slim_leakage.metrics import bootstrap_intervals
    from slim_leakage.records import LABELS, Sample, Verdict

    source = "synthetic"
    try:
        from slim_leakage.slim import dataset_fingerprint, load_samples

        samples = list(load_samples("pairs"))[: args.samples]
        fingerprint = dataset_fingerprint("pairs") if len(samples) == args.samples else "bench"
        source = "slim:pairs"
    except Exception:  # noqa: BLE001 - the benchmark also runs without the data folder
        samples, fingerprint = [], "bench"
    if len(samples) < args.samples:
        samples = [
            Sample(id=f"s{i}", prompt="a cat and a lion", entities=("cat", "lion"), seed=i)
            for i in range(args.samples)
        ]
        source, fingerprint = "synthetic", "bench"
    rng = np.random.default_rng(0)
    labels = [LABELS[k] for k in rng.integers(0, 5, size=len(samples))]

    fast = bootstrap_intervals(labels, n_boot=args.n_boot, seed=0)
    loop = _loop_intervals(labels, args.n_boot, 0)
    t_fast = _median_seconds(
        lambda: bootstrap_intervals(labels, n_boot=args.n_boot, seed=0), args.repeats
    )
    t_loop = _median_seconds(lambda: _loop_intervals(labels, args.n_boot, 0), 1)

    verdicts = [Verdict(sample_id=s.id, method="m", label=lab) for s, lab in zip(samples, labels)]
    entry = synthetic_entry(
        samples, verdicts, fingerprint=fingerprint, name="bench", n_boot=args.n_boot
    )
    ref = DatasetReference("pairs", fingerprint, tuple(samples))
    report = validate_entry(entry, dataset=lambda config: ref)
    t_validate = _median_seconds(lambda: validate_entry(entry, dataset=lambda c: ref), args.repeats)

    judge = {f"h{i}": LABELS[int(k)] for i, k in enumerate(rng.integers(0, 5, size=60))}
    human = [
        HumanLabel(f"h{i}", "m", f"a{a}", LABELS[int(k)])
        for a in range(3)
        for i, k in enumerate(rng.integers(0, 5, size=60))
    ]
    t_agree = _median_seconds(lambda: agreement(judge, human, n_boot=1000), args.repeats)

    result = {
        "source": source,
        "samples": len(samples),
        "n_boot": args.n_boot,
        "bootstrap_fast_s": round(t_fast, 4),
        "bootstrap_loop_s": round(t_loop, 4),
        "bootstrap_speedup": round(t_loop / t_fast, 1),
        "bootstrap_identical": fast == loop,
        "validate_s": round(t_validate, 4),
        "validate_ok": report.ok,
        "agree_60x3_s": round(t_agree, 4),
    }
    if not args.json:
        for key, value in result.items():
            print(f"{key:>22}: {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
