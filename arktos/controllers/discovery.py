"""Which resources the server serves, from its discovery documents, with Arktos scopes.

Deleting "everything in a namespace" or "everything of a tenant" must
include kinds this code has never heard of (custom resources, kinds added
later), so the namespace and tenant controllers ask the server, as the
Kubernetes namespace controller does.

Discovery says only `namespaced: true/false`, because upstream clients know
two scopes.  Arktos has three: a non-namespaced kind is tenant-scoped
(Namespace, ClusterRole, PersistentVolume, non-namespaced custom resources)
unless it is one of the few kinds outside tenants (Tenant, Node,
ControllerInstance, ...), which the built-in registry knows.

Custom resources a tenant defines for itself are served to that tenant
only, and the server's discovery documents show them only to that tenant's
users; for the system-tenant controllers they come from the tenant's
CustomResourceDefinitions instead.

The answer is cached, and dropped whenever a CustomResourceDefinition
changes (the manager wires that up) or after `max_age`: a tenant must never
be finalized while a kind we did not look at still holds its objects, so
callers that are about to conclude "nothing left" ask for an answer fetched
after they started (`since`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from arktos.api.errors import APIError
from arktos.api.registry import ResourceInfo, Scope
from arktos.api.resources import BUILTIN
from arktos.api.tenancy import SYSTEM_TENANT
from arktos.client import Client

__all__ = ["Discovery"]

log = logging.getLogger("arktos.controllers.discovery")
Obj = dict[str, Any]

# Built-in kinds outside tenants, by (group, plural), from the one registry of built-ins.
_CLUSTER_SCOPED = {(i.group, i.plural) for i in BUILTIN if i.scope is Scope.CLUSTER}
# Kinds Arktos declares cluster-scoped that this server may not serve yet (ARKTOS.md section 1).
_CLUSTER_SCOPED |= {("", "componentstatuses"), ("", "datapartitionconfigs"), ("", "storageclusters")}
CRDS = next(i for i in BUILTIN if i.plural == "customresourcedefinitions")


class Discovery:
    """The served resources as ResourceInfos (preferred version of each group), per tenant."""

    def __init__(self, client: Client, max_age: float = 30.0) -> None:
        self.client = client
        self.max_age = max_age
        self._global: tuple[float, list[ResourceInfo]] | None = None
        self._tenants: dict[str, tuple[float, list[ResourceInfo]]] = {}
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        self._global = None
        self._tenants.clear()

    def _stale(self, entry: tuple[float, list[ResourceInfo]] | None, since: float | None) -> bool:
        return entry is None or time.monotonic() - entry[0] > self.max_age or (since is not None and entry[0] < since)

    async def resources(self, tenant: str | None = None, *, since: float | None = None) -> list[ResourceInfo]:
        """The kinds served in `tenant`, fetched no earlier than `since` (a `time.monotonic()` value) if given.

        `since` rather than a plain "fresh" flag lets many syncs that started
        together (a tenant's hundred namespaces) share one fetch that is newer
        than all of them.
        """
        async with self._lock:
            if self._stale(self._global, since):
                now = time.monotonic()
                self._global = (now, await self._fetch())
            assert self._global is not None
            infos = self._global[1]
            if not tenant or tenant == SYSTEM_TENANT:
                return list(infos)
            entry = self._tenants.get(tenant)
            if self._stale(entry, since):
                now = time.monotonic()
                entry = self._tenants[tenant] = (now, await self._tenant_kinds(tenant))
            own = entry[1]
        # A tenant's own definition of a group/plural hides a global one, as the server resolves it.
        mine = {(i.group, i.plural) for i in own}
        return [i for i in infos if (i.group, i.plural) not in mine] + own

    async def namespaced(self, tenant: str | None = None, *, since: float | None = None) -> list[ResourceInfo]:
        """Namespaced kinds that can be listed and deleted."""
        return [i for i in await self.resources(tenant, since=since) if i.scope is Scope.NAMESPACE]

    async def tenant_scoped(self, tenant: str | None = None, *, since: float | None = None) -> list[ResourceInfo]:
        """Tenant-scoped kinds that can be listed and deleted (namespaces included)."""
        return [i for i in await self.resources(tenant, since=since) if i.scope is Scope.TENANT]

    async def _fetch(self) -> list[ResourceInfo]:
        group_versions: list[str] = []
        core = await self.client.request("GET", "/api")
        group_versions += [v for v in core.get("versions") or [] if v == "v1"]
        groups = await self.client.request("GET", "/apis")
        for g in groups.get("groups") or []:
            preferred = (g.get("preferredVersion") or {}).get("groupVersion")
            if preferred:
                group_versions.append(preferred)
        lists = await asyncio.gather(*(self._group_version(gv) for gv in group_versions))
        out: list[ResourceInfo] = []
        for gv, doc in zip(group_versions, lists, strict=True):
            if doc is None:
                continue
            group, _, version = gv.rpartition("/")
            for r in doc.get("resources") or []:
                info = _info(group, version, r)
                if info is not None:
                    out.append(info)
        log.debug("discovered %d deletable resources in %d group versions", len(out), len(group_versions))
        return out

    async def _group_version(self, gv: str) -> Obj | None:
        path = "/api/v1" if gv == "v1" else f"/apis/{gv}"
        try:
            return await self.client.request("GET", path)
        except APIError as exc:
            if exc.code == 404:
                # A custom resource group removed between /apis and now: nothing to delete there.
                return None
            raise

    async def _tenant_kinds(self, tenant: str) -> list[ResourceInfo]:
        """The custom kinds a tenant defines for itself, from its CustomResourceDefinitions.

        The server's discovery documents show a tenant's own custom resources
        to that tenant's users only, so the system-tenant controllers read the
        definitions instead: one kind per CRD, at its storage version (any
        served version reaches the same stored objects).
        """
        crds = (await self.client.list(CRDS, tenant=tenant))["items"]
        out = []
        for crd in crds:
            spec = crd.get("spec") or {}
            names = spec.get("names") or {}
            served = [v for v in spec.get("versions") or [] if v.get("served", True) and v.get("name")]
            if not served or not names.get("plural") or not spec.get("group"):
                continue
            version = next((v for v in served if v.get("storage")), served[0])["name"]
            scope = Scope.NAMESPACE if spec.get("scope") == "Namespaced" else Scope.TENANT
            out.append(ResourceInfo(spec["group"], version, names.get("kind") or "", names["plural"], scope,
                                    singular=names.get("singular") or ""))
        return out


def _info(group: str, version: str, entry: Obj) -> ResourceInfo | None:
    name = entry.get("name") or ""
    if not name or "/" in name:
        return None  # subresources
    verbs = tuple(entry.get("verbs") or ())
    if "list" not in verbs or not ({"delete", "deletecollection"} & set(verbs)):
        return None  # nothing we could delete (e.g. bindings: create only)
    if entry.get("namespaced"):
        scope = Scope.NAMESPACE
    elif (group, name) in _CLUSTER_SCOPED:
        scope = Scope.CLUSTER
    else:
        scope = Scope.TENANT
    return ResourceInfo(group, version, entry.get("kind") or "", name, scope, singular=entry.get("singularName") or "",
                        verbs=verbs)
