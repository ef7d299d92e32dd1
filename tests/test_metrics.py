import dataclasses

import numpy as np
import pytest

from slim_leakage.errors import ValidationError
from slim_leakage.metrics import (
    AGGREGATE_FIELDS,
    aggregate,
    bootstrap_indices,
    bootstrap_intervals,
    direction_shares,
    net_mitigation,
    splitmix64,
)
from slim_leakage.records import LABELS, RunMetrics, Sample, Verdict


def _samples(n, subsets=("simple", "interaction"), families=("big-cats", "birds", "")):
    return [
        Sample(
            id=f"s{i}",
            prompt=f"a cat and a cheetah {i}",
            entities=("cat", "cheetah"),
            seed=i,
            subset=subsets[i % len(subsets)],
            family=families[i % len(families)],
        )
        for i in range(n)
    ]


def _verdict(i, label, *, flip=False, method="deleaker"):
    if label is None:
        return Verdict(sample_id=f"s{i}", method=method, label=None, error="timeout")
    return Verdict(sample_id=f"s{i}", method=method, label=label, order_flip=flip)


def test_counts_shares_errors_and_flips_by_hand():
    labels = [
        "mitigation-major",
        "mitigation-major",
        "mitigation-minor",
        "no-change",
        None,
        "degradation-major",
    ]
    verdicts = [_verdict(i, lab, flip=(i == 3)) for i, lab in enumerate(labels)]
    m = aggregate(verdicts, _samples(6), method="deleaker", n_boot=50)
    assert m.n_samples == 6 and m.n_labelled == 5 and m.judge_errors == 1
    assert m.counts == {
        "mitigation-major": 2,
        "mitigation-minor": 1,
        "no-change": 1,
        "degradation-minor": 0,
        "degradation-major": 1,
    }
    assert m.distribution == {
        "mitigation-major": 0.4,
        "mitigation-minor": 0.2,
        "no-change": 0.2,
        "degradation-minor": 0.0,
        "degradation-major": 0.2,
    }
    assert m.order_flip_rate == 0.2
    assert m.extra["bootstrap"] == {"n_boot": 50, "seed": 0, "level": 0.95}
    # s0, s2, s4 are 'simple': labels major, minor, (error).
    assert m.per_subset["simple"]["n"] == 3
    assert m.per_subset["simple"]["n_labelled"] == 2
    assert m.per_subset["simple"]["distribution"]["mitigation-major"] == 0.5
    # family "" (s2, s5) is left out of the family breakdown.
    assert set(m.per_family) == {"big-cats", "birds"}
    # birds: s1 (mitigation-major) and s4 (judge error)
    assert m.per_family["birds"]["n"] == 2
    assert m.per_family["birds"]["n_labelled"] == 1
    assert m.per_family["birds"]["counts"]["mitigation-major"] == 1


def _splitmix64_reference(seed, count):
    """SplitMix64 in plain Python integers (Steele, Lea and Flood 2014)."""
    mask = (1 << 64) - 1
    state, out = seed & mask, []
    for _ in range(count):
        state = (state + 0x9E3779B97F4A7C15) & mask
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        out.append(z ^ (z >> 31))
    return out


def test_draws_are_splitmix64_and_fixed_for_good():
    assert [int(v) for v in splitmix64(0, 50)] == _splitmix64_reference(0, 50)
    assert [int(v) for v in splitmix64(-3, 20)] == _splitmix64_reference(-3, 20)
    # the published first output of SplitMix64 seeded with 0
    assert int(splitmix64(0, 1)[0]) == 0xE220A8397B1DCDAF
    idx = bootstrap_indices(7, n_boot=3, seed=42)
    assert idx.shape == (3, 7)
    assert idx.flatten().tolist() == [v % 7 for v in _splitmix64_reference(42, 21)]


def test_intervals_match_a_plain_loop_over_the_same_draws():
    rng = np.random.default_rng(7)
    labels = [LABELS[k] for k in rng.integers(0, 5, size=37)]
    got = bootstrap_intervals(labels, n_boot=200, seed=3)
    draws = bootstrap_indices(len(labels), n_boot=200, seed=3)
    for label in LABELS:
        shares = []
        for row in draws:
            shares.append(sum(1 for j in row if labels[j] == label) / len(labels))
        shares.sort()

        # numpy's default percentile: linear interpolation at rank q * (n - 1)
        def pct(q, shares=shares):
            pos = q * (len(shares) - 1)
            lo = int(np.floor(pos))
            hi = min(lo + 1, len(shares) - 1)
            return shares[lo] + (shares[hi] - shares[lo]) * (pos - lo)

        assert got[label] == pytest.approx([pct(0.025), pct(0.975)], abs=1e-6)
        share = labels.count(label) / len(labels)
        assert got[label][0] <= share <= got[label][1]


def test_net_mitigation_is_a_paired_difference_over_the_same_draws():
    rng = np.random.default_rng(11)
    labels = [LABELS[k] for k in rng.integers(0, 5, size=41)]
    net, interval = net_mitigation(labels, n_boot=300, seed=5)
    sign = {"mitigation-major": 1, "mitigation-minor": 1, "no-change": 0}
    values = [sign.get(label, -1) for label in labels]
    assert net == round(sum(values) / len(values), 6)
    nets = sorted(
        sum(values[j] for j in row) / len(row)
        for row in bootstrap_indices(len(labels), n_boot=300, seed=5)
    )

    def pct(q):
        pos = q * (len(nets) - 1)
        lo = int(np.floor(pos))
        hi = min(lo + 1, len(nets) - 1)
        return nets[lo] + (nets[hi] - nets[lo]) * (pos - lo)

    assert interval == pytest.approx([pct(0.025), pct(0.975)], abs=1e-6)
    assert net_mitigation(["no-change"] * 9) == (0.0, [0.0, 0.0])
    assert net_mitigation([]) == (None, None)


