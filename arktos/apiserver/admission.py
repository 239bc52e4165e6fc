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


SA_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
API_ACCESS_PREFIX = "kube-api-access-"
TOKEN_EXPIRATION = 3607  # kube-apiserver's: an hour and a bit, so clients can tell a projected token
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery's utilrand alphabet (no vowels, no look-alikes)


class _ServiceAccountDefault:
    """The ServiceAccount admission: pods run as their namespace's `default` service account unless they
    name one, and get its API credentials mounted (the `kube-api-access-*` projected volume) unless the pod
    or the account says `automountServiceAccountToken: false`."""

    mutating = True

    def __init__(self, caches: CacheManager | None = None, etcd: EtcdStore | None = None,
                 mount_tokens: bool = False) -> None:
        self.caches = caches
        self.etcd = etcd
        # Only a server that issues bound tokens (--service-account-signing-key-file) mounts them: without one,
        # the development mode's, every pod's volume would wait forever for a token.
        self.mount_tokens = mount_tokens

    async def __call__(self, op: str, info: ResourceInfo, ctx: Ctx, obj: Obj | None, old: Obj | None) -> None:
        await _default_service_account(op, info, obj)
        if not self.mount_tokens or op != "CREATE" or info.kind != "Pod" or info.group:
            return
        if isinstance(obj, dict) and isinstance(obj.get("spec"), dict) and await self._automount(ctx, obj):
            mount_api_access(obj["spec"])

    async def _automount(self, ctx: Ctx, pod: Obj) -> bool:
        spec = pod["spec"]
        if spec.get("automountServiceAccountToken") is not None:
            return spec["automountServiceAccountToken"] is not False
        if self.caches is None:
            return True
        meta = pod.get("metadata") or {}
        key = object_key("serviceaccounts", ctx.tenant, meta.get("namespace") or ctx.namespace,
                         spec.get("serviceAccountName") or "default")
        cache = self.caches.caches.get("serviceaccounts")
        entry = cache.entries.get(key) if cache is not None else None
        if entry is not None:
            raw = entry.raw
        elif self.etcd is not None:
            kv = await self.etcd.get(key)
            raw = kv.value if kv is not None else None
        else:
            raw = None
        # An account not made yet (the controller is a moment behind) mounts, as its default would.
        return raw is None or orjson.loads(raw).get("automountServiceAccountToken") is not False


def mount_api_access(spec: Obj) -> None:
    """Add the `kube-api-access-<5>` projected volume (bound token, the root CA, the namespace) and mount it
    read-only at SA_MOUNT_PATH in every container that has nothing there yet, as Kubernetes does."""
    import random

    volumes = spec.get("volumes")
    if not isinstance(volumes, list):
        volumes = spec["volumes"] = []
    if any(isinstance(v, dict) and str(v.get("name", "")).startswith(API_ACCESS_PREFIX) for v in volumes):
        return
    name = API_ACCESS_PREFIX + "".join(random.choice(_NAME_CHARS) for _ in range(5))
    volumes.append({"name": name, "projected": {"defaultMode": 0o644, "sources": [
        {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
            "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}})
    for group in ("initContainers", "containers"):
        for c in spec.get(group) or []:
            if not isinstance(c, dict):
                continue
            mounts = c.get("volumeMounts")
            if not isinstance(mounts, list):
                mounts = c["volumeMounts"] = []
            if any(isinstance(m, dict) and m.get("mountPath") == SA_MOUNT_PATH for m in mounts):
                continue
            mounts.append({"name": name, "readOnly": True, "mountPath": SA_MOUNT_PATH})


service_account_default = _ServiceAccountDefault()


async def _default_service_account(op: str, info: ResourceInfo, obj: Obj | None) -> None:
    if op != "CREATE" or info.kind != "Pod" or info.group or obj is None:
        return
    spec = obj.get("spec")
    if isinstance(spec, dict) and not spec.get("serviceAccountName"):
        spec["serviceAccountName"] = spec.get("serviceAccount") or "default"
        spec["serviceAccount"] = spec["serviceAccountName"]


def default_admission(caches: CacheManager, etcd: EtcdStore, mount_tokens: bool = False) -> list:
    return [Lifecycle(caches, etcd), _ServiceAccountDefault(caches, etcd, mount_tokens)]
