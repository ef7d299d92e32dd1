"""Reference images shared by the ranks of a launched run: each drawn once, by its owner.

Every rank's judge needs the reference image of each entity of its samples, and SLIM's
entities recur all over the data set, so with every rank drawing what its own samples need,
most references were drawn once per rank (four times on a 4-GPU node). Instead each entity
has one owner (:func:`owned`: the run's entities, sorted, dealt to the ranks in turn). A rank
draws its share first, before its vanilla and method images, and takes the others' from their
record files (:func:`recorded`): an image counts once its file is in the run with the recorded
SHA-256, exactly as for a rank's own images.

A rank that still misses some when it is ready to judge waits for them
(:func:`wait_for`), but only while their owner is running (its rank lock is held: a rank that
died, finished or never started holds none) and at most :data:`WAIT_S`; whatever did not come
it draws itself. So a lost rank costs time, never a result, and a resume after any crash
works as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from ..records import Generation
from .layout import reference_id
from .processes import lock_held
from .writer import Records, RunDir

#: The longest a rank waits for references whose owner is running (seconds).
WAIT_S = 2 * 3600.0
#: Seconds between two looks at the other ranks' records.
POLL_S = 2.0


def owners(entities: Iterable[str], world: int) -> dict[str, int]:
    """The rank that draws each entity's reference: the run's ``entities``, sorted, dealt to
    the ``world`` ranks in turn."""
    return {e: i % world for i, e in enumerate(sorted(set(entities)))}


def owner(entity: str, entities: Iterable[str], world: int) -> int:
    """The rank that draws ``entity``'s reference among the run's ``entities``."""
    return owners(entities, world)[entity]


def owned(entities: Iterable[str], rank: int, world: int) -> list[str]:
    """The entities whose references rank ``rank`` of ``world`` draws (sorted)."""
    return [e for e, r in owners(entities, world).items() if r == rank]


def key(entity: str) -> tuple[str, str, str]:
    """An entity's reference among finished generations (``(role, sample_id, entity)``)."""
    return ("reference", reference_id(entity), entity)


def recorded(
    run: RunDir, verified: dict[tuple[str, str], bool] | None = None
) -> dict[tuple[str, str, str], Generation]:
    """The finished reference images any rank of ``run`` has recorded, keyed as finished
    generations are. ``verified`` remembers the files already hashed between calls."""
    verified = {} if verified is None else verified
    out: dict[tuple[str, str, str], Generation] = {}
    for rank in range(run.shard.world):
        for gen in Records(run.shard_dir(rank)).generations():
            if gen.role != "reference" or gen.entity is None:
                continue
            seen = (gen.path, gen.sha256)
            if seen not in verified:
                verified[seen] = run.holds(gen)
            if verified[seen]:
                out[key(gen.entity)] = gen
    return out


def share(run: RunDir, everyone: Iterable[str], done: dict) -> list[str]:
    """The references this rank owns that no rank has recorded yet (``done``, this rank's
    finished generations, takes every rank's recorded references first)."""
    done.update(recorded(run))
    mine = owned(everyone, run.shard.rank, run.shard.world)
    return [e for e in mine if key(e) not in done]


def gather(
    run: RunDir,
    needed: Iterable[str],
    everyone: Iterable[str],
    done: dict,
    note: Callable[[str], None],
) -> list[str]:
    """Wait (:func:`wait_for`) for the references of ``needed`` that ``done`` lacks; ``done``
    takes those that came; returns the ones still missing, for the caller to draw."""
    missing = sorted(e for e in set(needed) if key(e) not in done)
    if missing:
        done.update(wait_for(run, missing, everyone, note=note))
    return [e for e in missing if key(e) not in done]


def wait_for(
    run: RunDir,
    missing: Iterable[str],
    everyone: Iterable[str],
    *,
    note: Callable[[str], None],
    wait_s: float | None = None,
    poll_s: float | None = None,
) -> dict[tuple[str, str, str], Generation]:
    """The references of ``missing`` that the other ranks draw, waiting for each while its
    owner runs (at most ``wait_s``, default :data:`WAIT_S`). ``everyone``: all the run's
    entities (they decide the owners). What it returns may lack some: the caller draws them."""
    wait_s = WAIT_S if wait_s is None else wait_s
    poll_s = POLL_S if poll_s is None else poll_s
    owner_of = owners(everyone, run.shard.world)
    me = run.shard.rank
    wanted = set(missing)
    verified: dict[tuple[str, str], bool] = {}
    found: dict[tuple[str, str, str], Generation] = {}
    deadline = time.monotonic() + wait_s
    told = False
    while True:
        for k, gen in recorded(run, verified).items():
            if k[2] in wanted:
                found[k] = gen
        left = sorted(e for e in wanted if key(e) not in found)
        others = {owner_of[e] for e in left} - {me}
        running = {r for r in others if lock_held(run.rank_lock_path(r))}
        waiting = [e for e in left if owner_of[e] in running]
        if not waiting or time.monotonic() >= deadline:
            if left:
                note(
                    f"drawing {len(left)} reference image(s) here that other ranks did not "
                    f"record (ranks {', '.join(str(r) for r in sorted(others)) or 'none'})"
                )
            return found
        if not told:
            note(
                f"waiting for {len(waiting)} reference image(s) that ranks "
                f"{', '.join(str(r) for r in sorted(running))} draw"
            )
            told = True
        time.sleep(poll_s)
