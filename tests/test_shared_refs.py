"""Reference images shared by the ranks of a launched run (``rundir/shared_refs.py``)."""

from __future__ import annotations

import threading
import time

from PIL import Image

from slim_leakage.reference_images import REFERENCE_SEED, ReferenceImage, reference_prompt
from slim_leakage.rundir import RunDir, Shard
from slim_leakage.rundir import shared_refs as S

ENTITIES = ["owl", "cow", "horse", "cat", "cheetah", "eagle", "dog"]


def _draw(root, rank: int, world: int, entity: str) -> None:
    run = RunDir(root, Shard(rank=rank, world=world))
    image = Image.new("RGB", (8, 8), (len(entity) * 20, 40, 90))
    run.save_reference(ReferenceImage(entity, reference_prompt(entity), REFERENCE_SEED, image))


def test_every_entity_has_one_owner():
    for world in (1, 2, 3, 4):
        shares = [S.owned(ENTITIES + ["cow"], rank, world) for rank in range(world)]
        assert sorted(e for share in shares for e in share) == sorted(ENTITIES)
        for rank, share in enumerate(shares):
            assert all(S.owner(e, ENTITIES, world) == rank for e in share)


def test_references_recorded_by_any_rank_count_once_their_file_checks(tmp_path):
    _draw(tmp_path, 1, 2, "owl")
    _draw(tmp_path, 0, 2, "cow")
    _draw(tmp_path, 1, 2, "horse")
    (tmp_path / RunDir(tmp_path, Shard(0, 2)).records.generations()[0].path).write_bytes(b"x")
    found = S.recorded(RunDir(tmp_path, Shard(rank=0, world=2)))
    assert sorted(k[2] for k in found) == ["horse", "owl"]  # cow's file was changed


def test_a_rank_does_not_wait_for_an_owner_that_is_not_running(tmp_path):
    run = RunDir(tmp_path, Shard(rank=0, world=2))
    notes = []
    done = {}
    start = time.monotonic()
    left = S.gather(run, ["owl", "cow"], ["owl", "cow"], done, notes.append)
    assert time.monotonic() - start < 1
    assert left == ["cow", "owl"] and done == {}
    assert notes and "drawing 2 reference image(s) here" in notes[0]


def test_a_rank_waits_while_the_owner_runs_and_takes_what_it_records(tmp_path, monkeypatch):
    monkeypatch.setattr(S, "POLL_S", 0.05)
    everyone = ["cow", "owl"]
    owl_owner = S.owner("owl", everyone, 2)
    me = 1 - owl_owner
    run = RunDir(tmp_path, Shard(rank=me, world=2))
    _draw(tmp_path, me, 2, "cow")
    done = run.finished_generations()
    notes = []
    with RunDir(tmp_path, Shard(rank=owl_owner, world=2)).lock():  # the owner is running
        later = threading.Timer(0.4, _draw, (tmp_path, owl_owner, 2, "owl"))
        later.start()
        start = time.monotonic()
        left = S.gather(run, everyone, everyone, done, notes.append)
        waited = time.monotonic() - start
        later.join()
    assert left == [] and S.key("owl") in done and S.key("cow") in done
    assert 0.3 < waited < 5
    assert notes == [f"waiting for 1 reference image(s) that ranks {owl_owner} draw"]


def test_a_rank_stops_waiting_after_the_bound(tmp_path):
    run = RunDir(tmp_path, Shard(rank=0, world=2))
    with RunDir(tmp_path, Shard(rank=1, world=2)).lock():
        start = time.monotonic()
        found = S.wait_for(
            run, ["owl"], ["cow", "owl"], note=lambda m: None, wait_s=0.3, poll_s=0.05
        )
    assert found == {} and 0.25 < time.monotonic() - start < 3
