"""Admission: checks every write passes after authorization and before storage.

TenantExists and NamespaceLifecycle read tenants and namespaces from the
watch cache, falling back to etcd on a miss: a namespace created a
millisecond ago may not be in the cache yet, and refusing a pod for that
would be a false "not found".
"""

from __future__ import annotations

from typing import Any

import orjson

from arktos.api import errors
from arktos.api.registry import ResourceInfo
from arktos.api.tenancy import SYSTEM_TENANT
from arktos.apiserver.cache import CacheManager
from arktos.apiserver.store import Ctx
from arktos.storage.etcd import EtcdStore
from arktos.storage.keys import object_key

Obj = dict[str, Any]

# Namespaces every tenant needs; deleting them would break the tenant (Arktos had this bug).
PROTECTED_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})


class Lifecycle:
    """TenantExists + NamespaceLifecycle + protection of the system objects."""

    def __init__(self, caches: CacheManager, etcd: EtcdStore) -> None:
        self.caches = caches
        self.etcd = etcd

    async def _phase(self, resource: str, tenant: str, name: str) -> str | None:
        """The phase of a tenant or namespace ("Active", "Terminating"), None if it does not exist.

        Read from the cache entry's selectable fields (no decoding); on a miss, from etcd.
        """
        key = object_key(resource, tenant, "", name)
        cache = self.caches.caches.get(resource)
        entry = cache.entries.get(key) if cache is not None else None
        if entry is not None:
            return entry.fields.get("status.phase") or "Active"
        kv = await self.etcd.get(key)
        if kv is None:
            return None
        obj = orjson.loads(kv.value)
        return "Terminating" if _terminating(obj) else "Active"

    async def __call__(self, op: str, info: ResourceInfo, ctx: Ctx, obj: Obj | None, old: Obj | None) -> None:
        if not info.scope.tenanted and ctx.user.tenant != SYSTEM_TENANT:
            # Nodes, tenants, controller instances are the operator's: whatever a tenant's RBAC
            # says, no tenant user writes them (RBAC already refuses; this holds if it errs).
            name = ((obj or old or {}).get("metadata") or {}).get("name", "")
            raise errors.forbidden_error(f'{info.plural} "{name}" is forbidden: only the system tenant may '
                                         f"write {info.plural}", info.plural, name, info.group)
        if op == "DELETE":
            await self._check_delete(info, ctx, old)
            return
        if op != "CREATE" or not info.scope.tenanted:
            return
        tenant = await self._phase("tenants", "", ctx.tenant)
        if tenant is None:
            raise errors.not_found("tenants", ctx.tenant)
        if tenant == "Terminating":
            raise errors.forbidden_error(
                f"unable to create new content in tenant {ctx.tenant} because it is being terminated",
                info.plural, (obj or {}).get("metadata", {}).get("name", ""), info.group)
        if not info.scope.namespaced:
            return
        namespace = (obj or {}).get("metadata", {}).get("namespace") or ctx.namespace
        ns = await self._phase("namespaces", ctx.tenant, namespace)
        if ns is None:
            raise errors.not_found("namespaces", namespace)
        if ns == "Terminating" and info.kind != "Event":
            raise errors.forbidden_error(
                f"unable to create new content in namespace {namespace} because it is being terminated",
                info.plural, (obj or {}).get("metadata", {}).get("name", ""), info.group)

    async def _check_delete(self, info: ResourceInfo, ctx: Ctx, old: Obj | None) -> None:
        if old is None or info.group:
            return
        name = old.get("metadata", {}).get("name")
        if info.kind == "Namespace" and name in PROTECTED_NAMESPACES and (
                await self._phase("tenants", "", ctx.tenant) != "Terminating"):
            # Only the tenant's own deletion may take its standard namespaces away.
            raise errors.forbidden_error(f'namespace "{name}" is required by the tenant and cannot be deleted',
                                         "namespaces", name)
        if info.kind == "Tenant" and name == SYSTEM_TENANT:
            raise errors.forbidden_error("the system tenant cannot be deleted", "tenants", name)


def _terminating(obj: Obj) -> bool:
    return bool(obj.get("metadata", {}).get("deletionTimestamp")) or (
        (obj.get("status") or {}).get("phase") == "Terminating")


class _ServiceAccountDefault:
    """Pods run as their namespace's `default` service account unless they name one."""

    mutating = True

    async def __call__(self, op: str, info: ResourceInfo, ctx: Ctx, obj: Obj | None, old: Obj | None) -> None:
        await _default_service_account(op, info, obj)


service_account_default = _ServiceAccountDefault()


async def _default_service_account(op: str, info: ResourceInfo, obj: Obj | None) -> None:
    if op != "CREATE" or info.kind != "Pod" or info.group or obj is None:
        return
    spec = obj.get("spec")
    if isinstance(spec, dict) and not spec.get("serviceAccountName"):
        spec["serviceAccountName"] = spec.get("serviceAccount") or "default"
        spec["serviceAccount"] = spec["serviceAccountName"]


def default_admission(caches: CacheManager, etcd: EtcdStore) -> list:
    return [Lifecycle(caches, etcd), service_account_default]
