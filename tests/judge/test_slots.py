"""Request slots go to the earliest item waiting, so items under way finish first."""

from __future__ import annotations

import asyncio

from slim_leakage.judge import Judge
from slim_leakage.judge.limits import PrioritySlots

from .conftest import FakeBackend, build_items


def test_a_freed_slot_goes_to_the_lowest_priority_then_the_first_come():
    async def go():
        slots = PrioritySlots(1)
        await slots.acquire(0)
        granted = []

        async def wait(tag, priority):
            await slots.acquire(priority)
            granted.append(tag)
            slots.release()

        tasks = []
        for tag, priority in (("late item", 5), ("first", 1), ("middle", 3), ("second", 1)):
            tasks.append(asyncio.ensure_future(wait(tag, priority)))
            await asyncio.sleep(0)
        slots.release()
        await asyncio.gather(*tasks)
        return granted, slots._free

    granted, free = asyncio.run(go())
    assert granted == ["first", "second", "middle", "late item"]
    assert free == 1


def test_a_cancelled_waiter_takes_no_slot():
    async def go():
        slots = PrioritySlots(1)
        await slots.acquire(0)
        gone = asyncio.ensure_future(slots.acquire(1))
        kept = asyncio.ensure_future(slots.acquire(2))
        await asyncio.sleep(0)
        gone.cancel()
        await asyncio.sleep(0)
        slots.release()
        await asyncio.wait_for(kept, 1)
        slots.release()
        return slots._free

    assert asyncio.run(go()) == 1


def test_a_slot_handed_to_a_waiter_cancelled_at_that_moment_is_passed_on():
    async def go():
        slots = PrioritySlots(1)
        await slots.acquire(0)
        first = asyncio.ensure_future(slots.acquire(1))
        second = asyncio.ensure_future(slots.acquire(2))
        await asyncio.sleep(0)
        slots.release()  # handed to ``first`` ...
        first.cancel()  # ... which is cancelled before it runs
        await asyncio.wait_for(second, 1)
        slots.release()
        return first.cancelled(), slots._free

    assert asyncio.run(go()) == (True, 1)


def test_items_under_way_are_asked_before_new_ones_start(tmp_path):
    backend = FakeBackend()
    backend.delay = 0.01
    judge = Judge(backend, cache=False, concurrency=2)
    n = 8
    verdicts = judge.judge(build_items(tmp_path / "img", n), progress=False)
    assert all(v.label is not None for v in verdicts)
    order = [int(r.context["sample_id"].lstrip("s")) for r in backend.requests]
    first = {i: order.index(i) for i in range(n)}
    last = {i: len(order) - 1 - order[::-1].index(i) for i in range(n)}
    # Two slots serve two items at a time, to the end; with first-come slots all four items
    # of the window would ask their first stage before any asked its second:
    # 0 0 1 1 2 2 3 3 0 0 1 1 ...
    assert all(last[i] < first[i + 2] for i in range(n - 2)), order
