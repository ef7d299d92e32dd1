"""Regression test: leaderboard rows must be in dataset order, as the entry format says."""

from __future__ import annotations

import copy


def test_swapped_verdict_rows_are_refused(bench):
    from slim_leakage.leaderboard.validate import validate_entry

    entry, resolver, pinned = bench.fuzz_base_entry(n=6)
    assert validate_entry(copy.deepcopy(entry), pinned=pinned, dataset=resolver).ok
    swapped = copy.deepcopy(entry)
    swapped["verdicts"][1], swapped["verdicts"][4] = swapped["verdicts"][4], swapped["verdicts"][1]
    report = validate_entry(swapped, pinned=pinned, dataset=resolver)
    assert not report.ok
    assert report.problems == [
        "verdicts[1].sample_id: 'p004', but the rows must be in dataset order, which has "
        "'p001' here"
    ]
