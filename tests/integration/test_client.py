"""arktos.client against real API server processes (real etcd), plus a scripted server for rare wire events.

The real server covers CRUD, tenant and short paths, paging, watches, restarts (resume, and 410 Gone
after a restart whose history starts later), several servers behind one informer, leases and events.
A small scripted HTTP server in this process covers what the real one produces only rarely or
slowly: bookmarks (every 60 s), an ERROR 410 in the middle of a stream, 429 and 503 answers.
"""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import BinaryIO

import orjson
import pytest
import yaml
from aiohttp import web

from arktos.api.resources import builtin_registry
from arktos.client import (
    APIError,
    Client,
    ClusterConfig,
    EventRecorder,
    Informer,
    KubeconfigError,
    LeaderElector,
    LeadershipLost,
    TransportError,
    diff,
    load_kubeconfig,
    load_many,
    node_name_index,
    owner_uid_index,
)
from arktos.client._ratelimit import TokenBucket
from arktos.client._store import Store
from arktos.cluster.etcd import free_port

REG = builtin_registry()
PODS = REG.get("", "v1", "pods")
CMS = REG.get("", "v1", "configmaps")
NAMESPACES = REG.get("", "v1", "namespaces")
TENANTS = REG.get("", "v1", "tenants")
NODES = REG.get("", "v1", "nodes")
LEASES = REG.get("coordination.k8s.io", "v1", "leases")
EVENTS = REG.get("", "v1", "events")
DEPLOYMENTS = REG.get("apps", "v1", "deployments")


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def pod(name: str, **labels: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def cm(name: str, **data: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


async def make_tenant(client: Client, tenant: str, *namespaces: str) -> None:
    await client.create(TENANTS, {"metadata": {"name": tenant}})
    for ns in namespaces:
        await client.create(NAMESPACES, {"metadata": {"name": ns}}, tenant=tenant)


async def eventually(check, timeout: float = 10.0, interval: float = 0.05):
    """Poll `check` (sync) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout}s: {check}")
        await asyncio.sleep(interval)


def our_tasks() -> set[asyncio.Task]:
    return {t for t in asyncio.all_tasks() if t.get_name().startswith(("informer-", "lease-", "events-"))}


@pytest.fixture
async def client(apiserver) -> AsyncIterator[Client]:
    async with Client(apiserver.url, component="test") as c:
        yield c


class Server:
    """`arktos apiserver` on a chosen port, started and stopped without blocking the event loop.

    The port is chosen so a test can restart the server where its clients expect it; the loop keeps
    running meanwhile, so the clients see the connection drop as they would in production.
    """

    def __init__(self, etcd_url: str, port: int, log: Path, *extra: str) -> None:
        self.etcd_url, self.port, self.log, self.extra = etcd_url, port, log, extra
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _log_file(self) -> BinaryIO:
        return open(self.log, "ab")  # handed to the child, closed once it has started

    async def start(self) -> Server:
        out = self._log_file()
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "arktos", "apiserver", "--etcd-servers", self.etcd_url,
            "--insecure-port", str(self.port), "--secure-port", "0", "--etcd-compaction-interval", "0",
            *self.extra, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        deadline = time.monotonic() + 30
        async with Client(self.url, retries=0, timeout=1) as probe:
            while time.monotonic() < deadline:
                if self.proc.returncode is not None:
                    raise RuntimeError(f"apiserver exited:\n{self.log.read_text()[-3000:]}")
                try:
                    if await probe.request("GET", "/readyz") == "ok":
                        return self
                except (TransportError, APIError):
                    pass
                await asyncio.sleep(0.05)
        await self.stop()
        raise TimeoutError(f"apiserver not ready in 30s:\n{self.log.read_text()[-3000:]}")

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


# -- pure parts ------------------------------------------------------------------------------------------


def test_paths_for_every_scope():
    c = Client("http://127.0.0.1:1")
    assert c.path(PODS, namespace="ns") == "/api/v1/namespaces/ns/pods"
    assert c.path(PODS, tenant="t", namespace="ns", name="p", subresource="status") == \
        "/api/v1/tenants/t/namespaces/ns/pods/p/status"
    assert c.path(PODS, tenant="all") == "/api/v1/tenants/all/pods"
    assert c.path(PODS) == "/api/v1/pods"
    assert c.path(NAMESPACES, tenant="t", namespace="ignored", name="ns") == "/api/v1/tenants/t/namespaces/ns"
    assert c.path(DEPLOYMENTS, tenant="t", namespace="ns") == "/apis/apps/v1/tenants/t/namespaces/ns/deployments"
    # Kinds outside tenants never get one.
    assert c.path(NODES, tenant="t", name="n1") == "/api/v1/nodes/n1"
    assert c.path(TENANTS, tenant="all", name="t", subresource="status") == "/api/v1/tenants/t/status"
    with pytest.raises(ValueError):
        c.path(PODS, name="p")  # a namespaced object needs its namespace
    with pytest.raises(ValueError):
        c.path(PODS, namespace="ns", name="a/b")
    # The kubeconfig context's tenant is the default.
    assert Client(ClusterConfig.for_url("http://x", tenant="acme")).path(PODS, namespace="ns") == \
        "/api/v1/tenants/acme/namespaces/ns/pods"


def test_diff_and_multi_source_store():
    a1 = {"metadata": {"tenant": "t", "namespace": "n", "name": "a", "resourceVersion": "1"}}
    a2 = {"metadata": {"tenant": "t", "namespace": "n", "name": "a", "resourceVersion": "2"}}
    b = {"metadata": {"tenant": "t", "namespace": "n", "name": "b", "resourceVersion": "1"}}
    c = {"metadata": {"tenant": "t", "namespace": "n", "name": "c", "resourceVersion": "3"}}
    added, updated, deleted = diff({"t/n/a": a1, "t/n/b": b}, {"t/n/a": a2, "t/n/c": c})
    assert added == [c] and updated == [(a1, a2)] and deleted == [b]
    assert diff({"t/n/a": a1}, {"t/n/a": dict(a1)}) == ([], [], [])

    store = Store(2, {"node": node_name_index})
    assert store.replace(0, [a1, b]) == [(None, a1), (None, b)]
    # The same key on the second server stays hidden behind the first, and survives its delete there.
    a_other = {"metadata": {**a1["metadata"], "resourceVersion": "9"}, "spec": {"nodeName": "n1"}}
    assert store.upsert(1, a_other) == (None, None)
    assert store.origin("t/n/a") == 0 and store.by_index("node", "n1") == []
    assert store.remove(0, a1) == (a1, a_other)
    assert store.origin("t/n/a") == 1 and store.by_index("node", "n1") == [a_other]
    # A relist of server 0 that lacks b deletes it; one that has c adds it.
    assert store.replace(0, [c]) == [(b, None), (None, c)]
    assert sorted(store.keys()) == ["t/n/a", "t/n/c"]


async def test_token_bucket_paces_to_qps():
    bucket = TokenBucket(qps=50, burst=5)
    started = time.monotonic()
    await asyncio.gather(*(bucket.acquire() for _ in range(30)))
    elapsed = time.monotonic() - started
    # 25 tokens past the burst at 50/s: never faster; slower only when the machine is busy
    assert 0.45 < elapsed < 2.0, elapsed
    unlimited = TokenBucket(qps=0, burst=1)
    started = time.monotonic()
    await asyncio.gather(*(unlimited.acquire() for _ in range(1000)))
    assert time.monotonic() - started < 0.5  # no pacing at all (generous bound for a busy machine)


def test_kubeconfig_contexts_relative_paths_inline_data_and_lists(tmp_path):
    (tmp_path / "certs").mkdir()
    doc = {
        "apiVersion": "v1", "kind": "Config", "current-context": "tp1",
        "clusters": [
            {"name": "tp1", "cluster": {"server": "https://10.0.0.1:6443/", "certificate-authority": "certs/ca.crt"}},
            {"name": "tp2", "cluster": {"server": "https://10.0.0.2:6443",
                                        "certificate-authority-data": base64.b64encode(b"PEM").decode(),
                                        "insecure-skip-tls-verify": True}},
        ],
        "users": [
            {"name": "admin", "user": {"client-certificate": "certs/admin.crt", "client-key": "/abs/admin.key"}},
            {"name": "bob", "user": {"token": "s3cret", "client-certificate-data": base64.b64encode(b"C").decode(),
                                     "client-key-data": base64.b64encode(b"K").decode()}},
            {"name": "svc", "user": {"tokenFile": "token"}},
        ],
        "contexts": [
            {"name": "tp1", "context": {"cluster": "tp1", "user": "admin", "tenant": "system"}},
            {"name": "bob@tp2", "context": {"cluster": "tp2", "user": "bob", "tenant": "acme", "namespace": "web"}},
            {"name": "svc", "context": {"cluster": "tp1", "user": "svc"}},
            {"name": "broken", "context": {"cluster": "nowhere", "user": "bob"}},
        ],
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    (tmp_path / "token").write_text("tok-1\n")
    cfg = load_kubeconfig(path)
    assert cfg.server == "https://10.0.0.1:6443" and cfg.tenant == "system" and cfg.context == "tp1"
    assert cfg.ca_file == str(tmp_path / "certs/ca.crt") and cfg.client_cert_file == str(tmp_path / "certs/admin.crt")
    assert cfg.client_key_file == "/abs/admin.key" and cfg.namespace is None
    bob = load_kubeconfig(doc, context="bob@tp2")
    assert (bob.tenant, bob.namespace, bob.token, bob.insecure_skip_tls_verify) == ("acme", "web", "s3cret", True)
    assert (bob.ca_data, bob.client_cert_data, bob.client_key_data) == (b"PEM", b"C", b"K")
    svc = load_kubeconfig(path, context="svc")
    assert svc.bearer_token() == "tok-1"
    (tmp_path / "token").write_text("tok-2")
    assert svc.bearer_token() == "tok-2"  # rotated tokens are picked up
    with pytest.raises(KubeconfigError, match="nowhere"):
        load_kubeconfig(path, context="broken")
    with pytest.raises(KubeconfigError, match="not found"):
        load_kubeconfig(path, context="missing")
    second = tmp_path / "rp1.kubeconfig"
    second.write_text(yaml.safe_dump({**doc, "current-context": "bob@tp2"}))
    many = load_many(f"{path}, {second}")
    assert [c.server for c in many] == ["https://10.0.0.1:6443", "https://10.0.0.2:6443"]
    with pytest.raises(KubeconfigError):
        load_many(" , ")


# -- the REST client against the real server -------------------------------------------------------------


async def test_crud_patches_subresources_and_errors_as_api_errors(client):
    t = uniq("tc")
    await make_tenant(client, t, "ns")
    created = await client.create(CMS, {**cm("a", k="v"), "metadata": {"name": "a", "namespace": "ns"}}, tenant=t)
    assert created["metadata"]["tenant"] == t and created["metadata"]["namespace"] == "ns"
    got = await client.get(CMS, "a", tenant=t, namespace="ns")
    assert got["metadata"]["uid"] == created["metadata"]["uid"]

    # update takes tenant/namespace/name from the object; a stale resourceVersion is a Conflict
    got["data"]["k"] = "v2"
    updated = await client.update(CMS, got)
    assert updated["data"] == {"k": "v2"}
    with pytest.raises(APIError) as err:
        await client.update(CMS, got)
    assert err.value.code == 409 and err.value.reason == "Conflict"

    # every patch type
    out = await client.patch(CMS, "a", {"data": {"m": "1"}}, tenant=t, namespace="ns")
    assert out["data"] == {"k": "v2", "m": "1"}
    out = await client.patch(CMS, "a", [{"op": "remove", "path": "/data/m"}], tenant=t, namespace="ns",
                             patch_type="json")
    assert out["data"] == {"k": "v2"}
    out = await client.patch(CMS, "a", {"metadata": {"labels": {"x": "y"}}}, tenant=t, namespace="ns",
                             patch_type="strategic")
    assert out["metadata"]["labels"] == {"x": "y"}
    applied = await client.patch(CMS, "b", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"},
                                            "data": {"owned": "yes"}}, tenant=t, namespace="ns", patch_type="apply",
                                 field_manager="tester")
    assert applied["data"] == {"owned": "yes"}
    assert any(m["manager"] == "tester" and m["operation"] == "Apply" for m in applied["metadata"]["managedFields"])
    with pytest.raises(ValueError):
        await client.patch(CMS, "a", {}, tenant=t, namespace="ns", patch_type="bogus")

    # errors carry the server's Status
    with pytest.raises(APIError) as err:
        await client.get(CMS, "missing", tenant=t, namespace="ns")
    assert (err.value.code, err.value.reason) == (404, "NotFound") and err.value.details["name"] == "missing"
    with pytest.raises(APIError) as err:
        await client.create(CMS, cm("a"), tenant=t, namespace="ns")
    assert (err.value.code, err.value.reason) == (409, "AlreadyExists")
    with pytest.raises(APIError) as err:
        await client.create(CMS, cm("UPPER"), tenant=t, namespace="ns")
    assert (err.value.code, err.value.reason) == (422, "Invalid") and err.value.details["causes"]
    with pytest.raises(APIError) as err:
        await client.list(CMS, tenant=t, namespace="ns", label_selector="a in (")
    assert err.value.code == 400 and err.value.reason == "BadRequest"
    with pytest.raises(APIError) as err:
        await client.delete(CMS, "a", tenant=t, namespace="ns", preconditions={"uid": "wrong"})
    assert err.value.code == 409

    # status, binding and action subresources on a pod
    p = await client.create(PODS, pod("p"), tenant=t, namespace="ns")
    p["status"] = {"phase": "Running"}
    p["spec"]["containers"][0]["image"] = "ignored"
    after = await client.update_status(PODS, p)
    assert after["status"]["phase"] == "Running" and after["spec"]["containers"][0]["image"] == "busybox"
    ok = await client.create_subresource(PODS, "p", "binding", {"target": {"kind": "Node", "name": "n1"}},
                                         tenant=t, namespace="ns")
    assert ok["status"] == "Success"
    vm = {"metadata": {"name": "vm"}, "spec": {"nodeName": "n1", "virtualMachine": {
        "name": "vm", "image": "cirros", "keyPairName": "k"}}}
    await client.create(PODS, vm, tenant=t, namespace="ns")
    action = await client.create_subresource(PODS, "vm", "action", {"kind": "CustomAction", "operation": "reboot",
                                                                    "rebootParams": {"delayInSeconds": 1}},
                                             tenant=t, namespace="ns")
    assert action["details"]["name"].startswith("reboot-")

    # graceful delete: the bound pod stays until deleted with grace 0
    marked = await client.delete(PODS, "p", tenant=t, namespace="ns")
    assert marked["metadata"]["deletionTimestamp"]
    await client.delete(PODS, "p", tenant=t, namespace="ns", grace_period_seconds=0, propagation_policy="Background")
    with pytest.raises(APIError) as err:
        await client.get(PODS, "p", tenant=t, namespace="ns")
    assert err.value.code == 404

    # delete_collection by label
    for i in range(3):
        await client.create(CMS, {"metadata": {"name": f"batch{i}", "labels": {"batch": "1"}}}, tenant=t,
                            namespace="ns")
    gone = await client.delete_collection(CMS, tenant=t, namespace="ns", label_selector="batch=1")
    assert sorted(i["metadata"]["name"] for i in gone["items"]) == ["batch0", "batch1", "batch2"]
    left = await client.list(CMS, tenant=t, namespace="ns")
    assert sorted(i["metadata"]["name"] for i in left["items"]) == ["a", "b"]
    assert (await client.request("GET", "/version"))["major"] == "1"


async def test_short_paths_tenant_paths_and_all_tenants(client, apiserver):
    t = uniq("ts")
    await make_tenant(client, t, "default")
    name = uniq("cm")
    # No tenant: the server uses the caller's (the development port's user is in `system`).
    short = await client.create(CMS, cm(name), namespace="default")
    assert short["metadata"]["tenant"] == "system"
    mine = await client.create(CMS, cm(name), tenant=t, namespace="default")
    assert mine["metadata"]["tenant"] == t and mine["metadata"]["uid"] != short["metadata"]["uid"]
    # A client whose kubeconfig context names the tenant writes there by default.
    async with Client(ClusterConfig.for_url(apiserver.url, tenant=t)) as scoped:
        got = await scoped.get(CMS, name, namespace="default")
        assert got["metadata"]["uid"] == mine["metadata"]["uid"]
    everywhere = await client.list(CMS, tenant="all", field_selector=f"metadata.name={name}")
    assert sorted(i["metadata"]["tenant"] for i in everywhere["items"]) == sorted(["system", t])
    # Cluster-scoped kinds ignore the tenant.
    node = await client.create(NODES, {"metadata": {"name": uniq("node")}}, tenant=t)
    assert "tenant" not in node["metadata"]
    assert (await client.get(TENANTS, t))["status"]["phase"] == "Active"
    with pytest.raises(APIError) as err:
        await client.create(CMS, cm("x"), tenant="all", namespace="default")
    assert err.value.code == 400


async def test_paging(client):
    t = uniq("tp")
    await make_tenant(client, t, "ns")
    for i in range(12):
        await client.create(CMS, cm(f"cm{i:02d}"), tenant=t, namespace="ns")
    first = await client.list(CMS, tenant=t, namespace="ns", limit=5)
    assert len(first["items"]) == 5 and first["metadata"]["continue"]
    pages = [p async for p in client.list_pages(CMS, tenant=t, namespace="ns", limit=5)]
    assert [len(p["items"]) for p in pages] == [5, 5, 2]
    whole = await client.list(CMS, tenant=t, namespace="ns", limit=5, all_pages=True)
    assert [i["metadata"]["name"] for i in whole["items"]] == [f"cm{i:02d}" for i in range(12)]
    assert "continue" not in whole["metadata"] and whole["metadata"]["resourceVersion"]


async def test_watch_from_version_timeout_and_big_objects(client):
    t = uniq("tw")
    await make_tenant(client, t, "ns")
    first = await client.create(CMS, cm("a"), tenant=t, namespace="ns")
    first["data"] = {"k": "v"}
    await client.update(CMS, first)
    big = "x" * 300_000  # far past a stream reader's line limit
    await client.create(CMS, cm("big", blob=big), tenant=t, namespace="ns")
    await client.delete(CMS, "a", tenant=t, namespace="ns")
    seen = []
    async with client.watch(CMS, tenant=t, namespace="ns", resource_version=first["metadata"]["resourceVersion"],
                            timeout_seconds=5) as events:
        async for ev in events:
            seen.append((ev.type, ev.object["metadata"]["name"]))
            if ev.object["metadata"]["name"] == "big":
                assert ev.object["data"]["blob"] == big
            if len(seen) == 3:
                break
    assert seen == [("MODIFIED", "a"), ("ADDED", "big"), ("DELETED", "a")]
    # No version: the current state as ADDED events; the server ends the stream at timeoutSeconds.
    started = time.monotonic()
    events = [ev async for ev in client.watch(CMS, tenant=t, namespace="ns", allow_bookmarks=True,
                                              timeout_seconds=1)]
    assert [ev.object["metadata"]["name"] for ev in events if ev.type != "BOOKMARK"] == ["big"]
    # the server closes with a bookmark at the newest revision, so the next watch can resume from it
    assert events[-1].type == "BOOKMARK" and 0.9 < time.monotonic() - started < 5
    # A watch of one name
    async with client.watch(CMS, tenant=t, namespace="ns", name="big", timeout_seconds=1) as events:
        assert [ev.object["metadata"]["name"] async for ev in events] == ["big"]


async def test_rate_limited_client_bounds_requests_per_second(apiserver):
    async with Client(apiserver.url, qps=20, burst=5) as slow:
        started = time.monotonic()
        await asyncio.gather(*(slow.request("GET", "/version") for _ in range(25)))
        elapsed = time.monotonic() - started
    assert 0.95 < elapsed < 2.5, elapsed  # 20 requests past the burst at 20/s


# -- a scripted server for rare wire events ---------------------------------------------------------------


class Scripted:
    """A tiny HTTP server: each request to a path is answered by the next scripted response."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], list] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.runner: web.AppRunner | None = None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.hold = asyncio.Event()

    def script(self, method: str, path: str, *responses) -> None:
        self.routes.setdefault((method, path), []).extend(responses)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path, dict(request.query)))
        queue = self.routes.get((request.method, request.path)) or []
        if not queue:
            return web.json_response({"kind": "Status", "code": 404, "reason": "NotFound", "message": "unscripted"},
                                     status=404)
        answer = queue.pop(0)
        if isinstance(answer, list):  # a watch stream: frames, then end (or hold the stream open)
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})
            await resp.prepare(request)
            for frame in answer:
                if frame == "HOLD":
                    await self.hold.wait()
                    continue
                await resp.write(orjson.dumps(frame) + b"\n")
            await resp.write_eof()
            return resp
        status, body, headers = answer
        return web.json_response(body, status=status, headers=headers)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, handle_signals=False)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        self.hold.set()
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def scripted() -> AsyncIterator[Scripted]:
    s = Scripted()
    yield s
    await s.stop()


