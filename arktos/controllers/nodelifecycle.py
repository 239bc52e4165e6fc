"""The node lifecycle controller: nodes that stop heartbeating become NotReady, tainted, and emptied.

A node agent proves it is alive by renewing its Lease (coordination.k8s.io,
namespace `kube-node-lease` of the system tenant, named after the node) or by
posting a new Ready heartbeat in the node's status.  The controller notes,
by its own clock, when it last saw either change (clocks of other machines
are never compared with ours), and:

* after `--node-monitor-grace-period` (40 s) without one, sets the node's
  Ready condition (and the pressure conditions it finds) to Unknown
  ("Kubelet stopped posting node status."), marks the node's pods not ready,
  and taints the node `node.kubernetes.io/unreachable` with NoSchedule and
  NoExecute.  A node whose agent reports Ready=False gets the same treatment
  with `node.kubernetes.io/not-ready`.
* evicts (deletes) each pod on a NoExecute-tainted node once its tolerations
  run out, counted from the taint's `timeAdded`: a toleration's
  `tolerationSeconds`, forever without one, and for the not-ready and
  unreachable taints a pod that does not mention them gets the default of
  `--pod-eviction-timeout` (300 s, what Kubernetes' DefaultTolerationSeconds
  admission would have given it).  Any other NoExecute taint evicts pods that
  do not tolerate it at once.  The pods' ReplicaSets then replace them
  elsewhere (pods being deleted do not count as replicas).
* when heartbeats come back, removes the taints and turns the conditions it
  had set to Unknown back to healthy.

If no node at all is healthy, evictions stop: that is far more likely to be
this controller's (or the network's) problem than every node failing at once,
and evicting everything would turn it into an outage (Kubernetes' "full
disruption" rule).

Scale-out (ARKTOS.md section 4): this controller runs on a resource
partition, where nodes and leases live, while pods live on the tenant
partitions.  `--tenant-servers` (or `pod_clients`) gives the pod side its own
servers; each pod is written back to the server it came from.  Without them,
pods are on the same server as the nodes.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from arktos.api.errors import APIError
from arktos.api.tenancy import SYSTEM_TENANT
from arktos.client import ALL_TENANTS, Client, Informer, load_kubeconfig, node_name_index
from arktos.controllers._workloads import NODE_INDEX, now_rfc3339, parse_time
from arktos.controllers.base import Controller, ControllerContext, builtin, is_gone

__all__ = [
    "NODE_LEASE_NAMESPACE",
    "NOT_READY_TAINT",
    "UNREACHABLE_TAINT",
    "NodeLifecycleController",
    "eviction_time",
    "tolerates",
]

Obj = dict[str, Any]
NODES = builtin("", "nodes")
PODS = builtin("", "pods")
LEASES = builtin("coordination.k8s.io", "leases")
NAMESPACES = builtin("", "namespaces")

NODE_LEASE_NAMESPACE = "kube-node-lease"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
MANAGED_TAINTS = (UNREACHABLE_TAINT, NOT_READY_TAINT)
STATUS_UNKNOWN_REASON = "NodeStatusUnknown"
RECOVERED_REASON = "NodeLeaseRenewed"
AGENT_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
DEFAULT_GRACE = 40.0
DEFAULT_EVICTION_TIMEOUT = 300.0


def tolerates(toleration: Obj, taint: Obj) -> bool:
    """Kubernetes' ToleratesTaint."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    operator = toleration.get("operator") or "Equal"
    key = toleration.get("key") or ""
    if not key:
        return operator == "Exists"
    if key != taint.get("key"):
        return False
    if operator == "Exists":
        return True
    return (toleration.get("value") or "") == (taint.get("value") or "")


def eviction_time(pod: Obj, taints: list[Obj], default_timeout: float, now: float,
                  since: list[float] | None = None) -> float | None:
    """When a pod on a node with these NoExecute taints must go (POSIX time), None for never.

    Per taint, the first toleration that matches it (Kubernetes'
    GetMatchingTolerations); the smallest tolerationSeconds wins, a
    toleration without seconds lasts forever, and an untolerated taint evicts
    at once, except that the not-ready and unreachable taints get the default
    timeout.  The clock of each taint starts at its `timeAdded`, or at
    `since[i]` when that is later (when this controller first saw the taint:
    `timeAdded` has whole seconds only, and a pod must never lose part of
    its toleration to rounding).
    """
    tolerations = [t for t in (pod.get("spec") or {}).get("tolerations") or () if isinstance(t, dict)]
    earliest: float | None = None
    for i, taint in enumerate(taints):
        added = parse_time(taint.get("timeAdded")) or now
        if since is not None:
            added = max(added, since[i])
        match = next((t for t in tolerations if tolerates(t, taint)), None)
        if match is None:
            seconds: float | None = default_timeout if taint.get("key") in MANAGED_TAINTS else 0.0
        else:
            raw = match.get("tolerationSeconds")
            seconds = None if raw is None else max(float(raw), 0.0)
        if seconds is None:
            continue
        at = added + seconds
        earliest = at if earliest is None else min(earliest, at)
    return earliest


