"""Workload controllers as a real process: ReplicaSets, Deployments, garbage collection, node lifecycle, endpoints.

`python -m arktos controller-manager --controllers replicaset,deployment,
garbagecollector,nodelifecycle,endpoints` runs against the HTTPS server of
the `secure` fixture with its own client certificate (so its RBAC is real);
the tests drive the plain-HTTP development server on the same etcd, and the
real kubectl drives `rollout status|undo` there.

There is no scheduler and no node agent here, so `FakeKubelet` plays both for
one namespace, through the API like the real ones would: it binds pending
pods to live nodes (pods/binding), reports them Running, Ready and with a pod
IP (pods/status) a moment later, and confirms the deletion of pods on live
nodes (a zero-grace delete, as a node agent does once the containers
stopped).  Pods on a node it treats as dead are left alone, exactly as with a
crashed node.  `LeaseRenewer` keeps node Leases fresh, as node agents do.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import subprocess
import time
import uuid
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any

import pytest

from arktos.api.registry import ResourceInfo, Scope
from arktos.api.resources import builtin_registry
from arktos.client import APIError, Client, Informer
from arktos.client.leader import micro_time
from arktos.controllers._workloads import HashKeyRange, parse_time
from arktos.controllers.base import ControllerContext, ControllerOptions, InformerFactory
from arktos.controllers.deployment import (
    POD_TEMPLATE_HASH_LABEL,
    REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION,
    DeploymentController,
    compute_template_hash,
    resolve_fenceposts,
    templates_equal,
)
from arktos.controllers.discovery import Discovery
from arktos.controllers.endpoints import endpoint_subsets
from arktos.controllers.nodelifecycle import NOT_READY_TAINT, UNREACHABLE_TAINT, eviction_time
from arktos.controllers.replicaset import ReplicaSetController, pod_deletion_order
from tests.conftest import eventually, start_apiserver
from tests.e2e.conftest import kubectl_binary
from tests.integration.test_controllers import Manager, write_kubeconfig

REG = builtin_registry()
TENANTS = REG.get("", "v1", "tenants")
NAMESPACES = REG.get("", "v1", "namespaces")
NODES = REG.get("", "v1", "nodes")
PODS = REG.get("", "v1", "pods")
CONFIGMAPS = REG.get("", "v1", "configmaps")
SERVICES = REG.get("", "v1", "services")
ENDPOINTS = REG.get("", "v1", "endpoints")
LEASES = REG.get("coordination.k8s.io", "v1", "leases")
DEPLOYMENTS = REG.get("apps", "v1", "deployments")
REPLICASETS = REG.get("apps", "v1", "replicasets")
CRDS = REG.get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
SYSTEM = "system"
GRACE = 3.0  # --node-monitor-grace-period of the manager under test
EVICTION = 2.0  # --pod-eviction-timeout
CONTROLLERS = "replicaset,deployment,garbagecollector,nodelifecycle,endpoints"

Obj = dict[str, Any]


def uniq(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:6]}"


async def gone(client: Client, info: ResourceInfo, name: str, **kw: Any) -> bool:
    try:
        await client.get(info, name, **kw)
    except APIError as exc:
        if exc.code == 404:
            return True
        raise
    return False


def is_ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def active(pods: list[Obj]) -> list[Obj]:
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


# -- stand-ins for node agents and the scheduler ------------------------------------------------------


class LeaseRenewer:
    """Node leases in the system tenant's kube-node-lease, renewed every 0.3 s while the node is 'alive'."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.alive: set[str] = set()
        self._task: asyncio.Task | None = None

    async def add(self, node: str) -> None:
        body = {"metadata": {"name": node, "namespace": "kube-node-lease"},
                "spec": {"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": micro_time()}}
        try:
            await self.client.create(LEASES, body, tenant=SYSTEM, namespace="kube-node-lease")
        except APIError as exc:
            if exc.code != 409:
                raise
        self.alive.add(node)

    async def _run(self) -> None:
        while True:
            for node in list(self.alive):
                with contextlib.suppress(APIError):
                    await self.client.patch(LEASES, node, {"spec": {"renewTime": micro_time()}}, tenant=SYSTEM,
                                            namespace="kube-node-lease")
            await asyncio.sleep(0.3)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


_ips = itertools.count(1)


