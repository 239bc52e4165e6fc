"""The StatefulSet controller: pods `<set>-0 .. <set>-(N-1)` with stable names and their own claims.

Kubernetes' semantics (StatefulSetControl), simplified where noted:

* Pod `<set>-<i>`: hostname `<set>-<i>`, subdomain `spec.serviceName`, labels
  of the template plus `statefulset.kubernetes.io/pod-name`,
  `apps.kubernetes.io/pod-index` and `controller-revision-hash`.  For every
  volumeClaimTemplate a PVC `<claim>-<set>-<i>` is created before the pod
  (labels: the selector's matchLabels) and the pod's volume of that name
  refers to it.  Claims are retained (Kubernetes' default policy); with
  `persistentVolumeClaimRetentionPolicy.whenDeleted: Delete` the set owns
  them and the garbage collector deletes them with it (`whenScaled` is not
  acted on: claims of scaled-away ordinals stay).
* OrderedReady (default): ordinals are created one at a time, each Running
  and Ready before the next; scale-down deletes the highest ordinal first,
  one at a time, and only while every remaining pod is healthy.  Parallel:
  missing pods are created and condemned pods deleted all at once.
* RollingUpdate: from the highest ordinal down to `partition`, one pod at a
  time: an old-revision pod is deleted (and recreated from the new template
  by the next sync) only when all the pods above it are updated, Running and
  Ready.  OnDelete: old pods stay until someone deletes them.
* Revisions: a revision is the ControllerRevision `<set>-<hash of the
  template>` (arktos.controllers._history), also the pods'
  `controller-revision-hash`; `status.currentRevision` keeps the old one
  until every pod is at `updateRevision` and ready, and a pod below the
  partition that is deleted comes back from the current revision's template.
* Names are fixed, so a stale cache cannot make duplicates: a create that
  meets 409 AlreadyExists just waits for the informer.
"""

from __future__ import annotations

import copy
import re
import time
from typing import Any

from arktos.api.errors import APIError
from arktos.client import object_key
from arktos.controllers._history import CONTROLLER_REVISIONS, sync_revisions, template_of
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
from arktos.controllers.base import Controller, builtin, is_gone, is_terminating_refusal
from arktos.controllers.daemonset import REVISION_LABEL, template_hash

__all__ = ["StatefulSetController", "claim_name", "plan_statefulset", "pod_ordinal", "stateful_pod_body"]

Obj = dict[str, Any]
STATEFULSETS = builtin("apps", "statefulsets")
PODS = builtin("", "pods")
PVCS = builtin("", "persistentvolumeclaims")
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"


def pod_ordinal(set_name: str, pod: Obj) -> int | None:
    name = (pod.get("metadata") or {}).get("name") or ""
    m = re.fullmatch(re.escape(set_name) + r"-(\d+)", name)
    return int(m.group(1)) if m else None


def claim_name(claim_template: Obj, set_name: str, ordinal: int) -> str:
    return f"{(claim_template.get('metadata') or {}).get('name')}-{set_name}-{ordinal}"


def revision_of(sts: Obj) -> str:
    return f"{sts['metadata']['name']}-{template_hash((sts.get('spec') or {}).get('template'))}"


