"""The controller manager as a real process against real API servers (real etcd).

`python -m arktos controller-manager` runs against the HTTPS server of the
`secure` fixture, as `system:kube-controller-manager` with a client
certificate (so its RBAC is exercised too), signing tokens with the
cluster's service-account key.  The tests drive the plain-HTTP development
server, which shares the etcd, and look at the results there, on the secure
server (tokens), and directly in etcd (nothing of a deleted tenant remains).
Leader election gets a private etcd and server, so its two managers compete
for a lease nobody else touches.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from arktos.api.registry import ResourceInfo, Scope
from arktos.api.resources import builtin_registry
from arktos.client import APIError, Client, ClusterConfig
from arktos.controllers.manager import select_controllers
from arktos.controllers.queue import QueueShutDown, WorkQueue
from arktos.storage.etcd import EtcdStore
from tests.conftest import ComponentProc, eventually, start_apiserver, write_dev_kubeconfig

REG = builtin_registry()
TENANTS = REG.get("", "v1", "tenants")
NAMESPACES = REG.get("", "v1", "namespaces")
CONFIGMAPS = REG.get("", "v1", "configmaps")
SECRETS = REG.get("", "v1", "secrets")
PODS = REG.get("", "v1", "pods")
SERVICES = REG.get("", "v1", "services")
SERVICE_ACCOUNTS = REG.get("", "v1", "serviceaccounts")
SERVICES_INFO = REG.get("", "v1", "services")
LEASES = REG.get("coordination.k8s.io", "v1", "leases")
DEPLOYMENTS = REG.get("apps", "v1", "deployments")
ROLES = REG.get("rbac.authorization.k8s.io", "v1", "roles")
CLUSTER_ROLES = REG.get("rbac.authorization.k8s.io", "v1", "clusterroles")
CLUSTER_ROLE_BINDINGS = REG.get("rbac.authorization.k8s.io", "v1", "clusterrolebindings")
CRDS = REG.get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
STANDARD = ("default", "kube-system", "kube-public")
SA_TOKEN = "kubernetes.io/service-account-token"


def uniq(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:6]}"


# -- processes ------------------------------------------------------------------------------


def Manager(log: Path, args: list[str]) -> ComponentProc:
    """One `arktos controller-manager` process and its log."""
    return ComponentProc("controller-manager", log, args)


write_kubeconfig = write_dev_kubeconfig


@pytest.fixture(scope="module")
def manager(secure, apiserver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Manager]:
    d = tmp_path_factory.mktemp("controller-manager")
    cert = secure.pki.client("system:kube-controller-manager")
    kubeconfig = secure.kubeconfig("controller-manager", cert=cert)
    m = Manager(d / "controller-manager.log", [
        "--kubeconfig", str(kubeconfig),
        "--service-account-private-key-file", str(secure.pki.sa_key),
        "--root-ca-file", str(secure.pki.ca.cert),
        "--tenant-deletion-grace-period", "4",
        "--concurrent-workers", "8",
    ])
    m.wait_for_log(r"started with \d+ workers[\s\S]*started with[\s\S]*started with[\s\S]*started with")
    yield m
    code = m.stop()
    text = m.text()
    assert code == 0, text[-4000:]
    assert "Traceback" not in text, text[-8000:]
    assert "controller manager stopped" in text


@pytest.fixture
async def dev(apiserver) -> Any:
    # Unpaced, so filling a tenant measures the server rather than the client's token bucket.
    async with Client(apiserver.url, qps=5000, burst=5000) as c:
        yield c


async def gone(client: Client, info, name: str, **kw) -> bool:
    try:
        await client.get(info, name, **kw)
    except APIError as exc:
        if exc.code == 404:
            return True
        raise
    return False


async def new_tenant(client: Client, name: str | None = None) -> str:
    """A tenant, once the tenant controller has given it its standard namespaces."""
    name = name or uniq("ct")
    await client.create(TENANTS, {"metadata": {"name": name}})

    async def ready() -> bool:
        names = {n["metadata"]["name"] for n in (await client.list(NAMESPACES, tenant=name))["items"]}
        return set(STANDARD) <= names

    await eventually(ready, 15, f"namespaces of tenant {name}")
    return name


async def etcd_keys_of(etcd_url: str, tenant: str) -> list[str]:
    """Every etcd key that belongs to `tenant`, read straight from etcd."""
    store = EtcdStore([etcd_url])
    await store.start()
    try:
        keys: list[str] = []
        start: str | None = None
        revision = 0
        while True:
            kvs, revision, more = await store.list("/registry/", revision=revision, limit=5000, start_key=start)
            keys += [kv.key for kv in kvs]
            if not more:
                break
            start = keys[-1] + "\x00"
        return [k for k in keys if f"/{tenant}/" in k or k.endswith(f"/{tenant}")]
    finally:
        await store.close()


def jwt_claims(token: str) -> dict:
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


# -- the runner's parts, in process ------------------------------------------------------------


async def test_work_queue_dedups_keys_and_never_hands_one_key_to_two_workers():
    q = WorkQueue("test", base_delay=0.01, max_delay=0.05)
    q.add("a")
    q.add("a")
    q.add("b")
    assert len(q) == 2
    assert await q.get() == "a"
    q.add("a")  # changed while being synced: remembered, not handed out twice
    assert len(q) == 1
    assert await q.get() == "b"
    q.done("b")
    q.done("a")
    assert await q.get() == "a"  # back once its sync is done
    q.done("a")
    delays = [q.add_rate_limited("c") for _ in range(5)]
    assert delays[0] < delays[1] < delays[2] and max(delays) <= 0.05  # exponential, capped
    assert q.add_rate_limited("c", max_delay=0.001) <= 0.001
    assert await asyncio.wait_for(q.get(), 1) == "c"
    q.done("c")
    q.forget("c")
    assert q.num_requeues("c") == 0
    q.shut_down()
    with pytest.raises(QueueShutDown):
        await q.get()


def test_controller_selection_uses_kube_controller_manager_syntax():
    everything = select_controllers("*")
    assert everything == ["tenant", "namespace", "serviceaccount", "token", "root-ca-cert-publisher", "replicaset",
                          "deployment", "daemonset", "statefulset", "job", "cronjob", "garbagecollector",
                          "nodelifecycle", "podgc", "endpoints", "resourcequota"]
    assert select_controllers("*,-token") == [n for n in everything if n != "token"]
    assert select_controllers("namespace,tenant") == ["tenant", "namespace"]
    with pytest.raises(ValueError, match="unknown controller"):
        select_controllers("tenant,replicaset-typo")


# -- tenant creation, service accounts, tokens ---------------------------------------------------


async def test_new_tenant_gets_namespaces_policy_and_service_account_tokens(manager, dev, secure):
    # The session's etcd holds every earlier test's tenants, which a fresh controller manager works through
    # first; the latency measured is a running manager's, so a first tenant waits out that backlog.
    warm = await new_tenant(dev)

    async def warmed_up() -> bool:
        sa = await dev.get(SERVICE_ACCOUNTS, "default", tenant=warm, namespace="default")
        return bool(sa.get("secrets"))
    await eventually(warmed_up, 90, "the controller manager's first tenant")
    started = time.monotonic()
    t = await new_tenant(dev)

    async def provisioned() -> dict[str, dict]:
        role = await dev.get(CLUSTER_ROLES, "system:tenant-admin", tenant=t)
        binding = await dev.get(CLUSTER_ROLE_BINDINGS, "system:tenant-admin", tenant=t)
        assert role["rules"] == [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]
        assert binding["subjects"][0]["name"] == "admin" and binding["roleRef"]["name"] == "system:tenant-admin"
        out = {}
        for ns in STANDARD:
            sa = await dev.get(SERVICE_ACCOUNTS, "default", tenant=t, namespace=ns)
            refs = [r["name"] for r in sa.get("secrets") or []]
            assert refs, f"{ns}/default lists no token secret yet"
            out[ns] = (sa, await dev.get(SECRETS, refs[0], tenant=t, namespace=ns))
        # Its own kubernetes Service (its pods resolve kubernetes.default.svc in its zone), at an allocated ClusterIP.
        svc = await dev.get(SERVICES_INFO, "kubernetes", tenant=t, namespace="default")
        assert svc["spec"]["ports"][0]["port"] == 443 and svc["spec"]["ports"][0]["name"] == "https"
        assert svc["spec"]["clusterIP"] not in ("", "None", "10.0.0.1")
        return out

    found = await eventually(provisioned, 15, "tenant policy, service accounts and token secrets")
    elapsed = time.monotonic() - started
    print(f"\ntenant {t}: namespaces, policy, service accounts and tokens in {elapsed:.2f}s")
    assert elapsed < 10
    roles = {r["metadata"]["name"] for r in (await dev.list(CLUSTER_ROLES, tenant=t))["items"]}
    assert {"admin", "edit", "view", "system:discovery"} <= roles
    ca_pem = await asyncio.to_thread(Path(secure.pki.ca.cert).read_text)
    for ns, (sa, secret) in found.items():
        assert secret["type"] == SA_TOKEN
        ann = secret["metadata"]["annotations"]
        assert ann["kubernetes.io/service-account.name"] == "default"
        assert ann["kubernetes.io/service-account.uid"] == sa["metadata"]["uid"]
        data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
        assert data["namespace"] == ns
        assert data["ca.crt"] == ca_pem
        claims = jwt_claims(data["token"])
        assert claims["kubernetes.io/serviceaccount/tenant"] == t
        assert claims["sub"] == f"system:serviceaccount:{ns}:default"
        assert claims["kubernetes.io/serviceaccount/secret.name"] == secret["metadata"]["name"]

    # The root CA publisher: kube-root-ca.crt in every namespace, and back when deleted or changed.
    async def root_ca(ns: str, want: str = ca_pem) -> bool:
        cm = await dev.get(CONFIGMAPS, "kube-root-ca.crt", tenant=t, namespace=ns)
        return cm["data"] == {"ca.crt": want}

    for ns in STANDARD:
        await eventually(lambda ns=ns: root_ca(ns), 10, f"kube-root-ca.crt in {ns}")
    await dev.delete(CONFIGMAPS, "kube-root-ca.crt", tenant=t, namespace="default")
    await eventually(lambda: root_ca("default"), 10, "kube-root-ca.crt back after its deletion")
    await dev.patch(CONFIGMAPS, "kube-root-ca.crt", {"data": {"ca.crt": "forged"}}, tenant=t, namespace="default")
    await eventually(lambda: root_ca("default"), 10, "kube-root-ca.crt put back after a change")

    # The token is a credential on the secure server: discovery is open to the tenant's signed-in users,
    # the tenant's pods are not (authenticated, then refused by RBAC), and a garbage token is nobody.
    sa, secret = found["kube-public"]
    token = base64.b64decode(secret["data"]["token"]).decode()
    cfg = ClusterConfig.for_url(secure.url, ca_file=str(secure.pki.ca.cert), token=token)
    async with Client(cfg) as as_sa:
        assert (await as_sa.request("GET", "/api"))["kind"] == "APIVersions"
        with pytest.raises(APIError) as denied:
            await as_sa.request("GET", f"/api/v1/tenants/{t}/namespaces/default/pods")
        assert denied.value.code == 403
    async with Client(ClusterConfig.for_url(secure.url, ca_file=str(secure.pki.ca.cert), token=token + "x")) as bad:
        with pytest.raises(APIError) as unauthorized:
            await bad.request("GET", "/api")
        assert unauthorized.value.code == 401

    # Deleting the account revokes the token and removes its secret; the service-account controller
    # brings a new `default` account back, with a new token that works.
    await dev.delete(SERVICE_ACCOUNTS, "default", tenant=t, namespace="kube-public")

    async def revoked() -> bool:
        async with Client(cfg) as as_old:
            try:
                await as_old.request("GET", "/api")
            except APIError as exc:
                return exc.code == 401
        return False

    await eventually(revoked, 10, "the old token rejected")
    await eventually(lambda: gone(dev, SECRETS, secret["metadata"]["name"], tenant=t, namespace="kube-public"),
                     10, "the old token secret deleted")

    async def replaced() -> str:
        new_sa = await dev.get(SERVICE_ACCOUNTS, "default", tenant=t, namespace="kube-public")
        assert new_sa["metadata"]["uid"] != sa["metadata"]["uid"]
        refs = [r["name"] for r in new_sa.get("secrets") or []]
        assert refs
        new_secret = await dev.get(SECRETS, refs[0], tenant=t, namespace="kube-public")
        return base64.b64decode(new_secret["data"]["token"]).decode()

    new_token = await eventually(replaced, 10, "a new default service account with a token")
    async with Client(ClusterConfig.for_url(secure.url, ca_file=str(secure.pki.ca.cert), token=new_token)) as c:
        assert (await c.request("GET", "/api"))["kind"] == "APIVersions"
    await dev.delete(TENANTS, t)


# -- namespace deletion -----------------------------------------------------------------------


async def test_deleting_a_namespace_removes_its_content_and_then_the_namespace(manager, dev, etcd):
    t = await new_tenant(dev)
    await dev.create(NAMESPACES, {"metadata": {"name": "doomed"}}, tenant=t)
    await dev.create(NAMESPACES, {"metadata": {"name": "kept"}}, tenant=t)
    ns = {"tenant": t, "namespace": "doomed"}
    creates = [dev.create(CONFIGMAPS, {"metadata": {"name": f"cm{i}"}, "data": {"i": str(i)}}, **ns) for i in range(20)]
    creates += [dev.create(SECRETS, {"metadata": {"name": f"s{i}"}, "stringData": {"k": "v"}}, **ns) for i in range(5)]
    creates += [dev.create(PODS, {"metadata": {"name": f"p{i}"},
                                  "spec": {"containers": [{"name": "c", "image": "busybox"}]}}, **ns) for i in range(5)]
    creates.append(dev.create(SERVICES, {"metadata": {"name": "svc"},
                                         "spec": {"clusterIP": "None", "ports": [{"port": 80}]}}, **ns))
    creates.append(dev.create(LEASES, {"metadata": {"name": "l"}, "spec": {"holderIdentity": "x"}}, **ns))
    creates.append(dev.create(CONFIGMAPS, {"metadata": {"name": "survivor"}}, tenant=t, namespace="kept"))
    await asyncio.gather(*creates)

    started = time.monotonic()
    deleted = await dev.delete(NAMESPACES, "doomed", tenant=t)
    assert deleted["status"]["phase"] == "Terminating"
    await eventually(lambda: gone(dev, NAMESPACES, "doomed", tenant=t), 15, "namespace doomed deleted")
    print(f"\nnamespace with 33 objects deleted in {time.monotonic() - started:.2f}s")
    assert not [k for k in await etcd_keys_of(etcd.url, t) if f"/{t}/doomed/" in k]
    # Its neighbour is untouched.
    assert (await dev.get(CONFIGMAPS, "survivor", tenant=t, namespace="kept"))["metadata"]["name"] == "survivor"
    await dev.delete(TENANTS, t)


# -- tenant deletion ----------------------------------------------------------------------------


def widget_crd(group: str) -> dict:
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                     "type": "object", "properties": {"spec": {"type": "object",
                                                               "x-kubernetes-preserve-unknown-fields": True}}}}}]},
    }


async def test_deleting_a_tenant_with_1000_objects_leaves_nothing_in_etcd(manager, dev, etcd):
    t = await new_tenant(dev)
    group = f"{t}.example.com"
    await dev.create(CRDS, widget_crd(group), tenant=t)

    widgets = ResourceInfo(group, "v1", "Widget", "widgets", Scope.NAMESPACE)

    async def served() -> bool:
        # A tenant's own CRD is served in that tenant only (and discovered only by its users).
        return (await dev.list(widgets, tenant=t, namespace="default"))["kind"] == "WidgetList"

    await eventually(served, 10, "the widget CRD served")
    namespaces = ["default", "apps", "data", "web"]
    for ns in namespaces[1:]:
        await dev.create(NAMESPACES, {"metadata": {"name": ns}}, tenant=t)

    def body(kind: str, i: int) -> tuple[Any, dict]:
        name = f"{kind}-{i}"
        meta = {"name": name, "labels": {"app": "bulk"}}
        if kind == "cm":
            return CONFIGMAPS, {"metadata": meta, "data": {"i": str(i)}}
        if kind == "secret":
            return SECRETS, {"metadata": meta, "stringData": {"password": "x" * 32}}
        if kind == "pod":
            return PODS, {"metadata": meta, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
        if kind == "svc":
            return SERVICES, {"metadata": meta, "spec": {"clusterIP": "None", "ports": [{"port": 80}]}}
        if kind == "deploy":
            return DEPLOYMENTS, {"metadata": meta, "spec": {
                "replicas": 1, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}},
                             "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}
        if kind == "role":
            return ROLES, {"metadata": meta, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}
        return widgets, {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": meta, "spec": {"size": i}}

    plan = [("cm", 300), ("secret", 150), ("pod", 150), ("svc", 100), ("deploy", 100), ("role", 100),
            ("widget", 100)]
    sem = asyncio.Semaphore(64)

    async def create(kind: str, i: int) -> None:
        info, obj = body(kind, i)
        async with sem:
            await dev.create(info, obj, tenant=t, namespace=namespaces[i % len(namespaces)])

    t0 = time.monotonic()
    await asyncio.gather(*(create(kind, i) for kind, n in plan for i in range(n)))
    create_s = time.monotonic() - t0
    await dev.create(CLUSTER_ROLES, {"metadata": {"name": "bulk-reader"},
                                     "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]},
                     tenant=t)
    before = await etcd_keys_of(etcd.url, t)
    assert len(before) > 1000

    started = time.monotonic()
    await dev.delete(TENANTS, t)
    await eventually(lambda: gone(dev, TENANTS, t), 60, f"tenant {t} deleted")
    took = time.monotonic() - started
    left = await etcd_keys_of(etcd.url, t)
    print(f"\ntenant {t}: {len(before)} keys (1,000 objects of 7 kinds + namespaces, policy, service accounts, "
          f"tokens), created in {create_s:.2f}s, deleted in {took:.2f}s")
    assert await gone(dev, CRDS, f"widgets.{group}", tenant=t)
    # The standard namespaces included: the API server lets a terminating tenant's ones go.
    assert left == [], left[:20]


async def test_tenant_deletion_is_never_stuck_on_finalizers_nobody_removes(manager, dev, etcd):
    t = await new_tenant(dev)
    await dev.create(CONFIGMAPS, {"metadata": {"name": "held", "finalizers": ["example.com/never"]}},
                     tenant=t, namespace="default")
    # A pod on a node that will never confirm it stopped: graceful deletion would wait forever.
    await dev.create(PODS, {"metadata": {"name": "orphan"}, "spec": {
        "nodeName": "no-such-node", "containers": [{"name": "c", "image": "busybox"}]}},
        tenant=t, namespace="default")
    await dev.create(CLUSTER_ROLES, {"metadata": {"name": "held", "finalizers": ["example.com/never"]}, "rules": []},
                     tenant=t)
    started = time.monotonic()
    await dev.delete(TENANTS, t)
    await eventually(lambda: gone(dev, TENANTS, t), 30, f"tenant {t} deleted")
    took = time.monotonic() - started
    # Not before the grace period (4 s in this manager): finalizers are stripped only as a last resort.
    assert took >= 3.5, took
    assert took < 10, took  # and soon after it
    text = manager.text()
    assert re.search(rf"{t}: tenant still holds .*configmaps default/held \(finalizers", text)
    assert re.search(rf"FORCED: removing finalizers \['example.com/never'\] from configmaps {t}/default/held", text)
    assert re.search(rf"FORCED: removing finalizers .* from clusterroles.rbac.authorization.k8s.io {t}/held", text)
    assert re.search(rf"FORCED: deleting pods {t}/default/orphan with grace period 0", text)
    assert await etcd_keys_of(etcd.url, t) == []


# -- leader election ------------------------------------------------------------------------------


async def test_only_the_leader_acts_and_a_standby_takes_over(private_etcd, tmp_path: Path):
    server = start_apiserver(private_etcd.url, tmp_path / "apiserver.log")
    kubeconfig = write_kubeconfig(tmp_path / "dev.kubeconfig", server.url)
    args = ["--kubeconfig", str(kubeconfig), "--controllers", "tenant,namespace",
            "--leader-elect-lease-duration", "3", "--leader-elect-renew-deadline", "2",
            "--leader-elect-retry-period", "0.5"]
    a = Manager(tmp_path / "a.log", args)
    a.wait_for_log("leading: starting controllers")
    b = Manager(tmp_path / "b.log", args)
    try:
        b.wait_for_log("waiting to become leader")
        async with Client(server.url) as c:
            lease = await c.get(LEASES, "arktos-controller-manager", tenant="system", namespace="kube-system")
            assert lease["spec"]["holderIdentity"] in a.text()
            t1 = await new_tenant(c)
            # The log line follows the namespaces (the policy objects come in between).
            await asyncio.to_thread(a.wait_for_log, f"tenant {t1} provisioned", 10)
            await asyncio.sleep(1.0)  # b had every chance to act, and must not have
            assert "leading" not in b.text() and t1 not in b.text()

            killed = time.monotonic()
            a.stop(signal.SIGKILL)  # a crash: no lease release
            await asyncio.to_thread(b.wait_for_log, "leading: starting controllers", 15)
            takeover = time.monotonic() - killed
            print(f"\nstandby took over {takeover:.2f}s after the leader was killed (lease duration 3s)")
            assert takeover < 8
            t2 = await new_tenant(c)
            await asyncio.to_thread(b.wait_for_log, f"tenant {t2} provisioned", 10)
            assert t2 not in a.text()

        # A clean stop hands the lease back at once.
        assert b.stop() == 0
        async with Client(server.url) as c:
            lease = await c.get(LEASES, "arktos-controller-manager", tenant="system", namespace="kube-system")
            assert lease["spec"]["holderIdentity"] == ""
        assert "Traceback" not in b.text(), b.text()[-4000:]
    finally:
        for m in (a, b):
            m.stop(signal.SIGKILL)
        server.stop()
        if os.environ.get("ARKTOS_TEST_LOGS"):
            print(a.text(), b.text())
