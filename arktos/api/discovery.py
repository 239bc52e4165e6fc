"""Legacy (unaggregated) discovery documents: /api, /api/v1, /apis, /apis/<g>, /apis/<g>/<v>.

kubectl builds its resource mapper from these, so the entries must look like
what a Kubernetes server returns.  Upstream clients know only two scopes, so
`namespaced` is true for namespace-scoped kinds alone: a tenant-scoped kind
(Namespace, ClusterRole, ...) looks cluster-scoped to them, which is exactly
how a tenant user sees it through the short paths.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from arktos.api.registry import Registry, ResourceInfo

Body = dict[str, Any]

# Subresources that are not the parent's kind or do not take the parent's verbs.
# name -> (group, version, kind, verbs); None parts mean "the parent's".
_SUBRESOURCES: dict[str, tuple[str | None, str | None, str | None, tuple[str, ...]]] = {
    "status": (None, None, None, ("get", "patch", "update")),
    "scale": ("autoscaling", "v1", "Scale", ("get", "patch", "update")),
    "binding": ("", "v1", "Binding", ("create",)),
    "action": ("", "v1", "CustomAction", ("create",)),
    "log": (None, None, None, ("get",)),
    "exec": ("", "v1", "PodExecOptions", ("create", "get")),
    "attach": ("", "v1", "PodAttachOptions", ("create", "get")),
    "portforward": ("", "v1", "PodPortForwardOptions", ("create", "get")),
    "finalize": (None, None, None, ("update",)),
    "eviction": ("policy", "v1", "Eviction", ("create",)),
    "token": ("authentication.k8s.io", "v1", "TokenRequest", ("create",)),
}


def storage_version_hash(group: str, version: str, kind: str) -> str:
    """The hash Kubernetes publishes for a storage version.

    It is the first 8 bytes of sha256 over "group/version/kind", base64;
    clients only compare it for changes, but using the same formula gives the
    values tools have seen from Kubernetes (Pod: "xPOwRZ+Yhw8=").
    """
    digest = hashlib.sha256(f"{group}/{version}/{kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode()


def _address(server_address: str) -> list[Body]:
    return [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}] if server_address else []


def api_versions(registry: Registry, server_address: str = "") -> Body:
    """GET /api: the versions of the core group."""
    return {
        "kind": "APIVersions",
        "versions": list(registry.groups().get("", ["v1"])),
        "serverAddressByClientCIDRs": _address(server_address),
    }


def _group_body(group: str, versions: list[str]) -> Body:
    listed = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": listed, "preferredVersion": listed[0]}


def api_group_list(registry: Registry) -> Body:
    """GET /apis: every named group with its versions, the preferred one first."""
    groups = [_group_body(g, v) for g, v in sorted(registry.groups().items()) if g and v]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(registry: Registry, group: str) -> Body | None:
    """GET /apis/<group>; None when the group is not served."""
    versions = registry.groups().get(group)
    if not group or not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_body(group, versions)}


def _resource_entry(info: ResourceInfo) -> Body:
    entry: Body = {
        "name": info.plural,
        "singularName": info.singular,
        "namespaced": info.scope.namespaced,
        "kind": info.kind,
        "verbs": list(info.verbs),
        "storageVersionHash": storage_version_hash(info.group, info.version, info.kind),
    }
    if info.short_names:
        entry["shortNames"] = list(info.short_names)
    if info.categories:
        entry["categories"] = list(info.categories)
    return entry


def _subresource_entry(info: ResourceInfo, sub: str) -> Body:
    group, version, kind, verbs = _SUBRESOURCES.get(sub, (None, None, None, ("get", "patch", "update")))
    entry: Body = {
        "name": f"{info.plural}/{sub}",
        "singularName": "",
        "namespaced": info.scope.namespaced,
        "kind": kind or info.kind,
        "verbs": list(verbs),
    }
    if group is not None and (group, version) != (info.group, info.version):
        entry["group"] = group
        entry["version"] = version
    return entry


def api_resource_list(registry: Registry, group: str, version: str) -> Body | None:
    """GET /api/v1 or /apis/<g>/<v>; None when the group version is not served."""
    infos = sorted(registry.in_group_version(group, version), key=lambda i: i.plural)
    if not infos:
        return None
    resources: list[Body] = []
    for info in infos:
        resources.append(_resource_entry(info))
        resources.extend(_subresource_entry(info, sub) for sub in info.subresources)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }
