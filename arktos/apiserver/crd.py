"""Serving custom resources: CustomResourceDefinitions become registered kinds.

The registrar follows the CRD watch cache inside the API server (as
kube-apiserver's apiextensions server does): a new or changed CRD adds its
served versions to the registry and starts caching them, then marks the CRD
Established; a deleted CRD stops being served and its objects are removed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from arktos.api import errors, structural
from arktos.api.errors import FieldError
from arktos.api.registry import Registry, ResourceInfo, Scope
from arktos.api.strategy import Strategy
from arktos.api.tenancy import SYSTEM_TENANT
from arktos.apiserver.cache import CacheManager, Event
from arktos.storage.etcd import EtcdStore
from arktos.storage.keys import resource_prefix

log = logging.getLogger(__name__)

Obj = dict[str, Any]


class CustomStrategy(Strategy):
    """A served CRD version: its openAPIV3Schema prunes, defaults and validates the objects.

    Pruning happens when a write is prepared (before defaulting, as the
    apiextensions decoder does), so what is stored is only what the schema
    declares; `structural.collect_pruned` lets a handler report the dropped
    fields as warnings.
    """

    def __init__(self, status: bool, schema: Obj | None = None) -> None:
        self.status_subresource = status
        self.schema: Obj = schema if schema is not None else structural.PRESERVE_ALL

    def default(self, obj: Obj) -> None:
        structural.apply_defaults(obj, self.schema)

    def prepare_for_create(self, obj: Obj) -> None:
        structural.prune(obj, self.schema)
        super().prepare_for_create(obj)

    def prepare_for_update(self, obj: Obj, old: Obj) -> None:
        structural.prune(obj, self.schema)
        super().prepare_for_update(obj, old)

    def prepare_for_status_update(self, obj: Obj, old: Obj) -> Obj:
        new = super().prepare_for_status_update(obj, old)
        structural.prune(new, self.schema)
        return new

    def validate(self, obj: Obj) -> list[FieldError]:
        return structural.validate(obj, self.schema)


def infos_for(crd: Obj) -> list[ResourceInfo]:
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = spec.get("group", "")
    scope = Scope.NAMESPACE if spec.get("scope") == "Namespaced" else Scope.TENANT
    tenant = (crd.get("metadata") or {}).get("tenant", "")
    owner = "" if tenant in ("", SYSTEM_TENANT) else tenant  # the system tenant's CRDs serve every tenant
    out = []
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        subresources = version.get("subresources") or {}
        subs = tuple(s for s in ("status", "scale") if s in subresources)
        schema = ((version.get("schema") or {}).get("openAPIV3Schema")) or {"type": "object",
                                                                           "x-kubernetes-preserve-unknown-fields": True}
        info = ResourceInfo(
            group, version["name"], names.get("kind", ""), names.get("plural", ""), scope,
            singular=names.get("singular") or names.get("kind", "").lower(),
            short_names=tuple(names.get("shortNames") or ()), categories=tuple(names.get("categories") or ()),
            subresources=subs, custom_schema=schema,
        )
        info.owner_tenant = owner
        info.strategy = CustomStrategy("status" in subs, schema)
        info.printer_columns = version.get("additionalPrinterColumns") or []
        out.append(info)
    return out


RESERVED_GROUP_SUFFIXES = (".k8s.io", ".kubernetes.io")


def reserved_group(group: str, builtin_groups: set[str]) -> bool:
    """Groups a custom resource may not use: the built-in ones and Kubernetes' own domains."""
    return group in builtin_groups or group.endswith(RESERVED_GROUP_SUFFIXES)


class CRDAdmission:
    """Refuse CRDs that would shadow a built-in kind or take over its etcd keys."""

    def __init__(self, registry: Registry) -> None:
        self.builtin_groups = {i.group for i in registry}

    async def __call__(self, op: str, info: ResourceInfo, ctx: object, obj: Obj | None, old: Obj | None) -> None:
        if op not in ("CREATE", "UPDATE") or info.kind != "CustomResourceDefinition" or obj is None:
            return
        spec = obj.get("spec")
        group = spec.get("group") if isinstance(spec, dict) else None
        if isinstance(group, str) and reserved_group(group, self.builtin_groups):
            raise errors.invalid_object("CustomResourceDefinition", obj.get("metadata", {}).get("name", ""), [
                errors.invalid("spec.group", group, "is reserved for the built-in API groups and Kubernetes' "
                               "own domains (*.k8s.io, *.kubernetes.io)")], "apiextensions.k8s.io")


