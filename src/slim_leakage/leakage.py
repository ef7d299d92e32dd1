"""The absolute leakage rate: how often a model's images leak, with bootstrap intervals.

The comparison labels of :mod:`slim_leakage.metrics` say whether a method leaks *less* than
the vanilla backbone. This module says how much each set of images leaks at all, from one
single-image check per image (the judge's ``check_leakage``, the same question the SLIM
verifier asks; the toy oracle answers it exactly):

- the **image rate**: the share of checked samples whose image leaks (some entity shows a
  feature borrowed from another entity);
- the **entity rate**: the share of the entities the judge found in the images that show a
  borrowed feature (an entity that is not drawn cannot leak, so it is left out of both counts,
  as the toy world's exact reading leaves it out);
- for a method, the **paired difference** (method minus vanilla, over the samples both
  images of which were checked).

Intervals are percentile bootstrap intervals over samples, drawn from the same SplitMix64
stream as the label intervals (:func:`slim_leakage.metrics.bootstrap_indices`), so the figures
are a pure function of the check rows and recompute exactly anywhere. The entity rate and its
difference resample whole samples (the entities of one image are not independent).

A check row is a dict (one line of the run's ``leakage.jsonl``): ``kind`` ``"check"``,
``sample_id``, ``role`` (``vanilla`` / ``method``), ``image_sha256``, ``judge``, ``leaky``
(``True`` / ``False`` / ``None`` on error), ``entities`` (entity -> leaks), ``present``
(entity -> drawn) and ``error``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .metrics import DECIMALS, LEVEL, bootstrap_indices
from .records import Sample

#: The two image roles a run checks.
ROLES = ("vanilla", "method")


def check_row(
    check: Any, *, role: str, image_sha256: str, judge: str, entities: Sequence[str]
) -> dict[str, Any]:
    """One ``leakage.jsonl`` row from a judge's ``LeakageCheck``.

    Args:
        check: The judge's answer (``sample_id``, ``leaky``, ``error``, ``scores`` with
            ``borrowed_features`` and ``present`` per entity, as the typicality stage gives).
        role: ``vanilla`` or ``method``.
        image_sha256: Digest of the image checked (a resume checks a changed image again).
        judge: The judge's name.
        entities: The sample's entities, in prompt order.
    """
    scores = dict(getattr(check, "scores", None) or {})
    borrowed = scores.get("borrowed_features") or {}
    present = scores.get("present") or {}
    error = getattr(check, "error", None)
    leaky = None if error else check.leaky
    return {
        "kind": "check",
        "sample_id": check.sample_id,
        "role": role,
        "image_sha256": image_sha256,
        "judge": judge,
        "leaky": None if leaky is None else bool(leaky),
        "entities": {} if error else {e: bool(borrowed.get(e)) for e in entities},
        "present": {} if error else {e: bool(present.get(e, True)) for e in entities},
        "error": error,
    }


def latest_checks(rows: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], dict]:
    """``(role, sample_id) -> row``: the last check row written for each image."""
    out: dict[tuple[str, str], dict] = {}
    for row in rows:
        if row.get("kind") == "check":
            out[(row["role"], row["sample_id"])] = dict(row)
    return out


def _rate(k: int, n: int) -> float | None:
    return None if n == 0 else round(k / n, DECIMALS)


def _interval(values) -> list[float]:
    import numpy as np

    alpha = (1.0 - LEVEL) / 2.0
    low, high = np.nanpercentile(values, [100 * alpha, 100 * (1 - alpha)])
    return [round(float(low), DECIMALS), round(float(high), DECIMALS)]


def _ratio_figure(k, n, *, n_boot: int, seed: int) -> dict[str, Any]:
    """``rate = sum(k) / sum(n)`` over samples, with a bootstrap interval over samples."""
    import numpy as np

    k, n = np.asarray(k, dtype=np.float64), np.asarray(n, dtype=np.float64)
    total_k, total_n = int(k.sum()), int(n.sum())
    out: dict[str, Any] = {"rate": _rate(total_k, total_n), "k": total_k, "n": total_n}
    if len(k) == 0 or total_n == 0:
        out["ci95"] = None
        return out
    idx = bootstrap_indices(len(k), n_boot=n_boot, seed=seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        draws = k[idx].sum(axis=1) / n[idx].sum(axis=1)
    out["ci95"] = _interval(draws)
    return out


def rate_figure(flags: Sequence[bool], *, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """``rate``, ``k``, ``n`` and bootstrap ``ci95`` of per-sample leak flags (as in a run)."""
    return _ratio_figure([int(bool(f)) for f in flags], [1] * len(flags), n_boot=n_boot, seed=seed)


def _role_figures(rows: Sequence[dict], *, n_boot: int, seed: int) -> dict[str, Any]:
    checked = [r for r in rows if r.get("leaky") is not None]
    ent_k = [
        sum(1 for e, on in r["entities"].items() if on and r["present"].get(e, True))
        for r in checked
    ]
    ent_n = [sum(1 for on in r["present"].values() if on) for r in checked]
    return {
        "n_checked": len(checked),
        "errors": len(rows) - len(checked),
        "images": _ratio_figure(
            [int(r["leaky"]) for r in checked], [1] * len(checked), n_boot=n_boot, seed=seed
        ),
        "entities": _ratio_figure(ent_k, ent_n, n_boot=n_boot, seed=seed),
    }


def _groups(samples: Sequence[Sample], attr: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for s in samples:
        key = getattr(s, attr)
        if key:
            out.setdefault(key, []).append(s.id)
    return dict(sorted(out.items()))


def role_summary(
    checks: Mapping[tuple[str, str], dict],
    samples: Sequence[Sample],
    role: str,
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """The leakage rates of one role's images, overall and per subset and family.

    Args:
        checks: :func:`latest_checks` of the run.
        samples: The run's samples (the order of the figures' resamples).
        role: ``vanilla`` or ``method``.
        n_boot: Bootstrap resamples.
        seed: Bootstrap seed.

    Returns:
        ``n_samples``, ``n_checked``, ``errors``, ``images`` and ``entities`` (each ``rate``,
        ``k``, ``n``, ``ci95``), and ``per_subset`` / ``per_family`` with the same figures.
    """
    rows = {s.id: checks[(role, s.id)] for s in samples if (role, s.id) in checks}

    def figures(ids: Sequence[str]) -> dict[str, Any]:
        return {
            "n_samples": len(ids),
            **_role_figures([rows[i] for i in ids if i in rows], n_boot=n_boot, seed=seed),
        }

    out = figures([s.id for s in samples])
    for name, attr in (("per_subset", "subset"), ("per_family", "family")):
        out[name] = {key: figures(ids) for key, ids in _groups(samples, attr).items()}
    return out


def paired_difference(
    checks: Mapping[tuple[str, str], dict],
    samples: Sequence[Sample],
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Method minus vanilla leakage rate over the samples whose two images were both checked.

    Returns:
        ``n_pairs`` and, for ``images`` and ``entities``, ``difference`` with its paired
        bootstrap ``ci95`` (samples resampled once for both images), ``vanilla`` and
        ``method`` (the two rates over the same pairs).
    """
    import numpy as np

    pairs = [
        (checks[("vanilla", s.id)], checks[("method", s.id)])
        for s in samples
        if checks.get(("vanilla", s.id), {}).get("leaky") is not None
        and checks.get(("method", s.id), {}).get("leaky") is not None
    ]
    out: dict[str, Any] = {"n_pairs": len(pairs)}

    def entity_counts(row: dict) -> tuple[int, int]:
        present = [e for e, on in row["present"].items() if on]
        return sum(1 for e in present if row["entities"].get(e)), len(present)

    columns = {
        "images": (
            [(int(v["leaky"]), 1) for v, _ in pairs],
            [(int(m["leaky"]), 1) for _, m in pairs],
        ),
        "entities": ([entity_counts(v) for v, _ in pairs], [entity_counts(m) for _, m in pairs]),
    }
    for name, (van, met) in columns.items():
        vk, vn = (np.array([x[i] for x in van], dtype=np.float64) for i in (0, 1))
        mk, mn = (np.array([x[i] for x in met], dtype=np.float64) for i in (0, 1))
        v_rate = _rate(int(vk.sum()), int(vn.sum()))
        m_rate = _rate(int(mk.sum()), int(mn.sum()))
        figure: dict[str, Any] = {"vanilla": v_rate, "method": m_rate, "difference": None}
        figure["ci95"] = None
        if pairs and v_rate is not None and m_rate is not None:
            figure["difference"] = round(m_rate - v_rate, DECIMALS)
            idx = bootstrap_indices(len(pairs), n_boot=n_boot, seed=seed)
            with np.errstate(invalid="ignore", divide="ignore"):
                draws = mk[idx].sum(axis=1) / mn[idx].sum(axis=1) - vk[idx].sum(axis=1) / vn[
                    idx
                ].sum(axis=1)
            figure["ci95"] = _interval(draws)
        out[name] = figure
    return out


