"""Bugs found in review, each reproduced against a real server, so they stay fixed."""

from __future__ import annotations

import asyncio
import base64
import time

import aiohttp
import orjson
import pytest

from arktos.storage.etcd import EtcdStore
from tests.integration.test_api_http import call, make_tenant_ns, pod, uniq


@pytest.fixture
async def http(apiserver):
    async with aiohttp.ClientSession(apiserver.url) as session:
        yield session


@pytest.fixture
async def raw_etcd(etcd):
    store = EtcdStore([etcd.url])
    await store.start()
    yield store
    await store.close()


async def test_a_crafted_continue_token_cannot_read_outside_its_list(http):
    t = uniq("tk")
    await make_tenant_ns(http, t, "ns")
    code, body = await call(http, "GET", "/api/v1/namespaces/default/configmaps")
    rv = body["metadata"]["resourceVersion"]
    for start in ("/registry/secrets/", "/registry/", "../../secrets/system/"):
        token = base64.urlsafe_b64encode(orjson.dumps({"rv": int(rv), "start": start})).decode()
        code, body = await call(http, "GET", f"/api/v1/tenants/{t}/namespaces/ns/serviceaccounts?continue={token}")
        items = body.get("items", [])
        assert code in (200, 400), body
        assert all(i["metadata"]["tenant"] == t and i["kind"] == "ServiceAccount" for i in items), body


async def test_custom_resources_cannot_take_built_in_groups(http):
    for group in ("coordination.k8s.io", "rbac.authorization.k8s.io", "apps", "example.k8s.io"):
        crd = {"metadata": {"name": f"leases.{group}"}, "spec": {
            "group": group, "scope": "Namespaced", "names": {"plural": "leases", "kind": "Lease"},
            "versions": [{"name": "v1", "served": True, "storage": True,
                          "schema": {"openAPIV3Schema": {"type": "object"}}}]}}
        code, body = await call(http, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
        assert code == 422 and "spec.group" in body["message"], body
    code, _ = await call(http, "GET", "/apis/coordination.k8s.io/v1/namespaces/default/leases")
    assert code == 200


async def test_concurrent_patches_without_resource_version_all_land(http):
    t = uniq("tpa")
    await make_tenant_ns(http, t, "ns")
    base = f"/api/v1/tenants/{t}/namespaces/ns/configmaps"
    await call(http, "POST", base, {"metadata": {"name": "hot"}})
    results = await asyncio.gather(*(
        call(http, "PATCH", f"{base}/hot", {"metadata": {"labels": {f"l{i}": "x"}}},
             ctype="application/merge-patch+json") for i in range(60)))
    assert [code for code, _ in results] == [200] * 60
    code, body = await call(http, "GET", f"{base}/hot")
    assert code == 200 and len(body["metadata"]["labels"]) == 60


async def test_an_unreadable_value_in_etcd_does_not_stop_the_cache(http, raw_etcd):
    key = f"/registry/configmaps/system/default/poison-{uniq('p')}"
    await raw_etcd.put(key, b"[1]")
    code, body = await call(http, "GET", "/api/v1/namespaces/default/configmaps")
    assert code == 200 and all(not i["metadata"]["name"].startswith("poison") for i in body["items"])
    name = uniq("after")
    code, _ = await call(http, "POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": name}})
    code, body = await call(http, "GET", "/api/v1/namespaces/default/configmaps")
    assert code == 200 and name in [i["metadata"]["name"] for i in body["items"]]
    await raw_etcd.delete(key)


async def test_writes_outside_the_registry_do_not_stall_consistent_reads(http, raw_etcd):
    await raw_etcd.put("/elsewhere/some-other-app", b"x")
    started = time.monotonic()
    code, _ = await call(http, "GET", "/api/v1/namespaces/default/configmaps")
    assert code == 200 and time.monotonic() - started < 1.0


async def test_all_tenants_with_a_namespace_filters_by_namespace(http):
    a, b = uniq("tna"), uniq("tnb")
    for t in (a, b):
        await make_tenant_ns(http, t, "shared")
        await make_tenant_ns_extra(http, t, "other")
        await call(http, "POST", f"/api/v1/tenants/{t}/namespaces/shared/configmaps", {"metadata": {"name": "s"}})
        await call(http, "POST", f"/api/v1/tenants/{t}/namespaces/other/configmaps", {"metadata": {"name": "o"}})
    code, body = await call(http, "GET", "/api/v1/tenants/all/namespaces/shared/configmaps")
    assert code == 200
    mine = [(i["metadata"]["tenant"], i["metadata"]["name"]) for i in body["items"]
            if i["metadata"]["tenant"] in (a, b)]
    assert sorted(mine) == sorted([(a, "s"), (b, "s")])
    assert {i["metadata"]["namespace"] for i in body["items"]} == {"shared"}


