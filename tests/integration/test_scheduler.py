"""`arktos scheduler` as a real process against real API servers on real etcd.

Nodes are plain Node objects the tests create (capacity, allocatable, a Ready
condition); nothing runs pods.  The module gets an etcd and API server of its
own, so no other test's nodes or pending pods mix in, and one scheduler
process (fast backoffs) serves the placement tests; each test deletes its
nodes and pods afterwards.  Leader election and the two-resource-partition
case start their own servers and schedulers.
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from arktos.api.resources import builtin_registry
from arktos.client import APIError, Client
from arktos.cluster.etcd import free_port, start_etcd
from arktos.scheduler import RUNTIME_CONTAINER_LABEL, RUNTIME_VM_LABEL
from tests.conftest import APIServerProc, ComponentProc, EtcdProc, eventually, start_apiserver, write_dev_kubeconfig

REG = builtin_registry()
PODS = REG.get("", "v1", "pods")
NODES = REG.get("", "v1", "nodes")
EVENTS = REG.get("", "v1", "events")
NAMESPACES = REG.get("", "v1", "namespaces")
FAST = ["--pod-initial-backoff-seconds", "0.2", "--pod-max-backoff-seconds", "1"]


def uniq(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:6]}"


# -- processes ------------------------------------------------------------------------------------------


def SchedulerProc(log: Path, args: list[str]) -> ComponentProc:
    """One `arktos scheduler` process and its log."""
    return ComponentProc("scheduler", log, args)


write_kubeconfig = write_dev_kubeconfig


class Servers:
    """etcd + API server pairs started for one module or test, stopped in reverse order."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.started: list[tuple[EtcdProc, APIServerProc]] = []

    def start(self, name: str) -> APIServerProc:
        d = self.base / name
        d.mkdir(parents=True, exist_ok=True)
        client, peer = free_port(), free_port()
        etcd = EtcdProc(start_etcd(d / "etcd", client, peer, d / "etcd.log"), client, peer, d / "etcd")
        try:
            server = start_apiserver(etcd.url, d / "apiserver.log")
        except BaseException:
            etcd.stop()
            raise
        self.started.append((etcd, server))
        return server

    def stop(self) -> None:
        for etcd, server in reversed(self.started):
            server.stop()
            etcd.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[APIServerProc]:
    servers = Servers(tmp_path_factory.mktemp("scheduler-cluster"))
    try:
        yield servers.start("main")
    finally:
        servers.stop()


@pytest.fixture(scope="module")
def scheduler(cluster: APIServerProc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SchedulerProc]:
    d = tmp_path_factory.mktemp("scheduler")
    s = SchedulerProc(d / "scheduler.log", ["--master", cluster.url, "--no-leader-elect", *FAST])
    s.wait_for_log("caches synced")
    yield s
    code = s.stop()
    text = s.text()
    assert code == 0, text[-4000:]
    assert "Traceback" not in text, text[-8000:]
    assert "scheduler stopped" in text


