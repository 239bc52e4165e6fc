"""The pod garbage collector against a real API server of its own (its finished-pod limit is cluster-wide)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from arktos.api.errors import APIError
from arktos.client import Client
from arktos.controllers.base import ControllerContext, ControllerOptions, InformerFactory, builtin
from arktos.controllers.discovery import Discovery
from arktos.controllers.podgc import PodGCController
from tests.conftest import eventually, start_apiserver

PODS, NODES = builtin("", "pods"), builtin("", "nodes")


@pytest.fixture
async def client(private_etcd, tmp_path):
    server = start_apiserver(private_etcd.url, tmp_path / "apiserver.log")
    async with Client(server.url, qps=500, burst=500) as c:
        yield c
    server.stop()


def pod(name: str, node: str | None = None) -> dict:
    spec: dict = {"containers": [{"name": "c", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    return {"metadata": {"name": name}, "spec": spec}


async def names(client: Client) -> set[str]:
    return {p["metadata"]["name"] for p in (await client.list(PODS, namespace="default"))["items"]}


async def test_orphans_of_deleted_nodes_and_finished_pods_beyond_the_limit_are_collected(client):
    for node in ("kept", "doomed"):
        await client.create(NODES, {"metadata": {"name": node}})
    for p in (pod("on-kept", "kept"), pod("on-doomed-1", "doomed"), pod("on-doomed-2", "doomed"),
              pod("on-elsewhere", "a-node-of-another-partition"), pod("pending")):
        await client.create(PODS, p, namespace="default")
    for i in range(4):
        await client.create(PODS, pod(f"done-{i}", "kept"), namespace="default")
        await client.patch(PODS, f"done-{i}", {"status": {"phase": "Succeeded"}}, subresource="status",
                           namespace="default")

    informers = InformerFactory(client)
    # Three finished pods may stay here: the oldest of the four goes.
    ctx = ControllerContext(client, informers, ControllerOptions(extra={
        "pod_gc_interval": 0.2, "pod_gc_orphan_quarantine": 1.0, "terminated_pod_gc_threshold": 3}),
        Discovery(client))
    gc = PodGCController(ctx)
    gc.setup()
    await informers.start()
    await informers.wait_synced(logging.getLogger("test"))
    task = asyncio.create_task(gc.run())
    try:
        async def limited():
            have = await names(client)
            return {n for n in have if n.startswith("done-")} == {"done-1", "done-2", "done-3"} and have
        await eventually(limited, 10, "the oldest finished pod collected")
        await client.delete(NODES, "doomed")

        async def orphans_gone():
            return not {"on-doomed-1", "on-doomed-2"} & await names(client)
        await asyncio.sleep(0.6)
        assert {"on-doomed-1", "on-doomed-2"} <= await names(client)  # still quarantined
        await eventually(orphans_gone, 10, "the deleted node's pods collected")
        # Nothing else: the kept node's pod, a pod of a node this manager never saw, a pending pod.
        assert {"on-kept", "on-elsewhere", "pending", "done-1", "done-2", "done-3"} <= await names(client)
        assert gc.deleted == 3
        with pytest.raises(APIError):
            await client.get(PODS, "on-doomed-1", namespace="default")
    finally:
        await gc.shut_down(1.0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await informers.stop()
        await ctx.close()
