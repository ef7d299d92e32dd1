"""The summary table printed at the end of a run."""

from __future__ import annotations

from pathlib import Path

from ..leakage import leakage_rows
from ..records import LABELS


def print_summary(metrics: dict, out: Path) -> None:
    """Print the 5-way distribution with intervals, errors, flips and image metrics."""
    n = metrics.get("n_samples", 0)
    print(
        f"\nresults for {metrics.get('method')} ({n} samples, {metrics.get('n_labelled', 0)} labelled)"
    )
    dist = metrics.get("distribution") or {}
    intervals = metrics.get("intervals") or {}
    if metrics.get("extra", {}).get("judged"):
        for label in LABELS:
            share = dist.get(label)
            ci = intervals.get(label)
            share_text = "  n/a" if share is None else f"{100 * float(share):5.1f}%"
            ci_text = f"  [{100 * ci[0]:5.1f}, {100 * ci[1]:5.1f}]" if ci and None not in ci else ""
            print(f"  {label:<18} {share_text}{ci_text}")
        print(f"  judge errors       {metrics.get('judge_errors', 0)}")
        flip = metrics.get("order_flip_rate")
        if flip is not None:
            print(f"  order-flip rate    {100 * flip:5.1f}%")
    else:
        print("  not judged (judge 'none'): images and generations.jsonl only")
    for name, text in leakage_rows(metrics.get("leakage")):
        print(f"  {name:<48} {text}")
    for key, name in (("lpips", "LPIPS"), ("kid", "KID"), ("vqascore", "VQAScore")):
        value = metrics.get(key)
        if value is not None:
            print(f"  {name:<18} {value:.4f}")
    print(f"  written to {out}/ (metrics.json, verdicts.jsonl, report.html)")