class Kit:
    """A client plus what a test created, deleted afterwards so the next test starts clean."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.nodes: list[tuple[Client, str]] = []
        self.namespaces: list[str] = []

    async def node(self, name: str, *, cpu: str = "4", memory: str = "8Gi", pods: str = "110",
                   labels: dict | None = None, taints: list | None = None, ready: bool = True,
                   unschedulable: bool = False, on: Client | None = None) -> dict:
        client = on or self.client
        alloc = {"cpu": cpu, "memory": memory, "pods": pods}
        body = {
            "metadata": {"name": name, "labels": labels or {}},
            "spec": {"taints": taints or [], **({"unschedulable": True} if unschedulable else {})},
            "status": {"capacity": alloc, "allocatable": alloc,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                       "reason": "KubeletReady" if ready else "KubeletNotReady"}]},
        }
        created = await client.create(NODES, body)
        self.nodes.append((client, name))
        return created

    async def namespace(self, prefix: str = "sch") -> str:
        ns = uniq(prefix)
        await self.client.create(NAMESPACES, {"metadata": {"name": ns}})
        self.namespaces.append(ns)
        return ns

    async def pod(self, ns: str, name: str, *, cpu: str = "100m", memory: str = "64Mi", vm: bool = False,
                  on: Client | None = None, **spec: Any) -> dict:
        res = {"requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": cpu, "memory": memory}}
        body: dict[str, Any] = {"metadata": {"name": name}, "spec": dict(spec)}
        if vm:
            body["spec"]["virtualMachine"] = {"name": "vm", "image": "cirros", "keyPairName": "key",
                                              "resources": res}
        else:
            body["spec"]["containers"] = [{"name": "c", "image": "busybox", "resources": res}]
        return await (on or self.client).create(PODS, body, namespace=ns)

    async def cleanup(self) -> None:
        for ns in self.namespaces:
            await self.client.delete_collection(PODS, namespace=ns, grace_period_seconds=0)
        for client, name in self.nodes:
            try:
                await client.delete(NODES, name)
            except APIError as exc:
                if exc.code != 404:
                    raise


@pytest.fixture
async def kit(cluster: APIServerProc, scheduler: SchedulerProc) -> AsyncIterator[Kit]:
    async with Client(cluster.url, qps=5000, burst=5000) as c:
        k = Kit(c)
        try:
            yield k
        finally:
            await k.cleanup()


async def placements(client: Client, ns: str) -> dict[str, str | None]:
    return {p["metadata"]["name"]: p["spec"].get("nodeName") for p in (await client.list(PODS, namespace=ns))["items"]}


async def all_bound(client: Client, ns: str, count: int, timeout: float = 20.0) -> dict[str, str]:
    async def check() -> dict[str, str] | None:
        placed = await placements(client, ns)
        if len(placed) == count and all(placed.values()):
            return placed  # type: ignore[return-value]
        return None

    return await eventually(check, timeout, f"{count} pods bound in {ns}")


async def events_for(client: Client, ns: str, name: str, reason: str) -> list[dict]:
    items = (await client.list(EVENTS, namespace=ns))["items"]
    return [e for e in items if e["involvedObject"].get("name") == name and e["reason"] == reason]


async def scheduled_condition(client: Client, ns: str, name: str) -> dict | None:
    pod = await client.get(PODS, name, namespace=ns)
    return next((c for c in pod["status"].get("conditions") or [] if c["type"] == "PodScheduled"), None)


# -- placement --------------------------------------------------------------------------------------------


async def test_pods_land_only_on_fitting_ready_schedulable_nodes(kit: Kit):
    tag = uniq("fit")
    await kit.node(f"{tag}-small", cpu="1")
    await kit.node(f"{tag}-medium", cpu="2")
    await kit.node(f"{tag}-big", cpu="4")
    await kit.node(f"{tag}-down", cpu="16", ready=False)
    await kit.node(f"{tag}-cordoned", cpu="16", unschedulable=True)
    ns = await kit.namespace()
    for i in range(3):
        await kit.pod(ns, f"big-{i}", cpu="1500m")  # fits only medium (1) and big (2)
    await kit.pod(ns, "tiny", cpu="100m")
    placed = await all_bound(kit.client, ns, 4)
    assert sorted(v for k, v in placed.items() if k.startswith("big-")) == [f"{tag}-big", f"{tag}-big",
                                                                             f"{tag}-medium"]
    assert placed["tiny"] in {f"{tag}-small", f"{tag}-medium", f"{tag}-big"}
    # The fourth 1.5-cpu pod fits nowhere: the down and cordoned nodes are big but not eligible.
    await kit.pod(ns, "big-3", cpu="1500m")

    async def failed() -> list[dict]:
        return await events_for(kit.client, ns, "big-3", "FailedScheduling")

    event = (await eventually(failed, 10, "FailedScheduling for big-3"))[0]
    assert event["type"] == "Warning"
    msg = event["message"]
    assert msg.startswith("0/5 nodes are available: ") or msg.startswith("0/"), msg
    assert "Insufficient cpu" in msg and "node(s) were not ready" in msg and "node(s) were unschedulable" in msg
    scheduled = (await events_for(kit.client, ns, "tiny", "Scheduled"))
    assert scheduled and scheduled[0]["message"] == f"Successfully assigned {ns}/tiny to {placed['tiny']}"
    assert scheduled[0]["source"]["component"] == "default-scheduler"


async def test_node_selector_affinity_taints_and_tolerations(kit: Kit):
    tag = uniq("aff")
    gpu_taint = [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]
    await kit.node(f"{tag}-ssd", labels={"disk": "ssd", "rank": "5", "test": tag})
    await kit.node(f"{tag}-gpu", labels={"disk": "hdd", "rank": "9", "test": tag}, taints=gpu_taint)
    await kit.node(f"{tag}-plain", labels={"rank": "1", "test": tag})
    ns = await kit.namespace()
    mine = {"key": "test", "operator": "In", "values": [tag]}

    def affinity(*exprs: dict, fields: list | None = None) -> dict:
        term: dict[str, Any] = {"matchExpressions": [mine, *exprs]}
        if fields:
            term["matchFields"] = fields
        return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}

    toleration = [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]
    await kit.pod(ns, "selector", nodeSelector={"disk": "ssd", "test": tag})
    await kit.pod(ns, "tolerates", affinity=affinity({"key": "disk", "operator": "In", "values": ["hdd"]}),
                  tolerations=toleration)
    await kit.pod(ns, "no-disk", affinity=affinity({"key": "disk", "operator": "DoesNotExist"}))
    await kit.pod(ns, "rank-gt", affinity=affinity({"key": "rank", "operator": "Gt", "values": ["3"]},
                                                   {"key": "disk", "operator": "NotIn", "values": ["hdd"]}))
    await kit.pod(ns, "by-name", affinity=affinity(
        fields=[{"key": "metadata.name", "operator": "In", "values": [f"{tag}-plain"]}]))
    placed = await all_bound(kit.client, ns, 5)
    assert placed == {"selector": f"{tag}-ssd", "tolerates": f"{tag}-gpu", "no-disk": f"{tag}-plain",
                      "rank-gt": f"{tag}-ssd", "by-name": f"{tag}-plain"}
    # Without the toleration the tainted node is out; the others do not match the affinity.
    await kit.pod(ns, "untolerated", affinity=affinity({"key": "disk", "operator": "In", "values": ["hdd"]}))

    async def condition() -> dict | None:
        c = await scheduled_condition(kit.client, ns, "untolerated")
        return c if c and c["status"] == "False" else None

    cond = await eventually(condition, 10, "PodScheduled=False on untolerated")
    assert cond["reason"] == "Unschedulable"
    assert "1 node(s) had untolerated taint {dedicated: gpu}" in cond["message"]
    assert "node(s) didn't match Pod's node affinity/selector" in cond["message"]


async def test_vm_pods_go_to_vm_nodes_and_container_pods_to_container_nodes(kit: Kit):
    tag = uniq("rt")
    await kit.node(f"{tag}-vm", labels={RUNTIME_VM_LABEL: "true", "test": tag})
    await kit.node(f"{tag}-ctr", labels={RUNTIME_CONTAINER_LABEL: "true", "test": tag})
    await kit.node(f"{tag}-plain", labels={"test": tag})  # no runtime labels: containers only
    ns = await kit.namespace()
    for i in range(4):
        await kit.pod(ns, f"vm-{i}", vm=True, cpu="500m", memory="512Mi", nodeSelector={"test": tag})
        await kit.pod(ns, f"ctr-{i}", nodeSelector={"test": tag})
    placed = await all_bound(kit.client, ns, 8)
    assert {v for k, v in placed.items() if k.startswith("vm-")} == {f"{tag}-vm"}
    assert {v for k, v in placed.items() if k.startswith("ctr-")} <= {f"{tag}-ctr", f"{tag}-plain"}
    # VM resources count like container requests: the VM node has 4 cpu, 4 VMs took 2, a 3-cpu VM does not fit.
    await kit.pod(ns, "vm-big", vm=True, cpu="3", memory="1Gi", nodeSelector={"test": tag})

    async def failed() -> list[dict]:
        return await events_for(kit.client, ns, "vm-big", "FailedScheduling")

    msg = (await eventually(failed, 10, "FailedScheduling for vm-big"))[0]["message"]
    assert "1 Insufficient cpu" in msg and "2 node(s) had no VM runtime" in msg, msg


async def test_unschedulable_pod_reports_then_lands_when_a_fitting_node_appears(kit: Kit):
    tag = uniq("later")
    await kit.node(f"{tag}-a", cpu="2", labels={"test": tag})
    ns = await kit.namespace()
    await kit.pod(ns, "wants-8", cpu="8", nodeSelector={"test": tag})

    async def condition() -> dict | None:
        c = await scheduled_condition(kit.client, ns, "wants-8")
        return c if c and c["status"] == "False" else None

    cond = await eventually(condition, 10, "PodScheduled=False")
    assert cond["reason"] == "Unschedulable"
    assert re.fullmatch(r"0/\d+ nodes are available: .*1 Insufficient cpu.*\.", cond["message"]), cond["message"]
    events = await events_for(kit.client, ns, "wants-8", "FailedScheduling")
    assert events and "Insufficient cpu" in events[0]["message"]
    await asyncio.sleep(1.5)  # parked: retried only when the cluster changes (or after a minute)
    assert (await kit.client.get(PODS, "wants-8", namespace=ns))["spec"].get("nodeName") is None
    started = time.monotonic()
    await kit.node(f"{tag}-big", cpu="16", labels={"test": tag})
    placed = await all_bound(kit.client, ns, 1, timeout=10)
    assert placed["wants-8"] == f"{tag}-big"
    assert time.monotonic() - started < 5
    cond = await scheduled_condition(kit.client, ns, "wants-8")
    assert cond is not None and cond["status"] == "True"


async def test_no_overcommit_when_200_pods_arrive_at_once(kit: Kit):
    tag = uniq("tight")
    for i in range(10):
        await kit.node(f"{tag}-{i}", cpu="1", memory="4Gi", labels={"test": tag})
    ns = await kit.namespace()
    # 10 nodes x 1 cpu = 33 pods of 300m at most (3 per node), 200 asked for at once.
    await asyncio.gather(*(kit.pod(ns, f"p{i}", cpu="300m", nodeSelector={"test": tag}) for i in range(200)))

    async def settled() -> dict | None:
        placed = await placements(kit.client, ns)
        bound = [n for n in placed.values() if n]
        return placed if len(bound) == 30 else None

    placed = await eventually(settled, 30, "30 pods bound")
    await asyncio.sleep(1.0)  # nothing more may follow
    placed = await placements(kit.client, ns)
    per_node: dict[str, int] = {}
    for n in placed.values():
        if n:
            per_node[n] = per_node.get(n, 0) + 1
    assert sum(per_node.values()) == 30 and max(per_node.values()) == 3, per_node
    unbound = sorted(k for k, v in placed.items() if not v)
    assert len(unbound) == 170
    cond = await eventually(lambda: scheduled_condition(kit.client, ns, unbound[0]), 10, "condition")
    assert cond["status"] == "False" and "Insufficient cpu" in cond["message"]
    # Freeing capacity (deleting bound pods) lets waiting pods in, still without overcommit.
    victims = [k for k, v in placed.items() if v][:5]
    for v in victims:
        await kit.client.delete(PODS, v, namespace=ns, grace_period_seconds=0)

    async def refilled() -> bool:
        now = await placements(kit.client, ns)
        return sum(1 for n in now.values() if n) == 30 and not set(victims) & set(now)

    await eventually(refilled, 15, "5 waiting pods bound after deletions")
    now = await placements(kit.client, ns)
    counts: dict[str, int] = {}
    for n in now.values():
        if n:
            counts[n] = counts.get(n, 0) + 1
    assert max(counts.values()) == 3


# -- leader election -----------------------------------------------------------------------------------------


async def binding_counts(client: Client) -> dict[str, float]:
    """POST pods/binding by response code, from the server's /metrics."""
    text = await client.request("GET", "/metrics")
    out: dict[str, float] = {}
    for line in str(text).splitlines():
        if line.startswith("apiserver_request_total{") and 'subresource="binding"' in line:
            code = re.search(r'code="(\d+)"', line)
            if code:
                out[code.group(1)] = out.get(code.group(1), 0.0) + float(line.rsplit(" ", 1)[1])
    return out