def _terminating(pod: Obj) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def _running_ready(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and is_pod_ready(pod)


def _failed(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") == "Failed"


def _rev(pod: Obj) -> str:
    return ((pod.get("metadata") or {}).get("labels") or {}).get(REVISION_LABEL) or ""


def plan_statefulset(sts: Obj, pods: list[Obj], now: float) -> tuple[list[int], list[Obj], Obj]:
    """(ordinals to create, pods to delete, status) for one StatefulSet; pure."""
    spec = sts.get("spec") or {}
    name = sts["metadata"]["name"]
    want = spec.get("replicas", 1)
    want = want if isinstance(want, int) and want >= 0 else 1
    monotonic = spec.get("podManagementPolicy", "OrderedReady") != "Parallel"
    strategy = spec.get("updateStrategy") or {}
    update_rev = revision_of(sts)
    old_status = sts.get("status") or {}
    current_rev = old_status.get("currentRevision") or update_rev

    replicas: dict[int, Obj] = {}
    condemned: list[tuple[int, Obj]] = []
    for p in pods:
        ordinal = pod_ordinal(name, p)
        if ordinal is None:
            continue
        if ordinal < want:
            replicas[ordinal] = p
        else:
            condemned.append((ordinal, p))
    condemned.sort(key=lambda x: -x[0])

    # Status first (of what exists now).
    existing = [p for p in pods if pod_ordinal(name, p) is not None]
    min_ready = spec.get("minReadySeconds") or 0
    status: Obj = {
        "observedGeneration": (sts.get("metadata") or {}).get("generation", 1),
        "replicas": sum(1 for p in existing if not _terminating(p)),
        "readyReplicas": sum(1 for p in existing if not _terminating(p) and is_pod_ready(p)),
        "availableReplicas": sum(1 for p in existing if not _terminating(p) and is_pod_available(p, min_ready, now)),
        "currentReplicas": sum(1 for p in existing if not _terminating(p) and _rev(p) == current_rev),
        "updatedReplicas": sum(1 for p in existing if not _terminating(p) and _rev(p) == update_rev),
        "currentRevision": current_rev,
        "updateRevision": update_rev,
    }
    if "collisionCount" in old_status:
        status["collisionCount"] = old_status["collisionCount"]
    if (status["updatedReplicas"] == want and status["readyReplicas"] == want and status["replicas"] == want
            and current_rev != update_rev):
        status["currentRevision"] = update_rev
        status["currentReplicas"] = status["updatedReplicas"]

    create: list[int] = []
    delete: list[Obj] = []
    if sts["metadata"].get("deletionTimestamp"):
        return create, delete, status
    # Replicas: create missing ordinals, replace failed pods; OrderedReady waits on each.
    for i in range(want):
        p = replicas.get(i)
        if p is None:
            create.append(i)
            if monotonic:
                return create, delete, status
            continue
        if _failed(p) and not _terminating(p):
            delete.append(p)
            if monotonic:
                return create, delete, status
            continue
        if monotonic and (_terminating(p) or not _running_ready(p)):
            return create, delete, status
    if not monotonic and create:
        return create, delete, status
    # Scale down, highest ordinal first.
    unhealthy = any(_terminating(p) or not _running_ready(p) for p in replicas.values())
    for _, p in condemned:
        if _terminating(p):
            if monotonic:
                return create, delete, status
            continue
        if monotonic and unhealthy:
            return create, delete, status
        delete.append(p)
        if monotonic:
            return create, delete, status
    if delete:
        return create, delete, status
    # Rolling update from the top down to the partition, one pod at a time.
    if strategy.get("type", "RollingUpdate") == "RollingUpdate":
        partition = (strategy.get("rollingUpdate") or {}).get("partition") or 0
        for i in range(want - 1, max(partition, 0) - 1, -1):
            p = replicas.get(i)
            if p is None:
                return create, delete, status
            if _rev(p) != update_rev and not _terminating(p):
                delete.append(p)
                return create, delete, status
            if _terminating(p) or not _running_ready(p):
                return create, delete, status
    return create, delete, status


def stateful_pod_body(sts: Obj, ordinal: int, template: Obj | None = None, revision: str | None = None) -> Obj:
    """Pod `<set>-<ordinal>`: from the set's template, or from `template` of an older `revision`."""
    spec = sts.get("spec") or {}
    if template is None:
        template = spec.get("template") or {}
    tmeta = template.get("metadata") or {}
    set_name = sts["metadata"]["name"]
    pod_name = f"{set_name}-{ordinal}"
    labels = dict(tmeta.get("labels") or {})
    labels[REVISION_LABEL] = revision or revision_of(sts)
    labels[POD_NAME_LABEL] = pod_name
    labels[POD_INDEX_LABEL] = str(ordinal)
    meta: Obj = {"name": pod_name, "namespace": sts["metadata"].get("namespace"), "labels": labels,
                 "ownerReferences": [make_controller_ref(sts, "apps/v1", "StatefulSet")]}
    if tmeta.get("annotations"):
        meta["annotations"] = dict(tmeta["annotations"])
    pod_spec = copy.deepcopy(template.get("spec") or {})
    pod_spec["hostname"] = pod_name
    if spec.get("serviceName"):
        pod_spec["subdomain"] = spec["serviceName"]
    volumes = [v for v in pod_spec.get("volumes") or []]
    for ct in spec.get("volumeClaimTemplates") or []:
        vname = (ct.get("metadata") or {}).get("name")
        volumes = [v for v in volumes if v.get("name") != vname]
        volumes.append({"name": vname, "persistentVolumeClaim": {"claimName": claim_name(ct, set_name, ordinal)}})
    if volumes:
        pod_spec["volumes"] = volumes
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": pod_spec}


def claim_bodies(sts: Obj, ordinal: int) -> list[Obj]:
    spec = sts.get("spec") or {}
    labels = dict((spec.get("selector") or {}).get("matchLabels") or {})
    # whenDeleted: Delete makes the set an owner, so the garbage collector removes the claims with it.
    delete_with_set = ((spec.get("persistentVolumeClaimRetentionPolicy") or {}).get("whenDeleted") == "Delete")
    out = []
    for ct in spec.get("volumeClaimTemplates") or []:
        cmeta = ct.get("metadata") or {}
        meta: Obj = {"name": claim_name(ct, sts["metadata"]["name"], ordinal),
                     "namespace": sts["metadata"].get("namespace"),
                     "labels": {**(cmeta.get("labels") or {}), **labels}}
        if cmeta.get("annotations"):
            meta["annotations"] = dict(cmeta["annotations"])
        if delete_with_set:
            ref = make_controller_ref(sts, "apps/v1", "StatefulSet")
            ref["controller"] = False
            meta["ownerReferences"] = [ref]
        out.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta,
                    "spec": copy.deepcopy(ct.get("spec") or {})})
    return out