async def make_tenant_ns_extra(http, tenant: str, ns: str) -> None:
    code, body = await call(http, "POST", f"/api/v1/tenants/{tenant}/namespaces", {"metadata": {"name": ns}})
    assert code == 201, body


async def test_a_forced_delete_of_a_held_pod_completes_when_its_finalizer_goes(http):
    t = uniq("tfd")
    await make_tenant_ns(http, t, "ns")
    base = f"/api/v1/tenants/{t}/namespaces/ns/pods"
    p = pod("held")
    p["metadata"]["finalizers"] = ["example.com/keep"]
    await call(http, "POST", base, p)
    await call(http, "POST", f"{base}/held/binding", {"target": {"kind": "Node", "name": "n1"}})
    code, body = await call(http, "DELETE", f"{base}/held")
    assert code == 202 and body["metadata"]["deletionGracePeriodSeconds"] == 30
    code, body = await call(http, "DELETE", f"{base}/held?gracePeriodSeconds=0")
    assert code == 202 and "deletionGracePeriodSeconds" not in body["metadata"]
    code, _ = await call(http, "PATCH", f"{base}/held", {"metadata": {"finalizers": None}},
                         ctype="application/merge-patch+json")
    code, _ = await call(http, "GET", f"{base}/held")
    assert code == 404


async def test_racing_graceful_and_forced_deletes_never_fail_with_500(http):
    t = uniq("trd")
    await make_tenant_ns(http, t, "ns")
    base = f"/api/v1/tenants/{t}/namespaces/ns/pods"
    codes = []
    for i in range(20):
        await call(http, "POST", base, pod(f"p{i}"))
        await call(http, "POST", f"{base}/p{i}/binding", {"target": {"kind": "Node", "name": "n1"}})
        results = await asyncio.gather(call(http, "DELETE", f"{base}/p{i}"),
                                       call(http, "DELETE", f"{base}/p{i}?gracePeriodSeconds=0"))
        codes += [c for c, _ in results]
    assert set(codes) <= {200, 202, 404} and 500 not in codes


async def test_malformed_metadata_and_subresource_bodies_are_4xx(http):
    t = uniq("tmb")
    await make_tenant_ns(http, t, "ns")
    base = f"/api/v1/tenants/{t}/namespaces/ns"
    await call(http, "POST", f"{base}/pods", pod("p"))
    cases = [
        ("POST", f"{base}/configmaps", {"metadata": {"name": "a", "ownerReferences": 5}}),
        ("POST", f"{base}/configmaps", {"metadata": {"generateName": 5}}),
        ("POST", f"{base}/pods/p/binding", {"target": [1]}),
        ("POST", f"{base}/pods/p/binding", {"metadata": "x", "target": {"name": "n"}}),
        ("PUT", f"/api/v1/tenants/{t}/namespaces/ns/finalize", {"spec": [1]}),
        ("DELETE", f"{base}/pods/p", {"preconditions": [1]}),
        ("DELETE", f"{base}/pods/p", {"gracePeriodSeconds": "abc"}),
        ("POST", f"{base}/services", {"metadata": {"name": "s"}, "spec": {"ports": 5}}),
        ("POST", f"{base}/services", {"metadata": {"name": "s2"}, "spec": {"type": "NodePort",
                                                                          "ports": [{"port": 1, "nodePort": [1]}]}}),
    ]
    for method, path, body in cases:
        code, resp = await call(http, method, path, body)
        assert 400 <= code < 500 and resp["kind"] == "Status", (method, path, body, code, resp)
    # The pod was never scheduled: no node has its log (kube-apiserver's "does not have a host assigned").
    code, resp = await call(http, "GET", f"{base}/pods/p/log")
    assert code == 400 and resp["kind"] == "Status", resp


async def test_explicit_nulls_in_built_in_kinds_are_not_stored(http):
    # Kubernetes decodes null into Go's zero value and omits it: nothing reads back as null.
    name = uniq("nulls")
    base = "/api/v1/namespaces/default/configmaps"
    code, body = await call(http, "POST", base, {"metadata": {"name": name, "labels": None, "annotations": {
        "keep": "1"}}, "data": {"a": "1"}, "binaryData": None})
    assert code == 201, body
    assert "labels" not in body["metadata"] and "binaryData" not in body and body["data"] == {"a": "1"}
    body["data"] = None
    body["metadata"]["annotations"] = None
    code, body = await call(http, "PUT", f"{base}/{name}", body)
    assert code == 200, body
    code, got = await call(http, "GET", f"{base}/{name}")
    assert "data" not in got and "annotations" not in got["metadata"], got
    assert b":null" not in orjson.dumps(got)
