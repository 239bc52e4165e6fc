"""Deleting everything in a namespace, or everything tenant-scoped in a tenant.

Shared by the namespace controller (one namespace going) and the tenant
controller (all of a tenant going), so the tenant controller does not depend
on the namespace controller running in the same manager.

One pass over every deletable kind from discovery: list (cheap, from the
server's watch cache), and only if something is there, deletecollection
(one request for the whole kind) and list again to see what is still there
and why.  What remains is reported, not hidden: objects held by
`metadata.finalizers`, pods in graceful deletion waiting for their node
agent, or objects created after the delete.  The caller decides whether to
wait or, with `force`, to strip finalizers and delete pods with a zero grace
period (see the tenant controller for when that is done and why).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from dataclasses import dataclass
from typing import Any

from arktos.api.errors import APIError
from arktos.api.registry import ResourceInfo
from arktos.client import Client
from arktos.controllers.base import is_gone
from arktos.controllers.discovery import Discovery

__all__ = ["ContentDeleter", "Leftover", "remove_spec_finalizers", "summarize"]

Obj = dict[str, Any]
log = logging.getLogger("arktos.controllers.content")


@dataclass(frozen=True, slots=True)
class Leftover:
    """One object that is still there after its delete, and why."""

    resource: str  # plural, or plural.group
    name: str  # namespace/name for namespaced kinds
    why: str
    namespace: str = ""

    def __str__(self) -> str:
        return f"{self.resource} {self.name} ({self.why})"


def resource_name(info: ResourceInfo) -> str:
    return f"{info.plural}.{info.group}" if info.group else info.plural


def summarize(leftovers: list[Leftover], limit: int = 5) -> str:
    """`3 pods, 1 widgets.example.com; e.g. pods ns/p1 (finalizers [x])`: enough to act on at 3 a.m."""
    counts = collections.Counter(lf.resource for lf in leftovers)
    text = ", ".join(f"{n} {res}" for res, n in sorted(counts.items()))
    examples = "; ".join(str(lf) for lf in leftovers[:limit])
    more = f" (+{len(leftovers) - limit} more)" if len(leftovers) > limit else ""
    return f"{text}; e.g. {examples}{more}"


def _why(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    if not meta.get("deletionTimestamp"):
        return "not deleted yet"
    finalizers = meta.get("finalizers") or []
    if finalizers:
        return f"finalizers {finalizers}"
    if meta.get("deletionGracePeriodSeconds"):
        node = (obj.get("spec") or {}).get("nodeName") or "?"
        return f"graceful deletion ({meta['deletionGracePeriodSeconds']}s) waiting for node {node}"
    return "being deleted"


class ContentDeleter:
    def __init__(self, client: Client, discovery: Discovery, *, parallelism: int = 8) -> None:
        self.client = client
        self.discovery = discovery
        self.parallelism = parallelism

    async def delete_namespace_content(self, tenant: str, namespace: str, *, force: bool = False,
                                       since: float | None = None) -> tuple[int, list[Leftover]]:
        """Delete every namespaced object in `tenant/namespace`: (objects removed, what remains).

        `since`: use discovery fetched no earlier than this monotonic time.
        """
        infos = await self.discovery.namespaced(tenant, since=since)
        return await self._delete_kinds(infos, tenant, namespace, force)

    async def delete_tenant_namespaced(self, tenant: str, *, force: bool = False,
                                       since: float | None = None) -> tuple[int, list[Leftover]]:
        """Delete every namespaced object in every namespace of `tenant`.

        Each kind is listed once for the whole tenant and deleted with one
        deletecollection per namespace that holds some of it, so a tenant with
        hundreds of namespaces costs requests in proportion to what it holds,
        not to kinds times namespaces.
        """
        infos = await self.discovery.namespaced(tenant, since=since)
        return await self._delete_kinds(infos, tenant, None, force)

    async def delete_tenant_scoped(self, tenant: str, *, force: bool = False, since: float | None = None,
                                   skip: frozenset[str] = frozenset()) -> tuple[int, list[Leftover]]:
        """Delete every tenant-scoped object of `tenant` except the kinds (plurals) in `skip`."""
        infos = [i for i in await self.discovery.tenant_scoped(tenant, since=since) if i.plural not in skip]
        return await self._delete_kinds(infos, tenant, None, force)

    async def _delete_kinds(self, infos: list[ResourceInfo], tenant: str, namespace: str | None,
                            force: bool) -> tuple[int, list[Leftover]]:
        sem = asyncio.Semaphore(self.parallelism)

        async def one(info: ResourceInfo) -> tuple[int, list[Leftover]]:
            async with sem:
                return await self.delete_all(info, tenant, namespace, force=force)

        results = await asyncio.gather(*(one(i) for i in infos))
        removed = sum(r[0] for r in results)
        leftovers = [lf for r in results for lf in r[1]]
        return removed, leftovers

    async def _list(self, info: ResourceInfo, tenant: str, namespace: str | None) -> list[Obj]:
        try:
            return (await self.client.list(info, tenant=tenant, namespace=namespace))["items"]
        except APIError as exc:
            if exc.code in (404, 405):
                # The kind went away (its CRD was deleted) or cannot be listed here: nothing of it to delete.
                return []
            raise

    async def delete_all(self, info: ResourceInfo, tenant: str, namespace: str | None, *,
                         force: bool = False) -> tuple[int, list[Leftover]]:
        """Delete every object of one kind in the tenant (and namespace): (removed, leftovers).

        A namespaced kind without `namespace` means every namespace of the tenant.
        """
        items = await self._list(info, tenant, namespace)
        if not items:
            return 0, []
        before = len(items)
        if any(not (o.get("metadata") or {}).get("deletionTimestamp") for o in items):
            await self._delete(info, tenant, namespace, items)
            items = await self._list(info, tenant, namespace)
        if items and force:
            await asyncio.gather(*(self._force(info, tenant, o) for o in items))
            items = await self._list(info, tenant, namespace)
        res = resource_name(info)
        leftovers = [Leftover(res, "/".join(p for p in (o["metadata"].get("namespace"), o["metadata"]["name"]) if p),
                              _why(o), o["metadata"].get("namespace") or "") for o in items]
        return max(0, before - len(leftovers)), leftovers

    async def _delete(self, info: ResourceInfo, tenant: str, namespace: str | None, items: list[Obj]) -> None:
        if info.scope.namespaced and namespace is None:
            # Across the tenant: one delete per namespace that holds objects of this kind.
            by_ns: dict[str, list[Obj]] = collections.defaultdict(list)
            for o in items:
                if not o["metadata"].get("deletionTimestamp"):
                    by_ns[o["metadata"]["namespace"]].append(o)
            await asyncio.gather(*(self._delete(info, tenant, ns, objs) for ns, objs in by_ns.items()))
            return
        if "deletecollection" in info.verbs:
            try:
                await self.client.delete_collection(info, tenant=tenant, namespace=namespace)
                return
            except APIError as exc:
                if exc.code not in (404, 405):
                    raise
        # No deletecollection: one by one.
        results = await asyncio.gather(*(
            self.client.delete(info, o["metadata"]["name"], tenant=tenant,
                               namespace=o["metadata"].get("namespace") or namespace)
            for o in items if not o["metadata"].get("deletionTimestamp")), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException) and not is_gone(r):
                raise r

    async def _force(self, info: ResourceInfo, tenant: str, obj: Obj) -> None:
        """Strip an object's finalizers and cut its grace period: it goes now, whoever was meant to let it go."""
        meta = obj["metadata"]
        name, namespace = meta["name"], meta.get("namespace")
        where = f"{resource_name(info)} {tenant}/{namespace + '/' if namespace else ''}{name}"
        try:
            if meta.get("finalizers"):
                log.warning("FORCED: removing finalizers %s from %s: nothing removed them within the grace period",
                            meta["finalizers"], where)
                await self.client.patch(info, name, {"metadata": {"finalizers": None}}, tenant=tenant,
                                        namespace=namespace)
            if meta.get("deletionGracePeriodSeconds") or not meta.get("deletionTimestamp"):
                if meta.get("deletionGracePeriodSeconds"):
                    log.warning("FORCED: deleting %s with grace period 0: its node did not confirm it stopped", where)
                await self.client.delete(info, name, tenant=tenant, namespace=namespace, grace_period_seconds=0)
        except APIError as exc:
            if not is_gone(exc):
                raise


async def remove_spec_finalizers(client: Client, info: ResourceInfo, name: str, *, tenant: str | None,
                                 drop: frozenset[str] | None) -> bool:
    """PUT {namespace,tenant}/finalize without the finalizers in `drop` (all of them when None).

    Read fresh and written with its resourceVersion, so a finalizer another
    controller removed meanwhile is not put back (a 409 makes the caller retry).
    Returns False when the object is already gone.
    """
    try:
        obj = await client.get(info, name, tenant=tenant)
    except APIError as exc:
        if is_gone(exc):
            return False
        raise
    current = list((obj.get("spec") or {}).get("finalizers") or [])
    keep = [] if drop is None else [f for f in current if f not in drop]
    if keep == current and current:
        return True
    obj.setdefault("spec", {})["finalizers"] = keep
    try:
        await client.update(info, obj, tenant=tenant, subresource="finalize")
    except APIError as exc:
        if is_gone(exc):
            return False
        raise
    return True