def obj(name: str, rv: int, **extra) -> dict:
    return {"kind": "ConfigMap", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": "ns", "tenant": "t", "resourceVersion": str(rv)}, **extra}


def listing(rv: int, *items: dict) -> tuple:
    return 200, {"kind": "ConfigMapList", "apiVersion": "v1", "metadata": {"resourceVersion": str(rv)},
                 "items": list(items)}, {}


def status(code: int, reason: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason,
            "message": f"scripted {reason}"}


async def test_informer_resumes_from_bookmarks_and_relists_after_gone_mid_stream(scripted):
    path = "/api/v1/tenants/t/namespaces/ns/configmaps"
    a, b, c, d = obj("a", 5), obj("b", 6), obj("c", 11), obj("d", 24)
    a21, a25 = obj("a", 21, data={"v": "21"}), obj("a", 25, data={"v": "25"})
    scripted.script("GET", path,
                    listing(10, a, b),
                    [{"type": "ADDED", "object": c}, {"type": "BOOKMARK", "object": obj("", 20)}],
                    [{"type": "MODIFIED", "object": a21}, {"type": "ERROR", "object": status(410, "Expired")}],
                    listing(30, a25, c, d),
                    ["HOLD"])
    await scripted.start()
    seen: list[tuple] = []
    async with Client(scripted.url) as client:
        informer = Informer(client, CMS, tenant="t", namespace="ns", backoff_cap=0.2)
        informer.add_handler(on_add=lambda o: seen.append(("add", o["metadata"]["name"])),
                             on_update=lambda old, new: seen.append(("update", old["metadata"]["resourceVersion"],
                                                                     new["metadata"]["resourceVersion"])),
                             on_delete=lambda o: seen.append(("delete", o["metadata"]["name"])))
        async with informer:
            await informer.wait_synced(5)
            await eventually(lambda: len(scripted.requests) == 5)
            await eventually(lambda: len(seen) == 7)
        assert not our_tasks()
    assert seen == [("add", "a"), ("add", "b"), ("add", "c"), ("update", "5", "21"),
                    ("delete", "b"), ("update", "21", "25"), ("add", "d")]
    watch_versions = [q.get("resourceVersion") for _, _, q in scripted.requests if q.get("watch")]
    assert watch_versions == ["10", "20", "30"]  # the second watch resumed from the bookmark
    assert all(q.get("allowWatchBookmarks") == "true" for _, _, q in scripted.requests if q.get("watch"))
    assert sorted(informer.keys()) == ["t/ns/a", "t/ns/c", "t/ns/d"]


async def test_retries_only_where_safe(scripted):
    path = "/api/v1/namespaces/ns/configmaps"
    busy = (429, status(429, "TooManyRequests"), {"Retry-After": "0"})
    down = (503, status(503, "ServiceUnavailable"), {})
    scripted.script("GET", path, down, busy, listing(1))
    scripted.script("POST", path, busy, (201, obj("x", 2), {}), down)
    await scripted.start()
    async with Client(scripted.url, retries=3) as client:
        # GET is retried on 503 and 429; 429 means "not processed", so POST is retried on it too ...
        assert (await client.list(CMS, namespace="ns"))["metadata"]["resourceVersion"] == "1"
        assert (await client.create(CMS, cm("x"), namespace="ns"))["metadata"]["name"] == "x"
        # ... but not on a 503, which may come after the write was done.
        with pytest.raises(APIError) as err:
            await client.create(CMS, cm("y"), namespace="ns")
        assert err.value.code == 503 and err.value.reason == "ServiceUnavailable"
    assert [m for m, _, _ in scripted.requests] == ["GET", "GET", "GET", "POST", "POST", "POST"]
    # A refused connection never reached the server: retried until the server is there.
    late = Scripted()
    late.script("POST", path, (201, obj("z", 3), {}))

    async def start_late() -> None:
        await asyncio.sleep(0.3)
        await late.start()

    starter = asyncio.create_task(start_late())
    try:
        async with Client(late.url, retries=8) as client:
            assert (await client.create(CMS, cm("z"), namespace="ns"))["metadata"]["name"] == "z"
    finally:
        await starter
        await late.stop()
    async with Client(f"http://127.0.0.1:{free_port()}", retries=1) as nowhere:
        with pytest.raises(TransportError):
            await nowhere.get(CMS, "x", namespace="ns")


# -- informers against real servers --------------------------------------------------------------------------


async def test_informer_sync_handlers_and_indexers(client):
    t = uniq("ti")
    await make_tenant(client, t, "ns")
    await client.create(PODS, pod("p0", app="web"), tenant=t, namespace="ns")
    await client.create(PODS, pod("other", app="db"), tenant=t, namespace="ns")
    seen: list[tuple] = []

    async def on_update(old, new):  # coroutine handlers are awaited
        await asyncio.sleep(0)
        seen.append(("update", new["metadata"]["name"], new["spec"].get("nodeName")))

    informer = Informer(client, PODS, tenant=t, label_selector="app=web",
                        indexers={"node": node_name_index, "owner": owner_uid_index})
    informer.add_handler(on_add=lambda o: seen.append(("add", o["metadata"]["name"])), on_update=on_update,
                         on_delete=lambda o: seen.append(("delete", o["metadata"]["name"])))
    async with informer:
        await informer.wait_synced(10)
        assert informer.has_synced() and seen == [("add", "p0")]
        owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": str(uuid.uuid4())}
        child = pod("p1", app="web")
        child["metadata"]["ownerReferences"] = [owner]
        await client.create(PODS, child, tenant=t, namespace="ns")
        await client.create_subresource(PODS, "p1", "binding", {"target": {"kind": "Node", "name": "n7"}},
                                        tenant=t, namespace="ns")
        await client.delete(PODS, "p0", tenant=t, namespace="ns", grace_period_seconds=0)
        await eventually(lambda: ("delete", "p0") in seen)
        assert seen == [("add", "p0"), ("add", "p1"), ("update", "p1", "n7"), ("delete", "p0")]
        assert [p["metadata"]["name"] for p in informer.by_index("node", "n7")] == ["p1"]
        assert [p["metadata"]["name"] for p in informer.by_index("owner", owner["uid"])] == ["p1"]
        assert informer.get(f"{t}/ns/p1")["spec"]["nodeName"] == "n7"
        assert informer.get_by("p1", tenant=t, namespace="ns") is informer.get(f"{t}/ns/p1")
        assert informer.origin(f"{t}/ns/p1") is client
        # a handler added late first hears of what is already known
        late: list[str] = []
        informer.add_handler(on_add=lambda o: late.append(o["metadata"]["name"]))
        await eventually(lambda: late == ["p1"])
    assert not our_tasks()


async def test_informer_resumes_across_restarts_and_relists_after_gone(private_etcd, tmp_path):
    port = free_port()
    server = await Server(private_etcd.url, port, tmp_path / "a.log").start()
    seen: list[tuple] = []
    try:
        async with Client(server.url) as client:
            await client.create(NAMESPACES, {"metadata": {"name": "ns"}})
            for name in ("a", "b"):
                await client.create(CMS, cm(name), namespace="ns")
            informer = Informer(client, CMS, namespace="ns", backoff_cap=0.3)
            informer.add_handler(on_add=lambda o: seen.append(("add", o["metadata"]["name"])),
                                 on_update=lambda old, new: seen.append(("update", new["metadata"]["name"],
                                                                         new.get("data"))),
                                 on_delete=lambda o: seen.append(("delete", o["metadata"]["name"])))
            async with informer:
                await informer.wait_synced(10)
                assert sorted(seen) == [("add", "a"), ("add", "b")] and informer.lists == 1

                # Restart on the same port with nothing written meanwhile: the watch resumes, no relist.
                await server.stop()
                await server.start()
                await client.create(CMS, cm("c"), namespace="ns")
                await eventually(lambda: ("add", "c") in seen)
                assert informer.lists == 1

                # Down again; another server on the same etcd changes things; ours comes back with a
                # history that starts after what the informer saw: 410, relist, and the missed changes.
                await server.stop()
                other = await Server(private_etcd.url, free_port(), tmp_path / "b.log").start()
                try:
                    async with Client(other.url) as writer:
                        a = await writer.get(CMS, "a", namespace="ns")
                        a["data"] = {"changed": "yes"}
                        await writer.update(CMS, a)
                        await writer.delete(CMS, "b", namespace="ns")
                        await writer.create(CMS, cm("d"), namespace="ns")
                finally:
                    await other.stop()
                await server.start()
                await eventually(lambda: ("add", "d") in seen, timeout=15)
                assert informer.lists == 2
                assert seen[3:] == [("delete", "b"), ("update", "a", {"changed": "yes"}), ("add", "d")]
                assert sorted(informer.keys()) == ["system/ns/a", "system/ns/c", "system/ns/d"]
            assert not our_tasks()
    finally:
        await server.stop()


async def test_multi_server_informer_tracks_origin(apiserver, private_etcd, tmp_path):
    tp2 = await Server(private_etcd.url, free_port(), tmp_path / "tp2.log").start()
    node = uniq("node")
    t1, t2 = uniq("tenant1"), uniq("tenant2")
    try:
        async with Client(apiserver.url) as c1, Client(tp2.url) as c2:
            await make_tenant(c1, t1, "ns")
            await make_tenant(c2, t2, "ns")
            # What a node agent does: watch the pods bound to it on every tenant partition.
            informer = Informer([c1, c2], PODS, tenant="all", field_selector=f"spec.nodeName={node}")
            async with informer:
                await informer.wait_synced(10)
                for c, t in ((c1, t1), (c2, t2)):
                    await c.create(PODS, pod("web"), tenant=t, namespace="ns")
                    await c.create_subresource(PODS, "web", "binding", {"target": {"kind": "Node", "name": node}},
                                               tenant=t, namespace="ns")
                k1, k2 = f"{t1}/ns/web", f"{t2}/ns/web"
                await eventually(lambda: k1 in informer.store and k2 in informer.store)
                assert informer.origin(k1) is c1 and informer.origin(k2) is c2
                # Status goes back to the partition the pod came from.
                for key in (k1, k2):
                    p = dict(informer.get(key))
                    p["status"] = {**p.get("status", {}), "phase": "Running"}
                    await informer.origin(key).update_status(PODS, p)
                await eventually(lambda: all((informer.get(k).get("status") or {}).get("phase") == "Running"
                                             for k in (k1, k2)))
                with pytest.raises(APIError) as err:
                    await c1.get(PODS, "web", tenant=t2, namespace="ns")
                assert err.value.code in (403, 404)
                # The same key on both partitions: one is shown, and a delete on the other does not hide it.
                same = uniq("same")
                for c in (c1, c2):
                    await c.create(PODS, pod(same), tenant="system", namespace="default")
                    await c.create_subresource(PODS, same, "binding", {"target": {"kind": "Node", "name": node}},
                                               tenant="system", namespace="default")
                key = f"system/default/{same}"
                await eventually(lambda: key in informer.store)
                await eventually(lambda: informer.store.source_items(1).get(key))
                assert informer.origin(key) is c1
                await c1.delete(PODS, same, tenant="system", namespace="default", grace_period_seconds=0)
                await eventually(lambda: informer.origin(key) is c2)
                assert key in informer.store
            assert not our_tasks()
    finally:
        await tp2.stop()


# -- leader election and events ----------------------------------------------------------------------------------


async def test_leader_election_takeover_release_and_loss(client):
    name = uniq("lease")
    timing = {"lease_duration": 1.5, "renew_deadline": 1.0, "retry_period": 0.2}
    a = LeaderElector(client, name, identity="a", **timing)
    b = LeaderElector(client, name, identity="b", **timing)
    await a.acquire()
    assert a.is_leader
    b_task = asyncio.create_task(b.acquire())
    await asyncio.sleep(0.6)
    assert not b_task.done() and b.leader == "a"
    # a stops renewing without releasing (a crash): b takes over once the lease has gone stale.
    await a.abandon()
    started = time.monotonic()
    await asyncio.wait_for(b_task, 5)
    assert 0.5 < time.monotonic() - started < 3.5
    lease = await client.get(LEASES, name, namespace="kube-system")
    assert lease["spec"]["holderIdentity"] == "b" and lease["spec"]["leaseTransitions"] == 1
    assert lease["spec"]["leaseDurationSeconds"] == 2 and lease["spec"]["acquireTime"].endswith("Z")
    # b releases on the way out: a successor starts at once, without waiting for expiry.
    await b.release()
    assert (await client.get(LEASES, name, namespace="kube-system"))["spec"]["holderIdentity"] == ""
    c = LeaderElector(client, name, identity="c", **timing)
    started = time.monotonic()
    stopped = []

    async def work():
        assert c.is_leader
        return "done"

    assert await c.run(work, on_stopped=lambda: stopped.append(True)) == "done"
    assert time.monotonic() - started < 1.0 and stopped == [True]
    # Losing the lease cancels the work: someone else has written the lease meanwhile.
    d = LeaderElector(client, name, identity="d", **timing)
    with pytest.raises(LeadershipLost):
        async with d:
            await client.patch(LEASES, name, {"spec": {"holderIdentity": "intruder"}}, namespace="kube-system")
            await asyncio.sleep(5)
    assert not d.is_leader and d.lost.is_set()
    assert not our_tasks()


async def test_event_recorder_counts_repeats(client):
    t = uniq("tev")
    await make_tenant(client, t, "ns")
    p = await client.create(PODS, pod("p"), tenant=t, namespace="ns")
    node = await client.create(NODES, {"metadata": {"name": uniq("node")}})
    async with EventRecorder(client, "default-scheduler", host="h1") as recorder:
        for _ in range(3):
            recorder.warning(p, "FailedScheduling", "0/%d nodes are available", 3)
        recorder.normal(p, "Scheduled", "Successfully assigned ns/p to n1")
        recorder.normal(node, "Starting", "Starting kubelet.")
        await recorder.flush()
    events = (await client.list(EVENTS, tenant=t, namespace="ns"))["items"]
    by_reason = {e["reason"]: e for e in events}
    assert len(events) == 2 and by_reason["FailedScheduling"]["count"] == 3
    failed = by_reason["FailedScheduling"]
    assert failed["message"] == "0/3 nodes are available" and failed["type"] == "Warning"
    assert failed["involvedObject"]["uid"] == p["metadata"]["uid"] and failed["involvedObject"]["tenant"] == t
    assert failed["source"] == {"component": "default-scheduler", "host": "h1"}
    assert by_reason["Scheduled"]["count"] == 1
    node_events = (await client.list(EVENTS, namespace="default",
                                     field_selector=f"involvedObject.name={node['metadata']['name']}"))["items"]
    assert [e["reason"] for e in node_events] == ["Starting"]
    assert not our_tasks()


async def test_event_recorder_spam_filter_caps_events_per_object(client):
    """A crash loop repeating its event cannot keep etcd busy: past the burst, repeats are dropped."""
    t = uniq("tspam")
    await make_tenant(client, t, "ns")
    looping = await client.create(PODS, pod("looping"), tenant=t, namespace="ns")
    quiet = await client.create(PODS, pod("quiet"), tenant=t, namespace="ns")
    async with EventRecorder(client, "kubelet", host="h1", spam_burst=3) as recorder:
        for _ in range(10):
            recorder.warning(looping, "BackOff", "Back-off restarting failed container c")
        recorder.normal(quiet, "Started", "Started container c")  # another object has its own budget
        await recorder.flush()
        assert recorder.spam_filtered == 7
    events = {e["involvedObject"]["name"]: e for e in (await client.list(EVENTS, tenant=t, namespace="ns"))["items"]}
    assert events["looping"]["count"] == 3 and events["looping"]["reason"] == "BackOff"
    assert events["quiet"]["count"] == 1


# -- TLS from a kubeconfig -------------------------------------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def pki(tmp_path) -> Iterator[Path]:
    d = tmp_path / "pki"
    d.mkdir()
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=test-ca",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             cwd=d)
    for name, subj, ext in (
        ("server", "/CN=apiserver", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
                                    "keyUsage=critical,digitalSignature"),
        ("admin", "/O=system:masters/CN=system:admin", "extendedKeyUsage=clientAuth\n"
                                                       "keyUsage=critical,digitalSignature"),
    ):
        (d / f"{name}.ext").write_text(ext + "\n")
        _openssl("req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subj, cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.crt", "-days", "1", "-extfile", f"{name}.ext", cwd=d)
    yield d


async def test_tls_with_kubeconfig_credentials(etcd, pki, tmp_path):
    port = free_port()
    server = await Server(etcd.url, free_port(), tmp_path / "tls.log", "--secure-port", str(port), "--bind-address",
                          "127.0.0.1", "--tls-cert-file", str(pki / "server.crt"), "--tls-private-key-file",
                          str(pki / "server.key"), "--client-ca-file", str(pki / "ca.crt")).start()
    b64 = lambda p: base64.b64encode(p.read_bytes()).decode()  # noqa: E731
    doc = {"apiVersion": "v1", "kind": "Config", "current-context": "inline",
           "clusters": [{"name": "inline", "cluster": {"server": f"https://127.0.0.1:{port}",
                                                       "certificate-authority-data": b64(pki / "ca.crt")}},
                        {"name": "files", "cluster": {"server": f"https://localhost:{port}",
                                                      "certificate-authority": "pki/ca.crt"}},
                        {"name": "nocheck", "cluster": {"server": f"https://127.0.0.1:{port}",
                                                        "insecure-skip-tls-verify": True}},
                        {"name": "untrusted", "cluster": {"server": f"https://127.0.0.1:{port}"}}],
           "users": [{"name": "inline", "user": {"client-certificate-data": b64(pki / "admin.crt"),
                                                 "client-key-data": b64(pki / "admin.key")}},
                     {"name": "files", "user": {"client-certificate": "pki/admin.crt", "client-key": "pki/admin.key"}}],
           "contexts": [{"name": n, "context": {"cluster": n, "user": "files" if n == "files" else "inline",
                                                "tenant": "system"}}
                        for n in ("inline", "files", "nocheck", "untrusted")]}
    path = tmp_path / "admin.kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    try:
        for context in ("inline", "files", "nocheck"):
            async with Client.from_kubeconfig(path, context, component="tls-test") as c:
                assert (await c.request("GET", "/version"))["major"] == "1", context
                listed = await c.list(NAMESPACES)
                assert "kube-system" in {n["metadata"]["name"] for n in listed["items"]}
        async with Client(load_kubeconfig(path, "untrusted"), retries=0) as c:
            with pytest.raises(TransportError, match=r"(?i)certificate"):
                await c.request("GET", "/version")
    finally:
        await server.stop()
