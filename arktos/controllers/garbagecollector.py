"""The garbage collector: dependents go when their owners go (ownerReferences), per tenant.

Kubernetes' garbage collector, with Arktos's tenant boundary:

* Monitors: an informer for every kind the server serves that can be
  listed, watched and deleted (built-in kinds from the registry, custom
  resources from discovery and from each tenant's own
  CustomResourceDefinitions), except Events.  New CRDs get monitors as they
  appear, deleted ones lose them.
* The graph: every observed object, keyed by where it lives and its uid, with
  the owners its ownerReferences name and, per owner, its dependents.  An
  ownerReference resolves only inside the dependent's own tenant (and its
  namespace when the owner kind is namespaced): a reference that names the
  uid of another tenant's object points at nothing, so it can never make one
  tenant's deletion reach into another tenant, nor keep another tenant's
  object alive.
* Background propagation: a dependent whose owners are all gone is deleted.
  "Gone" is never concluded from the cache alone: an owner the graph does
  not hold is looked up on the server (by kind, name and uid), and only a
  404 or a different uid makes it absent (remembered in a small cache).  A
  dependent with at least one live owner loses only its dangling references.
* Foreground: an owner deleted with `propagationPolicy=Foreground` carries
  the `foregroundDeletion` finalizer; its dependents are deleted (in
  foreground themselves when they have dependents), and the finalizer is
  removed once no dependent with `blockOwnerDeletion` is left.
* Orphan: an owner with the `orphan` finalizer has its reference removed
  from every dependent, then the finalizer is removed.

Work items are `d|<node>` (decide whether this object should be deleted, or,
for a foreground owner, whether its dependents are gone) and `o|<node>`
(orphan this owner's dependents).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from arktos.api.errors import APIError
from arktos.api.registry import ResourceInfo, Scope
from arktos.api.resources import BUILTIN
from arktos.api.tenancy import SYSTEM_TENANT
from arktos.client import ALL_TENANTS, Informer
from arktos.controllers.base import Controller, ControllerContext, Pending, builtin, is_gone

__all__ = ["FOREGROUND_FINALIZER", "ORPHAN_FINALIZER", "GarbageCollector"]

Obj = dict[str, Any]
FOREGROUND_FINALIZER = "foregroundDeletion"
ORPHAN_FINALIZER = "orphan"
CRDS = builtin("apiextensions.k8s.io", "customresourcedefinitions")
IGNORED = frozenset({("", "events"), ("events.k8s.io", "events")})
ABSENT_CACHE_SIZE = 4096
MONITOR_RESYNC = 30.0  # seconds between looks at discovery for kinds that appeared or went
MONITOR_SYNC_TIMEOUT = 30.0


@dataclass(slots=True)
class _Owner:
    key: str  # node key of the owner, resolved in the dependent's tenant/namespace
    uid: str
    kind: str
    api_version: str
    name: str
    block: bool


@dataclass(slots=True)
class _Node:
    key: str
    info: ResourceInfo
    tenant: str
    namespace: str
    name: str
    uid: str
    owners: list[_Owner] = field(default_factory=list)
    deleting: bool = False
    finalizers: tuple[str, ...] = ()

    @property
    def foreground(self) -> bool:
        return self.deleting and FOREGROUND_FINALIZER in self.finalizers

    @property
    def orphaning(self) -> bool:
        return self.deleting and ORPHAN_FINALIZER in self.finalizers


def _node_key(tenant: str, namespace: str, uid: str) -> str:
    return f"{tenant}/{namespace}/{uid}"


def _group_of(api_version: str) -> str:
    return api_version.rpartition("/")[0] if "/" in api_version else ""


class GarbageCollector(Controller):
    """Deletes objects whose owners are gone; carries out foreground and orphan deletion."""

    name = "garbagecollector"
    max_backoff = 10.0

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.nodes: dict[str, _Node] = {}
        self.dependents: dict[str, set[str]] = collections.defaultdict(set)
        self.absent: collections.OrderedDict[str, None] = collections.OrderedDict()
        # Kinds by (tenant or "" for every tenant, group, kind): how to reach an owner named in a reference.
        self.kinds: dict[tuple[str, str, str], ResourceInfo] = {}
        self.monitors: dict[tuple[str, str, str], Informer] = {}  # (tenant or "", group, plural) -> informer
        self._own: set[tuple[str, str, str]] = set()  # monitors this controller started (not the factory's)
        self._since: dict[tuple[str, str, str], float] = {}
        self._unsynced_logged: set[tuple[str, str, str]] = set()
        self._resync_task: asyncio.Task | None = None
        self._refresh = asyncio.Event()

    # -- monitors ---------------------------------------------------------------------------

    @staticmethod
    def _monitorable(info: ResourceInfo) -> bool:
        verbs = set(info.verbs)
        return {"list", "watch", "delete"} <= verbs and (info.group, info.plural) not in IGNORED

    def setup(self) -> None:
        for info in BUILTIN:
            self.kinds[("", info.group, info.kind)] = info
            if self._monitorable(info):
                inf = self.ctx.informers.informer(info)
                self._watch(inf, info, ("", info.group, info.plural))
        crds = self.ctx.informers.informer(CRDS)
        crds.add_handler(on_add=lambda _o: self._refresh.set(), on_update=lambda _o, _n: self._refresh.set(),
                         on_delete=lambda _o: self._refresh.set())

    def _watch(self, inf: Informer, info: ResourceInfo, mkey: tuple[str, str, str]) -> None:
        self.monitors[mkey] = inf
        inf.add_handler(on_add=lambda o: self._upsert(info, o), on_update=lambda _old, new: self._upsert(info, new),
                        on_delete=lambda o: self._remove(info, o))

    async def started(self) -> None:
        await self._sync_monitors()
        self._resync_task = asyncio.create_task(self._monitor_loop(), name="gc-monitors")

    async def shut_down(self, timeout: float = 10.0) -> None:
        await super().shut_down(timeout)
        if self._resync_task is not None:
            self._resync_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._resync_task
        await asyncio.gather(*(self.monitors[k].stop() for k in self._own if k in self.monitors),
                             return_exceptions=True)

    async def _monitor_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._refresh.wait(), MONITOR_RESYNC)
            self._refresh.clear()
            await asyncio.sleep(0.2)  # let a burst of CRD changes settle
            try:
                await self._sync_monitors()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # discovery failing must not stop the collector
                self.log.warning("could not refresh the monitored kinds: %s", exc)

    async def _sync_monitors(self) -> None:
        """Monitors for custom kinds (global and per tenant) that appeared; none for those that went."""
        wanted: dict[tuple[str, str, str], tuple[ResourceInfo, str | None]] = {}
        builtins = {(i.group, i.plural) for i in BUILTIN}
        for info in await self.ctx.discovery.resources():
            if (info.group, info.plural) in builtins:
                continue  # monitored from the start, through the shared informers
            self.kinds[("", info.group, info.kind)] = info
            if self._monitorable(info):
                wanted[("", info.group, info.plural)] = (info, ALL_TENANTS if info.scope.tenanted else None)
        crds = self.ctx.informers.informer(CRDS)
        for crd in crds.list():
            tenant = (crd.get("metadata") or {}).get("tenant") or ""
            if not tenant or tenant == SYSTEM_TENANT or not _established(crd):
                continue  # the system tenant's are served to every tenant: discovery has them
            info = _crd_info(crd)
            if info is None:
                continue
            self.kinds[(tenant, info.group, info.kind)] = info
            wanted[(tenant, info.group, info.plural)] = (info, tenant)
        started = []
        for mkey, (info, tenant) in wanted.items():
            if mkey in self.monitors:
                continue
            label = f"gc:{info.plural}" + (f"@{mkey[0]}" if mkey[0] else "")
            inf = Informer(self.client, info, tenant=tenant, name=label)
            self._watch(inf, info, mkey)
            self._own.add(mkey)
            self._since[mkey] = time.monotonic()
            await inf.start()
            started.append(inf)
            self.log.info("monitoring %s%s", info.plural + (f".{info.group}" if info.group else ""),
                          f" in tenant {mkey[0]}" if mkey[0] else "")
        for mkey in [k for k in self._own if k not in wanted]:
            inf = self.monitors.pop(mkey)
            self._own.discard(mkey)
            self._since.pop(mkey, None)
            await inf.stop()
            # The kind is gone and its objects with it (the server deletes a CRD's objects): take them out of
            # the graph as absent, so what they owned is collected.
            for obj in inf.list():
                self._remove(inf.info, obj)
            self.log.info("no longer monitoring %s (its definition is gone)", mkey[2])
        if started:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(i.wait_synced() for i in started)), 10.0)

    def _all_synced(self) -> bool:
        """Every monitor has its initial list, except ones that have failed to list for a long time.

        Foreground and orphan deletion must not conclude "no dependents left"
        from a graph missing a kind; but one kind that cannot be listed (a
        broken custom resource) must not hold every deletion back forever,
        so a monitor that has not synced within MONITOR_SYNC_TIMEOUT is left
        out (with a warning), as Kubernetes' collector does after its timeout.
        """
        now = time.monotonic()
        for mkey, inf in self.monitors.items():
            if inf.has_synced():
                continue
            since = self._since.get(mkey)
            if since is not None and now - since > MONITOR_SYNC_TIMEOUT:
                if mkey not in self._unsynced_logged:
                    self._unsynced_logged.add(mkey)
                    self.log.warning("monitor %s has not synced in %.0fs; deciding without it", inf.name,
                                     MONITOR_SYNC_TIMEOUT)
                continue
            return False
        return True

    # -- the graph ----------------------------------------------------------------------------

    def _resolve(self, tenant: str, namespace: str, ref: Obj) -> tuple[str, ResourceInfo | None]:
        """The node key an ownerReference names, seen from a dependent in `tenant`/`namespace`."""
        group = _group_of(str(ref.get("apiVersion") or ""))
        kind = str(ref.get("kind") or "")
        info = self.kinds.get((tenant, group, kind)) or self.kinds.get(("", group, kind))
        uid = str(ref.get("uid") or "")
        if info is None:
            # Unknown kind: assume it lives where the dependent does (the lookup says 404 or retries).
            return _node_key(tenant, namespace, uid), None
        if info.scope is Scope.CLUSTER:
            return _node_key("", "", uid), info
        if info.scope is Scope.TENANT:
            return _node_key(tenant, "", uid), info
        return _node_key(tenant, namespace, uid), info

    def _node_from(self, info: ResourceInfo, obj: Obj) -> _Node:
        meta = obj.get("metadata") or {}
        tenant = (meta.get("tenant") or "") if info.scope.tenanted else ""
        namespace = (meta.get("namespace") or "") if info.scope.namespaced else ""
        uid = meta.get("uid") or ""
        owners = []
        for ref in meta.get("ownerReferences") or ():
            if not isinstance(ref, dict) or not ref.get("uid"):
                continue
            key, _ = self._resolve(tenant, namespace, ref)
            owners.append(_Owner(key, str(ref["uid"]), str(ref.get("kind") or ""), str(ref.get("apiVersion") or ""),
                                 str(ref.get("name") or ""), ref.get("blockOwnerDeletion") is True))
        return _Node(_node_key(tenant, namespace, uid), info, tenant, namespace, meta.get("name") or "", uid, owners,
                     bool(meta.get("deletionTimestamp")), tuple(meta.get("finalizers") or ()))

    def _upsert(self, info: ResourceInfo, obj: Obj) -> None:
        node = self._node_from(info, obj)
        if not node.uid:
            return
        old = self.nodes.get(node.key)
        self.nodes[node.key] = node
        self.absent.pop(node.key, None)
        old_owners = {o.key for o in old.owners} if old is not None else set()
        new_owners = {o.key for o in node.owners}
        for key in old_owners - new_owners:
            deps = self.dependents.get(key)
            if deps is not None:
                deps.discard(node.key)
                if not deps:
                    del self.dependents[key]
            owner = self.nodes.get(key)
            if owner is not None and owner.foreground:
                self._add("d", key)  # one dependent fewer to wait for
        for key in new_owners:
            self.dependents[key].add(node.key)
        if new_owners and (old is None or old_owners != new_owners) and any(
                k not in self.nodes for k in new_owners):
            self._add("d", node.key)  # an owner we have not seen: find out whether it exists
        if node.foreground and (old is None or not old.foreground or old.finalizers != node.finalizers):
            self._add("d", node.key)
            for dep in self.dependents.get(node.key, ()):
                self._add("d", dep)
        if node.orphaning and (old is None or not old.orphaning):
            self._add("o", node.key)

    def _remove(self, info: ResourceInfo, obj: Obj) -> None:
        node = self._node_from(info, obj)
        if self.nodes.pop(node.key, None) is None:
            return
        self._mark_absent(node.key)
        for owner in node.owners:
            deps = self.dependents.get(owner.key)
            if deps is not None:
                deps.discard(node.key)
                if not deps:
                    del self.dependents[owner.key]
            held = self.nodes.get(owner.key)
            if held is not None and held.foreground:
                self._add("d", owner.key)
        for dep in self.dependents.get(node.key, ()):
            self._add("d", dep)

    def _mark_absent(self, key: str) -> None:
        self.absent[key] = None
        self.absent.move_to_end(key)
        while len(self.absent) > ABSENT_CACHE_SIZE:
            self.absent.popitem(last=False)

    def _add(self, op: str, key: str) -> None:
        self.queue.add(f"{op}|{key}")

    # -- work ---------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        op, _, node_key = key.partition("|")
        node = self.nodes.get(node_key)
        if node is None:
            return
        if op == "o":
            await self._orphan(node)
        elif node.foreground:
            await self._foreground(node)
        elif not node.deleting and node.owners:
            await self._attempt_delete(node)

    def _where(self, node: _Node) -> dict[str, str | None]:
        return {"tenant": node.tenant or None, "namespace": node.namespace or None}

    async def _live(self, node: _Node) -> Obj | None:
        """The object as the server has it now, or None if it is gone (or replaced by another uid)."""
        try:
            obj = await self.client.get(node.info, node.name, **self._where(node))
        except APIError as exc:
            if is_gone(exc):
                return None
            raise
        return obj if (obj.get("metadata") or {}).get("uid") == node.uid else None

    async def _owner_state(self, dep: _Node, owner: _Owner) -> str:
        """"solid", "waiting" (being deleted in foreground) or "dangling" for one owner reference."""
        held = self.nodes.get(owner.key)
        if held is not None:
            return "waiting" if held.foreground else "solid"
        if owner.key in self.absent:
            return "dangling"
        _, info = self._resolve(dep.tenant, dep.namespace, {"apiVersion": owner.api_version, "kind": owner.kind,
                                                            "uid": owner.uid})
        if info is None:
            raise Pending(f"owner kind {owner.kind} ({owner.api_version}) of {dep.info.plural} "
                          f"{dep.tenant}/{dep.namespace}/{dep.name} is not served; cannot tell if it exists",
                          max_delay=30.0, blocker=f"unknown kind {owner.api_version}/{owner.kind}")
        if (info.scope.namespaced and not dep.namespace) or (info.scope.tenanted and not dep.tenant):
            # A namespaced owner cannot own a cluster- or tenant-scoped object, nor a tenant's object one outside
            # tenants: the reference is invalid, as in Kubernetes.
            self.log.warning("%s %s/%s names a %s-scoped owner %s %s: treating it as absent", dep.info.plural,
                             dep.tenant, dep.name, info.scope.value, owner.kind, owner.name)
            return "dangling"
        tenant = dep.tenant if info.scope.tenanted else None
        namespace = dep.namespace if info.scope.namespaced else None
        try:
            live = await self.client.get(info, owner.name, tenant=tenant or None, namespace=namespace or None)
        except APIError as exc:
            if is_gone(exc):
                self._mark_absent(owner.key)
                return "dangling"
            raise
        meta = live.get("metadata") or {}
        if meta.get("uid") != owner.uid:
            self._mark_absent(owner.key)
            return "dangling"
        if meta.get("deletionTimestamp") and FOREGROUND_FINALIZER in (meta.get("finalizers") or ()):
            return "waiting"
        return "solid"

    async def _attempt_delete(self, node: _Node) -> None:
        """Kubernetes' attemptToDeleteItem for an object that has owners."""
        if all((o := self.nodes.get(owner.key)) is not None and not o.foreground for owner in node.owners):
            return  # every owner is there and staying: nothing to ask the server
        latest = await self._live(node)
        if latest is None or (latest.get("metadata") or {}).get("deletionTimestamp"):
            return
        fresh = self._node_from(node.info, latest)
        if not fresh.owners:
            return
        states: dict[str, list[_Owner]] = {"solid": [], "waiting": [], "dangling": []}
        for owner in fresh.owners:
            states[await self._owner_state(fresh, owner)].append(owner)
        where = _describe(node)
        if states["solid"]:
            drop = {o.uid for o in states["dangling"] + states["waiting"]}
            if drop and await self._drop_owner_refs(node, drop):
                self.log.info("%s: removed references to owners that are gone or going: %s", where,
                              ", ".join(f"{o.kind}/{o.name}" for o in states["dangling"] + states["waiting"]))
            return
        if states["waiting"] and self.dependents.get(node.key):
            policy = "Foreground"  # the owner waits for us: we wait for ours
        else:
            finalizers = latest["metadata"].get("finalizers") or ()
            policy = ("Orphan" if ORPHAN_FINALIZER in finalizers else
                      "Foreground" if FOREGROUND_FINALIZER in finalizers else "Background")
        try:
            await self.client.delete(node.info, node.name, **self._where(node), propagation_policy=policy,
                                     preconditions={"uid": node.uid})
        except APIError as exc:
            if is_gone(exc) or exc.code == 409:
                return
            raise
        owners = ", ".join(f"{o.kind}/{o.name}" for o in fresh.owners)
        self.log.info("deleted %s (%s propagation): its owners %s are %s", where, policy.lower(), owners,
                      "being deleted in foreground" if states["waiting"] else "gone")

    async def _patch_fresh(self, node: _Node, change: Callable[[Obj], Obj | None]) -> Obj | None:
        """Read the object, let `change` compute a merge patch (None: nothing to do), write it on that version.

        A 409 means someone wrote in between (the owner's own controller
        updating its status, say): read again and redo, a few times, as
        Kubernetes' RetryOnConflict does, instead of failing the whole sync.
        """
        for attempt in range(5):
            latest = await self._live(node)
            if latest is None:
                return None
            patch = change(latest)
            if patch is None:
                return latest
            patch.setdefault("metadata", {})["resourceVersion"] = latest["metadata"].get("resourceVersion")
            try:
                return await self.client.patch(node.info, node.name, patch, **self._where(node))
            except APIError as exc:
                if is_gone(exc):
                    return None
                if exc.code != 409 or attempt == 4:
                    raise
        return None

    async def _drop_owner_refs(self, node: _Node, uids: set[str]) -> bool:
        """Remove the references to these owner uids; whether any was removed."""
        removed = False

        def change(latest: Obj) -> Obj | None:
            nonlocal removed
            refs = latest["metadata"].get("ownerReferences") or []
            kept = [r for r in refs if r.get("uid") not in uids]
            removed = len(kept) != len(refs)
            return {"metadata": {"ownerReferences": kept or None}} if removed else None

        await self._patch_fresh(node, change)
        return removed

    async def _remove_finalizer(self, node: _Node, finalizer: str) -> None:
        def change(latest: Obj) -> Obj | None:
            finalizers = list(latest["metadata"].get("finalizers") or ())
            if finalizer not in finalizers:
                return None
            return {"metadata": {"finalizers": [f for f in finalizers if f != finalizer]}}

        await self._patch_fresh(node, change)

    async def _foreground(self, node: _Node) -> None:
        """An owner deleted in foreground: delete its dependents, then let it go."""
        if not self._all_synced():
            raise Pending("waiting for every monitor to sync before deciding no dependent is left", max_delay=1.0)
        deps = [self.nodes[k] for k in self.dependents.get(node.key, ()) if k in self.nodes]
        blocking = [d for d in deps if any(o.key == node.key and o.block for o in d.owners)]
        if not blocking:
            await self._remove_finalizer(node, FOREGROUND_FINALIZER)
            self.log.info("%s: dependents gone, foreground deletion finished", _describe(node))
            return
        for dep in deps:
            if not dep.deleting:
                self._add("d", dep.key)
        # The last blocking dependent's removal brings this owner back.

    async def _orphan(self, node: _Node) -> None:
        """An owner deleted with orphan: take its reference out of every dependent, then let it go."""
        if not node.orphaning:
            return
        if not self._all_synced():
            raise Pending("waiting for every monitor to sync before orphaning dependents", max_delay=1.0)
        deps = [self.nodes[k] for k in list(self.dependents.get(node.key, ())) if k in self.nodes]
        results = await asyncio.gather(*(self._drop_owner_refs(d, {node.uid}) for d in deps), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise failures[0]
        await self._remove_finalizer(node, ORPHAN_FINALIZER)
        self.log.info("%s: orphan deletion finished (%d dependents released in this pass)", _describe(node),
                      sum(r is True for r in results))


def _describe(node: _Node) -> str:
    """`pods tenant/namespace/name` for logs."""
    return f"{node.info.plural} " + "/".join(p for p in (node.tenant, node.namespace, node.name) if p)


def _established(crd: Obj) -> bool:
    return any(c.get("type") == "Established" and c.get("status") == "True"
               for c in (crd.get("status") or {}).get("conditions") or () if isinstance(c, dict))


def _crd_info(crd: Obj) -> ResourceInfo | None:
    """The kind a tenant's own CustomResourceDefinition defines (at its storage version)."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    served = [v for v in spec.get("versions") or [] if isinstance(v, dict) and v.get("served", True) and v.get("name")]
    if not served or not names.get("plural") or not names.get("kind") or not spec.get("group"):
        return None
    version = next((v for v in served if v.get("storage")), served[0])["name"]
    scope = Scope.NAMESPACE if spec.get("scope") == "Namespaced" else Scope.TENANT
    return ResourceInfo(spec["group"], version, names["kind"], names["plural"], scope,
                        singular=names.get("singular") or "")
