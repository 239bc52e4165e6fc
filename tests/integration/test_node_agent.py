"""The node agent as a process, with the hollow runtimes, under a real control plane.

API server, controller manager, scheduler and two `arktos node-agent` processes: the nodes register and
heartbeat, a Deployment runs, a VM pod runs and takes a reboot action, a deleted pod goes, a restarted
agent adopts its pods, and a killed agent's pods move to the other node.  The restart back-off is shown
in-process, where a test can make a hollow container exit.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid

import aiohttp
import pytest

from arktos.agent.agent import NodeAgent, NodeAgentOptions
from arktos.agent.runtimes.hollow import HollowRuntime
from arktos.client import ClusterConfig
from tests.conftest import eventually
from tests.integration.test_api_http import call

AGENT_FLAGS = ("--lease-renew-interval", "1", "--status-update-interval", "1", "--sync-frequency", "2",
               "--lease-duration", "3", "--cpu", "4", "--memory", "8Gi")


def start(server: str, log_path, *command: str) -> subprocess.Popen:
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "arktos", *command, "--master", server],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def agent(server: str, tmp_path, node: str, runtimes: str) -> subprocess.Popen:
    return start(server, tmp_path / f"{node}.log", "node-agent", "--node-name", node, "--runtimes", runtimes,
                 "--root-dir", str(tmp_path / node), *AGENT_FLAGS)


def stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(5)


def ready(obj: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in obj.get("status", {}).get("conditions") or [])


async def live_pods(http, ns: str) -> list[dict]:
    code, body = await call(http, "GET", f"/api/v1/namespaces/{ns}/pods")
    assert code == 200, body
    return [p for p in body["items"] if not p["metadata"].get("deletionTimestamp")]


@pytest.mark.timeout(150)
async def test_two_hollow_agents_run_pods_vms_and_actions_and_survive_restarts_and_death(apiserver, tmp_path):
    run = uuid.uuid4().hex[:6]
    na, nb, ns = f"na-{run}", f"nb-{run}", f"agent-{run}"
    # Other tests' nodes share this API server: this test's pods go to its own two nodes only.
    ours = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": [na, nb]}]}]}}}
    procs = {
        "cm": start(apiserver.url, tmp_path / "cm.log", "controller-manager", "--no-leader-elect",
                    "--node-monitor-grace-period", "4", "--pod-eviction-timeout", "1"),
        "sched": start(apiserver.url, tmp_path / "scheduler.log", "scheduler", "--no-leader-elect"),
        na: agent(apiserver.url, tmp_path, na, "hollow,hollow-vm"),
        nb: agent(apiserver.url, tmp_path, nb, "hollow"),
    }
    try:
        async with aiohttp.ClientSession(apiserver.url) as http:
            # Registration: Ready nodes with runtime labels, and leases that keep being renewed.
            async def registered():
                nodes = {}
                for n in (na, nb):
                    code, node = await call(http, "GET", f"/api/v1/nodes/{n}")
                    if code != 200 or not ready(node):
                        return None
                    nodes[n] = node
                return nodes

            nodes = await eventually(registered, 20, "both nodes registered and Ready")
            assert nodes[na]["metadata"]["labels"]["arktos.io/runtime-vm"] == "true"
            assert nodes[na]["metadata"]["labels"]["arktos.io/runtime-container"] == "true"
            assert "arktos.io/runtime-vm" not in nodes[nb]["metadata"]["labels"]
            assert nodes[nb]["metadata"]["labels"]["kubernetes.io/hostname"] == nb
            assert nodes[nb]["status"]["allocatable"] == {"cpu": "4", "memory": "8Gi", "pods": "110"}
            assert {a["type"] for a in nodes[nb]["status"]["addresses"]} == {"InternalIP", "Hostname"}
            ready_cond = next(c for c in nodes[na]["status"]["conditions"] if c["type"] == "Ready")
            assert ready_cond["reason"] == "KubeletReady"
            lease_path = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"

            async def leased():
                # The lease lives in kube-node-lease, which the controller manager may still be making.
                code, lease = await call(http, "GET", f"{lease_path}/{na}")
                return lease if code == 200 else None
            lease = await eventually(leased, 10, "the node's lease")

            async def renewed():
                code, again = await call(http, "GET", f"{lease_path}/{na}")
                return code == 200 and again["spec"]["renewTime"] != lease["spec"]["renewTime"]

            await eventually(renewed, 5, "the lease renewed")

            # A Deployment of 3 becomes 3/3 Ready.
            await call(http, "POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
            labels = {"app": "web"}
            code, body = await call(http, "POST", f"/apis/apps/v1/namespaces/{ns}/deployments", {
                "metadata": {"name": "web"}, "spec": {
                    "replicas": 3, "selector": {"matchLabels": labels},
                    "template": {"metadata": {"labels": labels}, "spec": {"affinity": ours, "containers": [{
                        "name": "c", "image": "busybox", "resources": {"requests": {"cpu": "100m"}}}]}}}})
            assert code == 201, body

            async def deployment_ready():
                code, d = await call(http, "GET", f"/apis/apps/v1/namespaces/{ns}/deployments/web")
                pods = [p for p in await live_pods(http, ns) if p["metadata"].get("labels", {}).get("app") == "web"]
                ok = (code == 200 and d.get("status", {}).get("readyReplicas") == 3 and len(pods) == 3
                      and all(p["status"].get("phase") == "Running" and p["status"].get("podIP") for p in pods))
                return pods if ok else None

            pods = await eventually(deployment_ready, 30, "the Deployment 3/3 Ready")
            for p in pods:
                assert p["spec"]["nodeName"] in (na, nb)
                assert {c["type"] for c in p["status"]["conditions"]} >= {
                    "PodScheduled", "Initialized", "ContainersReady", "Ready"}
                (cs,) = p["status"]["containerStatuses"]
                assert cs["ready"] and cs["state"]["running"]["startedAt"] and cs["restartCount"] == 0
                assert p["status"]["podIP"].startswith("10.244.") and p["status"]["hostIP"]
            assert len({p["status"]["podIP"] for p in pods}) == 3

            # A VM pod runs on the node with the VM runtime, and a reboot action completes.
            code, body = await call(http, "POST", f"/api/v1/namespaces/{ns}/pods", {
                "metadata": {"name": "vm"}, "spec": {"affinity": ours, "virtualMachine": {
                    "name": "vm", "image": "cirros", "keyPairName": "key",
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}}})
            assert code == 201, body

            async def vm_running():
                code, p = await call(http, "GET", f"/api/v1/namespaces/{ns}/pods/vm")
                conds = {c["type"]: c["status"] for c in p.get("status", {}).get("conditions") or []}
                ok = (code == 200 and p["status"].get("phase") == "Running"
                      and conds.get("VirtualMachineReady") == "True")
                return p if ok else None

            vm = await eventually(vm_running, 20, "the VM pod Running and VirtualMachineReady")
            assert vm["spec"]["nodeName"] == na
            assert vm["status"]["virtualMachineStatus"]["powerState"] == "running"
            code, body = await call(http, "POST", f"/api/v1/namespaces/{ns}/pods/vm/action", {
                "kind": "CustomAction", "operation": "reboot", "rebootParams": {"delayInSeconds": 0}})
            assert code == 201, body
            action_name = body["details"]["name"]

            async def rebooted():
                code, a = await call(http, "GET", f"/api/v1/namespaces/{ns}/actions/{action_name}")
                return a if code == 200 and (a.get("status") or {}).get("complete") else None

            action = await eventually(rebooted, 15, "the reboot action complete")
            assert action["status"]["rebootStatus"] == {"rebootSuccessful": True}, action
            assert not action["status"].get("error")

            # Deleting a pod: the agent stops it and confirms, and the pod is gone.
            victim_pod = pods[0]["metadata"]["name"]
            code, body = await call(http, "DELETE", f"/api/v1/namespaces/{ns}/pods/{victim_pod}")
            assert code == 202 and body["metadata"]["deletionTimestamp"], body  # held for the agent

            async def deleted():
                code, _ = await call(http, "GET", f"/api/v1/namespaces/{ns}/pods/{victim_pod}")
                return code == 404

            await eventually(deleted, 15, "the deleted pod gone")
            pods = await eventually(deployment_ready, 30, "the Deployment 3/3 Ready again")

            # An agent restart adopts its pods: nothing restarts.
            def started(ps):
                return {p["metadata"]["name"]: p["status"]["containerStatuses"][0]["state"]["running"]["startedAt"]
                        for p in ps if p["spec"]["nodeName"] == na and p["metadata"]["name"] != "vm"}

            code, vm = await call(http, "GET", f"/api/v1/namespaces/{ns}/pods/vm")
            vm_id = vm["status"]["virtualMachineStatus"]["virtualMachineId"]
            before = started(pods)
            stop(procs[na])
            await asyncio.sleep(1)
            procs[na] = agent(apiserver.url, tmp_path, na, "hollow,hollow-vm")
            await asyncio.sleep(4)
            pods = await eventually(deployment_ready, 20, "the Deployment Ready after the agent restart")
            assert started(pods) == before
            code, vm = await call(http, "GET", f"/api/v1/namespaces/{ns}/pods/vm")
            assert vm["status"]["virtualMachineStatus"]["virtualMachineId"] == vm_id

            # SIGKILL one agent: its node goes NotReady and its pods move to the other node.
            counts = {n: sum(p["spec"]["nodeName"] == n for p in pods) for n in (na, nb)}
            dead = nb if counts[nb] else na
            alive = na if dead == nb else nb
            on_dead = {p["metadata"]["name"] for p in pods if p["spec"]["nodeName"] == dead}
            os.killpg(procs[dead].pid, signal.SIGKILL)
            procs[dead].wait(5)

            async def not_ready():
                code, node = await call(http, "GET", f"/api/v1/nodes/{dead}")
                return code == 200 and not ready(node)

            await eventually(not_ready, 20, f"node {dead} NotReady")

            async def moved():
                got = await deployment_ready()
                if not got:
                    return None
                ok = all(p["spec"]["nodeName"] == alive for p in got) and not {
                    p["metadata"]["name"] for p in got} & on_dead
                return got if ok else None

            await eventually(moved, 40, f"the pods of {dead} Running on {alive}")
            await call(http, "DELETE", f"/api/v1/namespaces/{ns}")
    finally:
        for p in procs.values():
            stop(p)
        # Other tests share this API server: leave no Ready-looking node behind for their schedulers.
        async with aiohttp.ClientSession(apiserver.url) as http:
            for node in (na, nb):
                await call(http, "DELETE", f"/api/v1/nodes/{node}")


@pytest.mark.timeout(60)
async def test_an_exited_container_is_restarted_with_backoff(apiserver, tmp_path):
    """In-process, so the test can make a hollow container exit; the agent restarts it, then backs off."""
    run = uuid.uuid4().hex[:6]
    node, ns = f"nr-{run}", f"restart-{run}"
    runtime = HollowRuntime("container", node_name=node)
    agent_ = NodeAgent(NodeAgentOptions(
        config=ClusterConfig.for_url(apiserver.url), node_name=node, runtimes=[runtime], cpu="2", memory="4Gi",
        lease_renew_interval=1, status_update_interval=1, sync_interval=1, relist_interval=0.2,
        backoff_initial=3, backoff_max=6))
    await agent_.start()
    try:
        async with aiohttp.ClientSession(apiserver.url) as http:
            await call(http, "POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
            code, body = await call(http, "POST", f"/api/v1/namespaces/{ns}/pods", {
                "metadata": {"name": "p"}, "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]}})
            assert code == 201, body
            uid = body["metadata"]["uid"]

            async def status(restarts: int, state: str = "running"):
                _, p = await call(http, "GET", f"/api/v1/namespaces/{ns}/pods/p")
                cs = (p.get("status", {}).get("containerStatuses") or [{}])[0]
                return p if cs.get("restartCount") == restarts and state in cs.get("state", {}) else None

            await eventually(lambda: status(0), 10, "the pod running")
            assert runtime.exit_container(uid)
            p = await eventually(lambda: status(1), 10, "the first restart, at once")
            assert p["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"] == 1
            assert runtime.exit_container(uid)
            crashed = time.monotonic()
            p = await eventually(lambda: status(1, "waiting"), 5, "CrashLoopBackOff")
            assert p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CrashLoopBackOff"
            await eventually(lambda: status(2), 10, "the second restart, after the back-off")
            assert time.monotonic() - crashed >= 1.5
            assert runtime.restarts == 2

            # The story as events on the pod, from "kubelet" on this node: every start of the container
            # is one Created and one Started Event whose count grows, not a new object each time.
            async def story():
                _, evs = await call(http, "GET", f"/api/v1/namespaces/{ns}/events")
                by_reason = {e["reason"]: e for e in evs["items"] if e["involvedObject"].get("uid") == uid}
                ok = by_reason.get("Started", {}).get("count") == 3 and "BackOff" in by_reason
                return (by_reason, evs["items"]) if ok else None

            by_reason, items = await eventually(story, 10, "Created, Started x3 and BackOff events")
            assert len([e for e in items if e["reason"] == "Started"]) == 1
            assert by_reason["Created"]["count"] == 3 and by_reason["Created"]["message"] == "Created container c"
            assert by_reason["Pulled"]["message"] == 'Container image "x" already present on machine'  # the runtime's
            backoff = by_reason["BackOff"]
            assert backoff["type"] == "Warning" and backoff["involvedObject"]["fieldPath"] == "spec.containers{c}"
            assert backoff["message"] == f"Back-off restarting failed container c in pod p_{ns}({uid})"
            for e in by_reason.values():
                assert e["source"] == {"component": "kubelet", "host": node}
                assert e["involvedObject"]["kind"] == "Pod" and e["involvedObject"]["name"] == "p"
            # Deleting the pod gracefully: Killing.
            await call(http, "DELETE", f"/api/v1/namespaces/{ns}/pods/p")

            async def killing():
                _, evs = await call(http, "GET", f"/api/v1/namespaces/{ns}/events?fieldSelector=reason%3DKilling")
                return evs["items"]

            (kill,) = await eventually(killing, 10, "a Killing event")
            assert kill["message"] == "Stopping container c" and kill["involvedObject"]["uid"] == uid
            # The node's own events, on the node's server: Starting and the conditions it reports.
            _, evs = await call(http, "GET", f"/api/v1/namespaces/default/events?fieldSelector="
                                             f"involvedObject.kind%3DNode,involvedObject.name%3D{node}")
            assert {"Starting", "NodeReady", "NodeHasSufficientMemory"} <= {e["reason"] for e in evs["items"]}
            assert all(e["involvedObject"]["uid"] == node for e in evs["items"])  # what kubectl describe node asks
            await call(http, "DELETE", f"/api/v1/namespaces/{ns}")
    finally:
        await agent_.stop()
        async with aiohttp.ClientSession(apiserver.url) as http:
            await call(http, "DELETE", f"/api/v1/nodes/{node}")