class StatefulSetController(Controller):
    """Keeps every StatefulSet's ordinals, claims and revisions."""

    name = "statefulset"
    max_backoff = 10.0

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.selectors = SelectorCache()

    def setup(self) -> None:
        f = self.ctx.informers
        self.sets = f.informer(STATEFULSETS, indexers={NAMESPACE_INDEX: INDEXERS[NAMESPACE_INDEX]})
        self.pods = f.informer(PODS, indexers={NAMESPACE_INDEX: INDEXERS[NAMESPACE_INDEX],
                                               OWNER_INDEX: INDEXERS[OWNER_INDEX], ORPHAN_INDEX: orphan_index})
        self.revisions = f.informer(CONTROLLER_REVISIONS, indexers={OWNER_INDEX: INDEXERS[OWNER_INDEX]})
        self.sets.add_handler(on_add=self.enqueue, on_update=lambda _o, n: self.enqueue(n),
                              on_delete=self.selectors.forget)
        self.pods.add_handler(on_add=self._pod_event, on_update=lambda o, n: self._pod_event(n, o),
                              on_delete=self._pod_event)

    def _pod_event(self, pod: Obj, old: Obj | None = None) -> None:
        for p in (pod, old):
            if p is None:
                continue
            ref = controller_ref(p)
            if ref is not None and ref.get("kind") == "StatefulSet":
                sts = self.sets.get("/".join(x for x in (namespace_key(p), ref.get("name")) if x))
                if sts is not None:
                    self.enqueue(sts)
            elif ref is None:
                labels = (p.get("metadata") or {}).get("labels") or {}
                for sts in self.sets.by_index(NAMESPACE_INDEX, namespace_key(p)):
                    if self.selectors.get(sts).matches(labels):
                        self.enqueue(sts)

    async def sync(self, key: str) -> None:
        sts = self.sets.get(key)
        if sts is None:
            return
        owned = [p for p in self.pods.by_index(OWNER_INDEX, sts["metadata"]["uid"]) if same_place(p, sts)]
        orphans = self.pods.by_index(ORPHAN_INDEX, namespace_key(sts))
        pods = await claim(self.client, sts, make_controller_ref(sts, "apps/v1", "StatefulSet"),
                           self.selectors.get(sts), [*owned, *orphans], PODS,
                           lambda: recheck_owner(self.client, STATEFULSETS, sts))
        revs: list[Obj] = []
        if not sts["metadata"].get("deletionTimestamp"):
            live = {_rev(p) for p in pods}
            owned = [r for r in self.revisions.by_index(OWNER_INDEX, sts["metadata"]["uid"]) if same_place(r, sts)]
            _, revs = await sync_revisions(self.client, sts, "StatefulSet", owned,
                                           template_hash((sts.get("spec") or {}).get("template")), live)
        create, delete, status = plan_statefulset(sts, pods, time.time())
        meta = sts["metadata"]
        tenant, namespace = meta.get("tenant"), meta.get("namespace")
        strategy = (sts.get("spec") or {}).get("updateStrategy") or {}
        partition = (strategy.get("rollingUpdate") or {}).get("partition") or 0
        current = next((r for r in revs if r["metadata"]["name"] == status["currentRevision"]), None)
        old_template = template_of(current) if status["currentRevision"] != status["updateRevision"] else None
        try:
            for ordinal in create:
                if (old_template is not None and strategy.get("type", "RollingUpdate") == "RollingUpdate"
                        and ordinal < partition):
                    await self._create(sts, ordinal, tenant, namespace, old_template, status["currentRevision"])
                else:
                    await self._create(sts, ordinal, tenant, namespace)
            for p in delete:
                pm = p["metadata"]
                try:
                    await self.client.delete(PODS, pm["name"], tenant=tenant, namespace=namespace,
                                             preconditions={"uid": pm["uid"]})
                    self.ctx.events.normal(sts, "SuccessfulDelete", "delete Pod %s in StatefulSet %s successful",
                                           pm["name"], meta["name"])
                except APIError as exc:
                    if not (is_gone(exc) or exc.code == 409):
                        raise
        finally:
            await self._update_status(sts, status)
        min_ready = (sts.get("spec") or {}).get("minReadySeconds") or 0
        if min_ready > 0 and status["readyReplicas"] > status["availableReplicas"]:
            self.enqueue_after(key, min_ready + 0.1)

    async def _create(self, sts: Obj, ordinal: int, tenant: str | None, namespace: str | None,
                      template: Obj | None = None, revision: str | None = None) -> None:
        for body in claim_bodies(sts, ordinal):
            try:
                await self.client.create(PVCS, body, tenant=tenant, namespace=namespace)
            except APIError as exc:
                if exc.code != 409:
                    if isinstance(exc, APIError) and (is_terminating_refusal(exc) or is_gone(exc)):
                        return
                    self.ctx.events.warning(sts, "FailedCreate", "create Claim %s for Pod %s in StatefulSet %s "
                                            "failed error: %s", body["metadata"]["name"], ordinal,
                                            sts["metadata"]["name"], exc.message)
                    raise
        body = stateful_pod_body(sts, ordinal, template, revision)
        try:
            await self.client.create(PODS, body, tenant=tenant, namespace=namespace)
        except APIError as exc:
            if exc.code == 409:
                return  # exists already; the informer has not caught up
            if is_terminating_refusal(exc) or is_gone(exc):
                return
            self.ctx.events.warning(sts, "FailedCreate", "create Pod %s in StatefulSet %s failed error: %s",
                                    body["metadata"]["name"], sts["metadata"]["name"], exc.message)
            raise
        self.ctx.events.normal(sts, "SuccessfulCreate", "create Pod %s in StatefulSet %s successful",
                               body["metadata"]["name"], sts["metadata"]["name"])

    async def _update_status(self, sts: Obj, status: Obj) -> None:
        old = sts.get("status") or {}
        if all(old.get(k, 0) == v for k, v in status.items()):
            return
        try:
            await self.client.update_status(STATEFULSETS, {**sts, "status": {**old, **status}})
        except APIError as exc:
            if is_gone(exc):
                return
            if exc.code != 409:
                raise
            self.enqueue_after(object_key(sts), 0.1)