async def test_two_replicas_with_leader_election_bind_each_pod_exactly_once(tmp_path: Path):
    servers = Servers(tmp_path)
    replicas: list[SchedulerProc] = []
    try:
        server = servers.start("le")
        args = ["--master", server.url, "--leader-elect", "--leader-elect-lease-duration", "3",
                "--leader-elect-renew-deadline", "2", "--leader-elect-retry-period", "0.5", *FAST]
        replicas = [SchedulerProc(tmp_path / f"scheduler-{i}.log", args) for i in range(2)]
        async with Client(server.url, qps=5000, burst=5000) as c:
            kit = Kit(c)
            for i in range(5):
                await kit.node(f"le-{i}")
            ns = await kit.namespace("le")
            await asyncio.gather(*(kit.pod(ns, f"a{i}") for i in range(60)))
            await all_bound(c, ns, 60, timeout=30)
            leaders = [r for r in replicas if "caches synced" in r.text()]
            assert len(leaders) == 1, [r.text()[-2000:] for r in replicas]
            leader = leaders[0]
            standby = next(r for r in replicas if r is not leader)

            # The leader dies without releasing the lease; the standby takes over after it expires.
            leader.stop(signal.SIGKILL)
            await asyncio.gather(*(kit.pod(ns, f"b{i}") for i in range(60)))
            await all_bound(c, ns, 120, timeout=40)
            assert "caches synced" in standby.text()

            counts = await binding_counts(c)
            assert counts.get("201") == 120, counts  # one successful binding per pod
            assert not {k: v for k, v in counts.items() if k != "201"}, counts  # and no second attempt at all
            events = [e for e in (await c.list(EVENTS, namespace=ns))["items"] if e["reason"] == "Scheduled"]
            per_pod: dict[str, int] = {}
            for e in events:
                per_pod[e["involvedObject"]["name"]] = per_pod.get(e["involvedObject"]["name"], 0) + e["count"]
            assert set(per_pod.values()) == {1} and len(per_pod) <= 120
    finally:
        for r in replicas:
            r.stop()
        servers.stop()
    for r in replicas:
        assert "Traceback" not in r.text(), r.text()[-6000:]


