"""The control plane together: API server, controller manager and scheduler as processes.

Nodes are plain Node objects whose Leases the test renews, as a node agent would.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime

import aiohttp
import pytest

from tests.conftest import ComponentProc, eventually
from tests.integration.test_api_http import call

NODES = ("cp-n1", "cp-n2", "cp-n3")


def start(server: str, log_path, component: str, *args: str) -> ComponentProc:
    return ComponentProc(component, log_path, [*args, "--master", server])


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def renew(http, node: str) -> None:
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": node},
             "spec": {"holderIdentity": node, "leaseDurationSeconds": 3, "renewTime": now()}}
    path = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
    code, _ = await call(http, "PATCH", f"{path}/{node}", {"spec": lease["spec"]},
                         ctype="application/merge-patch+json")
    if code == 404:
        await call(http, "POST", path, lease)


async def pods_of(http, ns: str) -> list[dict]:
    code, body = await call(http, "GET", f"/api/v1/namespaces/{ns}/pods")
    assert code == 200
    return [p for p in body["items"] if not p["metadata"].get("deletionTimestamp")]


@pytest.mark.timeout(180)
async def test_a_dead_nodes_pods_are_evicted_and_rescheduled_elsewhere(apiserver, tmp_path):
    ns = f"cp-{uuid.uuid4().hex[:6]}"
    run = {"arktos.io/test-run": ns}  # other tests' nodes share this etcd: pods go to this run's nodes only
    procs = [
        start(apiserver.url, tmp_path / "cm.log", "controller-manager", "--no-leader-elect",
              "--node-monitor-grace-period", "3", "--pod-eviction-timeout", "1"),
        start(apiserver.url, tmp_path / "scheduler.log", "scheduler", "--no-leader-elect"),
    ]
    alive = set(NODES)
    try:
        async with aiohttp.ClientSession(apiserver.url) as http:
            await call(http, "POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
            for node in NODES:
                code, body = await call(http, "POST", "/api/v1/nodes", {
                    "metadata": {"name": node, "labels": {"kubernetes.io/hostname": node, **run}},
                    "status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                               "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                               "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                               "lastHeartbeatTime": now(), "lastTransitionTime": now()}]}})
                assert code in (201, 409), body
                if code == 409:  # left from an earlier run of this test: make it healthy and ours again
                    await call(http, "PATCH", f"/api/v1/nodes/{node}", {"spec": {"taints": None},
                                                                        "metadata": {"labels": run}},
                               ctype="application/merge-patch+json")

            async def heartbeat() -> None:
                while True:
                    for node in list(alive):
                        await renew(http, node)
                    await asyncio.sleep(1)

            beats = asyncio.create_task(heartbeat())
            try:
                labels = {"app": "web"}
                code, body = await call(http, "POST", f"/apis/apps/v1/namespaces/{ns}/deployments", {
                    "metadata": {"name": "web"}, "spec": {
                        "replicas": 10, "selector": {"matchLabels": labels},
                        "template": {"metadata": {"labels": labels}, "spec": {"nodeSelector": run, "containers": [{
                            "name": "c", "image": "busybox", "resources": {"requests": {"cpu": "100m"}}}]}}}})
                assert code == 201, body

                async def all_bound():
                    pods = await pods_of(http, ns)
                    bound = [p for p in pods if p["spec"].get("nodeName")]
                    return bound if len(pods) == 10 and len(bound) == 10 else None

                bound = await eventually(all_bound, 60, "10 pods bound by the scheduler")
                assert {p["spec"]["nodeName"] for p in bound} <= set(NODES)
                victim = max(NODES, key=lambda n: sum(p["spec"]["nodeName"] == n for p in bound))
                on_victim = {p["metadata"]["name"] for p in bound if p["spec"]["nodeName"] == victim}
                assert on_victim

                alive.discard(victim)  # its lease stops

                async def moved():
                    pods = await pods_of(http, ns)
                    placed = [p for p in pods if p["spec"].get("nodeName")]
                    ok = (len(placed) == 10 and not {p["metadata"]["name"] for p in placed} & on_victim
                          and all(p["spec"]["nodeName"] != victim for p in placed))
                    return placed if ok else None

                placed = await eventually(moved, 90, "the dead node's pods replaced on the other nodes")
                assert {p["spec"]["nodeName"] for p in placed} <= alive
                code, node = await call(http, "GET", f"/api/v1/nodes/{victim}")
                taints = {t["key"] for t in node["spec"].get("taints") or []}
                assert "node.kubernetes.io/unreachable" in taints

                # Deleting the Deployment takes its ReplicaSets and pods with it.
                await call(http, "DELETE", f"/apis/apps/v1/namespaces/{ns}/deployments/web")

                async def collected():
                    code, rss = await call(http, "GET", f"/apis/apps/v1/namespaces/{ns}/replicasets")
                    return code == 200 and not rss["items"] and not await pods_of(http, ns)

                await eventually(collected, 60, "garbage collection of the ReplicaSets and pods")
            finally:
                beats.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beats
    finally:
        for p in procs:
            p.stop()
        async with aiohttp.ClientSession(apiserver.url) as http:  # other tests share this API server
            for node in NODES:
                await call(http, "DELETE", f"/api/v1/nodes/{node}")
