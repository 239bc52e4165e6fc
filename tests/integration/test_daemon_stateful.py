"""DaemonSets and StatefulSets against a real API server: controllers in-process, a scheduler process,
hollow node agents in-process, and kubectl 1.32 for `rollout status` and `scale`.

Daemon pods only reach nodes through the scheduler (a required affinity on metadata.name), so this
also checks that the scheduler binds them where the controller said.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from arktos.agent.agent import NodeAgent, NodeAgentOptions
from arktos.agent.runtimes.hollow import HollowRuntime
from arktos.api.resources import builtin_registry
from arktos.client import Client, ClusterConfig
from arktos.controllers.daemonset import DaemonSetController
from arktos.controllers.garbagecollector import GarbageCollector
from arktos.controllers.statefulset import StatefulSetController
from tests.conftest import eventually
from tests.e2e.conftest import kubectl_binary
from tests.integration.test_jobs import run_controllers
from tests.integration.test_node_agent import start, stop

pytestmark = pytest.mark.timeout(120)

REG = builtin_registry()
NAMESPACES = REG.get("", "v1", "namespaces")
TENANTS = REG.get("", "v1", "tenants")
NODES = REG.get("", "v1", "nodes")
PODS = REG.get("", "v1", "pods")
PVCS = REG.get("", "v1", "persistentvolumeclaims")
DAEMONSETS = REG.get("apps", "v1", "daemonsets")
STATEFULSETS = REG.get("apps", "v1", "statefulsets")
Obj = dict[str, Any]

WEB_MANIFEST = """
apiVersion: v1
kind: Service
metadata:
  name: nginx
  labels:
    app: nginx
spec:
  ports:
  - port: 80
    name: web
  clusterIP: None
  selector:
    app: nginx
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  selector:
    matchLabels:
      app: nginx
  serviceName: "nginx"
  replicas: 3
  minReadySeconds: 0
  template:
    metadata:
      labels:
        app: nginx
    spec:
      affinity: AFFINITY
      terminationGracePeriodSeconds: 10
      containers:
      - name: nginx
        image: registry.k8s.io/nginx-slim:0.24
        ports:
        - containerPort: 80
          name: web
        volumeMounts:
        - name: www
          mountPath: /usr/share/nginx/html
  volumeClaimTemplates:
  - metadata:
      name: www
    spec:
      accessModes: [ "ReadWriteOnce" ]
      storageClassName: "my-storage-class"
      resources:
        requests:
          storage: 1Gi
