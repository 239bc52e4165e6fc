"""Legacy discovery bodies, as kubectl's resource mapper reads them."""

from __future__ import annotations

from arktos.api import discovery
from arktos.api.registry import Registry, ResourceInfo, Scope
from arktos.api.resources import BUILTIN


def registry() -> Registry:
    reg = Registry()
    for info in BUILTIN:
        reg.add(info)
    return reg


def by_name(body: dict | None) -> dict[str, dict]:
    assert body is not None
    return {r["name"]: r for r in body["resources"]}


def test_api_versions() -> None:
    body = discovery.api_versions(registry(), "10.0.0.1:6443")
    assert body["kind"] == "APIVersions"
    assert body["versions"] == ["v1"]
    assert body["serverAddressByClientCIDRs"] == [{"clientCIDR": "0.0.0.0/0", "serverAddress": "10.0.0.1:6443"}]


def test_api_group_list_and_group() -> None:
    body = discovery.api_group_list(registry())
    assert body["kind"] == "APIGroupList"
    groups = {g["name"]: g for g in body["groups"]}
    assert "" not in groups
    assert set(groups) >= {"apps", "batch", "coordination.k8s.io", "rbac.authorization.k8s.io", "apiextensions.k8s.io"}
    assert groups["apps"]["preferredVersion"] == {"groupVersion": "apps/v1", "version": "v1"}
    assert groups["apps"]["versions"] == [{"groupVersion": "apps/v1", "version": "v1"}]
    one = discovery.api_group(registry(), "apps")
    assert one is not None and one["kind"] == "APIGroup" and one["name"] == "apps"
    assert discovery.api_group(registry(), "nope") is None
    assert discovery.api_group(registry(), "") is None


def test_core_resources_and_scopes() -> None:
    body = discovery.api_resource_list(registry(), "", "v1")
    assert body is not None and body["kind"] == "APIResourceList" and body["groupVersion"] == "v1"
    res = by_name(body)
    pods = res["pods"]
    assert pods["namespaced"] is True and pods["kind"] == "Pod" and pods["singularName"] == "pod"
    assert pods["shortNames"] == ["po"] and pods["categories"] == ["all"]
    assert set(pods["verbs"]) == {"create", "delete", "deletecollection", "get", "list", "patch", "update",
                                  "watch"}
    assert pods["storageVersionHash"] == "xPOwRZ+Yhw8="  # the value Kubernetes publishes for pods
    # Tenant-scoped and cluster-scoped kinds both look cluster-scoped to upstream clients.
    assert res["namespaces"]["namespaced"] is False
    assert res["persistentvolumes"]["namespaced"] is False
    assert res["nodes"]["namespaced"] is False
    assert res["tenants"]["namespaced"] is False
    assert res["controllerinstances"]["namespaced"] is False
    assert res["actions"]["namespaced"] is True


def test_subresources() -> None:
    res = by_name(discovery.api_resource_list(registry(), "", "v1"))
    assert res["pods/status"] == {"name": "pods/status", "singularName": "", "namespaced": True, "kind": "Pod",
                                  "verbs": ["get", "patch", "update"]}
    assert res["pods/binding"]["kind"] == "Binding" and res["pods/binding"]["verbs"] == ["create"]
    assert res["pods/action"]["verbs"] == ["create"]
    # served through the node agent's endpoint: shapes as kube-apiserver's, which kubectl relies on
    assert res["pods/log"] == {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod",
                               "verbs": ["get"]}
    assert res["pods/exec"]["kind"] == "PodExecOptions" and sorted(res["pods/exec"]["verbs"]) == ["create", "get"]
    assert res["namespaces/finalize"]["verbs"] == ["update"]
    assert res["tenants/finalize"]["namespaced"] is False
    assert "storageVersionHash" not in res["pods/status"]
    apps = by_name(discovery.api_resource_list(registry(), "apps", "v1"))
    scale = apps["deployments/scale"]
    assert (scale["group"], scale["version"], scale["kind"]) == ("autoscaling", "v1", "Scale")
    assert scale["verbs"] == ["get", "patch", "update"]
    assert "group" not in apps["deployments/status"]


def test_unknown_group_version() -> None:
    assert discovery.api_resource_list(registry(), "apps", "v2") is None
    assert discovery.api_resource_list(registry(), "nope", "v1") is None


def test_custom_resources_appear_and_disappear() -> None:
    reg = registry()
    info = ResourceInfo("stable.example.com", "v1", "CronTab", "crontabs", Scope.TENANT, short_names=("ct",),
                        subresources=("status", "scale"), custom_schema={"type": "object"})
    reg.add(info)
    groups = {g["name"] for g in discovery.api_group_list(reg)["groups"]}
    assert "stable.example.com" in groups
    res = by_name(discovery.api_resource_list(reg, "stable.example.com", "v1"))
    assert res["crontabs"]["namespaced"] is False and res["crontabs"]["shortNames"] == ["ct"]
    assert res["crontabs/scale"]["group"] == "autoscaling"
    reg.remove(info)
    assert discovery.api_resource_list(reg, "stable.example.com", "v1") is None
    assert "stable.example.com" not in {g["name"] for g in discovery.api_group_list(reg)["groups"]}


def test_storage_version_hash_formula() -> None:
    assert discovery.storage_version_hash("", "v1", "Pod") == "xPOwRZ+Yhw8="
    assert discovery.storage_version_hash("apps", "v1", "Deployment") != discovery.storage_version_hash(
        "apps", "v1", "ReplicaSet")
