"""The ReplicaSet controller: `spec.replicas` pods matching the selector, controlled by the ReplicaSet.

Kubernetes' semantics, because kubectl, Deployments and users rely on them:

* Ownership is the controller ownerReference (the server adds its `hashKey`
  from the owner's uid).  Orphans that match the selector are adopted,
  owned pods that stop matching are released, and an ownerReference is only
  honoured inside the ReplicaSet's own tenant and namespace.
* Too few pods: create from the template (`generateName: <rs>-`, so the
  server picks `<rs>-<random5>`) in slow-start batches of 1, 2, 4, ... so a
  template the server refuses costs one request, not five hundred.  Too
  many: delete, preferring unscheduled, then pending, then not-ready, then
  recently-ready, then crash-looping, then newest pods.
* Expectations: after creating or deleting, the controller does nothing more
  for that ReplicaSet until its informer has seen those creates and deletes
  (or five minutes pass).  Without them a sync that runs before the watch
  delivers its own pods would see too few and create them again.
* Status: replicas, fullyLabeledReplicas, readyReplicas, availableReplicas
  (ready for minReadySeconds) and observedGeneration, written through the
  status subresource only when something changed.

Partitioning (ARKTOS.md section 5): the controller takes a `HashKeyRange`.
Its ReplicaSet informer then lists and watches only ReplicaSets whose own
hashKey is in range, and its pod informer only pods whose ReplicaSet owner's
hashKey is (`metadata.ownerReferences.hashkey.ReplicaSet`), both filtered by
the server.  Pods without a controller cannot match that selector, so in a
partial range orphans are found by a label-selector list in the ReplicaSet's
namespace, once per ReplicaSet and then every `orphan_rescan` seconds.
Nothing else in the controller knows about partitions: a full range (the
default) is the ordinary single controller.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

from arktos.api.errors import APIError
from arktos.client import object_key
from arktos.controllers._pods import create_pods, delete_pods
from arktos.controllers._workloads import (
    INDEXERS,
    NAMESPACE_INDEX,
    ORPHAN_INDEX,
    OWNER_INDEX,
    HashKeyRange,
    SelectorCache,
    claim,
    controller_ref,
    is_pod_active,
    is_pod_available,
    is_pod_ready,
    make_controller_ref,
    namespace_key,
    now_rfc3339,
    orphan_index,
    ready_since,
    recheck_owner,
    same_place,
)
from arktos.controllers.base import Controller, ControllerContext, builtin, is_gone

__all__ = ["BURST_REPLICAS", "HashKeyRange", "ReplicaSetController", "pod_deletion_order"]

Obj = dict[str, Any]
REPLICASETS = builtin("apps", "replicasets")
PODS = builtin("", "pods")
BURST_REPLICAS = 500  # at most this many creates or deletes per sync, as kube-controller-manager
EXPECTATIONS_TTL = 300.0
DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
MAX_GENERATED_PREFIX = 58  # a generated name is prefix + 5 random characters, within 63


# --------------------------------------------------------------------------- expectations


@dataclass
class _Expected:
    adds: int = 0
    deletes: set[str] = field(default_factory=set)
    since: float = field(default_factory=time.monotonic)


class Expectations:
    """What a controller is waiting to see in its informer after its own creates and deletes.

    Kubernetes' ControllerExpectations: a count of pending creations and the
    keys of pending deletions per owner key.  An owner with none pending, no
    record, or a record older than the TTL (a lost event must not stall it
    forever) may be synced again.
    """

    def __init__(self, ttl: float = EXPECTATIONS_TTL) -> None:
        self.ttl = ttl
        self._by_key: dict[str, _Expected] = {}

    def satisfied(self, key: str) -> bool:
        exp = self._by_key.get(key)
        if exp is None:
            return True
        if exp.adds <= 0 and not exp.deletes:
            return True
        return time.monotonic() - exp.since > self.ttl

    def expect_creations(self, key: str, n: int) -> None:
        self._by_key[key] = _Expected(adds=n)

    def expect_deletions(self, key: str, pod_keys: list[str]) -> None:
        self._by_key[key] = _Expected(deletes=set(pod_keys))

    def creation_observed(self, key: str) -> None:
        exp = self._by_key.get(key)
        if exp is not None:
            exp.adds -= 1

    def deletion_observed(self, key: str, pod_key: str) -> None:
        exp = self._by_key.get(key)
        if exp is not None:
            exp.deletes.discard(pod_key)

    def pending(self, key: str) -> tuple[int, int]:
        exp = self._by_key.get(key)
        return (0, 0) if exp is None else (max(exp.adds, 0), len(exp.deletes))

    def delete(self, key: str) -> None:
        self._by_key.pop(key, None)


# --------------------------------------------------------------------------- which pods go first


def _deletion_cost(pod: Obj) -> int:
    value = ((pod.get("metadata") or {}).get("annotations") or {}).get(DELETION_COST_ANNOTATION)
    try:
        return int(value) if value is not None else 0
    except (TypeError, ValueError):
        return 0


_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def pod_deletion_order(pods: list[Obj], now: float | None = None) -> list[Obj]:
    """Pods sorted so the ones to delete first come first (Kubernetes' ActivePodsWithRanks).

    Unscheduled before scheduled, Pending before Unknown before Running,
    not ready before ready, lower pod-deletion-cost first, more siblings on
    the same node first (spreads what remains), ready for less time first,
    more restarts first, newest first.
    """
    now = time.time() if now is None else now
    per_node: dict[str, int] = {}
    for p in pods:
        node = (p.get("spec") or {}).get("nodeName") or ""
        if node:
            per_node[node] = per_node.get(node, 0) + 1

    def key(p: Obj) -> tuple:
        spec, status, meta = p.get("spec") or {}, p.get("status") or {}, p.get("metadata") or {}
        node = spec.get("nodeName") or ""
        ready = is_pod_ready(p)
        since = ready_since(p) if ready else None
        restarts = sum(int(c.get("restartCount") or 0) for c in status.get("containerStatuses") or ()
                       if isinstance(c, dict))
        created = meta.get("creationTimestamp") or ""
        return (
            1 if node else 0,
            _PHASE_RANK.get(status.get("phase") or "Pending", 0),
            1 if ready else 0,
            _deletion_cost(p),
            -per_node.get(node, 0) if node else 0,
            -(since or now) if ready else 0,  # ready more recently: larger `since`, first
            -restarts,
            # Newest first: an empty timestamp counts as newest.
            "" if not created else _invert(created),
        )

    return sorted(pods, key=key)


def _invert(stamp: str) -> str:
    """A string that sorts in the reverse order of RFC 3339 timestamps (newest first)."""
    return "".join(chr(0x10FFFF - ord(c)) for c in stamp)


# --------------------------------------------------------------------------- the controller


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _generate_name(rs_name: str) -> str:
    prefix = f"{rs_name}-"
    return prefix if len(prefix) <= MAX_GENERATED_PREFIX else prefix[:MAX_GENERATED_PREFIX]


class ReplicaSetController(Controller):
    """Keeps the pods of every ReplicaSet (in its hashKey range) at `spec.replicas`."""

    name = "replicaset"
    max_backoff = 10.0

    def __init__(self, ctx: ControllerContext, *, hash_range: HashKeyRange | None = None,
                 burst_replicas: int = BURST_REPLICAS, orphan_rescan: float = 60.0) -> None:
        super().__init__(ctx)
        self.hash_range = hash_range or ctx.options.extra.get("hash_range") or HashKeyRange()
        self.burst_replicas = burst_replicas
        self.orphan_rescan = orphan_rescan
        self.expectations = Expectations()
        self.selectors = SelectorCache()
        self._scanned: dict[str, float] = {}  # rs uid -> when orphans were last listed (partial ranges)

    # -- informers and handlers ---------------------------------------------------------

    def setup(self) -> None:
        f = self.ctx.informers
        self.rss = f.informer(REPLICASETS, field_selector=self.hash_range.selector(),
                              indexers={NAMESPACE_INDEX: INDEXERS[NAMESPACE_INDEX]})
        self.pods = f.informer(PODS, field_selector=self.hash_range.owner_selector("ReplicaSet"),
                               indexers={NAMESPACE_INDEX: INDEXERS[NAMESPACE_INDEX],
                                         OWNER_INDEX: INDEXERS[OWNER_INDEX], ORPHAN_INDEX: orphan_index})
        self.rss.add_handler(on_add=self.enqueue, on_update=lambda _old, new: self.enqueue(new),
                             on_delete=self._rs_deleted)
        self.pods.add_handler(on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted)

    def _rs_deleted(self, rs: Obj) -> None:
        key = self._key(rs)
        self.expectations.delete(key)
        self.selectors.forget(rs)
        self._scanned.pop(rs["metadata"].get("uid", ""), None)
        self.enqueue(key)

    @staticmethod
    def _key(obj: Obj) -> str:
        return object_key(obj)

    def _owner_of(self, pod: Obj) -> Obj | None:
        """The ReplicaSet that controls `pod`, from the cache (same tenant and namespace, same uid), or None."""
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != "ReplicaSet" or not ref.get("name"):
            return None
        rs = self.rss.get("/".join(p for p in (namespace_key(pod), ref["name"]) if p))
        return rs if rs is not None and rs["metadata"].get("uid") == ref.get("uid") else None

    def _matching(self, pod: Obj) -> list[Obj]:
        """ReplicaSets in the pod's namespace whose selector matches it (adoption candidates)."""
        labels = (pod.get("metadata") or {}).get("labels") or {}
        return [rs for rs in self.rss.by_index(NAMESPACE_INDEX, namespace_key(pod))
                if self.selectors.get(rs).matches(labels)]

    def _pod_added(self, pod: Obj) -> None:
        if pod["metadata"].get("deletionTimestamp"):
            # Restarted controller, pod already going: it counts as a deletion, not a creation.
            self._pod_deleted(pod)
            return
        rs = self._owner_of(pod)
        if rs is not None:
            key = self._key(rs)
            self.expectations.creation_observed(key)
            self.enqueue(key)
            return
        if controller_ref(pod) is None:
            for rs in self._matching(pod):
                self.enqueue(rs)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion"):
            return
        labels_changed = (old["metadata"].get("labels") or {}) != (new["metadata"].get("labels") or {})
        if new["metadata"].get("deletionTimestamp") and not old["metadata"].get("deletionTimestamp"):
            # Graceful deletion: the pod is gone as far as replicas are concerned.
            self._pod_deleted(new)
            if labels_changed:
                self._pod_deleted(old)
            return
        old_ref, new_ref = controller_ref(old), controller_ref(new)
        if old_ref is not None and (new_ref is None or old_ref.get("uid") != new_ref.get("uid")):
            rs = self._owner_of(old)
            if rs is not None:
                self.enqueue(rs)
        rs = self._owner_of(new)
        if rs is not None:
            self.enqueue(rs)
            min_ready = _int((rs.get("spec") or {}).get("minReadySeconds"))
            if min_ready > 0 and not is_pod_ready(old) and is_pod_ready(new):
                # Available only later: come back when it is.
                self.enqueue_after(self._key(rs), min_ready + 0.1)
            return
        if new_ref is None and (labels_changed or old_ref is not None):
            for rs in self._matching(new):
                self.enqueue(rs)

    def _pod_deleted(self, pod: Obj) -> None:
        rs = self._owner_of(pod)
        if rs is None:
            return
        key = self._key(rs)
        self.expectations.deletion_observed(key, object_key(pod))
        self.enqueue(key)

    # -- sync -----------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        rs = self.rss.get(key)
        if rs is None:
            self.expectations.delete(key)
            return
        if not self.hash_range.owns(rs):
            return  # not ours (the server filters; this guards a range changed under a running watch)
        needs_sync = self.expectations.satisfied(key)
        started = time.monotonic()
        pods = await self._claim_pods(rs)
        active = [p for p in pods if is_pod_active(p)]
        error: BaseException | None = None
        if needs_sync and not rs["metadata"].get("deletionTimestamp"):
            try:
                await self._manage(rs, key, active)
            except (APIError, OSError) as exc:
                error = exc
        await self._update_status(rs, active, error)
        self.log.debug("synced replicaset %s (%d active pods) in %.0f ms", key, len(active),
                       (time.monotonic() - started) * 1000)
        if error is not None:
            raise error

    async def _claim_pods(self, rs: Obj) -> list[Obj]:
        uid = rs["metadata"]["uid"]
        ns = namespace_key(rs)
        owned = [p for p in self.pods.by_index(OWNER_INDEX, uid) if same_place(p, rs)]
        orphans = self.pods.by_index(ORPHAN_INDEX, ns)
        if not self.hash_range.full:
            orphans = orphans + await self._list_orphans(rs)
        selector = self.selectors.get(rs)
        ref = make_controller_ref(rs, "apps/v1", "ReplicaSet")
        return await claim(self.client, rs, ref, selector, [*owned, *orphans], PODS,
                           lambda: recheck_owner(self.client, REPLICASETS, rs))

    async def _list_orphans(self, rs: Obj) -> list[Obj]:
        """Orphans matching a ReplicaSet, for a partial range (the pod informer only holds owned pods)."""
        uid = rs["metadata"]["uid"]
        last = self._scanned.get(uid)
        now = time.monotonic()
        if last is not None and now - last < self.orphan_rescan:
            return []
        self._scanned[uid] = now
        meta = rs["metadata"]
        selector = self.selectors.get(rs)
        if selector.match_nothing:
            return []
        listed = await self.client.list(PODS, tenant=meta.get("tenant"), namespace=meta.get("namespace"),
                                        label_selector=str(selector) or None)
        return [p for p in listed["items"] if controller_ref(p) is None]

    async def _manage(self, rs: Obj, key: str, active: list[Obj]) -> None:
        want = max(_int((rs.get("spec") or {}).get("replicas"), 1), 0)
        diff = len(active) - want
        if diff < 0:
            await self._create_pods(rs, key, min(-diff, self.burst_replicas))
        elif diff > 0:
            await self._delete_pods(rs, key, pod_deletion_order(active)[:min(diff, self.burst_replicas)])

    def _pod_body(self, rs: Obj) -> Obj:
        template = (rs.get("spec") or {}).get("template") or {}
        tmeta = template.get("metadata") or {}
        meta: Obj = {
            "generateName": _generate_name(rs["metadata"]["name"]),
            "namespace": rs["metadata"].get("namespace"),
            "labels": dict(tmeta.get("labels") or {}),
            "ownerReferences": [make_controller_ref(rs, "apps/v1", "ReplicaSet")],
        }
        if tmeta.get("annotations"):
            meta["annotations"] = dict(tmeta["annotations"])
        if tmeta.get("finalizers"):
            meta["finalizers"] = list(tmeta["finalizers"])
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": copy.deepcopy(template.get("spec") or {})}

    async def _create_pods(self, rs: Obj, key: str, n: int) -> None:
        """Create `n` pods in slow-start batches; the first failure stops the rest."""
        created = await create_pods(self, rs, key, [self._pod_body(rs) for _ in range(n)], slow_start=True)
        self.log.info("replicaset %s: created %d pods", key, created)

    async def _delete_pods(self, rs: Obj, key: str, victims: list[Obj]) -> None:
        deleted = await delete_pods(self, rs, key, victims)
        self.log.info("replicaset %s: deleted %d pods", key, deleted)

    # -- status ---------------------------------------------------------------------------

    def _status(self, rs: Obj, active: list[Obj], error: BaseException | None) -> Obj:
        spec = rs.get("spec") or {}
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        min_ready = _int(spec.get("minReadySeconds"))
        now = time.time()
        fully = sum(1 for p in active
                    if all(((p["metadata"].get("labels") or {}).get(k) == v) for k, v in template_labels.items()))
        ready = [p for p in active if is_pod_ready(p)]
        available = sum(1 for p in ready if is_pod_available(p, min_ready, now))
        old = rs.get("status") or {}
        status: Obj = {
            "replicas": len(active),
            "fullyLabeledReplicas": fully,
            "readyReplicas": len(ready),
            "availableReplicas": available,
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        conditions = [c for c in old.get("conditions") or [] if c.get("type") != "ReplicaFailure"]
        failure = next((c for c in old.get("conditions") or [] if c.get("type") == "ReplicaFailure"), None)
        if error is not None:
            reason = "FailedCreate" if len(active) < _int(spec.get("replicas"), 1) else "FailedDelete"
            message = error.message if isinstance(error, APIError) else str(error)
            if failure is not None and failure.get("reason") == reason and failure.get("message") == message:
                conditions.append(failure)
            else:
                conditions.append({"type": "ReplicaFailure", "status": "True", "reason": reason,
                                   "message": message, "lastTransitionTime": now_rfc3339()})
        if conditions:
            status["conditions"] = conditions
        return status

    async def _update_status(self, rs: Obj, active: list[Obj], error: BaseException | None) -> None:
        status = self._status(rs, active, error)
        old = rs.get("status") or {}
        min_ready = _int((rs.get("spec") or {}).get("minReadySeconds"))
        if min_ready > 0 and status["readyReplicas"] > status["availableReplicas"]:
            # Pods become available with time, not with an event: look again then.
            self.enqueue_after(self._key(rs), min_ready + 0.1)
        if all(old.get(k, 0) == v for k, v in status.items() if k != "conditions") and (
                (old.get("conditions") or []) == (status.get("conditions") or [])):
            return
        try:
            await self.client.update_status(REPLICASETS, {**rs, "status": status})
        except APIError as exc:
            if is_gone(exc):
                return
            if exc.code != 409:
                raise
            # Our copy is behind (the deployment controller just resized it, say): the update event that made
            # it stale brings the key back, and that sync writes the status onto the current version.
            self.log.debug("replicaset %s: status write lost to a newer version; syncing again", self._key(rs))
            self.enqueue_after(self._key(rs), 0.1)