"""


def kubectl(server: str, cache: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [kubectl_binary(32), "--server", server, "--cache-dir", str(cache), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}\n{proc.stdout}")
    return proc


def running_ready(p: Obj) -> bool:
    return (p.get("status") or {}).get("phase") == "Running" and any(
        c["type"] == "Ready" and c["status"] == "True" for c in (p.get("status") or {}).get("conditions") or [])


async def test_daemonset_and_statefulset_with_scheduler_and_hollow_nodes(apiserver, tmp_path):
    run = uuid.uuid4().hex[:6]
    ns = f"dss-{run}"
    names = [f"dss-{run}-{i}" for i in range(1, 5)]
    pin = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": names}]}]}}}

    def agent(name: str) -> NodeAgent:
        return NodeAgent(NodeAgentOptions(
            config=ClusterConfig.for_url(apiserver.url), node_name=name,
            runtimes=[HollowRuntime("container", node_name=name)], cpu="4", memory="8Gi",
            lease_renew_interval=1, status_update_interval=1, sync_interval=1, relist_interval=0.1))

    agents = {n: agent(n) for n in names[:3]}
    for a in agents.values():
        await a.start()
    sched = start(apiserver.url, tmp_path / "scheduler.log", "scheduler", "--no-leader-elect")
    ktl = lambda *a: asyncio.to_thread(kubectl, apiserver.url, tmp_path / "kcache", "-n", ns, *a)  # noqa: E731
    async with Client(apiserver.url, qps=1000, burst=1000) as client:
        _, stop_controllers = await run_controllers(client, DaemonSetController, StatefulSetController,
                                                    GarbageCollector)
        try:
            await client.create(NAMESPACES, {"metadata": {"name": ns}})
            # The third node is tainted: no daemon pod there unless tolerated.
            await client.patch(NODES, names[2], {"spec": {"taints": [
                {"key": "dedicated", "value": "db", "effect": "NoSchedule"}]}})

            async def pods(prefix: str = "") -> list[Obj]:
                items = (await client.list(PODS, namespace=ns))["items"]
                return [p for p in items if not p["metadata"].get("deletionTimestamp")
                        and p["metadata"]["name"].startswith(prefix)]

            # ---------------------------------------------------------------- DaemonSet
            labels = {"app": "daemon"}
            await client.create(DAEMONSETS, {"metadata": {"name": "daemon"}, "spec": {
                "selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {
                    "affinity": pin, "containers": [{"name": "c", "image": "busybox:1"}]}}}}, namespace=ns)

            async def daemon_on(want: set[str], image: str) -> list[Obj] | None:
                ps = await pods("daemon-")
                ds = await client.get(DAEMONSETS, "daemon", namespace=ns)
                st = ds.get("status") or {}
                ok = (sorted(p["spec"].get("nodeName") or "" for p in ps) == sorted(want)
                      and all(running_ready(p) and p["spec"]["containers"][0]["image"] == image for p in ps)
                      and st.get("desiredNumberScheduled") == len(want) == st.get("numberAvailable")
                      == st.get("updatedNumberScheduled") == st.get("numberReady")
                      and st.get("observedGeneration") == ds["metadata"]["generation"])
                return ps if ok else None

            ps = await eventually(lambda: daemon_on(set(names[:2]), "busybox:1"), 15, "daemon pods on 2 nodes")
            aff = ps[0]["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            assert aff["nodeSelectorTerms"][0]["matchFields"][0]["key"] == "metadata.name"
            out = (await ktl("rollout", "status", "ds/daemon", "--timeout=30s")).stdout
            assert 'daemon set "daemon" successfully rolled out' in out, out
            table = (await ktl("get", "ds")).stdout
            assert table.split("\n")[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE",
                                                    "AVAILABLE", "NODE", "SELECTOR", "AGE"], table

            # Tolerate the taint and change the image: a rolling update onto all three nodes.
            ds = await client.get(DAEMONSETS, "daemon", namespace=ns)
            tmpl = ds["spec"]["template"]["spec"]
            tmpl["tolerations"] = [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]
            tmpl["containers"][0]["image"] = "busybox:2"
            await client.update(DAEMONSETS, ds, namespace=ns)
            out = (await ktl("rollout", "status", "ds/daemon", "--timeout=30s")).stdout
            assert "successfully rolled out" in out, out
            await eventually(lambda: daemon_on(set(names[:3]), "busybox:2"), 15, "rolled onto 3 nodes")

            history = (await ktl("rollout", "history", "ds/daemon")).stdout
            assert [line.split()[0] for line in history.strip().split("\n")[2:]] == ["1", "2"], history

            # A new node gets a pod; a removed node loses it.
            agents[names[3]] = agent(names[3])
            await agents[names[3]].start()
            await eventually(lambda: daemon_on(set(names), "busybox:2"), 15, "a pod on the new node")
            await agents.pop(names[3]).stop()
            await client.delete(NODES, names[3])
            await eventually(lambda: daemon_on(set(names[:3]), "busybox:2"), 15, "the removed node's pod gone")

            # ---------------------------------------------------------------- StatefulSet
            # The documentation's example (a headless Service and the StatefulSet), through kubectl apply.
            manifest = tmp_path / "web.yaml"
            manifest.write_text(WEB_MANIFEST.replace("AFFINITY", json.dumps(pin)))
            out = (await ktl("apply", "-f", str(manifest))).stdout
            assert "statefulset.apps/web created" in out, out

            async def ordered_up() -> list[Obj] | None:
                ps = sorted(await pods("web-"), key=lambda p: p["metadata"]["name"])
                got = [p["metadata"]["name"] for p in ps]
                assert got == [f"web-{i}" for i in range(len(got))], got  # never a gap
                assert all(running_ready(p) for p in ps[:-1]), "a pod created before the one below was ready"
                return ps if len(ps) == 3 and all(running_ready(p) for p in ps) else None

            ps = await eventually(ordered_up, 20, "web-0, web-1, web-2 in order", interval=0.05)
            for i, p in enumerate(ps):
                assert p["spec"]["hostname"] == f"web-{i}" and p["spec"]["subdomain"] == "nginx"
                vol = next(v for v in p["spec"]["volumes"] if v["name"] == "www")
                assert vol["persistentVolumeClaim"]["claimName"] == f"www-web-{i}"
            claims = {c["metadata"]["name"] for c in (await client.list(PVCS, namespace=ns))["items"]}
            assert claims == {"www-web-0", "www-web-1", "www-web-2"}
            out = (await ktl("rollout", "status", "sts/web", "--timeout=30s")).stdout
            # partition defaults to 0, so kubectl reports as it does against Kubernetes.
            assert "partitioned roll out complete: 3 new pods have been updated" in out, out
            assert (await ktl("get", "sts")).stdout.split("\n")[1].split()[:2] == ["web", "3/3"]
            described = (await ktl("describe", "sts/web")).stdout
            assert "Pods Status:" in described and "3 Running" in described, described
            described = (await ktl("describe", "ds/daemon")).stdout
            assert "Desired Number of Nodes Scheduled: 3" in described, described

            # A new image rolls from the highest ordinal down.
            sts = await client.get(STATEFULSETS, "web", namespace=ns)
            sts["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx-slim:2"
            await client.update(STATEFULSETS, sts, namespace=ns)

            async def rolled() -> bool:
                ps = {p["metadata"]["name"]: p for p in await pods("web-")}
                new = [i for i in range(3) if f"web-{i}" in ps
                       and ps[f"web-{i}"]["spec"]["containers"][0]["image"] == "nginx-slim:2"]
                assert new == list(range(3 - len(new), 3)), f"updated out of order: {new}"
                st = (await client.get(STATEFULSETS, "web", namespace=ns))["status"]
                return (len(new) == 3 and all(running_ready(p) for p in ps.values()) and st["updatedReplicas"] == 3
                        and st["currentRevision"] == st["updateRevision"])

            await eventually(rolled, 20, "web rolled to nginx:2 from the top", interval=0.05)
            out = (await ktl("rollout", "status", "sts/web", "--timeout=30s")).stdout
            assert "partitioned roll out complete: 3 new pods have been updated" in out, out

            # kubectl rollout undo goes back to the first template (its ControllerRevision), again from the top.
            rolled_rev = (await client.get(STATEFULSETS, "web", namespace=ns))["status"]["currentRevision"]
            await ktl("rollout", "undo", "sts/web")
            out = (await ktl("rollout", "status", "sts/web", "--timeout=30s")).stdout
            assert "partitioned roll out complete: 3 new pods have been updated" in out, out

            async def undone() -> bool:
                ps = await pods("web-")
                st = (await client.get(STATEFULSETS, "web", namespace=ns))["status"]
                return (len(ps) == 3 and all(running_ready(p) and p["spec"]["containers"][0]["image"]
                                             == "registry.k8s.io/nginx-slim:0.24" for p in ps)
                        and st["currentRevision"] == st["updateRevision"] != rolled_rev)

            await eventually(undone, 20, "web back at nginx-slim:0.24")
            history = (await ktl("rollout", "history", "sts/web")).stdout
            assert [line.split()[0] for line in history.strip().split("\n")[2:]] == ["2", "3"], history

            # kubectl scale to 1: web-2 goes before web-1.
            await ktl("scale", "sts/web", "--replicas=1")

            async def scaled_down() -> bool:
                all_pods = {p["metadata"]["name"]: p for p in (await client.list(PODS, namespace=ns))["items"]}
                if "web-1" not in all_pods or all_pods["web-1"]["metadata"].get("deletionTimestamp"):
                    assert "web-2" not in all_pods, "web-1 deleted while web-2 was still there"
                st = (await client.get(STATEFULSETS, "web", namespace=ns))["status"]
                return set(all_pods) & {"web-0", "web-1", "web-2"} == {"web-0"} and st["replicas"] == 1

            await eventually(scaled_down, 20, "web scaled to 1", interval=0.05)

            # Tenancy: a set of the same name in two tenants gets a pod of its own in each.
            tenants = [f"ta{run}", f"tb{run}"]
            for t in tenants:
                await client.create(TENANTS, {"metadata": {"name": t}})
                await client.create(NAMESPACES, {"metadata": {"name": "default"}}, tenant=t)
                await client.create(STATEFULSETS, {"metadata": {"name": "db"}, "spec": {
                    "replicas": 1, "podManagementPolicy": "Parallel", "selector": {"matchLabels": {"app": "db"}},
                    "template": {"metadata": {"labels": {"app": "db"}}, "spec": {
                        "affinity": pin, "containers": [{"name": "c", "image": "busybox"}]}}}},
                    tenant=t, namespace="default")

            async def db_in(t: str) -> Obj | None:
                sts = await client.get(STATEFULSETS, "db", tenant=t, namespace="default")
                items = (await client.list(PODS, tenant=t, namespace="default"))["items"]
                return sts if ([p["metadata"]["name"] for p in items] == ["db-0"] and running_ready(items[0])
                               and items[0]["metadata"]["ownerReferences"][0]["uid"] == sts["metadata"]["uid"]
                               and sts.get("status", {}).get("readyReplicas") == 1) else None

            for t in tenants:
                sts = await eventually(lambda t=t: db_in(t), 15, f"db-0 in tenant {t}")
                assert sts["metadata"]["tenant"] == t

            # Deleting the owners takes their pods with them (the garbage collector follows the ownerReferences);
            # the claims stay (retention policy Retain).
            await client.delete(DAEMONSETS, "daemon", namespace=ns)
            await client.delete(STATEFULSETS, "web", namespace=ns)

            async def no_pods() -> bool:
                return not await pods()

            await eventually(no_pods, 15, "the pods of the deleted daemon set and stateful set gone")
            assert len((await client.list(PVCS, namespace=ns))["items"]) == 3
        finally:
            await stop_controllers()
            stop(sched)
            for a in agents.values():
                await a.stop()
            for n in names:
                with contextlib.suppress(Exception):
                    await client.delete(NODES, n)
            for t in (f"ta{run}", f"tb{run}"):
                with contextlib.suppress(Exception):
                    await client.delete(TENANTS, t)