def test_direction_shares_resample_the_same_draws():
    rng = np.random.default_rng(3)
    labels = [LABELS[k] for k in rng.integers(0, 5, size=29)]
    got = direction_shares(labels, n_boot=150, seed=9)
    draws = bootstrap_indices(len(labels), n_boot=150, seed=9)
    groups = {
        "mitigation": {"mitigation-major", "mitigation-minor"},
        "no-change": {"no-change"},
        "degradation": {"degradation-minor", "degradation-major"},
    }
    for name, members in groups.items():
        share, interval = got[name]
        assert share == round(sum(1 for lab in labels if lab in members) / 29, 6)
        resampled = [sum(1 for j in row if labels[j] in members) / 29 for row in draws]
        assert interval == pytest.approx(np.percentile(resampled, [2.5, 97.5]).tolist(), abs=1e-6)
    assert direction_shares([])["mitigation"] == (None, None)


def test_the_intervals_document_the_generator_they_use():
    assert "SplitMix64" in bootstrap_intervals.__doc__
    assert "default_rng" not in bootstrap_intervals.__doc__


def test_same_seed_same_result_other_seed_other_intervals():
    labels = ["mitigation-major", "no-change", "degradation-minor", "mitigation-minor"] * 10
    verdicts = [_verdict(i, lab) for i, lab in enumerate(labels)]
    samples = _samples(len(labels))
    a = aggregate(verdicts, samples, method="deleaker", seed=1)
    b = aggregate(list(reversed(verdicts)), samples, method="deleaker", seed=1)
    c = aggregate(verdicts, samples, method="deleaker", seed=2)
    assert a == b
    assert a.intervals != c.intervals
    assert a.distribution == c.distribution


def test_json_round_trip_compares_equal():
    verdicts = [_verdict(i, LABELS[i % 5]) for i in range(12)]
    m = aggregate(verdicts, _samples(12), method="deleaker", n_boot=100)
    assert RunMetrics.from_json(m.to_json()) == m
    assert set(AGGREGATE_FIELDS) <= {f.name for f in dataclasses.fields(RunMetrics)}


def test_all_errors_gives_null_shares_not_zero_division():
    verdicts = [_verdict(i, None) for i in range(3)]
    m = aggregate(verdicts, _samples(3), method="deleaker")
    assert m.n_labelled == 0 and m.judge_errors == 3
    assert set(m.distribution.values()) == {None}
    assert set(m.intervals.values()) == {None}
    assert m.order_flip_rate is None
    assert m.counts == dict.fromkeys(LABELS, 0)


@pytest.mark.parametrize(
    "verdicts, message",
    [
        ([_verdict(0, "no-change")], "have no verdict"),
        ([_verdict(0, "no-change"), _verdict(0, "no-change")], "more than one verdict"),
        ([_verdict(0, "no-change"), _verdict(9, "no-change")], "unknown sample 's9'"),
        ([_verdict(0, "no-change", method="vanilla")], "for method 'vanilla'"),
    ],
)
def test_mismatched_verdicts_are_rejected(verdicts, message):
    samples = _samples(1) if "have no verdict" not in message else _samples(2)
    with pytest.raises(ValidationError, match=message):
        aggregate(verdicts, samples, method="deleaker")


def test_bad_n_boot_is_rejected():
    with pytest.raises(ValidationError, match="n_boot=0"):
        aggregate([_verdict(0, "no-change")], _samples(1), method="deleaker", n_boot=0)


# --- what the run adds: image figures, cost, and the unjudged run -------------------------------

_FIGURES = {"lpips": 0.25, "kid": None, "kid_std": None, "vqascore": None, "notes": {"kid": "n/a"}}
_COST = {"method": {"seconds_per_image": 0.5, "images_timed": 4, "peak_memory_bytes": None}}


def test_run_figures_fill_the_image_fields_and_extend_extra_in_order():
    verdicts = [_verdict(i, LABELS[i % 5]) for i in range(4)]
    labels = aggregate(verdicts, _samples(4), method="deleaker", n_boot=10)
    m = labels.with_run_figures(_FIGURES, _COST, judged=True)
    assert (m.lpips, m.kid, m.kid_std, m.vqascore) == (0.25, None, None, None)
    assert list(m.extra) == ["bootstrap", "image_metrics_notes", "cost", "judged"]
    assert m.judged and m.cost == _COST and m.image_metrics_notes == {"kid": "n/a"}
    assert dataclasses.replace(m, lpips=None, extra=labels.extra) == labels  # nothing else moved
    assert list(m.to_dict()) == [f.name for f in dataclasses.fields(RunMetrics)]
    assert RunMetrics.from_json(m.to_json()) == m


def test_an_unjudged_run_has_no_shares_but_its_figures():
    m = RunMetrics.unjudged("deleaker", 3).with_run_figures(_FIGURES, _COST, judged=False)
    assert (m.method, m.n_samples, m.n_labelled, m.judge_errors) == ("deleaker", 3, 0, 0)
    assert m.counts == m.distribution == m.intervals == m.per_subset == m.per_family == {}
    assert m.order_flip_rate is None and m.lpips == 0.25
    assert list(m.extra) == ["image_metrics_notes", "cost", "judged"] and not m.judged