def _condition(node: Obj, ctype: str) -> Obj | None:
    return next((c for c in (node.get("status") or {}).get("conditions") or []
                 if isinstance(c, dict) and c.get("type") == ctype), None)


@dataclass(slots=True)
class _Health:
    probe: float  # time.monotonic() of the last heartbeat we saw
    renew: str | None  # the lease's renewTime then
    heartbeat: str | None  # the Ready condition's lastHeartbeatTime then


class NodeLifecycleController(Controller):
    """Marks nodes without heartbeats NotReady, taints them, and evicts their pods."""

    name = "nodelifecycle"
    max_backoff = 5.0

    def __init__(self, ctx: ControllerContext, *, pod_clients: Sequence[Client] | None = None,
                 grace_period: float | None = None, eviction_timeout: float | None = None) -> None:
        super().__init__(ctx)
        extra = ctx.options.extra
        self.grace = float(grace_period if grace_period is not None else
                           extra.get("node_monitor_grace_period", DEFAULT_GRACE))
        self.eviction_timeout = float(eviction_timeout if eviction_timeout is not None else
                                      extra.get("pod_eviction_timeout", DEFAULT_EVICTION_TIMEOUT))
        self._own_clients: list[Client] = []
        clients = list(pod_clients or [])
        if not clients:
            for path in extra.get("tenant_servers") or ():
                client = Client(load_kubeconfig(path), component="controller-manager")
                self._own_clients.append(client)
                clients.append(client)
        self.pod_clients = clients
        self._health: dict[str, _Health] = {}
        self._own_pods: Informer | None = None
        self._disruption_logged = False
        self._taint_seen: dict[tuple[str, Any, Any], float] = {}  # (node, key, timeAdded) -> first seen (POSIX)

    # -- informers ---------------------------------------------------------------------------

    def setup(self) -> None:
        f = self.ctx.informers
        self.nodes = f.informer(NODES)
        self.leases = f.informer(LEASES, tenant=SYSTEM_TENANT, namespace=NODE_LEASE_NAMESPACE)
        if self.pod_clients:
            self._own_pods = Informer(self.pod_clients, PODS, tenant=ALL_TENANTS,
                                      indexers={NODE_INDEX: node_name_index}, name="pods@tenant-servers")
            self.pods = self._own_pods
        else:
            self.pods = f.informer(PODS, indexers={NODE_INDEX: node_name_index})
        self.nodes.add_handler(on_add=self._node, on_update=lambda _o, n: self._node(n), on_delete=self._node)
        self.leases.add_handler(on_add=self._lease, on_update=lambda _o, n: self._lease(n))
        self.pods.add_handler(on_add=self._pod, on_update=lambda _o, n: self._pod(n))

    def _node(self, node: Obj) -> None:
        self.enqueue(node["metadata"]["name"])

    def _lease(self, lease: Obj) -> None:
        name = (lease.get("metadata") or {}).get("name")
        if name and self.nodes.get(name) is not None:
            self.enqueue(name)

    def _pod(self, pod: Obj) -> None:
        """A pod landing on a node with NoExecute taints needs its eviction scheduled."""
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name or (pod.get("metadata") or {}).get("deletionTimestamp"):
            return
        node = self.nodes.get(node_name)
        taints = ((node or {}).get("spec") or {}).get("taints") or []
        if any(t.get("effect") == "NoExecute" for t in taints):
            self.enqueue(node_name)

    async def started(self) -> None:
        try:
            await self.client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                                  "metadata": {"name": NODE_LEASE_NAMESPACE}}, tenant=SYSTEM_TENANT)
            self.log.info("created namespace %s/%s", SYSTEM_TENANT, NODE_LEASE_NAMESPACE)
        except APIError as exc:
            if exc.code != 409:
                self.log.warning("could not create namespace %s/%s: %s", SYSTEM_TENANT, NODE_LEASE_NAMESPACE, exc)
        if self._own_pods is not None:
            await self._own_pods.start()
            await self._own_pods.wait_synced()
        self.log.info("node monitor grace period %.1fs, default pod eviction timeout %.1fs, pods from %s",
                      self.grace, self.eviction_timeout,
                      ", ".join(c.server for c in self.pod_clients) if self.pod_clients else "the same server")

    async def shut_down(self, timeout: float = 10.0) -> None:
        await super().shut_down(timeout)
        if self._own_pods is not None:
            await self._own_pods.stop()
        for client in self._own_clients:
            await client.close()

    # -- health ------------------------------------------------------------------------------

    def _observe(self, node: Obj) -> _Health:
        name = node["metadata"]["name"]
        lease = self.leases.get(f"{SYSTEM_TENANT}/{NODE_LEASE_NAMESPACE}/{name}")
        renew = ((lease or {}).get("spec") or {}).get("renewTime")
        ready = _condition(node, "Ready")
        heartbeat = (ready or {}).get("lastHeartbeatTime")
        now = time.monotonic()
        h = self._health.get(name)
        if h is None:
            # First sight (or a restart of this controller): a full grace period from now.
            h = self._health[name] = _Health(now, renew, heartbeat)
            return h
        if renew != h.renew:
            h.renew = renew
            if renew:
                h.probe = now
        if heartbeat != h.heartbeat:
            h.heartbeat = heartbeat
            if heartbeat:
                h.probe = now
        return h

    def _healthy(self, node: Obj) -> bool:
        h = self._health.get(node["metadata"]["name"])
        ready = _condition(node, "Ready")
        return (h is None or time.monotonic() - h.probe <= self.grace) and ready is not None and (
            ready.get("status") == "True")

    # -- sync ----------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        try:
            await self._sync(key)
        except APIError as exc:
            if exc.code != 409:
                raise
            # We wrote the node a moment ago (status, then taints) and the cache is behind: its event is coming.
            self.log.debug("node %s: write lost to a newer version; syncing again", key)
            self.enqueue_after(key, 0.1)

    async def _sync(self, key: str) -> None:
        node = self.nodes.get(key)
        if node is None:
            self._health.pop(key, None)
            for k in [k for k in self._taint_seen if k[0] == key]:
                del self._taint_seen[k]
            return
        node = copy.deepcopy(node)
        h = self._observe(node)
        since = time.monotonic() - h.probe
        stale = since > self.grace
        ready = _condition(node, "Ready")
        state = ready.get("status") if ready is not None else None
        if stale:
            if state != "Unknown":
                node = await self._mark_unknown(node, since) or node
                await self._mark_pods_not_ready(key)
            want: str | None = UNREACHABLE_TAINT
        else:
            if state == "Unknown" and ready is not None and ready.get("reason") == STATUS_UNKNOWN_REASON:
                node = await self._recover(node) or node
                state = "True"
            want = NOT_READY_TAINT if state == "False" else UNREACHABLE_TAINT if state == "Unknown" else None
            # Come back the moment the node would turn stale.
            self.enqueue_after(key, self.grace - since + 0.05)
        node = await self._set_taints(node, want) or node
        await self._evict(node)

    async def _mark_unknown(self, node: Obj, since: float) -> Obj | None:
        name = node["metadata"]["name"]
        now = now_rfc3339()
        status = node.setdefault("status", {})
        conditions = status.setdefault("conditions", [])
        if _condition(node, "Ready") is None:
            conditions.append({"type": "Ready", "status": "Unknown", "reason": STATUS_UNKNOWN_REASON,
                               "message": "Kubelet never posted node status.", "lastTransitionTime": now})
        for cond in conditions:
            if cond.get("type") in AGENT_CONDITIONS and cond.get("status") != "Unknown":
                cond.update(status="Unknown", reason=STATUS_UNKNOWN_REASON,
                            message="Kubelet stopped posting node status.", lastTransitionTime=now)
        try:
            result = await self.client.update_status(NODES, node)
        except APIError as exc:
            if is_gone(exc):
                return None
            raise
        self.log.warning("node %s: no heartbeat for %.1fs (grace period %.1fs): Ready is Unknown", name, since,
                         self.grace)
        self.ctx.events.normal(node, "NodeNotReady", "Node %s status is now: NodeNotReady", name)
        return result

    async def _recover(self, node: Obj) -> Obj | None:
        name = node["metadata"]["name"]
        now = now_rfc3339()
        for cond in (node.get("status") or {}).get("conditions") or []:
            if cond.get("type") in AGENT_CONDITIONS and cond.get("reason") == STATUS_UNKNOWN_REASON:
                cond.update(status="True" if cond["type"] == "Ready" else "False", reason=RECOVERED_REASON,
                            message="The node agent is renewing its lease again.", lastTransitionTime=now)
        try:
            result = await self.client.update_status(NODES, node)
        except APIError as exc:
            if is_gone(exc):
                return None
            raise
        self.log.info("node %s: heartbeats are back: Ready is True", name)
        self.ctx.events.normal(node, "NodeReady", "Node %s status is now: NodeReady", name)
        return result

    async def _set_taints(self, node: Obj, want: str | None) -> Obj | None:
        taints = [t for t in (node.get("spec") or {}).get("taints") or [] if isinstance(t, dict)]
        wanted = [t for t in taints if t.get("key") not in MANAGED_TAINTS or t.get("key") == want]
        if want is not None:
            for effect in ("NoSchedule", "NoExecute"):
                if not any(t.get("key") == want and t.get("effect") == effect for t in wanted):
                    wanted.append({"key": want, "effect": effect, "timeAdded": now_rfc3339()})
        if wanted == taints:
            return None
        meta = node["metadata"]
        try:
            result = await self.client.patch(NODES, meta["name"], {
                "metadata": {"resourceVersion": meta.get("resourceVersion")}, "spec": {"taints": wanted or None}})
        except APIError as exc:
            if is_gone(exc):
                return None
            raise  # 409: the node changed; the retry reads it again
        added = sorted({t["key"] for t in wanted} - {t.get("key") for t in taints})
        removed = sorted({t.get("key") for t in taints} - {t["key"] for t in wanted})
        self.log.info("node %s: taints%s%s", meta["name"], f" added {added}" if added else "",
                      f" removed {removed}" if removed else "")
        return result

    # -- pods ----------------------------------------------------------------------------------

    def _client_for(self, pod: Obj) -> Client:
        return self.pods.origin(pod) or self.client

    async def _mark_pods_not_ready(self, node_name: str) -> None:
        """The node cannot vouch for its pods any more: Ready=False, so endpoints stop sending them traffic."""
        now = now_rfc3339()

        async def one(pod: Obj) -> None:
            conditions = copy.deepcopy((pod.get("status") or {}).get("conditions") or [])
            changed = False
            for cond in conditions:
                if cond.get("type") == "Ready" and cond.get("status") != "False":
                    cond.update(status="False", reason="NodeNotReady", lastTransitionTime=now,
                                message="The node is not ready or unreachable.")
                    changed = True
            if not changed:
                return
            body = {**pod, "status": {**(pod.get("status") or {}), "conditions": conditions}}
            try:
                await self._client_for(pod).update_status(PODS, body)
            except APIError as exc:
                if not is_gone(exc) and exc.code != 409:
                    raise

        pods = [p for p in self.pods.by_index(NODE_INDEX, node_name) if not p["metadata"].get("deletionTimestamp")]
        results = await asyncio.gather(*(one(p) for p in pods), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                self.log.warning("node %s: could not mark a pod not ready: %s", node_name, r)

    async def _evict(self, node: Obj) -> None:
        name = node["metadata"]["name"]
        taints = [t for t in (node.get("spec") or {}).get("taints") or []
                  if isinstance(t, dict) and t.get("effect") == "NoExecute"]
        current = {(name, t.get("key"), t.get("timeAdded")) for t in taints}
        for k in [k for k in self._taint_seen if k[0] == name and k not in current]:
            del self._taint_seen[k]
        if not taints:
            return
        nodes = self.nodes.list()
        if nodes and not any(self._healthy(n) for n in nodes):
            if not self._disruption_logged:
                self._disruption_logged = True
                self.log.error("no node is healthy: not evicting any pod (full disruption; more likely a problem "
                               "of this controller or its network than of every node)")
            self.enqueue_after(name, max(self.grace / 4, 1.0))
            return
        self._disruption_logged = False
        now = time.time()
        seen_keys = [(name, t.get("key"), t.get("timeAdded")) for t in taints]
        since = [self._taint_seen.setdefault(k, now) for k in seen_keys]
        due: list[Obj] = []
        next_at: float | None = None
        for pod in self.pods.by_index(NODE_INDEX, name):
            if pod["metadata"].get("deletionTimestamp"):
                continue
            at = eviction_time(pod, taints, self.eviction_timeout, now, since)
            if at is None:
                continue
            if at <= now:
                due.append(pod)
            else:
                next_at = at if next_at is None else min(next_at, at)
        if next_at is not None:
            self.enqueue_after(name, next_at - now + 0.05)
        if not due:
            return

        async def evict(pod: Obj) -> None:
            meta = pod["metadata"]
            client = self._client_for(pod)
            try:
                await client.delete(PODS, meta["name"], tenant=meta.get("tenant"), namespace=meta.get("namespace"),
                                    preconditions={"uid": meta.get("uid")})
            except APIError as exc:
                if is_gone(exc) or exc.code == 409:
                    return
                raise
            where = "/".join(p for p in (meta.get("tenant"), meta.get("namespace"), meta["name"]) if p)
            self.log.info("node %s: evicted pod %s (NoExecute taints %s not tolerated any longer)", name, where,
                          ", ".join(sorted({t.get('key', '') for t in taints})))
            if client is self.client:
                self.ctx.events.normal(pod, "TaintManagerEviction", "Marking for deletion Pod %s", where)

        results = await asyncio.gather(*(evict(p) for p in due), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise failures[0]