def leakage_summary(
    rows: Iterable[Mapping[str, Any]],
    samples: Sequence[Sample],
    *,
    method: str,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """``metrics.json``'s ``leakage``: the vanilla and method rates and their difference.

    A ``vanilla`` run's method images are its vanilla images: ``method`` and ``difference``
    are then ``None`` and the run reports the model's own rate under ``vanilla``.

    Args:
        rows: The run's ``leakage.jsonl`` rows (later rows of an image replace earlier ones).
        samples: The run's samples.
        method: The run's method name.
        n_boot: Bootstrap resamples.
        seed: Bootstrap seed.

    Returns:
        ``{"vanilla": ..., "method": ..., "difference": ..., "bootstrap": {...}}``.
    """
    checks = latest_checks(rows)
    vanilla = role_summary(checks, samples, "vanilla", n_boot=n_boot, seed=seed)
    if method == "vanilla":
        return {
            "vanilla": vanilla,
            "method": None,
            "difference": None,
            "bootstrap": {"n_boot": n_boot, "seed": seed, "level": LEVEL},
        }
    return {
        "vanilla": vanilla,
        "method": role_summary(checks, samples, "method", n_boot=n_boot, seed=seed),
        "difference": paired_difference(checks, samples, n_boot=n_boot, seed=seed),
        "bootstrap": {"n_boot": n_boot, "seed": seed, "level": LEVEL},
    }


def usage_total(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The judge calls, tokens and cost the leakage checks spent (its ``usage`` rows summed)."""
    fields = ("calls", "cache_hits", "input_tokens", "output_tokens", "thinking_tokens")
    total: dict[str, Any] = dict.fromkeys(fields, 0)
    total["cost_usd"] = 0.0
    for row in rows:
        if row.get("kind") == "usage":
            for f in fields:
                total[f] += int(row.get(f) or 0)
            total["cost_usd"] += float(row.get("cost_usd") or 0.0)
    total["cost_usd"] = round(total["cost_usd"], 6)
    return total


def _percent(figure: Mapping[str, Any] | None, key: str = "rate") -> str:
    if not figure or figure.get(key) is None:
        return "n/a"
    text = f"{100 * figure[key]:.1f}%"
    ci = figure.get("ci95")
    if ci and None not in ci:
        text += f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"
    if "k" in figure:
        text += f" ({figure['k']}/{figure['n']})"
    return text


def leakage_rows(leakage: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """``(name, text)`` rows of a run's leakage figures, for the report and the summary.

    Example row: ``("leakage rate, vanilla images", "16.7% [0.0, 50.0] (1/6)")``.
    """
    if not leakage:
        return []
    rows = []
    for role in ROLES:
        block = leakage.get(role)
        if block:
            rows.append((f"leakage rate, {role} images", _percent(block.get("images"))))
            rows.append((f"leakage rate, {role} entities", _percent(block.get("entities"))))
    diff = leakage.get("difference")
    if diff:
        for unit in ("images", "entities"):
            figure = diff.get(unit) or {}
            value = figure.get("difference")
            ci = figure.get("ci95")
            text = "n/a" if value is None else f"{100 * value:+.1f} pts"
            if value is not None and ci and None not in ci:
                text += f" [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]"
            rows.append((f"leakage difference (method - vanilla), {unit}", text))
    return rows