# -- scale-out: nodes from two resource partitions --------------------------------------------------------------


async def test_scheduler_places_pods_on_nodes_of_two_resource_partitions(tmp_path: Path):
    servers = Servers(tmp_path)
    sched: SchedulerProc | None = None
    try:
        tp, rp1, rp2 = servers.start("tp"), servers.start("rp1"), servers.start("rp2")
        kubeconfigs = [write_kubeconfig(tmp_path / f"{name}.kubeconfig", s.url)
                       for name, s in (("tp", tp), ("rp1", rp1), ("rp2", rp2))]
        sched = SchedulerProc(tmp_path / "scheduler.log", [
            "--kubeconfig", str(kubeconfigs[0]), "--resource-providers", f"{kubeconfigs[1]},{kubeconfigs[2]}",
            "--no-leader-elect", *FAST])
        sched.wait_for_log("caches synced")
        async with Client(tp.url) as c, Client(rp1.url) as c1, Client(rp2.url) as c2:
            kit = Kit(c)
            await kit.node("rp1-node", cpu="1", on=c1)
            await kit.node("rp2-node", cpu="1", on=c2)
            ns = await kit.namespace("tp")
            # Each node takes two 400m pods, so four pods need both partitions.
            await asyncio.gather(*(kit.pod(ns, f"p{i}", cpu="400m") for i in range(4)))
            placed = await all_bound(c, ns, 4)
            assert sorted(placed.values()) == ["rp1-node", "rp1-node", "rp2-node", "rp2-node"]
            await kit.pod(ns, "p4", cpu="400m")

            async def failed() -> list[dict]:
                return await events_for(c, ns, "p4", "FailedScheduling")

            msg = (await eventually(failed, 10))[0]["message"]
            assert msg.startswith("0/2 nodes are available: 2 Insufficient cpu"), msg
            # A node appearing on either partition is seen: the fifth pod lands on rp2's new node.
            await kit.node("rp2-node-b", cpu="1", on=c2)
            assert (await all_bound(c, ns, 5))["p4"] == "rp2-node-b"
            # The pods live on the tenant partition only.
            for rp in (c1, c2):
                with pytest.raises(APIError) as missing:
                    await rp.get(PODS, "p0", namespace=ns)
                assert missing.value.code == 404
    finally:
        if sched is not None:
            assert sched.stop() == 0
        servers.stop()
    assert sched is not None and "Traceback" not in sched.text(), sched.text()[-6000:]


