"""The REST API over plain HTTP: tenant paths, watch semantics, errors as Status."""

from __future__ import annotations

import asyncio
import uuid

import aiohttp
import orjson
import pytest


@pytest.fixture
async def http(apiserver):
    async with aiohttp.ClientSession(apiserver.url) as session:
        yield session


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


async def call(http: aiohttp.ClientSession, method: str, path: str, body=None, *, ctype="application/json",
               raw: bytes | None = None, headers=None):
    data = raw if raw is not None else (orjson.dumps(body) if body is not None else None)
    hdrs = {"Content-Type": ctype} if data is not None else {}
    hdrs.update(headers or {})
    async with http.request(method, path, data=data, headers=hdrs) as r:
        text = await r.read()
        return r.status, (orjson.loads(text) if text and r.content_type == "application/json" else text)


def pod(name: str, **labels: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


async def make_tenant_ns(http, tenant: str, ns: str) -> None:
    code, body = await call(http, "POST", "/api/v1/tenants", {"metadata": {"name": tenant}})
    assert code == 201, body
    code, body = await call(http, "POST", f"/api/v1/tenants/{tenant}/namespaces", {"metadata": {"name": ns}})
    assert code == 201, body


async def test_tenant_paths_for_every_scope(http):
    t = uniq("t")
    await make_tenant_ns(http, t, "ns1")
    # namespaced kind through the tenant path
    code, created = await call(http, "POST", f"/api/v1/tenants/{t}/namespaces/ns1/pods", pod("p1"))
    assert code == 201 and created["metadata"]["tenant"] == t and created["metadata"]["namespace"] == "ns1"
    code, got = await call(http, "GET", f"/api/v1/tenants/{t}/namespaces/ns1/pods/p1")
    assert code == 200 and got["metadata"]["uid"] == created["metadata"]["uid"]
    # tenant-scoped kind (upstream cluster-scoped) inside the tenant
    role = {"metadata": {"name": "reader"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}
    code, body = await call(http, "POST", f"/apis/rbac.authorization.k8s.io/v1/tenants/{t}/clusterroles", role)
    assert code == 201 and body["metadata"]["tenant"] == t, body
    # the same name in the system tenant is a different object
    code, body = await call(http, "GET", f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{role['metadata']['name']}")
    assert code == 404
    # cluster-scoped kinds take no tenant
    code, _ = await call(http, "GET", f"/api/v1/tenants/{t}/nodes")
    assert code == 404
    node = uniq("node")
    code, body = await call(http, "POST", "/api/v1/nodes", {"metadata": {"name": node}})
    assert code == 201 and "tenant" not in body["metadata"]
    # the tenant object and its status subresource
    code, body = await call(http, "GET", f"/api/v1/tenants/{t}")
    assert code == 200 and body["status"]["phase"] == "Active"
    code, body = await call(http, "GET", f"/api/v1/tenants/{t}/status")
    assert code == 200 and body["kind"] == "Tenant"
    # etcd key layout shows through the tenant in the list of the system user across tenants
    code, body = await call(http, "GET", "/api/v1/tenants/all/pods")
    assert code == 200 and any(p["metadata"]["tenant"] == t for p in body["items"])


async def test_one_tenants_objects_never_show_in_anothers_list_or_watch(http):
    a, b = uniq("ta"), uniq("tb")
    await make_tenant_ns(http, a, "default")
    await make_tenant_ns(http, b, "default")
    async with http.get(f"/api/v1/tenants/{b}/pods?watch=true&timeoutSeconds=3") as watch_b:
        assert watch_b.status == 200
        for i in range(3):
            code, _ = await call(http, "POST", f"/api/v1/tenants/{a}/namespaces/default/pods", pod(f"p{i}"))
            assert code == 201
        code, _ = await call(http, "POST", f"/api/v1/tenants/{b}/namespaces/default/pods", pod("mine"))
        assert code == 201
        seen = []
        async for line in watch_b.content:
            event = orjson.loads(line)
            seen.append((event["type"], event["object"]["metadata"]["tenant"], event["object"]["metadata"]["name"]))
            if len(seen) == 1:
                break
    assert seen == [("ADDED", b, "mine")]
    code, listed = await call(http, "GET", f"/api/v1/tenants/{b}/pods")
    assert [p["metadata"]["name"] for p in listed["items"]] == ["mine"]
    code, listed = await call(http, "GET", f"/api/v1/tenants/{a}/namespaces/default/pods")
    assert sorted(p["metadata"]["name"] for p in listed["items"]) == ["p0", "p1", "p2"]


async def test_hashkey_and_field_selectors(http):
    t = uniq("th")
    await make_tenant_ns(http, t, "ns")
    keys = {}
    for i in range(6):
        code, body = await call(http, "POST", f"/api/v1/tenants/{t}/namespaces/ns/pods", pod(f"p{i}"))
        keys[body["metadata"]["name"]] = body["metadata"]["hashKey"]
    assert all(0 <= k < 2**63 for k in keys.values()) and len(set(keys.values())) == 6
    mid = sorted(keys.values())[2]
    code, body = await call(http, "GET", f"/api/v1/tenants/{t}/pods?fieldSelector=metadata.hashkey%3Dlte:{mid}")
    assert code == 200, body
    assert sorted(p["metadata"]["hashKey"] for p in body["items"]) == sorted(k for k in keys.values() if k <= mid)
    code, body = await call(http, "GET", f"/api/v1/tenants/{t}/pods?fieldSelector=metadata.hashkey%3Dgt:{mid}")
    assert sorted(p["metadata"]["hashKey"] for p in body["items"]) == sorted(k for k in keys.values() if k > mid)
    code, body = await call(http, "GET", f"/api/v1/tenants/{t}/pods?fieldSelector=spec.nodeName%3D")
    assert code == 200 and len(body["items"]) == 6
    code, body = await call(http, "GET", f"/api/v1/tenants/{t}/pods?fieldSelector=spec.bogus%3Dx")
    assert code == 400 and body["reason"] == "BadRequest" and "spec.bogus" in body["message"]
    # ownerReferences carry the owner's hashKey
    owner_uid = str(uuid.uuid4())
    child = pod("child")
    child["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs",
                                             "uid": owner_uid, "controller": True}]
    code, body = await call(http, "POST", f"/api/v1/tenants/{t}/namespaces/ns/pods", child)
    assert code == 201
    owner_key = body["metadata"]["ownerReferences"][0]["hashKey"]
    code, body = await call(
        http, "GET", f"/api/v1/tenants/{t}/pods?fieldSelector=metadata.ownerReferences.hashkey.ReplicaSet%3Dlte:"
        f"{owner_key}")
    assert [p["metadata"]["name"] for p in body["items"]] == ["child"]


async def test_pagination_is_consistent(http):
    t = uniq("tp")
    await make_tenant_ns(http, t, "ns")
    for i in range(12):
        await call(http, "POST", f"/api/v1/tenants/{t}/namespaces/ns/configmaps",
                   {"metadata": {"name": f"cm{i:02d}"}, "data": {"i": str(i)}})
    names, token, pages = [], "", 0
    while True:
        url = f"/api/v1/tenants/{t}/namespaces/ns/configmaps?limit=5" + (f"&continue={token}" if token else "")
        code, body = await call(http, "GET", url)
        assert code == 200, body
        pages += 1
        names += [c["metadata"]["name"] for c in body["items"]]
        if pages == 1:
            # A write between pages does not appear in the same list.
            await call(http, "POST", f"/api/v1/tenants/{t}/namespaces/ns/configmaps", {"metadata": {"name": "cm055"}})
        token = body["metadata"].get("continue", "")
        if not token:
            break
    assert names == [f"cm{i:02d}" for i in range(12)] and pages == 3


async def test_watch_from_resource_version_and_bookmarks_and_gone(http):
    t = uniq("tw")
    await make_tenant_ns(http, t, "ns")
    base = f"/api/v1/tenants/{t}/namespaces/ns/configmaps"
    _code, first = await call(http, "POST", base, {"metadata": {"name": "a"}})
    rv = first["metadata"]["resourceVersion"]
    await call(http, "PUT", f"{base}/a", {"metadata": {"name": "a"}, "data": {"k": "v"}})
    await call(http, "DELETE", f"{base}/a")
    events = []
    async with http.get(f"{base}?watch=1&resourceVersion={rv}&timeoutSeconds=2") as r:
        async for line in r.content:
            events.append(orjson.loads(line))
            if len(events) == 2:
                break
    assert [e["type"] for e in events] == ["MODIFIED", "DELETED"]
    assert int(events[1]["object"]["metadata"]["resourceVersion"]) > int(events[0]["object"]["metadata"][
        "resourceVersion"])
    # timeoutSeconds ends the stream
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with http.get(f"{base}?watch=1&timeoutSeconds=1") as r:
        async for _ in r.content:
            pass
    assert 0.9 < loop.time() - started < 5


async def test_watch_from_before_the_servers_history_is_gone_and_data_survives_restart(private_etcd, tmp_path):
    from tests.conftest import start_apiserver

    first = start_apiserver(private_etcd.url, tmp_path / "a.log")
    try:
        async with aiohttp.ClientSession(first.url) as http:
            code, _ = await call(http, "POST", "/api/v1/namespaces", {"metadata": {"name": "ns"}})
            code, cm = await call(http, "POST", "/api/v1/namespaces/ns/configmaps", {"metadata": {"name": "a"}})
            old_rv = cm["metadata"]["resourceVersion"]
            for i in range(3):
                await call(http, "PUT", "/api/v1/namespaces/ns/configmaps/a", {"metadata": {"name": "a"},
                                                                               "data": {"i": str(i)}})
    finally:
        first.stop()
    second = start_apiserver(private_etcd.url, tmp_path / "b.log")
    try:
        async with aiohttp.ClientSession(second.url) as http:
            code, body = await call(http, "GET", "/api/v1/namespaces/ns/configmaps/a")
            assert code == 200 and body["data"] == {"i": "2"}
            # The new server's history starts after old_rv: resuming from there is 410 Gone.
            code, body = await call(http, "GET", f"/api/v1/namespaces/ns/configmaps?watch=1&resourceVersion={old_rv}")
            assert code == 410 and body["reason"] == "Expired" and body["kind"] == "Status"
    finally:
        second.stop()


async def test_optimistic_concurrency_and_generation(http):
    t = uniq("tc")
    await make_tenant_ns(http, t, "ns")
    base = f"/apis/apps/v1/tenants/{t}/namespaces/ns/deployments"
    dep = {"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
        "metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}
    code, created = await call(http, "POST", base, dep)
    assert code == 201 and created["metadata"]["generation"] == 1 and created["spec"]["replicas"] == 1
    stale = created["metadata"]["resourceVersion"]
    created["spec"]["replicas"] = 2
    code, updated = await call(http, "PUT", f"{base}/d", created)
    assert code == 200 and updated["metadata"]["generation"] == 2
    created["spec"]["replicas"] = 3
    code, body = await call(http, "PUT", f"{base}/d", created)
    assert code == 409 and body["reason"] == "Conflict" and stale == created["metadata"]["resourceVersion"]
    # status writes do not bump generation and cannot change the spec
    updated["status"] = {"replicas": 7}
    updated["spec"]["replicas"] = 9
    code, body = await call(http, "PUT", f"{base}/d/status", updated)
    assert code == 200 and body["status"]["replicas"] == 7 and body["spec"]["replicas"] == 2
    assert body["metadata"]["generation"] == 2
    code, scale = await call(http, "GET", f"{base}/d/scale")
    assert code == 200 and scale["kind"] == "Scale" and scale["spec"]["replicas"] == 2


async def test_errors_are_status_objects(http):
    t = uniq("te")
    await make_tenant_ns(http, t, "ns")
    base = f"/api/v1/tenants/{t}/namespaces/ns/configmaps"
    cases = [
        ("POST", base, b"{not json", "application/json", 400, "BadRequest"),
        ("POST", base, b"[1,2]", "application/json", 400, "BadRequest"),
        ("POST", base, b"{}", "application/xml", 415, "UnsupportedMediaType"),
        ("POST", base, b'{"metadata":{"name":"UPPER"}}', "application/json", 422, "Invalid"),
        ("POST", base, b'{"metadata":{"name":"../etc"}}', "application/json", 422, "Invalid"),
        ("GET", f"{base}/missing", None, "", 404, "NotFound"),
        ("GET", "/api/v1/nosuchthing", None, "", 404, "NotFound"),
        ("POST", base, b"{" + b'"a":"' + b"x" * (4 * 1024 * 1024) + b'"}', "application/json", 413,
         "RequestEntityTooLarge"),
        ("PATCH", f"{base}/missing", b"{}", "application/what", 415, "UnsupportedMediaType"),
        ("GET", f"{base}?limit=abc", None, "", 400, "BadRequest"),
        ("GET", f"{base}?labelSelector=a%20in%20(", None, "", 400, "BadRequest"),
    ]
    for method, path, raw, ctype, want_code, want_reason in cases:
        code, body = await call(http, method, path, raw=raw, ctype=ctype)
        assert (code, body.get("reason"), body.get("kind")) == (want_code, want_reason, "Status"), (path, body)
    code, _ = await call(http, "POST", base, {"metadata": {"name": "dup"}})
    code, body = await call(http, "POST", base, {"metadata": {"name": "dup"}})
    assert code == 409 and body["reason"] == "AlreadyExists"
    code, body = await call(http, "POST", base, {"metadata": {"name": "x"}, "data": {"k": 1}})
    assert code in (400, 422) and body["kind"] == "Status"
    # the server still serves after all of it
    code, _ = await call(http, "GET", f"{base}/dup")
    assert code == 200


async def test_finalizers_and_delete_preconditions(http):
    t = uniq("tf")
    await make_tenant_ns(http, t, "ns")
    base = f"/api/v1/tenants/{t}/namespaces/ns/configmaps"
    code, _cm = await call(http, "POST", base, {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}})
    code, body = await call(http, "DELETE", f"{base}/held", {"preconditions": {"uid": "wrong"}})
    assert code == 409
    code, body = await call(http, "DELETE", f"{base}/held")
    assert code == 202 and body["metadata"]["deletionTimestamp"]
    code, body = await call(http, "GET", f"{base}/held")
    assert code == 200
    code, body = await call(http, "PATCH", f"{base}/held", {"metadata": {"finalizers": None}},
                            ctype="application/merge-patch+json")
    assert code == 200, body
    code, _ = await call(http, "GET", f"{base}/held")
    assert code == 404


async def test_binding_and_action_subresources(http):
    t = uniq("tb")
    await make_tenant_ns(http, t, "ns")
    base = f"/api/v1/tenants/{t}/namespaces/ns/pods"
    await call(http, "POST", base, pod("p"))
    code, body = await call(http, "POST", f"{base}/p/binding", {"metadata": {"name": "p"},
                                                                "target": {"kind": "Node", "name": "n1"}})
    assert code == 201 and body["status"] == "Success"
    code, got = await call(http, "GET", f"{base}/p")
    assert got["spec"]["nodeName"] == "n1"
    assert any(c["type"] == "PodScheduled" and c["status"] == "True" for c in got["status"]["conditions"])
    code, body = await call(http, "POST", f"{base}/p/binding", {"target": {"kind": "Node", "name": "n2"}})
    assert code == 409
    # Actions are for scheduled VM pods, with the parameters their operation needs; anything else is
    # refused at once, with the reason, instead of failing later on a node.
    code, body = await call(http, "POST", f"{base}/p/action", {"kind": "CustomAction", "operation": "reboot"})
    assert code == 400 and "pod p is not a VM pod" in body["message"], body
    vm = {"metadata": {"name": "vm"}, "spec": {"virtualMachine": {"name": "vm", "image": "cirros",
                                                                 "keyPairName": "k"}}}
    code, body = await call(http, "POST", base, vm)
    assert code == 201, body
    code, body = await call(http, "POST", f"{base}/vm/action", {"kind": "CustomAction", "operation": "reboot"})
    assert code == 409 and "not scheduled to a node yet" in body["message"], body
    code, body = await call(http, "POST", f"{base}/vm/binding", {"target": {"kind": "Node", "name": "n1"}})
    assert code == 201, body
    for operation, params in (("snapshot", "snapshotParams.snapshotName"), ("restore", "restoreParams.snapshotID")):
        code, body = await call(http, "POST", f"{base}/vm/action", {"kind": "CustomAction", "operation": operation})
        assert code == 422 and body["details"]["causes"][0]["field"] == params, body
    code, body = await call(http, "POST", f"{base}/vm/action", {"kind": "CustomAction", "operation": "shrink"})
    assert code == 422 and "shrink" in body["message"], body
    code, body = await call(http, "POST", f"{base}/vm/action",
                            {"kind": "CustomAction", "operation": "reboot", "rebootParams": {"delayInSeconds": 5}})
    assert code == 201, body
    action_name = body["details"]["name"]
    assert action_name.startswith("reboot-")
    code, action = await call(http, "GET", f"/api/v1/tenants/{t}/namespaces/ns/actions/{action_name}")
    assert code == 200
    assert action["spec"]["nodeName"] == "n1" and action["spec"]["podName"] == "vm"
    assert action["spec"]["rebootAction"] == {"delayInSeconds": 5}
    code, got = await call(http, "GET", f"{base}/vm")
    assert action["spec"]["podID"] == got["metadata"]["uid"]
    code, body = await call(http, "GET", "/api/v1/tenants/all/actions?fieldSelector=spec.nodeName%3Dn1")
    assert code == 200 and [a["metadata"]["name"] for a in body["items"]] == [action_name]
    # a scheduled pod is deleted gracefully: it stays, marked, until its agent confirms
    code, body = await call(http, "DELETE", f"{base}/p")
    assert code == 202 and body["metadata"]["deletionGracePeriodSeconds"] == 30
    code, body = await call(http, "DELETE", f"{base}/p", {"gracePeriodSeconds": 0})
    assert code == 200
    code, _ = await call(http, "GET", f"{base}/p")
    assert code == 404


async def test_discovery_health_version_metrics(http):
    code, body = await call(http, "GET", "/version")
    assert code == 200 and set(body) >= {"major", "minor", "gitVersion", "gitCommit", "gitTreeState", "buildDate",
                                        "goVersion", "compiler", "platform"}
    for path in ("/healthz", "/livez", "/readyz"):
        async with http.get(path) as r:
            assert r.status == 200 and await r.text() == "ok"
    code, body = await call(http, "GET", "/apis")
    assert {"apps", "rbac.authorization.k8s.io", "coordination.k8s.io"} <= {g["name"] for g in body["groups"]}
    async with http.get("/metrics") as r:
        text = await r.text()
    assert 'apiserver_request_total{' in text and 'resource="pods"' in text
    assert "apiserver_request_duration_seconds_bucket" in text


async def test_node_watch_sees_only_its_pods_appear_when_bound(http):
    t = uniq("tn")
    await make_tenant_ns(http, t, "ns")
    base = f"/api/v1/tenants/{t}/namespaces/ns/pods"
    node_a, node_b = uniq("na"), uniq("nb")
    async with http.get(f"/api/v1/tenants/all/pods?watch=1&fieldSelector=spec.nodeName%3D{node_a}"
                        "&timeoutSeconds=5") as watch_a, \
            http.get(f"/api/v1/tenants/all/pods?watch=1&fieldSelector=spec.nodeName%3D{node_b}"
                     "&timeoutSeconds=2") as watch_b:
        for name, node in (("pa", node_a), ("pb", node_b), ("pa2", node_a)):
            code, _ = await call(http, "POST", base, pod(name))
            assert code == 201
            code, _ = await call(http, "POST", f"{base}/{name}/binding", {"target": {"kind": "Node", "name": node}})
            assert code == 201
        code, _ = await call(http, "DELETE", f"{base}/pa", {"gracePeriodSeconds": 0})
        assert code == 200
        seen_a = []
        async for line in watch_a.content:
            event = orjson.loads(line)
            seen_a.append((event["type"], event["object"]["metadata"]["name"]))
            if len(seen_a) == 3:
                break
        # node B's watch ends by its timeout; everything it got is in the body
        body_b = await watch_b.content.read()
        seen_b = [(e["type"], e["object"]["metadata"]["name"]) for e in map(orjson.loads, body_b.splitlines())]
    # Binding turns an unscheduled pod into one of the node's: the node's watch sees it ADDED.
    assert seen_a == [("ADDED", "pa"), ("ADDED", "pa2"), ("DELETED", "pa")]
    assert seen_b == [("ADDED", "pb")]


async def test_generate_name_and_delete_collection(http):
    t = uniq("tg")
    await make_tenant_ns(http, t, "ns")
    base = f"/api/v1/tenants/{t}/namespaces/ns/configmaps"
    names = set()
    for _ in range(5):
        code, body = await call(http, "POST", base, {"metadata": {"generateName": "job-", "labels": {"batch": "1"}}})
        assert code == 201 and body["metadata"]["name"].startswith("job-") and len(body["metadata"]["name"]) == 9
        names.add(body["metadata"]["name"])
    assert len(names) == 5
    await call(http, "POST", base, {"metadata": {"name": "keep", "labels": {"batch": "2"}}})
    code, body = await call(http, "DELETE", f"{base}?labelSelector=batch%3D1")
    assert code == 200 and {i["metadata"]["name"] for i in body["items"]} == names
    code, body = await call(http, "GET", base)
    assert [i["metadata"]["name"] for i in body["items"]] == ["keep"]


async def test_admission_tenant_and_namespace_lifecycle(http):
    t = uniq("tl")
    code, body = await call(http, "POST", f"/api/v1/tenants/{t}/namespaces", {"metadata": {"name": "ns"}})
    assert code == 404 and body["reason"] == "NotFound" and f'tenants "{t}"' in body["message"]
    await make_tenant_ns(http, t, "ns")
    code, body = await call(http, "POST", f"/api/v1/tenants/{t}/namespaces/nope/pods", pod("p"))
    assert code == 404 and 'namespaces "nope" not found' in body["message"]
    code, created = await call(http, "POST", f"/api/v1/tenants/{t}/namespaces/ns/pods", pod("p"))
    assert code == 201 and created["spec"]["serviceAccountName"] == "default"
    # a namespace holding a finalizer stays Terminating; nothing new may be created in it
    code, body = await call(http, "DELETE", f"/api/v1/tenants/{t}/namespaces/ns")
    assert code == 202 and body["status"]["phase"] == "Terminating"
    code, body = await call(http, "POST", f"/api/v1/tenants/{t}/namespaces/ns/pods", pod("late"))
    assert code == 403 and "being terminated" in body["message"]
    # the standard namespaces and the system tenant cannot be deleted
    code, body = await call(http, "DELETE", "/api/v1/namespaces/kube-system")
    assert code == 403 and body["reason"] == "Forbidden"
    code, body = await call(http, "DELETE", "/api/v1/tenants/system")
    assert code == 403
    # the namespace controller's last step: empty spec.finalizers through finalize, and it is gone
    code, ns = await call(http, "GET", f"/api/v1/tenants/{t}/namespaces/ns")
    ns["spec"]["finalizers"] = []
    code, body = await call(http, "PUT", f"/api/v1/tenants/{t}/namespaces/ns/finalize", ns)
    assert code == 200, body
    code, _ = await call(http, "GET", f"/api/v1/tenants/{t}/namespaces/ns")
    assert code == 404


async def test_service_cluster_ips_are_unique_and_released(http):
    t = uniq("ts")
    await make_tenant_ns(http, t, "ns")
    base = f"/api/v1/tenants/{t}/namespaces/ns/services"

    def svc(name: str, **spec):
        return {"metadata": {"name": name}, "spec": {"ports": [{"port": 80}], **spec}}

    code, a = await call(http, "POST", base, svc("a"))
    code, b = await call(http, "POST", base, svc("b", type="NodePort"))
    assert code == 201, b
    ip_a, ip_b = a["spec"]["clusterIP"], b["spec"]["clusterIP"]
    assert ip_a != ip_b and ip_a.startswith("10.0.0.") and a["spec"]["clusterIPs"] == [ip_a]
    assert a["spec"]["ipFamilies"] == ["IPv4"] and a["spec"]["internalTrafficPolicy"] == "Cluster"
    assert 30000 <= b["spec"]["ports"][0]["nodePort"] <= 32767
    code, body = await call(http, "POST", base, svc("c", clusterIP=ip_a))
    assert code == 422 and "already allocated" in body["message"]
    code, body = await call(http, "POST", base, svc("d", clusterIP="None"))
    assert code == 201 and body["spec"]["clusterIP"] == "None"
    await call(http, "DELETE", f"{base}/a")
    for _ in range(50):  # released once the deletion is seen by the watch cache
        code, body = await call(http, "POST", base, svc("c", clusterIP=ip_a))
        if code == 201:
            break
        await asyncio.sleep(0.05)
    assert code == 201 and body["spec"]["clusterIP"] == ip_a


async def test_custom_resources_prune_unknown_fields_with_a_warning_or_refuse_them_when_strict(http):
    group = f"{uniq('g')}.example.com"
    crd = {"metadata": {"name": f"gizmos.{group}"}, "spec": {
        "group": group, "scope": "Namespaced", "names": {"plural": "gizmos", "kind": "Gizmo"},
        "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
            "type": "object", "properties": {"spec": {"type": "object", "properties": {
                "size": {"type": "integer", "minimum": 0}}}}}}}]}}
    code, body = await call(http, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    assert code == 201, body
    base = f"/apis/{group}/v1/namespaces/default/gizmos"
    for _ in range(100):
        code, _ = await call(http, "GET", base)
        if code == 200:
            break
        await asyncio.sleep(0.05)
    gizmo = {"apiVersion": f"{group}/v1", "kind": "Gizmo", "metadata": {"name": "g1"},
             "spec": {"size": 2, "extra": "x"}, "top": 1}
    async with http.post(base, data=orjson.dumps(gizmo), headers={"Content-Type": "application/json"}) as r:
        assert r.status == 201
        warnings = r.headers.getall("Warning", [])
        stored = orjson.loads(await r.read())
    assert stored["spec"] == {"size": 2} and "top" not in stored
    assert any('unknown field \\"spec.extra\\"' in w for w in warnings), warnings
    code, body = await call(http, "POST", base + "?fieldValidation=Strict", {**gizmo, "metadata": {"name": "g2"}})
    assert code == 400 and "spec.extra" in body["message"]
    code, body = await call(http, "POST", base, {**gizmo, "metadata": {"name": "g3"}, "spec": {"size": -1}})
    assert code == 422 and "greater than or equal to 0" in body["message"]