class FakeKubelet:
    """Scheduler plus node agents for one namespace (see the module docstring)."""

    def __init__(self, client: Client, tenant: str, namespace: str, nodes: list[str], ready_delay: float = 0.2):
        self.client = client
        self.tenant, self.namespace = tenant, namespace
        self.nodes = list(nodes)
        self.ready_delay = ready_delay
        self.dead: set[str] = set()
        self.unready: set[str] = set()  # pod names reported Running but not Ready
        self.informer = Informer(client, PODS, tenant=tenant, namespace=namespace)
        self._busy: set[str] = set()
        self._seen: dict[str, float] = {}
        self._next = itertools.cycle(range(1 << 30))
        self._task: asyncio.Task | None = None
        self._actions: set[asyncio.Task] = set()
        self.uids: set[str] = set()  # every pod ever seen
        self.bound = 0

    async def __aenter__(self) -> FakeKubelet:
        await self.informer.start()
        await self.informer.wait_synced(10)
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        tasks = [t for t in (self._task, *self._actions) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.informer.stop()

    def pods(self) -> list[Obj]:
        return self.informer.list()

    async def _run(self) -> None:
        while True:
            now = time.monotonic()
            for pod in self.informer.list():
                self.uids.add(pod["metadata"]["uid"])
                key = pod["metadata"]["name"]
                if key in self._busy:
                    continue
                action = self._action(pod, now)
                if action is not None:
                    self._busy.add(key)
                    self._actions.add(task := asyncio.create_task(self._do(key, action)))
                    task.add_done_callback(self._actions.discard)
            await asyncio.sleep(0.02)

    def _action(self, pod: Obj, now: float) -> Awaitable[Any] | None:
        meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
        node = spec.get("nodeName")
        where = {"tenant": self.tenant, "namespace": self.namespace}
        if meta.get("deletionTimestamp"):
            if node and node in self.dead:
                return None  # a dead node confirms nothing
            return self.client.delete(PODS, meta["name"], grace_period_seconds=0, **where)
        if not node:
            alive = [n for n in self.nodes if n not in self.dead]
            if not alive:
                return None
            target = alive[next(self._next) % len(alive)]
            self.bound += 1
            return self.client.create_subresource(PODS, meta["name"], "binding",
                                                  {"metadata": {"name": meta["name"]},
                                                   "target": {"kind": "Node", "name": target}}, **where)
        if node in self.dead:
            return None
        want_ready = meta["name"] not in self.unready
        if status.get("phase") == "Running" and is_ready(pod) == want_ready:
            return None
        first = self._seen.setdefault(meta["uid"], now)
        if now - first < self.ready_delay:
            return None
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        n = status.get("podIP") or f"10.{(i := next(_ips)) >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
        ready = "True" if want_ready else "False"
        new_status = {
            "phase": "Running", "podIP": n, "hostIP": "192.0.2.1", "startTime": status.get("startTime") or stamp,
            "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": stamp},
                           {"type": "Initialized", "status": "True", "lastTransitionTime": stamp},
                           {"type": "ContainersReady", "status": ready, "lastTransitionTime": stamp},
                           {"type": "Ready", "status": ready, "lastTransitionTime": stamp}],
        }
        return self.client.update_status(PODS, {**pod, "status": new_status}, **where)

    async def _do(self, key: str, action: Awaitable[Any]) -> None:
        try:
            await action
        except APIError:
            pass  # stale (409) or gone (404): the next look decides again
        finally:
            await asyncio.sleep(0.01)
            self._busy.discard(key)


# -- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def manager(secure, apiserver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Manager]:
    d = tmp_path_factory.mktemp("workload-manager")
    cert = secure.pki.client("system:kube-controller-manager")
    kubeconfig = secure.kubeconfig("workload-controller-manager", cert=cert)
    m = Manager(d / "controller-manager.log", [
        "--kubeconfig", str(kubeconfig), "--controllers", CONTROLLERS,
        "--leader-elect-resource-name", "arktos-workload-tests",
        "--node-monitor-grace-period", str(GRACE), "--pod-eviction-timeout", str(EVICTION),
        "--concurrent-workers", "8",
    ])
    m.wait_for_log(r"(started with \d+ workers[\s\S]*){5}", timeout=30)
    yield m
    code = m.stop()
    text = m.text()
    assert code == 0, text[-4000:]
    assert "Traceback" not in text, text[-8000:]


@pytest.fixture
async def dev(apiserver) -> Any:
    async with Client(apiserver.url, qps=5000, burst=5000) as c:
        yield c


@pytest.fixture(scope="module")
async def workers(manager, apiserver) -> Any:
    """Three Ready nodes whose leases are renewed for the whole module."""
    async with Client(apiserver.url, qps=5000, burst=5000) as c:
        try:
            await c.create(NAMESPACES, {"metadata": {"name": "kube-node-lease"}}, tenant=SYSTEM)
        except APIError as exc:
            assert exc.code == 409
        renewer = LeaseRenewer(c)
        names = [uniq("w") for _ in range(3)]
        for n in names:
            await c.create(NODES, node_body(n))
            await renewer.add(n)
        renewer.start()
        yield names, renewer
        await renewer.stop()
        for n in names:
            await c.delete(NODES, n)


def node_body(name: str, ready: str = "True") -> Obj:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {"capacity": {"cpu": "8", "memory": "16Gi", "pods": "110"},
                       "conditions": [{"type": "Ready", "status": ready, "reason": "KubeletReady",
                                       "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}]}}


async def namespace(client: Client, tenant: str = SYSTEM) -> str:
    name = uniq("wl")
    await client.create(NAMESPACES, {"metadata": {"name": name}}, tenant=tenant)
    return name


def deployment(name: str, replicas: int, image: str = "nginx:1.0", **spec: Any) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "web", "image": image,
                                                           "ports": [{"name": "http", "containerPort": 80}]}]}},
                     **spec}}


