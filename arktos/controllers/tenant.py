"""The tenant controller (ARKTOS.md section 1): what a tenant starts with, and its complete removal.

On creation a tenant gets the namespaces `default`, `kube-system` and
`kube-public`, and its policy (`tenant_policy`: the tenant admin
ClusterRole + ClusterRoleBinding for user `admin`, the aggregated
admin/edit/view roles, discovery), each created only if absent so an
operator's edits survive.  Arktos also gave each tenant a default Network
object; this API has no Network kind yet, so there is none to create (add it
here when the kind exists).  The controller also makes sure the `system`
tenant exists.  The system tenant does not get `tenant_policy`: its
ClusterRoleBindings grant across every tenant, so binding a tenant-admin role
to a user named `admin` there would hand that user the whole cluster; the API
server bootstraps the system tenant's own policy.

On deletion (the tenant is Terminating and still carries the "kubernetes"
finalizer) it deletes every tenanted object of the tenant, in every kind the
server serves (from discovery, custom resources included): each namespace
is deleted, emptied and finalized, then the tenant-scoped objects go
(CustomResourceDefinitions last, so their objects were deleted through the
API first), and only when a fresh look finds nothing left is the finalizer
removed through the `finalize` subresource, which lets the server delete the
tenant.

Never stuck in Terminating (Arktos's tenants were): every pass is
idempotent and retried with backoff, and every retry logs what still blocks.
Objects held by `metadata.finalizers` that nothing will remove (their
controller is gone, or never existed) and pods whose node never confirms they
stopped would block forever, so after a grace period (`--tenant-deletion-
grace-period`, 60 s by default, counted from when this controller first saw
the tenant Terminating, by its own clock) the controller strips the
finalizers of what still blocks and deletes such pods with a zero grace
period, logging every object it forces at WARNING.  A deleted tenant is a
decision to remove everything in it; a finalizer's owner that has not acted
in a minute will not act for that tenant, and the alternative, a tenant that
never goes away, is the bug we set out not to have.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from arktos.api.errors import APIError
from arktos.api.policy import tenant_policy
from arktos.api.tenancy import SYSTEM_TENANT
from arktos.client import TransportError
from arktos.controllers.base import Controller, ControllerContext, Pending, builtin, is_gone, is_terminating_refusal
from arktos.controllers.content import ContentDeleter, Leftover, remove_spec_finalizers, summarize
from arktos.controllers.namespace import NAMESPACE_FINALIZER, is_deleting

__all__ = ["STANDARD_NAMESPACES", "TENANT_FINALIZER", "TenantController"]

Obj = dict[str, Any]
TENANTS = builtin("", "tenants")
NAMESPACES = builtin("", "namespaces")
SERVICES = builtin("", "services")
ENDPOINTS = builtin("", "endpoints")
CLUSTER_ROLES = builtin("rbac.authorization.k8s.io", "clusterroles")
CLUSTER_ROLE_BINDINGS = builtin("rbac.authorization.k8s.io", "clusterrolebindings")
STANDARD_NAMESPACES = ("default", "kube-system", "kube-public")
TENANT_FINALIZER = "kubernetes"
BOOTSTRAP_SELECTOR = "kubernetes.io/bootstrapping=rbac-defaults"
POLICY_INFOS = {"ClusterRole": CLUSTER_ROLES, "ClusterRoleBinding": CLUSTER_ROLE_BINDINGS}


def _secure_port(endpoints: Obj | None) -> int:
    """The API servers' port in the system tenant's kubernetes Endpoints (6443 if there are none yet)."""
    for subset in (endpoints or {}).get("subsets") or []:
        for port in subset.get("ports") or []:
            if port.get("port"):
                return int(port["port"])
    return 6443


def _tenant_index(obj: Obj) -> list[str]:
    tenant = (obj.get("metadata") or {}).get("tenant")
    return [tenant] if tenant else []


@dataclass
class _Deletion:
    uid: str
    first_seen: float
    removed: int = 0
    forced_logged: bool = False


class TenantController(Controller):
    name = "tenant"
    max_backoff = 10.0

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.deleter = ContentDeleter(self.client, ctx.discovery)
        self.grace = ctx.options.tenant_deletion_grace_period
        self._provisioned: dict[str, str] = {}  # tenant -> uid whose policy is known to exist
        self._deleting: dict[str, _Deletion] = {}

    def setup(self) -> None:
        self.tenants = self.ctx.informers.informer(TENANTS)
        self.namespaces = self.ctx.informers.informer(NAMESPACES, indexers={"tenant": _tenant_index})
        self.tenants.add_handler(on_add=self.enqueue, on_update=lambda _old, new: self.enqueue(new))
        # A standard namespace that disappears from an active tenant is put back; a namespace that
        # disappears from a terminating tenant may be the last thing it waited for.
        self.namespaces.add_handler(on_delete=self._namespace_gone)

    def _namespace_gone(self, ns: Obj) -> None:
        tenant = (ns.get("metadata") or {}).get("tenant")
        if tenant and self.tenants.get(tenant) is not None:
            self.enqueue(tenant)

    async def started(self) -> None:
        try:
            await self._ensure_system_tenant()
        except (APIError, TransportError) as exc:
            self.log.warning("could not create the %s tenant: %s; retrying", SYSTEM_TENANT, exc)
            self.enqueue(SYSTEM_TENANT)  # the sync of a missing system tenant creates it, with backoff

    async def _ensure_system_tenant(self) -> None:
        if self.tenants.get(SYSTEM_TENANT) is not None:
            return
        try:
            await self.client.create(TENANTS, {"apiVersion": "v1", "kind": "Tenant",
                                               "metadata": {"name": SYSTEM_TENANT}})
        except APIError as exc:
            if exc.code == 409:
                return
            raise
        self.log.info("created the %s tenant", SYSTEM_TENANT)

    async def sync(self, key: str) -> None:
        tenant = self.tenants.get(key)
        if tenant is None:
            self._provisioned.pop(key, None)
            self._deleting.pop(key, None)
            if key == SYSTEM_TENANT:
                await self._ensure_system_tenant()
            return
        if is_deleting(tenant):
            self._provisioned.pop(key, None)
            await self._delete(tenant)
        else:
            self._deleting.pop(key, None)
            await self._provision(tenant)

    # -- creation ------------------------------------------------------------------------

    async def _provision(self, tenant: Obj) -> None:
        name, uid = tenant["metadata"]["name"], tenant["metadata"].get("uid", "")
        created_ns: list[str] = []
        for ns in STANDARD_NAMESPACES:
            if self.namespaces.get(f"{name}/{ns}") is not None:
                continue
            try:
                await self.client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                                      "metadata": {"name": ns}}, tenant=name)
                created_ns.append(ns)
            except APIError as exc:
                if exc.code == 409:
                    continue
                if is_terminating_refusal(exc):
                    return  # deleted meanwhile: the update event brings us back for that
                raise
        created_policy = 0
        if name != SYSTEM_TENANT and self._provisioned.get(name) != uid:
            created_policy = await self._ensure_policy(name)
            created_policy += await self._ensure_kubernetes_service(name)
            self._provisioned[name] = uid
        # The default Network object of Arktos would be created here; there is no Network kind yet.
        if created_ns or created_policy:
            self.log.info("tenant %s provisioned: created namespaces [%s], %d policy objects", name,
                          ", ".join(created_ns), created_policy)

    async def _ensure_kubernetes_service(self, tenant: str) -> int:
        """The tenant's own default/kubernetes (its pods resolve `kubernetes.default.svc` in their tenant's zone):
        an allocated ClusterIP (the range's first address is the system tenant's) and the system tenant's
        Endpoints, i.e. the same API servers (see arktos.apiserver.master).  How many objects were created."""
        created = 0
        try:
            system = await self.client.get(ENDPOINTS, "kubernetes", tenant=SYSTEM_TENANT, namespace="default")
        except APIError as exc:
            if exc.code != 404:
                raise
            system = None
        service = {"apiVersion": "v1", "kind": "Service", "metadata": {
            "name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"type": "ClusterIP", "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                                                     "targetPort": _secure_port(system)}]}}
        todo = [(SERVICES, service)]
        if system is not None:
            todo.append((ENDPOINTS, {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "kubernetes"},
                                     "subsets": system.get("subsets") or []}))
        for info, body in todo:
            try:
                await self.client.create(info, body, tenant=tenant, namespace="default")
                created += 1
            except APIError as exc:
                if exc.code != 409 and not is_terminating_refusal(exc):
                    raise
        return created

    async def _ensure_policy(self, tenant: str) -> int:
        """Create the tenant's bootstrap roles and bindings that are missing; how many were created."""
        existing: dict[str, set[str]] = {}
        for kind, info in POLICY_INFOS.items():
            listed = await self.client.list(info, tenant=tenant, label_selector=BOOTSTRAP_SELECTOR)
            existing[kind] = {o["metadata"]["name"] for o in listed["items"]}
        policy = tenant_policy(tenant)
        created = 0
        # Roles before the bindings that name them, each group concurrently.
        for kind in ("ClusterRole", "ClusterRoleBinding"):
            todo = [o for o in policy if o["kind"] == kind and o["metadata"]["name"] not in existing[kind]]
            results = await asyncio.gather(*(self.client.create(POLICY_INFOS[kind], o, tenant=tenant) for o in todo),
                                           return_exceptions=True)
            for obj, r in zip(todo, results, strict=True):
                if isinstance(r, APIError) and r.code == 409:
                    continue
                if isinstance(r, BaseException):
                    if is_terminating_refusal(r):
                        return created
                    self.log.warning("tenant %s: creating %s %s failed: %s", tenant, kind, obj["metadata"]["name"], r)
                    raise r
                created += 1
        return created

    # -- deletion ------------------------------------------------------------------------

    async def _delete(self, tenant: Obj) -> None:
        meta = tenant["metadata"]
        name, uid = meta["name"], meta.get("uid", "")
        if TENANT_FINALIZER not in ((tenant.get("spec") or {}).get("finalizers") or []):
            return  # our part is done (other finalizers belong to other controllers)
        state = self._deleting.get(name)
        if state is None or state.uid != uid:
            state = self._deleting[name] = _Deletion(uid, time.monotonic())
            self.log.info("tenant %s is being deleted: deleting everything in it", name)
        start = time.monotonic()
        elapsed = start - state.first_seen
        force = elapsed >= self.grace
        if force and not state.forced_logged:
            state.forced_logged = True
            self.log.warning("tenant %s has been terminating for %.0fs (grace period %.0fs): stripping the "
                             "finalizers of whatever still blocks it", name, elapsed, self.grace)

        # 1. Every namespace: delete it, empty it, finalize it (namespaced kinds tenant-wide at once).
        namespaces = (await self.client.list(NAMESPACES, tenant=name))["items"]
        refused: set[str] = set()

        async def delete_ns(ns: Obj) -> None:
            ns_name = ns["metadata"]["name"]
            if ns["metadata"].get("deletionTimestamp"):
                return
            try:
                await self.client.delete(NAMESPACES, ns_name, tenant=name)
            except APIError as exc:
                if exc.code == 403:
                    refused.add(ns_name)  # a protected namespace the server will not delete
                elif not is_gone(exc):
                    raise

        await asyncio.gather(*(delete_ns(ns) for ns in namespaces))
        removed, blocking = await self.deleter.delete_tenant_namespaced(name, force=force, since=start)
        state.removed += removed
        holding = {lf.namespace for lf in blocking}

        async def finalize_ns(ns: Obj) -> None:
            ns_name = ns["metadata"]["name"]
            if ns_name in holding or ns_name in refused:
                return
            others = [f for f in (ns.get("spec") or {}).get("finalizers") or [] if f != NAMESPACE_FINALIZER]
            if force and others:
                self.log.warning("FORCED: removing spec.finalizers %s of namespace %s/%s", others, name, ns_name)
            await remove_spec_finalizers(self.client, NAMESPACES, ns_name, tenant=name,
                                         drop=None if force else frozenset({NAMESPACE_FINALIZER}))

        await asyncio.gather(*(finalize_ns(ns) for ns in namespaces))

        # 2. Tenant-scoped objects; CRDs only once no namespace can hold their objects any more.
        remaining_ns = [ns for ns in (await self.client.list(NAMESPACES, tenant=name))["items"]
                        if ns["metadata"]["name"] not in refused]
        skip = {"namespaces"} | ({"customresourcedefinitions"} if remaining_ns else set())
        removed, leftovers = await self.deleter.delete_tenant_scoped(name, force=force, since=start,
                                                                     skip=frozenset(skip))
        state.removed += removed
        blocking += leftovers
        blocking += [Leftover("namespaces", ns["metadata"]["name"], "waiting to be finalized")
                     for ns in remaining_ns]
        if blocking:
            what = summarize(blocking)
            message = f"tenant still holds {what} after {elapsed:.0f}s"
            if force:
                raise Pending(message, blocker=what)
            # Back off as usual, but be back when the grace period ends.
            remaining = self.grace - (time.monotonic() - state.first_seen)
            raise Pending(f"{message}; finalizers are stripped in {max(remaining, 0):.0f}s", max_delay=remaining,
                          blocker=what)
        if refused:
            self.log.error("tenant %s: the API server refused to delete its namespaces %s (protected); they are "
                           "empty but stay stored after the tenant is gone. The API server must allow deleting "
                           "the standard namespaces of a terminating tenant.", name, sorted(refused))

        # 3. Nothing left: let the tenant go.  Only our finalizer: the tenant's objects are gone, and
        # any other spec finalizer is another controller's promise about the tenant itself.
        if await remove_spec_finalizers(self.client, TENANTS, name, tenant=None,
                                        drop=frozenset({TENANT_FINALIZER})):
            self.log.info("tenant %s finalized: removed %d objects in %.1fs", name, state.removed,
                          time.monotonic() - state.first_seen)
        self._deleting.pop(name, None)
