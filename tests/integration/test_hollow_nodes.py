"""`arktos hollow-nodes` as a process under a real control plane: N Ready nodes, pods Running on them.

API server, controller manager and scheduler processes, and one hollow-nodes process with 5 nodes: the
nodes register with the hollow label and keep their leases fresh, a Deployment pinned to them spreads
over all five and every pod reaches Running with an IP, a VM pod too when the nodes have the hollow VM
runtime, deleting the Deployment ends its pods, and SIGTERM stops the process promptly.
"""

from __future__ import annotations

import time
import uuid

import aiohttp
import pytest

from tests.conftest import eventually
from tests.integration.test_api_http import call
from tests.integration.test_node_agent import live_pods, ready, start, stop

LEASES = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"


@pytest.mark.timeout(120)
async def test_five_hollow_nodes_in_one_process_run_a_spread_deployment(apiserver, tmp_path):
    run = uuid.uuid4().hex[:6]
    prefix, ns = f"hollow-{run}-", f"hollow-{run}"
    names = [f"{prefix}{i}" for i in range(1, 6)]
    ours = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": names}]}]}}}
    procs = {
        "cm": start(apiserver.url, tmp_path / "cm.log", "controller-manager", "--no-leader-elect"),
        "sched": start(apiserver.url, tmp_path / "scheduler.log", "scheduler", "--no-leader-elect"),
        "hollow": start(apiserver.url, tmp_path / "hollow.log", "hollow-nodes", "--count", "5", "--name-prefix",
                        prefix, "--runtimes", "hollow,hollow-vm", "--lease-renew-interval", "1",
                        "--status-update-interval", "5", "--cpu", "2", "--memory", "4Gi"),
    }
    try:
        async with aiohttp.ClientSession(apiserver.url) as http:
            async def all_ready():
                code, body = await call(http, "GET", "/api/v1/nodes?labelSelector=arktos.io/hollow-node%3Dtrue")
                assert code == 200, body
                mine = {n["metadata"]["name"]: n for n in body["items"] if n["metadata"]["name"] in names}
                return mine if len(mine) == 5 and all(ready(n) for n in mine.values()) else None

            nodes = await eventually(all_ready, 30, "5 hollow nodes Ready")
            for name, node in nodes.items():
                labels = node["metadata"]["labels"]
                assert labels["kubernetes.io/hostname"] == name and labels["arktos.io/runtime-vm"] == "true"
                assert node["status"]["allocatable"] == {"cpu": "2", "memory": "4Gi", "pods": "110"}

            # Every node renews its own lease.
            async def leases():
                code, body = await call(http, "GET", LEASES)
                assert code == 200, body
                mine = {i["metadata"]["name"]: i["spec"]["renewTime"] for i in body["items"]
                        if i["metadata"]["name"] in names}
                return mine if set(mine) == set(names) else None

            renewed_at = await eventually(leases, 10, "a lease for every hollow node")

            async def all_renewed():
                code, after = await call(http, "GET", LEASES)
                return code == 200 and all(
                    i["spec"]["renewTime"] != renewed_at[i["metadata"]["name"]] and i["spec"]["holderIdentity"]
                    == i["metadata"]["name"] for i in after["items"] if i["metadata"]["name"] in names)

            await eventually(all_renewed, 10, "every hollow node's lease renewed")

            # A Deployment of 10 pinned to the hollow nodes spreads over all of them and runs.
            code, body = await call(http, "POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
            assert code == 201, body
            labels = {"app": "spread"}
            code, body = await call(http, "POST", f"/apis/apps/v1/namespaces/{ns}/deployments", {
                "metadata": {"name": "spread"}, "spec": {
                    "replicas": 10, "selector": {"matchLabels": labels},
                    "template": {"metadata": {"labels": labels}, "spec": {"affinity": ours, "containers": [{
                        "name": "c", "image": "busybox", "resources": {"requests": {"cpu": "100m"}}}]}}}})
            assert code == 201, body

            async def running():
                pods = await live_pods(http, ns)
                ok = len(pods) == 10 and all(p["status"].get("phase") == "Running" and p["status"].get("podIP")
                                             for p in pods)
                return pods if ok else None

            pods = await eventually(running, 30, "10 pods Running on hollow nodes")
            assert {p["spec"]["nodeName"] for p in pods} == set(names)
            assert len({p["status"]["podIP"] for p in pods}) == 10

            code, body = await call(http, "POST", f"/api/v1/namespaces/{ns}/pods", {
                "metadata": {"name": "vm"}, "spec": {"affinity": ours, "virtualMachine": {
                    "name": "vm", "image": "cirros", "keyPairName": "key",
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}}})
            assert code == 201, body

            async def vm_ready():
                code, p = await call(http, "GET", f"/api/v1/namespaces/{ns}/pods/vm")
                return code == 200 and (p["status"].get("virtualMachineStatus") or {}).get("ready")

            await eventually(vm_ready, 20, "the VM pod ready on a hollow node")

            # Deleting the Deployment ends its pods: the hollow nodes confirm each deletion.
            code, body = await call(http, "DELETE", f"/apis/apps/v1/namespaces/{ns}/deployments/spread",
                                    {"propagationPolicy": "Foreground"})
            assert code in (200, 202), body

            async def gone():
                return not [p for p in await live_pods(http, ns) if p["metadata"]["name"] != "vm"]

            await eventually(gone, 30, "the Deployment's pods gone")
            await call(http, "DELETE", f"/api/v1/namespaces/{ns}")
    finally:
        started = time.monotonic()
        stop(procs["hollow"])
        stopped_in = time.monotonic() - started
        for name in ("sched", "cm"):
            stop(procs[name])
        async with aiohttp.ClientSession(apiserver.url) as http:
            for name in names:
                await call(http, "DELETE", f"/api/v1/nodes/{name}")
    assert procs["hollow"].returncode == 0, (tmp_path / "hollow.log").read_text()[-3000:]
    assert stopped_in < 10
    assert "Traceback" not in (tmp_path / "hollow.log").read_text()