class CRDRegistrar:
    def __init__(self, registry: Registry, caches: CacheManager, etcd: EtcdStore, crd_info: ResourceInfo) -> None:
        self.registry = registry
        self.caches = caches
        self.etcd = etcd
        self.crd_info = crd_info
        self.served: dict[str, list[ResourceInfo]] = {}  # CRD key -> infos
        self.builtin_groups = {i.group for i in registry}
        self._queue: asyncio.Queue[tuple[str, Obj | None]] = asyncio.Queue()
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        cache = self.caches.cache_for(self.crd_info)
        # Listen first, then read the snapshot: an event that lands in between is queued
        # and re-applied, which is harmless; one that was missed would be lost for good.
        cache.listeners.append(self._on_event)
        for entry in list(cache.entries.values()):
            await self._sync(entry.key, orjson.loads(entry.raw))
        self._task = asyncio.create_task(self._run(), name="crd-registrar")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()

    def _on_event(self, event: Event) -> None:
        if event.new is not None:
            self._queue.put_nowait((event.new.key, orjson.loads(event.new.raw)))
        elif event.old is not None:
            self._queue.put_nowait((event.old.key, None))

    async def _run(self) -> None:
        while True:
            key, crd = await self._queue.get()
            try:
                await self._sync(key, crd)
            except Exception:
                log.exception("serving the custom resources of %s failed", key)

    async def _sync(self, key: str, crd: Obj | None) -> None:
        old = self.served.pop(key, [])
        new = infos_for(crd) if crd is not None and not crd["metadata"].get("deletionTimestamp") else []
        # Defence in depth behind CRDAdmission: a stored CRD for a reserved group is never served.
        new = [i for i in new if not reserved_group(i.group, self.builtin_groups)]
        new_ids = {(i.group, i.version, i.plural) for i in new}
        for info in old:
            if (info.group, info.version, info.plural) not in new_ids:
                self.registry.remove(info)
                if not self._shared(info.etcd_resource) and all(
                        i.etcd_resource != info.etcd_resource for i in new):
                    self.caches.remove_resource(info)
        for info in new:
            # Cache first, then serve: a resource is never reachable without its cache.
            await self.caches.add_resource(info)
            self.registry.add(info)
        if new:
            self.served[key] = new
            if crd is not None:
                await self._mark_established(key, crd)
        elif crd is None and old:
            await self._delete_objects(old[0])

    def _shared(self, etcd_resource: str) -> bool:
        """Whether another served CRD (another tenant's, say) stores objects under the same keys."""
        return any(i.etcd_resource == etcd_resource for infos in self.served.values() for i in infos)

    async def _delete_objects(self, info: ResourceInfo) -> None:
        """The definition is gone: so are its objects (kube-apiserver does this through a finalizer).

        Objects live under `/registry/{group}/{plural}/{tenant}/`.  A tenant's own
        CRD takes only that tenant's objects; a system CRD takes those of every
        tenant that does not define the resource itself.
        """
        base = resource_prefix(info.etcd_resource)
        if info.owner_tenant:
            prefixes = [base + info.owner_tenant + "/"]
        else:
            keep = {i.owner_tenant for infos in self.served.values() for i in infos
                    if i.etcd_resource == info.etcd_resource}
            tenants = {key[len(base):].split("/", 1)[0] for key in await self.etcd.keys(base)}
            prefixes = [base + t + "/" for t in sorted(tenants - keep)]
        deleted = 0
        for prefix in prefixes:
            deleted += await self.etcd.delete_prefix(prefix)
        log.info("deleted %d objects of the removed custom resource %s (%s)", deleted, info.etcd_resource,
                 info.owner_tenant or "all tenants")

    async def _mark_established(self, key: str, crd: Obj) -> None:
        status = crd.get("status") or {}
        if any(c.get("type") == "Established" and c.get("status") == "True" for c in status.get("conditions") or []):
            return
        from arktos.apiserver.store import now_rfc3339

        now = now_rfc3339()
        names = (crd.get("spec") or {}).get("names") or {}
        crd["status"] = {
            "acceptedNames": names,
            "storedVersions": [v["name"] for v in crd["spec"].get("versions") or [] if v.get("storage")],
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                 "message": "no conflicts found", "lastTransitionTime": now},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                 "message": "the initial names have been accepted", "lastTransitionTime": now},
            ],
        }
        rv = int(crd["metadata"].pop("resourceVersion"))
        try:
            await self.etcd.update(key, orjson.dumps(crd), rv)
        except Exception as exc:
            log.debug("could not mark %s established: %s", key, exc)
