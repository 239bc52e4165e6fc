"""Probes through the node agent, in-process with the hollow runtime (whose exec probes fail on demand):
readiness gates the container's `ready` and the pod's Ready and ContainersReady conditions; a failed
liveness probe kills the container, which restarts (restartCount 1) with kubelet's events."""

from __future__ import annotations

import uuid

import aiohttp
import pytest

from arktos.agent.agent import NodeAgent, NodeAgentOptions
from arktos.agent.runtimes.hollow import HollowRuntime
from arktos.client import ClusterConfig
from tests.conftest import eventually
from tests.integration.test_api_http import call


async def _async(value):
    return value


def conditions(p: dict) -> dict[str, str]:
    return {c["type"]: c["status"] for c in p.get("status", {}).get("conditions") or []}


@pytest.mark.timeout(60)
async def test_readiness_and_liveness_exec_probes_on_a_hollow_node(apiserver):
    run = uuid.uuid4().hex[:6]
    node, ns = f"np-{run}", f"probes-{run}"
    runtime = HollowRuntime("container", node_name=node)
    agent = NodeAgent(NodeAgentOptions(
        config=ClusterConfig.for_url(apiserver.url), node_name=node, runtimes=[runtime], cpu="2", memory="4Gi",
        lease_renew_interval=1, status_update_interval=1, sync_interval=1, relist_interval=0.2,
        backoff_initial=3, backoff_max=6))
    await agent.start()
    try:
        async with aiohttp.ClientSession(apiserver.url) as http:
            await call(http, "POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
            probe = {"periodSeconds": 1, "failureThreshold": 1}
            code, body = await call(http, "POST", f"/api/v1/namespaces/{ns}/pods", {
                "metadata": {"name": "p"}, "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0,
                                                    "containers": [
                    {"name": "c", "image": "x", "readinessProbe": {"exec": {"command": ["ready"]}, **probe},
                     "livenessProbe": {"exec": {"command": ["alive"]}, **probe}},
                    {"name": "plain", "image": "x"}]}})
            assert code == 201, body
            uid = body["metadata"]["uid"]
            worker = await eventually(lambda: _async(agent.workers.get(uid)), 5, "the pod's worker")
            assert worker.prober is not None

            async def pod(check):
                _, p = await call(http, "GET", f"/api/v1/namespaces/{ns}/pods/p")
                return p if check(p) else None

            def ready(p: dict, want: str = "True", restarts: tuple[int, ...] = (0,)) -> bool:
                cs = {c["name"]: c for c in p["status"].get("containerStatuses") or []}
                return (conditions(p).get("Ready") == want and conditions(p).get("ContainersReady") == want
                        and cs["c"]["ready"] == (want == "True") and cs["c"]["restartCount"] in restarts
                        and "running" in cs["c"]["state"])

            await eventually(lambda: pod(ready), 10, "the pod Ready after its first readiness probe")
            # Readiness fails: not ready, still running, never restarted; a plain container stays ready.
            runtime.set_exec_result(uid, "c", 1, "not ready\n", command=["ready"])
            p = await eventually(lambda: pod(lambda p: ready(p, "False")), 10, "the pod not Ready")
            assert {c["name"]: c["ready"] for c in p["status"]["containerStatuses"]} == {"c": False, "plain": True}
            assert next(c for c in p["status"]["conditions"] if c["type"] == "Ready")["reason"] == "ContainersNotReady"
            runtime.set_exec_result(uid, "c", 0, command=["ready"])
            await eventually(lambda: pod(ready), 10, "Ready again")

            # Liveness fails: the container is killed and restarted; the new instance probes afresh.
            runtime.set_exec_result(uid, "c", 1, "dead", command=["alive"])
            await eventually(lambda: pod(lambda p: p["status"]["containerStatuses"][0]["restartCount"] == 1), 10,
                             "the container restarted")
            runtime.set_exec_result(uid, "c", 0, command=["alive"])
            # The new instance may have been probed (and killed) once more before the probe was made to pass
            # again: one or two restarts, then Ready, and no more after that.
            p = await eventually(lambda: pod(lambda p: ready(p, restarts=(1, 2))), 15, "Ready after the restart")
            last = p["status"]["containerStatuses"][0]["lastState"]["terminated"]
            assert (last["exitCode"], last["reason"]) == (137, "Error")

            async def events():
                _, evs = await call(http, "GET", f"/api/v1/namespaces/{ns}/events")
                got = {(e["type"], e["reason"], e["message"]) for e in evs["items"]
                       if e["involvedObject"].get("uid") == uid and e["involvedObject"].get("fieldPath")
                       == "spec.containers{c}"}
                want = {("Warning", "Unhealthy", "Readiness probe failed: not ready\n"),
                        ("Warning", "Unhealthy", "Liveness probe failed: dead"),
                        ("Normal", "Killing", "Container c failed liveness probe, will be restarted")}
                return got if want <= got else None

            await eventually(events, 10, "Unhealthy and Killing events")
            await call(http, "DELETE", f"/api/v1/namespaces/{ns}/pods/p")
            await eventually(lambda: _async(uid not in agent.workers), 10, "the pod's worker gone")
            await call(http, "DELETE", f"/api/v1/namespaces/{ns}")
    finally:
        await agent.stop()
        async with aiohttp.ClientSession(apiserver.url) as http:
            await call(http, "DELETE", f"/api/v1/nodes/{node}")
