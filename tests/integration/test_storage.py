"""The etcd store against a real etcd process."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from arktos.storage.etcd import Compacted, EtcdStore, KeyExists, NotFound, RevisionMismatch
from arktos.storage.keys import object_key, prefix_end, scope_prefix


@pytest.fixture
async def store(etcd):
    s = EtcdStore([etcd.url])
    await s.start()
    yield s
    await s.close()


def unique_prefix() -> str:
    return f"/registry/test-{uuid.uuid4().hex[:8]}/"


def test_key_layout():
    assert object_key("pods", "t1", "ns1", "p") == "/registry/pods/t1/ns1/p"
    assert object_key("namespaces", "t1", "", "ns1") == "/registry/namespaces/t1/ns1"
    assert object_key("nodes", "", "", "n1") == "/registry/nodes/n1"
    assert scope_prefix("pods", "t1") == "/registry/pods/t1/"
    assert scope_prefix("pods", "t1", "ns") == "/registry/pods/t1/ns/"
    assert scope_prefix("pods") == "/registry/pods/"
    # The range [prefix, end) holds t1's keys but not those of tenant "t10".
    end = prefix_end("/registry/pods/t1/")
    assert "/registry/pods/t1/ns/p" < end <= "/registry/pods/t10/ns/p"


async def test_create_get_update_delete(store: EtcdStore):
    p = unique_prefix()
    rev = await store.create(p + "a", b"one")
    with pytest.raises(KeyExists):
        await store.create(p + "a", b"again")
    kv = await store.get(p + "a")
    assert kv is not None and kv.value == b"one" and kv.mod_revision == rev
    rev2 = await store.update(p + "a", b"two", rev)
    assert rev2 > rev
    with pytest.raises(RevisionMismatch) as err:
        await store.update(p + "a", b"stale", rev)
    assert err.value.current is not None and err.value.current.value == b"two"
    with pytest.raises(NotFound):
        await store.update(p + "missing", b"x", 5)
    with pytest.raises(RevisionMismatch):
        await store.delete(p + "a", expected_revision=rev)
    drev, old = await store.delete(p + "a", expected_revision=rev2)
    assert drev > rev2 and old.value == b"two"
    assert await store.get(p + "a") is None
    with pytest.raises(NotFound):
        await store.delete(p + "a")


async def test_concurrent_conflicting_updates_exactly_one_wins(store: EtcdStore):
    p = unique_prefix()
    rev = await store.create(p + "k", b"0")
    results = await asyncio.gather(
        *(store.update(p + "k", str(i).encode(), rev) for i in range(20)), return_exceptions=True
    )
    winners = [r for r in results if isinstance(r, int)]
    losers = [r for r in results if isinstance(r, RevisionMismatch)]
    assert len(winners) == 1 and len(losers) == 19
    kv = await store.get(p + "k")
    assert kv is not None and kv.mod_revision == winners[0]


async def test_paged_list_reads_one_snapshot(store: EtcdStore):
    p = unique_prefix()
    for i in range(25):
        await store.create(f"{p}{i:03d}", str(i).encode())
    page, rev, more = await store.list(p, limit=10)
    assert [kv.value for kv in page] == [str(i).encode() for i in range(10)] and more
    # A write after the first page must not show up in later pages of the same snapshot.
    await store.create(p + "005x", b"late")
    seen = list(page)
    while more:
        page, rev2, more = await store.list(p, revision=rev, limit=10, start_key=seen[-1].key + "\0")
        assert rev2 == rev or rev2 > rev  # header revision may be the current one
        seen += page
    assert [kv.value for kv in seen] == [str(i).encode() for i in range(25)]
    assert await store.count(p) == 26


async def test_watch_from_revision_and_resume_after_etcd_restart(private_etcd):
    store = EtcdStore([private_etcd.url])
    await store.start()
    try:
        p = unique_prefix()
        start = await store.create(p + "a", b"1")
        events: list = []
        got_three = asyncio.Event()

        async def consume():
            async for batch in store.watch(p, start):
                events.extend(batch)
                if len(events) >= 3:
                    got_three.set()
                    return

        task = asyncio.create_task(consume())
        await store.update(p + "a", b"2", start)
        await asyncio.sleep(0.3)
        # Restart etcd under the live watch; it must resume where it left off.
        await asyncio.to_thread(private_etcd.restart)
        for _ in range(50):
            try:
                await store.create(p + "b", b"3")
                break
            except Exception:
                await asyncio.sleep(0.2)
        await asyncio.wait_for(got_three.wait(), 20)
        await task
        assert [(e.type, e.key[len(p):], e.value) for e in events] == [
            ("PUT", "a", b"1"),
            ("PUT", "a", b"2"),
            ("PUT", "b", b"3"),
        ]
    finally:
        await store.close()


async def test_watch_from_compacted_revision_raises(private_etcd):
    store = EtcdStore([private_etcd.url])
    await store.start()
    try:
        p = unique_prefix()
        first = await store.create(p + "a", b"1")
        last = first
        for i in range(5):
            last = await store.update(p + "a", str(i).encode(), last)
        await store.compact(last)
        with pytest.raises(Compacted) as err:
            async for _ in store.watch(p, first):
                pass
        assert err.value.compact_revision == last
        with pytest.raises(Compacted):
            await store.list(p, revision=first)
        # Watching from the compaction point on still works.
        batches = store.watch(p, last)
        batch = await asyncio.wait_for(batches.__anext__(), 5)
        assert batch[0].value == b"4"
        await batches.aclose()
    finally:
        await store.close()


async def test_ranges_larger_than_grpcs_default_message_limit(store: EtcdStore):
    p = unique_prefix()
    blob = b"x" * 100_000
    for i in range(60):  # 6 MB in one range: past gRPC's default 4 MiB receive limit
        await store.create(f"{p}{i:03d}", blob)
    kvs, _, more = await store.list(p)
    assert len(kvs) == 60 and not more
    assert len(await store.keys(p)) == 60