class Kubectl:
    def __init__(self, server: str, cache: Path) -> None:
        self.server, self.cache = server, cache

    def __call__(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        cmd = [kubectl_binary(30), "--server", self.server, "--cache-dir", str(self.cache), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}\n{proc.stdout}")
        return proc


async def converged(client: Client, name: str, replicas: int, **where: Any) -> Obj | None:
    d = await client.get(DEPLOYMENTS, name, **where)
    st = d.get("status") or {}
    ok = (st.get("observedGeneration", 0) >= d["metadata"]["generation"] and st.get("replicas") == replicas
          and st.get("updatedReplicas") == replicas and st.get("availableReplicas") == replicas
          and st.get("readyReplicas") == replicas)
    return d if ok else None


async def replica_sets(client: Client, name: str, **where: Any) -> list[Obj]:
    items = (await client.list(REPLICASETS, label_selector=f"app={name}", **where))["items"]
    return sorted(items, key=lambda rs: int(rs["metadata"]["annotations"][REVISION_ANNOTATION]))


# -- pure parts -----------------------------------------------------------------------------------------


def test_rollout_arithmetic_and_template_hash_follow_kubernetes():
    # Percentages: surge rounds up, unavailability down; both zero would deadlock.
    assert resolve_fenceposts("25%", "25%", 10) == (3, 2)
    assert resolve_fenceposts(0, "10%", 5) == (0, 1)
    assert resolve_fenceposts("0%", "0%", 10) == (0, 1)
    assert resolve_fenceposts(2, 0, 10) == (2, 0)
    t = {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    h = compute_template_hash(t)
    assert h == compute_template_hash({"spec": t["spec"], "metadata": t["metadata"]})  # key order is irrelevant
    assert h != compute_template_hash(t, 1) and h != compute_template_hash({**t, "spec": {"containers": []}})
    assert set(h) <= set("bcdfghjklmnpqrstvwxz2456789")
    with_hash = {"metadata": {"labels": {"app": "a", POD_TEMPLATE_HASH_LABEL: h}}, "spec": t["spec"]}
    assert templates_equal(with_hash, t)
    assert HashKeyRange().selector() is None
    r = HashKeyRange(10, 20)
    assert r.selector() == "metadata.hashkey=gt:10,metadata.hashkey=lte:20"
    assert r.owner_selector("ReplicaSet") == ("metadata.ownerReferences.hashkey.ReplicaSet=gt:10,"
                                              "metadata.ownerReferences.hashkey.ReplicaSet=lte:20")
    assert r.contains(20) and not r.contains(10) and HashKeyRange.parse("10:20") == r


def test_eviction_times_and_deletion_order():
    now = 1_000_000.0
    added = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    unreachable = [{"key": UNREACHABLE_TAINT, "effect": "NoExecute", "timeAdded": added}]
    pod = {"spec": {}}
    assert eviction_time(pod, unreachable, 300, now) == parse_time(added) + 300  # the default toleration
    forever = {"spec": {"tolerations": [{"key": UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoExecute"}]}}
    assert eviction_time(forever, unreachable, 300, now) is None
    short = {"spec": {"tolerations": [{"operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}]}}
    assert eviction_time(short, unreachable, 300, now) == parse_time(added) + 5
    other = [{"key": "example.com/drain", "effect": "NoExecute", "timeAdded": added}]
    assert eviction_time(pod, other, 300, now) == parse_time(added)  # untolerated: at once

    def p(name: str, node: str = "", phase: str = "Running", ready: bool = True, created: str = "2024") -> Obj:
        conds = [{"type": "Ready", "status": "True" if ready else "False",
                  "lastTransitionTime": "2024-01-01T00:00:00Z"}]
        return {"metadata": {"name": name, "creationTimestamp": created}, "spec": {"nodeName": node},
                "status": {"phase": phase, "conditions": conds}}

    order = pod_deletion_order([p("ready-old", "n1", created="2024-01-01T00:00:00Z"),
                                p("unscheduled", phase="Pending", ready=False),
                                p("not-ready", "n1", ready=False),
                                p("pending", "n2", phase="Pending", ready=False),
                                p("ready-new", "n2", created="2024-06-01T00:00:00Z")])
    assert [x["metadata"]["name"] for x in order] == ["unscheduled", "pending", "not-ready", "ready-new", "ready-old"]


def test_endpoint_subsets_resolve_named_ports_and_split_readiness():
    svc = {"spec": {"selector": {"app": "x"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"},
                                                          {"name": "metrics", "port": 9090, "targetPort": 9100}]}}

    def pod(name: str, ip: str, ready: bool, port: int | None) -> Obj:
        ports = [{"name": "http", "containerPort": port}] if port else []
        return {"metadata": {"name": name, "namespace": "ns", "uid": name},
                "spec": {"nodeName": "n", "containers": [{"name": "c", "ports": ports}]},
                "status": {"podIP": ip, "phase": "Running",
                           "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}

    subsets = endpoint_subsets(svc, [pod("a", "10.0.0.2", True, 8080), pod("b", "10.0.0.1", False, 8080),
                                     pod("c", "10.0.0.3", True, 8081), pod("d", "", True, 8080)])
    assert len(subsets) == 2
    by_port = {s["ports"][0]["port"]: s for s in subsets}
    assert [a["ip"] for a in by_port[8080]["addresses"]] == ["10.0.0.2"]
    assert [a["ip"] for a in by_port[8080]["notReadyAddresses"]] == ["10.0.0.1"]
    assert {p["name"]: p["port"] for p in by_port[8081]["ports"]} == {"http": 8081, "metrics": 9100}


# -- deployments ------------------------------------------------------------------------------------------


async def test_deployment_converges_scales_rolls_out_and_rolls_back_with_kubectl(workers, dev, apiserver, tmp_path):
    nodes, _ = workers
    ns = await namespace(dev)
    where = {"tenant": SYSTEM, "namespace": ns}
    kubectl = Kubectl(apiserver.url, tmp_path / "kubectl-cache")
    async with FakeKubelet(dev, SYSTEM, ns, nodes) as kubelet:
        # 1. Ten replicas converge.
        started = time.monotonic()
        await dev.create(DEPLOYMENTS, deployment("web", 10, strategy={
            "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}}), **where)
        d = await eventually(lambda: converged(dev, "web", 10, **where), 30, "10 replicas available")
        converge_s = time.monotonic() - started
        (rs1,) = await replica_sets(dev, "web", **where)
        h = rs1["metadata"]["labels"][POD_TEMPLATE_HASH_LABEL]
        assert rs1["metadata"]["name"] == f"web-{h}"
        assert rs1["spec"]["selector"]["matchLabels"][POD_TEMPLATE_HASH_LABEL] == h
        ref = rs1["metadata"]["ownerReferences"][0]
        assert ref["kind"] == "Deployment" and ref["controller"] and ref["uid"] == d["metadata"]["uid"]
        assert ref["hashKey"] == d["metadata"]["hashKey"]  # set by the server from the owner's uid
        pods = active(kubelet.pods())
        assert len(pods) == 10 and all(p["metadata"]["name"].startswith(f"web-{h}-") for p in pods)
        assert len(kubelet.uids) == 10, "expectations: no pod created twice while the informer lagged"
        assert all(len(p["metadata"]["name"]) == len(f"web-{h}-") + 5 for p in pods)
        assert {p["metadata"]["ownerReferences"][0]["uid"] for p in pods} == {rs1["metadata"]["uid"]}
        assert d["metadata"]["annotations"][REVISION_ANNOTATION] == "1"
        conds = {c["type"]: c for c in d["status"]["conditions"]}
        assert conds["Available"]["status"] == "True"
        await eventually(lambda: _progress_reason(dev, "web", "NewReplicaSetAvailable", **where), 10, "complete")

        # 2. Scale up and down (kubectl scale goes through the scale subresource).
        kubectl("-n", ns, "scale", "deployment/web", "--replicas=14")
        await eventually(lambda: converged(dev, "web", 14, **where), 20, "scaled to 14")
        await dev.patch(DEPLOYMENTS, "web", {"spec": {"replicas": 10}}, **where)
        await eventually(lambda: converged(dev, "web", 10, **where), 20, "scaled back to 10")
        assert len(active(kubelet.pods())) == 10

        # 3. A new template rolls out, never below replicas - maxUnavailable available pods.
        started = time.monotonic()
        await dev.patch(DEPLOYMENTS, "web", {"spec": {"template": {"spec": {"containers": [
            {"name": "web", "image": "nginx:1.1", "ports": [{"name": "http", "containerPort": 80}]}]}}}}, **where)
        status_task = asyncio.create_task(asyncio.to_thread(
            kubectl, "-n", ns, "rollout", "status", "deployment/web", "--timeout=60s"))
        low, high = await _watch_rollout(kubelet, status_task)
        rollout_s = time.monotonic() - started
        out = status_task.result().stdout
        assert 'deployment "web" successfully rolled out' in out, out
        assert low >= 10 - 2, f"only {low} pods available during the rollout (maxUnavailable 2)"
        rs1_after, rs2 = await replica_sets(dev, "web", **where)
        assert rs1_after["metadata"]["uid"] == rs1["metadata"]["uid"] and rs1_after["spec"]["replicas"] == 0
        assert rs2["spec"]["replicas"] == 10 and rs2["metadata"]["annotations"][REVISION_ANNOTATION] == "2"
        pods = active(kubelet.pods())
        assert len(pods) == 10 and all(p["spec"]["containers"][0]["image"] == "nginx:1.1" for p in pods)
        d = await dev.get(DEPLOYMENTS, "web", **where)
        assert d["metadata"]["annotations"][REVISION_ANNOTATION] == "2"

        # 4. `kubectl rollout undo` brings the first template back: its ReplicaSet, with a new revision.
        started = time.monotonic()
        kubectl("-n", ns, "rollout", "undo", "deployment/web")
        out = (await asyncio.to_thread(kubectl, "-n", ns, "rollout", "status", "deployment/web",
                                       "--timeout=60s")).stdout
        undo_s = time.monotonic() - started
        assert "successfully rolled out" in out
        rss = await replica_sets(dev, "web", **where)
        assert [rs["metadata"]["name"] for rs in rss] == [rs2["metadata"]["name"], rs1["metadata"]["name"]]
        back = rss[-1]
        assert back["spec"]["replicas"] == 10 and back["metadata"]["annotations"][REVISION_ANNOTATION] == "3"
        assert back["metadata"]["annotations"][REVISION_HISTORY_ANNOTATION] == "1"
        pods = active(kubelet.pods())
        assert len(pods) == 10 and all(p["spec"]["containers"][0]["image"] == "nginx:1.0" for p in pods)
        history = kubectl("-n", ns, "rollout", "history", "deployment/web").stdout
        assert "2" in history and "3" in history
    print(f"\n10-replica deployment converged in {converge_s:.2f}s; rolling update of 10 pods (maxSurge 3, "
          f"maxUnavailable 2) in {rollout_s:.2f}s with {low}..{high} available; rollback in {undo_s:.2f}s "
          f"(pods turn Ready {kubelet.ready_delay}s after binding)")


async def _progress_reason(client: Client, name: str, reason: str, **where: Any) -> bool:
    d = await client.get(DEPLOYMENTS, name, **where)
    return any(c["type"] == "Progressing" and c["reason"] == reason for c in d["status"].get("conditions") or [])


async def _watch_rollout(kubelet: FakeKubelet, until: asyncio.Task) -> tuple[int, int]:
    """The fewest and most available (ready, not terminating) pods seen while `until` runs."""
    low, high = 1 << 30, 0
    while not until.done():
        n = sum(1 for p in active(kubelet.pods()) if is_ready(p))
        low, high = min(low, n), max(high, n)
        await asyncio.sleep(0.01)
    await until
    return low, high


async def test_recreate_pause_and_revision_history(workers, dev):
    nodes, _ = workers
    ns = await namespace(dev)
    where = {"tenant": SYSTEM, "namespace": ns}
    async with FakeKubelet(dev, SYSTEM, ns, nodes) as kubelet:
        await dev.create(DEPLOYMENTS, deployment("db", 3, strategy={"type": "Recreate"}, revisionHistoryLimit=1),
                         **where)
        await eventually(lambda: converged(dev, "db", 3, **where), 20, "3 replicas")

        # Paused: a template change rolls nothing out until resumed.
        await dev.patch(DEPLOYMENTS, "db", {"spec": {"paused": True}}, **where)
        await dev.patch(DEPLOYMENTS, "db", {"spec": {"template": {"spec": {"containers": [
            {"name": "web", "image": "db:2"}]}}}}, **where)
        await eventually(lambda: _progress_reason(dev, "db", "DeploymentPaused", **where), 10, "paused condition")
        await asyncio.sleep(0.5)
        assert len(await replica_sets(dev, "db", **where)) == 1

        # Recreate: no new pod while an old one exists.
        mixed = False

        async def watch() -> None:
            nonlocal mixed
            while True:
                images = {p["spec"]["containers"][0]["image"] for p in kubelet.pods()}
                mixed = mixed or len(images) > 1
                await asyncio.sleep(0.01)

        watcher = asyncio.create_task(watch())
        await dev.patch(DEPLOYMENTS, "db", {"spec": {"paused": False}}, **where)
        await eventually(lambda: converged(dev, "db", 3, **where), 20, "recreated")
        d = await eventually(lambda: _image_is(dev, "db", "db:2", **where), 10, "new template")
        watcher.cancel()
        assert not mixed, "old and new pods existed at the same time under Recreate"
        assert d["metadata"]["annotations"][REVISION_ANNOTATION] == "2"

        # A third template: with revisionHistoryLimit 1 the oldest ReplicaSet goes.
        await dev.patch(DEPLOYMENTS, "db", {"spec": {"template": {"spec": {"containers": [
            {"name": "web", "image": "db:3"}]}}}}, **where)
        await eventually(lambda: converged(dev, "db", 3, **where), 20, "third template")

        async def trimmed() -> bool:
            revisions = [rs["metadata"]["annotations"][REVISION_ANNOTATION] for rs in
                         await replica_sets(dev, "db", **where)]
            return revisions == ["2", "3"]

        await eventually(trimmed, 10, "history trimmed to one old revision")


async def _image_is(client: Client, name: str, image: str, **where: Any) -> Obj | None:
    d = await client.get(DEPLOYMENTS, name, **where)
    pods = (await client.list(PODS, label_selector=f"app={name}", **where))["items"]
    return d if pods and all(p["spec"]["containers"][0]["image"] == image for p in active(pods)) else None


async def test_replicaset_adopts_matching_orphans_and_releases_pods_that_stop_matching(workers, dev):
    nodes, _ = workers
    ns = await namespace(dev)
    where = {"tenant": SYSTEM, "namespace": ns}
    async with FakeKubelet(dev, SYSTEM, ns, nodes, ready_delay=0.05) as kubelet:
        for i in range(2):
            await dev.create(PODS, {"metadata": {"name": f"orphan{i}", "labels": {"app": "adopt"}},
                                    "spec": {"containers": [{"name": "c", "image": "busybox"}]}}, **where)
        await asyncio.sleep(0.5)  # the manager's pod informer has them before it hears of the ReplicaSet
        rs = await dev.create(REPLICASETS, {"metadata": {"name": "adopt"}, "spec": {
            "replicas": 3, "selector": {"matchLabels": {"app": "adopt"}},
            "template": {"metadata": {"labels": {"app": "adopt"}},
                         "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}, **where)
        uid = rs["metadata"]["uid"]

        async def owned() -> list[Obj]:
            pods = active((await dev.list(PODS, label_selector="app=adopt", **where))["items"])
            mine = [p for p in pods if any(r["uid"] == uid and r.get("controller")
                                           for r in p["metadata"].get("ownerReferences") or [])]
            return mine if len(pods) == 3 and len(mine) == 3 else []

        pods = await eventually(owned, 10, "two orphans adopted and one pod created")
        assert {p["metadata"]["name"] for p in pods} >= {"orphan0", "orphan1"}
        # Exactly one pod was made (the fake kubelet's own watch may be a moment behind the list above).
        await eventually(lambda: asyncio.sleep(0, len(kubelet.uids) >= 3), 10, "the fake kubelet sees 3 pods")
        assert len(kubelet.uids) == 3

        # A pod relabelled out of the selector is let go (and replaced); it keeps running on its own.
        await dev.patch(PODS, "orphan0", {"metadata": {"labels": {"app": "moved"}}}, **where)
        pods = await eventually(owned, 10, "a replacement for the released pod")
        assert "orphan0" not in {p["metadata"]["name"] for p in pods}
        released = await dev.get(PODS, "orphan0", **where)
        assert not released["metadata"].get("ownerReferences") and not released["metadata"].get("deletionTimestamp")
        rs = await eventually(lambda: _rs_status(dev, "adopt", 3, **where), 10, "replicaset status")
        assert rs["status"]["fullyLabeledReplicas"] == 3 and rs["status"]["observedGeneration"] == 1


async def _rs_status(client: Client, name: str, n: int, **where: Any) -> Obj | None:
    rs = await client.get(REPLICASETS, name, **where)
    st = rs.get("status") or {}
    return rs if st.get("replicas") == n and st.get("readyReplicas") == n and st.get("availableReplicas") == n else None


async def test_a_hashkey_range_limits_what_the_controllers_list_and_watch(workers, dev):
    """The partitioning hook: informers of a range-restricted controller hold only their slice (server-filtered)."""
    nodes, _ = workers
    ns = await namespace(dev)
    where = {"tenant": SYSTEM, "namespace": ns}
    async with FakeKubelet(dev, SYSTEM, ns, nodes, ready_delay=0.05):
        for name in ("ra", "rb"):
            await dev.create(DEPLOYMENTS, deployment(name, 2), **where)
        for name in ("ra", "rb"):
            await eventually(lambda name=name: converged(dev, name, 2, **where), 20, f"{name} converged")
        d_a = await dev.get(DEPLOYMENTS, "ra", **where)
        (rs_a,) = await replica_sets(dev, "ra", **where)
        d_hash, rs_hash = d_a["metadata"]["hashKey"], rs_a["metadata"]["hashKey"]
        ctx = ControllerContext(dev, InformerFactory(dev), ControllerOptions(), Discovery(dev))
        rsc = ReplicaSetController(ctx, hash_range=HashKeyRange(rs_hash - 1, rs_hash))
        dc = DeploymentController(ctx, hash_range=HashKeyRange(d_hash - 1, d_hash))
        rsc.setup()
        dc.setup()
        try:
            await ctx.informers.start()
            await asyncio.wait_for(asyncio.gather(*(i.wait_synced() for i in ctx.informers)), 10)
            assert [o["metadata"]["uid"] for o in rsc.rss.list()] == [rs_a["metadata"]["uid"]]
            pods = rsc.pods.list()
            assert len(pods) == 2 and {p["metadata"]["ownerReferences"][0]["uid"] for p in pods} == {
                rs_a["metadata"]["uid"]}
            assert [o["metadata"]["uid"] for o in dc.deployments.list()] == [d_a["metadata"]["uid"]]
            assert [o["metadata"]["uid"] for o in dc.rss.list()] == [rs_a["metadata"]["uid"]]
        finally:
            await ctx.informers.stop()


# -- garbage collection ---------------------------------------------------------------------------------------


async def test_garbage_collector_background_foreground_and_orphan(workers, dev):
    nodes, _ = workers
    ns = await namespace(dev)
    where = {"tenant": SYSTEM, "namespace": ns}
    async with FakeKubelet(dev, SYSTEM, ns, nodes, ready_delay=0.05) as kubelet:
        for name in ("bg", "fg", "or"):
            await dev.create(DEPLOYMENTS, deployment(name, 3), **where)
        for name in ("bg", "fg", "or"):
            await eventually(lambda name=name: converged(dev, name, 3, **where), 20, f"{name} converged")

        def pods_of(name: str) -> list[Obj]:
            return [p for p in kubelet.pods() if p["metadata"]["labels"].get("app") == name]

        # Background (the default): the Deployment goes at once, then its ReplicaSet, then the pods.
        started = time.monotonic()
        await dev.delete(DEPLOYMENTS, "bg", **where)
        assert await gone(dev, DEPLOYMENTS, "bg", **where)

        async def bg_collected() -> bool:
            return not await replica_sets(dev, "bg", **where) and not pods_of("bg")

        await eventually(bg_collected, 15, "background collection")
        bg_s = time.monotonic() - started

        # Foreground: the Deployment stays (finalizer) until its ReplicaSet and pods are gone.
        started = time.monotonic()
        held = await dev.delete(DEPLOYMENTS, "fg", propagation_policy="Foreground", **where)
        assert "foregroundDeletion" in held["metadata"]["finalizers"] and held["metadata"]["deletionTimestamp"]
        await eventually(lambda: gone(dev, DEPLOYMENTS, "fg", **where), 15, "foreground deletion finished")
        fg_s = time.monotonic() - started
        assert not await replica_sets(dev, "fg", **where)
        assert not (await dev.list(PODS, label_selector="app=fg", **where))["items"]

        # Orphan: the Deployment goes, its ReplicaSet and pods stay, the ReplicaSet without an owner.
        await dev.delete(DEPLOYMENTS, "or", propagation_policy="Orphan", **where)
        await eventually(lambda: gone(dev, DEPLOYMENTS, "or", **where), 15, "orphaning deletion finished")
        (rs,) = await replica_sets(dev, "or", **where)
        assert not rs["metadata"].get("ownerReferences")
        await asyncio.sleep(1.0)
        assert len(active(pods_of("or"))) == 3 and all(
            p["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"] for p in pods_of("or"))
        # And the ReplicaSet alone, orphaning its pods.
        await dev.delete(REPLICASETS, rs["metadata"]["name"], propagation_policy="Orphan", **where)
        await eventually(lambda: gone(dev, REPLICASETS, rs["metadata"]["name"], **where), 15, "rs orphaned")
        await eventually(lambda: _no_owners(dev, "or", 3, **where), 10, "pods without owner")
    print(f"\ngarbage collection of a 3-replica Deployment: background {bg_s:.2f}s, foreground {fg_s:.2f}s")


async def _no_owners(client: Client, app: str, n: int, **where: Any) -> bool:
    pods = active((await client.list(PODS, label_selector=f"app={app}", **where))["items"])
    return len(pods) == n and not any(p["metadata"].get("ownerReferences") for p in pods)


async def test_garbage_collector_stays_inside_a_tenant_and_follows_custom_resources(manager, dev):
    a, b = uniq("gca"), uniq("gcb")
    for t in (a, b):
        await dev.create(TENANTS, {"metadata": {"name": t}})
        await dev.create(NAMESPACES, {"metadata": {"name": "default"}}, tenant=t)
    owner_a = await dev.create(CONFIGMAPS, {"metadata": {"name": "owner"}}, tenant=a, namespace="default")
    owner_b = await dev.create(CONFIGMAPS, {"metadata": {"name": "owner"}}, tenant=b, namespace="default")

    def ref(owner: Obj, kind: str = "ConfigMap", api_version: str = "v1") -> Obj:
        return {"apiVersion": api_version, "kind": kind, "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"]}

    await dev.create(CONFIGMAPS, {"metadata": {"name": "child", "ownerReferences": [ref(owner_a)]}},
                     tenant=a, namespace="default")
    # Tenant B names tenant A's owner (same name, A's uid): that reference points at nothing in B.
    await dev.create(CONFIGMAPS, {"metadata": {"name": "impostor", "ownerReferences": [ref(owner_a)]}},
                     tenant=b, namespace="default")
    await dev.create(CONFIGMAPS, {"metadata": {"name": "child", "ownerReferences": [ref(owner_b)]}},
                     tenant=b, namespace="default")
    await eventually(lambda: gone(dev, CONFIGMAPS, "impostor", tenant=b, namespace="default"), 15,
                     "the cross-tenant reference treated as dangling")
    await asyncio.sleep(0.5)
    assert not await gone(dev, CONFIGMAPS, "child", tenant=a, namespace="default")
    assert not await gone(dev, CONFIGMAPS, "child", tenant=b, namespace="default")

    await dev.delete(CONFIGMAPS, "owner", tenant=a, namespace="default")
    await eventually(lambda: gone(dev, CONFIGMAPS, "child", tenant=a, namespace="default"), 15, "A's child collected")
    await asyncio.sleep(0.5)
    assert not await gone(dev, CONFIGMAPS, "child", tenant=b, namespace="default"), "B's child must not be touched"

    # Custom resources are monitored too (a CRD of the system tenant, served to every tenant).
    group = f"{uniq('g')}.example.com"
    await dev.create(CRDS, {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"gadgets.{group}"},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "listKind": "GadgetList"},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                     "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}, tenant=SYSTEM)
    gadgets = ResourceInfo(group, "v1", "Gadget", "gadgets", Scope.NAMESPACE)
    await eventually(lambda: _served(dev, gadgets, a), 10, "gadgets served")
    gadget = await dev.create(gadgets, {"apiVersion": f"{group}/v1", "kind": "Gadget", "metadata": {"name": "g1"}},
                              tenant=a, namespace="default")
    await dev.create(CONFIGMAPS, {"metadata": {"name": "of-gadget",
                                               "ownerReferences": [ref(gadget, "Gadget", f"{group}/v1")]}},
                     tenant=a, namespace="default")
    await asyncio.sleep(1.0)
    assert not await gone(dev, CONFIGMAPS, "of-gadget", tenant=a, namespace="default")
    await dev.delete(gadgets, "g1", tenant=a, namespace="default")
    await eventually(lambda: gone(dev, CONFIGMAPS, "of-gadget", tenant=a, namespace="default"), 20,
                     "dependent of a custom resource collected")
    await dev.delete(CRDS, f"gadgets.{group}", tenant=SYSTEM)
    for t in (a, b):
        await dev.delete(TENANTS, t)


async def _served(client: Client, info: ResourceInfo, tenant: str) -> bool:
    return (await client.list(info, tenant=tenant, namespace="default"))["kind"] == "GadgetList"


# -- node lifecycle ----------------------------------------------------------------------------------------


async def _node(client: Client, name: str) -> Obj:
    return await client.get(NODES, name)


def _ready_status(node: Obj) -> str | None:
    return next((c["status"] for c in node["status"].get("conditions") or [] if c["type"] == "Ready"), None)


def _taints(node: Obj) -> set[tuple[str, str]]:
    return {(t["key"], t["effect"]) for t in (node.get("spec") or {}).get("taints") or []}


async def test_node_that_stops_renewing_its_lease_is_tainted_and_its_pods_replaced(workers, dev):
    _, renewer = workers
    ns = await namespace(dev)
    where = {"tenant": SYSTEM, "namespace": ns}
    victim, other = uniq("n"), uniq("n")
    for n in (victim, other):
        await dev.create(NODES, node_body(n))
        await renewer.add(n)
    try:
        async with FakeKubelet(dev, SYSTEM, ns, [victim, other], ready_delay=0.05) as kubelet:
            rs_body = {"metadata": {"name": "keep"}, "spec": {
                "replicas": 6, "selector": {"matchLabels": {"app": "keep"}},
                "template": {"metadata": {"labels": {"app": "keep"}},
                             "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}
            await dev.create(REPLICASETS, rs_body, **where)
            # A pod that tolerates an unreachable node forever.
            await dev.create(PODS, {"metadata": {"name": "tolerant"}, "spec": {
                "nodeName": victim, "containers": [{"name": "c", "image": "busybox"}],
                "tolerations": [{"key": UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoExecute"}]}}, **where)

            async def spread() -> list[Obj]:
                pods = [p for p in active(kubelet.pods()) if p["metadata"]["name"] != "tolerant"]
                on_victim = [p for p in pods if p["spec"].get("nodeName") == victim]
                return on_victim if len(pods) == 6 and all(is_ready(p) for p in pods) and on_victim else []

            doomed = await eventually(spread, 20, "6 ready pods, some on the victim node")

            # The node agent dies: no more lease renewals, nothing confirmed on that node.
            renewer.alive.discard(victim)
            kubelet.dead.add(victim)
            died = time.monotonic()

            async def tainted() -> Obj | None:
                node = await _node(dev, victim)
                want = {(UNREACHABLE_TAINT, "NoExecute"), (UNREACHABLE_TAINT, "NoSchedule")}
                return node if _ready_status(node) == "Unknown" and want <= _taints(node) else None

            await eventually(tainted, GRACE + 10, "victim NotReady and tainted")
            marked_s = time.monotonic() - died
            assert marked_s >= GRACE - 0.5, marked_s
            assert _ready_status(await _node(dev, other)) == "True" and not _taints(await _node(dev, other))

            async def evicted() -> bool:
                pods = {p["metadata"]["name"]: p for p in kubelet.pods()}
                return all(pods.get(p["metadata"]["name"], {}).get("metadata", {}).get("deletionTimestamp")
                           for p in doomed)

            await eventually(evicted, EVICTION + 10, "pods on the dead node evicted")
            evicted_s = time.monotonic() - died
            assert evicted_s - marked_s >= EVICTION - 0.3, (marked_s, evicted_s)  # the default toleration, in full

            async def replaced() -> bool:
                pods = [p for p in active(kubelet.pods()) if p["metadata"]["name"] != "tolerant"]
                return len(pods) == 6 and all(is_ready(p) and p["spec"]["nodeName"] == other for p in pods)

            await eventually(replaced, 15, "the ReplicaSet replaced the evicted pods on the live node")
            replaced_s = time.monotonic() - died
            tolerant = await dev.get(PODS, "tolerant", **where)
            assert not tolerant["metadata"].get("deletionTimestamp"), "a pod tolerating forever was evicted"
            assert any(c["type"] == "Ready" and c["status"] == "False" for c in tolerant["status"]["conditions"])

            # The agent comes back: taints go, Ready returns, and it confirms the evicted pods stopped.
            renewer.alive.add(victim)
            kubelet.dead.discard(victim)

            async def recovered() -> bool:
                node = await _node(dev, victim)
                return _ready_status(node) == "True" and not _taints(node)

            await eventually(recovered, 10, "victim Ready again, untainted")
            await eventually(lambda: _all_gone(dev, doomed, **where), 10, "evicted pods confirmed gone")

        # A node that reports Ready=False (and has no lease) is tainted not-ready.
        sick = uniq("n")
        await dev.create(NODES, node_body(sick, ready="False"))
        await eventually(lambda: _has_taints(dev, sick, {(NOT_READY_TAINT, "NoExecute"),
                                                         (NOT_READY_TAINT, "NoSchedule")}), 10, "not-ready taints")
        await dev.delete(NODES, sick)
    finally:
        for n in (victim, other):
            renewer.alive.discard(n)
            await dev.delete(NODES, n)
    print(f"\nnode without lease renewals (grace {GRACE}s): NotReady+tainted after {marked_s:.2f}s, pods evicted "
          f"after {evicted_s:.2f}s (eviction timeout {EVICTION}s), replaced after {replaced_s:.2f}s; "
          f"{len(doomed)} pods moved")


async def test_node_lifecycle_on_a_resource_partition_evicts_pods_of_its_tenant_partition(
        manager, dev, apiserver, private_etcd, tmp_path):
    """Scale-out: nodes and leases on a resource partition, pods on a tenant partition (`--tenant-servers`).

    The resource partition is a second API server on its own etcd with a node
    lifecycle controller of its own; the tenant partition is the shared server,
    whose controller manager (under test above) replaces the evicted pods.
    """
    rp = start_apiserver(private_etcd.url, tmp_path / "rp-apiserver.log")
    rp_manager = None
    try:
        rp_manager = Manager(tmp_path / "rp-manager.log", [
            "--kubeconfig", str(write_kubeconfig(tmp_path / "rp.kubeconfig", rp.url)),
            "--tenant-servers", str(write_kubeconfig(tmp_path / "tp.kubeconfig", apiserver.url)),
            "--controllers", "nodelifecycle", "--no-leader-elect",
            "--node-monitor-grace-period", str(GRACE), "--pod-eviction-timeout", "1"])
        async with Client(rp.url) as rpc:
            await asyncio.to_thread(rp_manager.wait_for_log, "started with", 20)
            renewer = LeaseRenewer(rpc)
            live, doomed_node = uniq("rp"), uniq("rp")
            for n in (live, doomed_node):
                await rpc.create(NODES, node_body(n))
                await renewer.add(n)
            renewer.start()
            ns = await namespace(dev)
            where = {"tenant": SYSTEM, "namespace": ns}
            try:
                async with FakeKubelet(dev, SYSTEM, ns, [live, doomed_node], ready_delay=0.05) as kubelet:
                    await dev.create(REPLICASETS, {"metadata": {"name": "spread"}, "spec": {
                        "replicas": 4, "selector": {"matchLabels": {"app": "spread"}},
                        "template": {"metadata": {"labels": {"app": "spread"}},
                                     "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}, **where)

                    async def placed() -> list[Obj]:
                        pods = active(kubelet.pods())
                        on = [p for p in pods if p["spec"].get("nodeName") == doomed_node]
                        return on if len(pods) == 4 and all(is_ready(p) for p in pods) and on else []

                    doomed = await eventually(placed, 20, "pods on both resource-partition nodes")
                    renewer.alive.discard(doomed_node)
                    kubelet.dead.add(doomed_node)
                    await eventually(lambda: _has_taints(rpc, doomed_node, {(UNREACHABLE_TAINT, "NoExecute")}),
                                     GRACE + 10, "the resource partition's node tainted")

                    async def moved() -> bool:
                        pods = {p["metadata"]["name"]: p for p in kubelet.pods()}
                        evicted = all(pods[p["metadata"]["name"]]["metadata"].get("deletionTimestamp")
                                      for p in doomed if p["metadata"]["name"] in pods)
                        live_pods = active(list(pods.values()))
                        return evicted and len(live_pods) == 4 and all(
                            is_ready(p) and p["spec"]["nodeName"] == live for p in live_pods)

                    await eventually(moved, 15, "tenant-partition pods evicted and replaced on the live node")
            finally:
                await renewer.stop()
        assert re.search(r"evicted pod system/\S+/spread-", rp_manager.text())
    finally:
        if rp_manager is not None:
            assert rp_manager.stop() == 0
            assert "Traceback" not in rp_manager.text(), rp_manager.text()[-4000:]
        rp.stop()


async def _all_gone(client: Client, pods: list[Obj], **where: Any) -> bool:
    return all([await gone(client, PODS, p["metadata"]["name"], **where) for p in pods])


async def _has_taints(client: Client, name: str, taints: set[tuple[str, str]]) -> bool:
    return taints <= _taints(await _node(client, name))


# -- endpoints -------------------------------------------------------------------------------------------------


async def test_endpoints_follow_ready_pods(workers, dev):
    nodes, _ = workers
    ns = await namespace(dev)
    where = {"tenant": SYSTEM, "namespace": ns}
    async with FakeKubelet(dev, SYSTEM, ns, nodes, ready_delay=0.05) as kubelet:
        kubelet.unready.add("p2")
        await dev.create(SERVICES, {"metadata": {"name": "svc", "labels": {"team": "x"}}, "spec": {
            "selector": {"app": "ep"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"},
                                                 {"name": "metrics", "port": 9090, "targetPort": 9100}]}}, **where)
        for i in range(3):
            await dev.create(PODS, {"metadata": {"name": f"p{i}", "labels": {"app": "ep"}}, "spec": {"containers": [
                {"name": "c", "image": "nginx", "ports": [{"name": "http", "containerPort": 8080}]}]}}, **where)
        await dev.create(PODS, {"metadata": {"name": "other", "labels": {"app": "no"}},
                                "spec": {"containers": [{"name": "c", "image": "nginx"}]}}, **where)

        async def endpoints(ready: set[str], not_ready: set[str]) -> Obj | None:
            ep = await dev.get(ENDPOINTS, "svc", **where)
            subsets = ep.get("subsets") or []
            got_ready = {a["targetRef"]["name"] for s in subsets for a in s.get("addresses") or []}
            got_not = {a["targetRef"]["name"] for s in subsets for a in s.get("notReadyAddresses") or []}
            return ep if (got_ready, got_not) == (ready, not_ready) else None

        ep = await eventually(lambda: endpoints({"p0", "p1"}, {"p2"}), 15, "2 ready and 1 not-ready address")
        (subset,) = ep["subsets"]
        assert {p["name"]: p["port"] for p in subset["ports"]} == {"http": 8080, "metrics": 9100}
        assert ep["metadata"]["labels"] == {"team": "x"}
        kubelet.unready.discard("p2")
        await eventually(lambda: endpoints({"p0", "p1", "p2"}, set()), 10, "p2 ready")
        await dev.delete(PODS, "p0", **where)
        await eventually(lambda: endpoints({"p1", "p2"}, set()), 10, "p0 gone")
        await dev.delete(SERVICES, "svc", **where)
        await eventually(lambda: gone(dev, ENDPOINTS, "svc", **where), 10, "endpoints deleted with the service")