async def test_pods_of_every_tenant_are_scheduled_and_reported_in_their_tenant(kit: Kit):
    tenant = uniq("st")
    await kit.client.create(REG.get("", "v1", "tenants"), {"metadata": {"name": tenant}})
    await kit.client.create(NAMESPACES, {"metadata": {"name": "apps"}}, tenant=tenant)
    tag = uniq("ten")
    await kit.node(f"{tag}-n", cpu="1", labels={"test": tag})
    try:
        for name, cpu in (("fits", "500m"), ("too-big", "2")):
            await kit.client.create(PODS, {"metadata": {"name": name}, "spec": {
                "nodeSelector": {"test": tag},
                "containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": cpu}}}]}},
                tenant=tenant, namespace="apps")

        async def bound() -> str | None:
            return (await kit.client.get(PODS, "fits", tenant=tenant, namespace="apps"))["spec"].get("nodeName")

        assert await eventually(bound, 10, "the tenant's pod bound") == f"{tag}-n"

        async def reported() -> dict[str, dict]:
            items = (await kit.client.list(EVENTS, tenant=tenant, namespace="apps"))["items"]
            found = {e["reason"]: e for e in items}
            return found if {"Scheduled", "FailedScheduling"} <= set(found) else {}

        events = await eventually(reported, 10, "events in the tenant")
        assert events["Scheduled"]["involvedObject"]["name"] == "fits"
        assert events["FailedScheduling"]["involvedObject"]["name"] == "too-big"
        big = await kit.client.get(PODS, "too-big", tenant=tenant, namespace="apps")
        assert any(c["type"] == "PodScheduled" and c["status"] == "False" for c in big["status"]["conditions"])
        # Nothing leaked into the system tenant.
        leaked = [e for e in (await kit.client.list(EVENTS, namespace="apps", tenant="system"))["items"]
                  if e["involvedObject"].get("name") in ("fits", "too-big")]
        assert not leaked
    finally:
        await kit.client.delete_collection(PODS, tenant=tenant, namespace="apps", grace_period_seconds=0)
