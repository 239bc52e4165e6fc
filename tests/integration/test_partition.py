"""Partitioned controllers: members split the hashKey space, never overlap, and heal when one dies."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from arktos.client import Client
from arktos.controllers.partition import EMPTY, HASH_MAX, PartitionMember, intersect, split


def covers_exactly(ranges: list[tuple[int, int]]) -> bool:
    ordered = sorted(r for r in ranges if r != EMPTY)
    if not ordered or ordered[0][0] != -1 or ordered[-1][1] != HASH_MAX:
        return False
    return all(a[1] == b[0] for a, b in itertools.pairwise(ordered))


def test_split_is_even_contiguous_and_complete():
    for n in (1, 2, 3, 7):
        ranges = split([f"m{i}" for i in range(n)])
        assert covers_exactly(list(ranges.values()))
        sizes = [u - lo for lo, u in ranges.values()]
        assert max(sizes) - min(sizes) <= 2
    assert intersect((-1, 10), (10, 20)) == EMPTY and intersect((-1, 10), (5, 20)) == (5, 10)


async def until(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached in time")


@pytest.mark.timeout(90)
async def test_members_converge_never_overlap_and_take_over_from_the_dead(apiserver):
    kind = f"rs{int(time.time() * 1000) % 100000}"
    clients = [Client(apiserver.url, component=f"m{i}") for i in range(3)]
    members = [PartitionMember(c, kind, f"i{i}", lease_duration=3, period=0.3) for i, c in enumerate(clients)]
    overlaps_seen = []

    def check() -> None:
        live = [m.range for m in members if m.range != EMPTY]
        for i, a in enumerate(live):
            for b in live[i + 1:]:
                if intersect(a, b) != EMPTY:
                    overlaps_seen.append((a, b))

    for m in members:
        m.on_change.append(lambda _r: check())
    try:
        for m in members:
            await m.start()
        fair = split([m.name for m in members])
        # The first to start takes everything, then hands parts over as the others arrive.
        await until(lambda: all(m.range == fair[m.name] for m in members))
        assert covers_exactly([m.range for m in members])
        # One member dies without a word (its lease just stops); the others take its range.
        await members[1].stop(release=False)
        survivors = [members[0], members[2]]
        fair = split([m.name for m in survivors])
        await until(lambda: all(m.range == fair[m.name] for m in survivors), timeout=30)
        assert covers_exactly([m.range for m in survivors])
        assert overlaps_seen == []
    finally:
        for m in members:
            await m.stop()
        for c in clients:
            await c.close()
