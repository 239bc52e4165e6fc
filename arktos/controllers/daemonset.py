"""The DaemonSet controller: one pod of the template on every eligible node.

* Eligible: the node matches the template's nodeSelector and required node
  affinity, and every NoSchedule/NoExecute taint is tolerated by the
  template's tolerations plus the ones a DaemonSet always adds (not-ready
  and unreachable NoExecute, the pressure and unschedulable NoSchedule
  taints), as Kubernetes' NodeShouldRunDaemonPod.
* Placement as Kubernetes >= 1.12: the controller picks the node and the
  scheduler binds.  Each pod gets a required node affinity on
  `metadata.name In [node]` (replacing the template's required terms, which
  the controller already checked), so the scheduler still checks resources
  and ports and the pod shows up Pending/unschedulable when it cannot fit
  instead of being started on an overfull node.
* Revisions: the template's hash is the pod label `controller-revision-hash`;
  pods with another hash are old.  Each template is also a ControllerRevision
  `<ds>-<hash>` (arktos.controllers._history), for `kubectl rollout
  history|undo`.
* RollingUpdate: old pods are deleted while at most `maxUnavailable`
  (number or percentage of desired nodes, rounded up) nodes lack an
  available pod; old pods that are unavailable anyway go first.  OnDelete
  leaves old pods alone.  A failed daemon pod is deleted and recreated.
* Expectations (as the ReplicaSet controller): after creating or deleting,
  no further pod changes for that DaemonSet until the informer has seen them.
* Tenancy: keys are tenant/namespace/name, pods are claimed only in the
  DaemonSet's tenant and namespace; nodes are cluster-wide.
"""

from __future__ import annotations

import copy
import hashlib
import math
import time
from collections.abc import Iterable
from typing import Any

import orjson

from arktos.api.errors import APIError
from arktos.client import object_key
from arktos.controllers._history import CONTROLLER_REVISIONS, sync_revisions
from arktos.controllers._pods import create_pods, delete_pods
from arktos.controllers._workloads import (
    INDEXERS,
    NAMESPACE_INDEX,
    ORPHAN_INDEX,
    OWNER_INDEX,
    SelectorCache,
    claim,
    controller_ref,
    is_pod_available,
    is_pod_ready,
    make_controller_ref,
    namespace_key,
    orphan_index,
    recheck_owner,
    same_place,
)
from arktos.controllers.base import Controller, builtin, is_gone
from arktos.controllers.nodelifecycle import tolerates
from arktos.controllers.replicaset import Expectations

__all__ = [
    "DAEMON_TOLERATIONS",
    "REVISION_LABEL",
    "DaemonSetController",
    "daemon_pod_node",
    "node_should_run",
    "plan_daemonset",
    "template_hash",
]

Obj = dict[str, Any]
DAEMONSETS = builtin("apps", "daemonsets")
PODS = builtin("", "pods")
NODES = builtin("", "nodes")
REVISION_LABEL = "controller-revision-hash"

DAEMON_TOLERATIONS: list[Obj] = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
]
_HOST_NETWORK_TOLERATION = {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists",
                            "effect": "NoSchedule"}


