"""The namespace controller: a deleted namespace is emptied, then finalized, then gone.

A DELETE of a namespace only marks it Terminating: the API server keeps it
while `spec.finalizers` holds "kubernetes".  This controller deletes every
namespaced object in it (every kind the server serves, custom resources
included, from discovery), and once a fresh look finds nothing left, removes
its "kubernetes" finalizer through the `finalize` subresource; the server
then deletes the namespace.

Objects that do not go (their own `metadata.finalizers`, pods waiting for
their node agent) keep the namespace Terminating, as in Kubernetes: the
controller keeps checking with backoff and logs exactly what still blocks.
Stripping other controllers' finalizers is the tenant controller's last
resort, not this one's: a namespace deleted on its own has no deadline.
"""

from __future__ import annotations

import time
from typing import Any

from arktos.controllers.base import Controller, ControllerContext, Pending, builtin
from arktos.controllers.content import ContentDeleter, remove_spec_finalizers, summarize

__all__ = ["NAMESPACE_FINALIZER", "NamespaceController"]

Obj = dict[str, Any]
NAMESPACES = builtin("", "namespaces")
TENANTS = builtin("", "tenants")
NAMESPACE_FINALIZER = "kubernetes"


def is_deleting(obj: Obj) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp")) or (
        (obj.get("status") or {}).get("phase") == "Terminating")


class NamespaceController(Controller):
    name = "namespace"
    max_backoff = 10.0

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.deleter = ContentDeleter(self.client, ctx.discovery)
        self._since: dict[str, tuple[str, float, int]] = {}  # key -> (uid, first seen deleting, objects removed)

    def setup(self) -> None:
        self.namespaces = self.ctx.informers.informer(NAMESPACES)
        # With the tenant controller in this manager, a terminating tenant's namespaces are its job: it
        # empties them all at once (fewer requests than one namespace at a time) and may force them.
        self.tenants = self.ctx.informers.informer(TENANTS) if "tenant" in self.ctx.enabled else None
        self.namespaces.add_handler(on_add=self._changed, on_update=lambda _old, new: self._changed(new))

    def _changed(self, ns: Obj) -> None:
        if is_deleting(ns):
            self.enqueue(ns)

    async def sync(self, key: str) -> None:
        ns = self.namespaces.get(key)
        if ns is None or not is_deleting(ns):
            self._since.pop(key, None)
            return
        meta = ns["metadata"]
        if NAMESPACE_FINALIZER not in ((ns.get("spec") or {}).get("finalizers") or []):
            return  # our part is done; other finalizers are other controllers' business
        tenant, name = meta.get("tenant") or "", meta["name"]
        owner = self.tenants.get(tenant) if self.tenants is not None and tenant else None
        if owner is not None and is_deleting(owner):
            self.log.debug("namespace %s: left to the tenant controller, its tenant is being deleted", key)
            return
        uid = meta.get("uid", "")
        seen = self._since.get(key)
        if seen is None or seen[0] != uid:
            seen = (uid, time.monotonic(), 0)
            self.log.info("namespace %s is being deleted: deleting its content", key)
        start = time.monotonic()
        removed, leftovers = await self.deleter.delete_namespace_content(tenant, name, since=start)
        seen = (seen[0], seen[1], seen[2] + removed)
        self._since[key] = seen
        if leftovers:
            raise Pending(f"namespace still holds {summarize(leftovers)}")
        if await remove_spec_finalizers(self.client, NAMESPACES, name, tenant=tenant,
                                        drop=frozenset({NAMESPACE_FINALIZER})):
            self.log.info("namespace %s finalized after removing %d objects in %.1fs", key, seen[2],
                          time.monotonic() - seen[1])
        self._since.pop(key, None)
