"""The forgery family: every tamper the leaderboard must not reward, from a real toy entry."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def toy_pairs_head():
    """The first 8 samples of toy-pairs as the shipped config (a short real toy run)."""
    pytest.importorskip("diffusers")
    from slim_leakage.leaderboard.validate import DatasetReference, shipped_dataset
    from slim_leakage.slim import dataset_fingerprint, load_samples

    ref = DatasetReference(
        "toy-pairs", dataset_fingerprint("toy-pairs"), tuple(load_samples("toy-pairs"))[:8]
    )
    # any other name goes through the shipped check (paths and unknown names are refused)
    return lambda config: ref if config == "toy-pairs" else shipped_dataset(config)


@pytest.fixture(scope="module")
def base(forgeries, toy_pairs_head, tmp_path_factory):
    """The real entry: an 8-sample toy run, submitted and verified under a throwaway key."""
    return forgeries.make_base(
        tmp_path_factory.mktemp("forgery-base"),
        limit=8,
        dataset=toy_pairs_head,
        # a cheaper real run (no reference images, which the oracle does not read); the
        # preset's own settings, since verification regenerates with them
        run_args=("--no-references", "--image-metrics", "none", "--no-report"),
    )


def test_no_forgery_is_accepted(forgeries, base, tmp_path):
    figures = forgeries.check_forgeries(tmp_path, base=base, log=lambda msg: None)
    accepted = [(r["kind"], r["said"]) for r in figures["forgery_rows"] if r["accepted"]]
    assert accepted == []
    assert figures["forgeries_accepted"] == 0 and figures["forgery_crashes"] == 0
    assert figures["forgery_setup_failures"] == 0, [
        r for r in figures["forgery_rows"] if r["said"].startswith("setup failed")
    ]
    assert figures["forgeries_tried"] >= 100
    assert figures["forgery_controls_passed"] == len(forgeries.CONTROLS) + 1  # + injected row
    assert all(figures["forgery_goals"][g] > 0 for g in forgeries.GOALS)
    assert len({r["kind"] for r in figures["forgery_rows"]}) == figures["forgeries_tried"]
    said = {r["kind"]: r["said"] for r in figures["forgery_rows"]}
    assert said["verified entry edited by one byte (a space)"].startswith(
        "unverified; the entry changed after it was verified"
    )
    assert "signed by key" in said["record of a forged entry signed by another key"]
    assert said["every degradation turned into a judge error, recomputed"].startswith(
        "the re-judge reproduced"
    )


def test_the_check_accepts_what_the_maintainers_key_signs(forgeries, base, tmp_path):
    """Sanity: the same forged record, signed with the maintainers' own key, would verify; so
    the refusals above come from the key, not from a check that refuses everything."""
    import shutil

    case = forgeries.Case("record of a forged entry signed by the maintainers' key", "verified")
    folder = tmp_path / "lb"
    shutil.copytree(base.folder, folder)
    forgeries._record_forgery(lambda b, d: forgeries.forged_record(b, d, key=b.key))(base, folder)
    accepted, said = forgeries.judge_case(case, base, folder)
    assert accepted, said