def template_hash(template: Any) -> str:
    """A short stable hash of a pod template (the revision label's value)."""
    raw = orjson.dumps(template or {}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(raw).hexdigest()[:10]


def daemon_tolerations(pod_spec: Obj) -> list[Obj]:
    tolerations = [t for t in pod_spec.get("tolerations") or [] if isinstance(t, dict)]
    extra = [*DAEMON_TOLERATIONS, *([_HOST_NETWORK_TOLERATION] if pod_spec.get("hostNetwork") else [])]
    for t in extra:
        if not any(existing.get("key") == t["key"] and existing.get("effect") == t["effect"]
                   for existing in tolerations):
            tolerations.append(dict(t))
    return tolerations


# --------------------------------------------------------------------------- node eligibility


def _expr_matches(expr: Obj, labels: dict[str, str]) -> bool:
    key, op, values = expr.get("key") or "", expr.get("operator") or "", [str(v) for v in expr.get("values") or []]
    if op == "In":
        return key in labels and labels[key] in values
    if op == "NotIn":
        return key not in labels or labels[key] not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    if op in ("Gt", "Lt") and key in labels and len(values) == 1:
        try:
            have, want = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return have > want if op == "Gt" else have < want
    return False


def _term_matches(term: Obj, node: Obj) -> bool:
    exprs = [e for e in term.get("matchExpressions") or [] if isinstance(e, dict)]
    fields = [e for e in term.get("matchFields") or [] if isinstance(e, dict)]
    if not exprs and not fields:
        return False
    meta = node.get("metadata") or {}
    labels = meta.get("labels") or {}
    if not all(_expr_matches(e, labels) for e in exprs):
        return False
    return all(e.get("key") == "metadata.name" and _expr_matches(
        {**e, "key": "n"}, {"n": meta.get("name") or ""}) for e in fields)


def node_should_run(pod_spec: Obj, node: Obj, effects: tuple[str, ...] = ("NoSchedule", "NoExecute")) -> bool:
    """Whether a daemon pod of this template belongs on `node` (selector, required affinity, taints).

    With `effects=("NoExecute",)`: whether a pod already there may stay
    (Kubernetes' shouldContinueRunning: a NoSchedule taint added later does
    not evict a running daemon pod).
    """
    labels = (node.get("metadata") or {}).get("labels") or {}
    for k, v in (pod_spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    required = (((pod_spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = required.get("nodeSelectorTerms") if isinstance(required, dict) else None
    if terms and not any(_term_matches(t, node) for t in terms if isinstance(t, dict)):
        return False
    tolerations = daemon_tolerations(pod_spec)
    for taint in (node.get("spec") or {}).get("taints") or []:
        if not isinstance(taint, dict) or taint.get("effect") not in effects:
            continue
        if not any(tolerates(t, taint) for t in tolerations):
            return False
    return True


def daemon_pod_node(pod: Obj) -> str:
    """The node a daemon pod is for: its nodeName, or the node its metadata.name affinity names."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return spec["nodeName"]
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    for term in required.get("nodeSelectorTerms") or []:
        for f in (term or {}).get("matchFields") or []:
            if f.get("key") == "metadata.name" and f.get("operator") == "In" and len(f.get("values") or []) == 1:
                return f["values"][0]
    return ""


def _scaled(value: Any, total: int, default: int) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.endswith("%"):
        try:
            return math.ceil(int(value[:-1]) * total / 100)
        except ValueError:
            return default
    return default


# --------------------------------------------------------------------------- planning (pure)


def plan_daemonset(ds: Obj, nodes: Iterable[Obj], pods: Iterable[Obj], now: float) -> tuple[list[str], list[Obj], Obj]:
    """(nodes to create a pod on, pods to delete, status) for one DaemonSet.

    `pods` are the DaemonSet's own pods.  Pure: the unit tests drive it.
    """
    spec = ds.get("spec") or {}
    template = spec.get("template") or {}
    pod_spec = template.get("spec") or {}
    current = template_hash(template)
    min_ready = spec.get("minReadySeconds") or 0
    strategy = spec.get("updateStrategy") or {}
    node_names: dict[str, Obj] = {(n.get("metadata") or {}).get("name"): n for n in nodes}
    by_node: dict[str, list[Obj]] = {}
    for p in pods:
        if (p.get("metadata") or {}).get("deletionTimestamp"):
            by_node.setdefault(daemon_pod_node(p), [])  # terminating: the node is being handled
            continue
        by_node.setdefault(daemon_pod_node(p), []).append(p)
    terminating_nodes = {n for n, ps in by_node.items() if not ps}

    create: list[str] = []
    delete: list[Obj] = []
    desired = current_n = ready = updated = available = misscheduled = 0
    old_available: list[Obj] = []
    old_unavailable: list[Obj] = []
    unavailable = 0
    for name in sorted(node_names):
        node = node_names[name]
        pods_here = by_node.get(name, [])
        if not node_should_run(pod_spec, node):
            if pods_here:
                misscheduled += 1
                if not node_should_run(pod_spec, node, ("NoExecute",)):
                    delete.extend(pods_here)
            continue
        desired += 1
        failed = [p for p in pods_here if (p.get("status") or {}).get("phase") == "Failed"]
        delete.extend(failed)
        live = [p for p in pods_here if p not in failed]
        if not live:
            if name not in terminating_nodes:
                create.append(name)
            unavailable += 1
            continue
        # More than one: keep the oldest (the one most likely to be running).
        live.sort(key=lambda p: (p.get("metadata") or {}).get("creationTimestamp") or "")
        keep, extra = live[0], live[1:]
        delete.extend(extra)
        current_n += 1
        is_new = ((keep.get("metadata") or {}).get("labels") or {}).get(REVISION_LABEL) == current
        ok = is_pod_available(keep, min_ready, now)
        ready += is_pod_ready(keep)
        available += ok
        updated += is_new
        if not ok:
            unavailable += 1
        if not is_new:
            (old_available if ok else old_unavailable).append(keep)
    # Pods on nodes that no longer exist.
    for name, pods_here in by_node.items():
        if name not in node_names and pods_here:
            delete.extend(pods_here)
    if strategy.get("type", "RollingUpdate") == "RollingUpdate":
        max_unavailable = max(_scaled((strategy.get("rollingUpdate") or {}).get("maxUnavailable"), desired, 1), 0)
        delete.extend(old_unavailable)
        budget = max_unavailable - unavailable
        for p in old_available:
            if budget <= 0:
                break
            delete.append(p)
            budget -= 1
    status = {
        "currentNumberScheduled": current_n,
        "numberMisscheduled": misscheduled,
        "desiredNumberScheduled": desired,
        "numberReady": ready,
        "updatedNumberScheduled": updated,
        "numberAvailable": available,
        "numberUnavailable": max(desired - available, 0),
        "observedGeneration": (ds.get("metadata") or {}).get("generation", 1),
    }
    seen: set[str] = set()
    unique = []
    for p in delete:
        uid = (p.get("metadata") or {}).get("uid") or id(p)
        if uid not in seen:
            seen.add(uid)
            unique.append(p)
    return create, unique, status


def daemon_pod_body(ds: Obj, node: str) -> Obj:
    template = (ds.get("spec") or {}).get("template") or {}
    tmeta = template.get("metadata") or {}
    labels = dict(tmeta.get("labels") or {})
    labels[REVISION_LABEL] = template_hash(template)
    name = ds["metadata"]["name"]
    meta: Obj = {"generateName": f"{name}-"[:58], "namespace": ds["metadata"].get("namespace"), "labels": labels,
                 "ownerReferences": [make_controller_ref(ds, "apps/v1", "DaemonSet")]}
    if tmeta.get("annotations"):
        meta["annotations"] = dict(tmeta["annotations"])
    spec = copy.deepcopy(template.get("spec") or {})
    spec["tolerations"] = daemon_tolerations(spec)
    affinity = spec.setdefault("affinity", {})
    node_affinity = affinity.setdefault("nodeAffinity", {})
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


# --------------------------------------------------------------------------- the controller


class DaemonSetController(Controller):
    """Runs one pod of each DaemonSet on each node it should run on."""

    name = "daemonset"
    max_backoff = 10.0

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.expectations = Expectations()
        self.selectors = SelectorCache()

    def setup(self) -> None:
        f = self.ctx.informers
        self.dss = f.informer(DAEMONSETS, indexers={NAMESPACE_INDEX: INDEXERS[NAMESPACE_INDEX]})
        self.pods = f.informer(PODS, indexers={NAMESPACE_INDEX: INDEXERS[NAMESPACE_INDEX],
                                               OWNER_INDEX: INDEXERS[OWNER_INDEX], ORPHAN_INDEX: orphan_index})
        self.nodes = f.informer(NODES)
        self.revisions = f.informer(CONTROLLER_REVISIONS, indexers={OWNER_INDEX: INDEXERS[OWNER_INDEX]})
        self.dss.add_handler(on_add=self.enqueue, on_update=lambda _o, n: self.enqueue(n), on_delete=self._ds_deleted)
        self.pods.add_handler(on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted)
        self.nodes.add_handler(on_add=lambda _n: self._all(), on_update=self._node_updated,
                               on_delete=lambda _n: self._all())

    def _all(self) -> None:
        for ds in self.dss.list():
            self.enqueue(ds)

    def _node_updated(self, old: Obj, new: Obj) -> None:
        def shape(n: Obj) -> tuple:
            return (orjson.dumps((n.get("metadata") or {}).get("labels") or {}, option=orjson.OPT_SORT_KEYS),
                    orjson.dumps((n.get("spec") or {}).get("taints") or []), (n.get("spec") or {}).get("unschedulable"))
        if shape(old) != shape(new):
            self._all()

    def _ds_deleted(self, ds: Obj) -> None:
        self.expectations.delete(object_key(ds))
        self.selectors.forget(ds)

    def _owner(self, pod: Obj) -> Obj | None:
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != "DaemonSet":
            return None
        ds = self.dss.get("/".join(p for p in (namespace_key(pod), ref.get("name")) if p))
        return ds if ds is not None and ds["metadata"].get("uid") == ref.get("uid") else None

    def _pod_added(self, pod: Obj) -> None:
        ds = self._owner(pod)
        if ds is not None:
            if pod["metadata"].get("deletionTimestamp"):
                self.expectations.deletion_observed(object_key(ds), object_key(pod))
            else:
                self.expectations.creation_observed(object_key(ds))
            self.enqueue(ds)
        elif controller_ref(pod) is None:
            labels = pod["metadata"].get("labels") or {}
            for ds in self.dss.by_index(NAMESPACE_INDEX, namespace_key(pod)):
                if self.selectors.get(ds).matches(labels):
                    self.enqueue(ds)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        ds = self._owner(new) or self._owner(old)
        if ds is None:
            return
        if new["metadata"].get("deletionTimestamp") and not old["metadata"].get("deletionTimestamp"):
            self.expectations.deletion_observed(object_key(ds), object_key(new))
        self.enqueue(ds)
        min_ready = (ds.get("spec") or {}).get("minReadySeconds") or 0
        if min_ready > 0 and not is_pod_ready(old) and is_pod_ready(new):
            self.enqueue_after(object_key(ds), min_ready + 0.1)

    def _pod_deleted(self, pod: Obj) -> None:
        ds = self._owner(pod)
        if ds is not None:
            self.expectations.deletion_observed(object_key(ds), object_key(pod))
            self.enqueue(ds)

    async def sync(self, key: str) -> None:
        ds = self.dss.get(key)
        if ds is None:
            self.expectations.delete(key)
            return
        owned = [p for p in self.pods.by_index(OWNER_INDEX, ds["metadata"]["uid"]) if same_place(p, ds)]
        orphans = self.pods.by_index(ORPHAN_INDEX, namespace_key(ds))
        pods = await claim(self.client, ds, make_controller_ref(ds, "apps/v1", "DaemonSet"), self.selectors.get(ds),
                           [*owned, *orphans], PODS, lambda: recheck_owner(self.client, DAEMONSETS, ds))
        if not ds["metadata"].get("deletionTimestamp"):
            name = ds["metadata"]["name"]
            live = {f"{name}-{(p['metadata'].get('labels') or {}).get(REVISION_LABEL)}" for p in pods}
            owned = [r for r in self.revisions.by_index(OWNER_INDEX, ds["metadata"]["uid"]) if same_place(r, ds)]
            await sync_revisions(self.client, ds, "DaemonSet", owned, template_hash(ds["spec"].get("template")), live)
        now = time.time()
        create, delete, status = plan_daemonset(ds, self.nodes.list(), pods, now)
        if self.expectations.satisfied(key) and not ds["metadata"].get("deletionTimestamp"):
            if delete:
                known = {(n.get("metadata") or {}).get("name") for n in self.nodes.list()}
                await self._delete(ds, key, delete, known)
            elif create:
                await self._create(ds, key, create)
        await self._update_status(ds, status)
        min_ready = (ds.get("spec") or {}).get("minReadySeconds") or 0
        if min_ready > 0 and status["numberReady"] > status["numberAvailable"]:
            self.enqueue_after(key, min_ready + 0.1)

    async def _create(self, ds: Obj, key: str, nodes: list[str]) -> None:
        await create_pods(self, ds, key, [daemon_pod_body(ds, n) for n in nodes])

    async def _delete(self, ds: Obj, key: str, victims: list[Obj], known_nodes: set[str]) -> None:
        """Delete daemon pods; those of a node that is gone at once (no agent is left to end them)."""
        def grace(pod: Obj) -> int | None:
            orphaned = (pod.get("spec") or {}).get("nodeName") and daemon_pod_node(pod) not in known_nodes
            return 0 if orphaned else None
        await delete_pods(self, ds, key, victims, grace)

    async def _update_status(self, ds: Obj, status: Obj) -> None:
        old = ds.get("status") or {}
        if all(old.get(k, 0) == v for k, v in status.items()):
            return
        try:
            await self.client.update_status(DAEMONSETS, {**ds, "status": {**old, **status}})
        except APIError as exc:
            if is_gone(exc):
                return
            if exc.code != 409:
                raise
            self.enqueue_after(object_key(ds), 0.1)
