"""The Deployment controller: one ReplicaSet per pod template, rolled from old to new.

It follows Kubernetes' deployment controller step by step, because `kubectl
rollout status|undo|history|pause|resume` read and write exactly the state it
keeps:

* Each distinct pod template gets a ReplicaSet `<deployment>-<hash>`, with
  the label `pod-template-hash=<hash>` added to its template and selector.
  The hash is FNV-32a of a canonical encoding of the template (plus
  `status.collisionCount` when a name collides), encoded with Kubernetes'
  `SafeEncodeString` alphabet.  Which ReplicaSet is "new" is decided by
  comparing templates with that label ignored, so a template that matches an
  old ReplicaSet (a `kubectl rollout undo`, which copies the old template
  back into the Deployment) reuses that ReplicaSet and gives it the next
  revision, keeping the old number in `deployment.kubernetes.io/revision-history`.
* Revisions: `deployment.kubernetes.io/revision` on every ReplicaSet and on
  the Deployment (the new ReplicaSet's).  Old ReplicaSets scaled to zero
  beyond `revisionHistoryLimit` are deleted, lowest revision first.
* RollingUpdate: scale the new ReplicaSet up to `replicas + maxSurge` pods in
  total, scale old ones down while at least `replicas - maxUnavailable` pods
  stay available (percentages round surge up and unavailability down, and
  both 0 becomes maxUnavailable 1, as in Kubernetes).  Old ReplicaSets with
  unavailable pods are shrunk first: they cost nothing in availability.
  Recreate: scale everything old to zero, wait until no old pod runs, then
  scale the new one up.
* A changed `replicas` during a rollout is spread over the ReplicaSets in
  proportion to their size (`deployment.kubernetes.io/desired-replicas` and
  `max-replicas` say what each was sized for).  A paused Deployment still
  scales, but does not roll out.
* Status: replicas, updatedReplicas, readyReplicas, availableReplicas,
  unavailableReplicas, observedGeneration, and the conditions Available and
  Progressing (reason NewReplicaSetAvailable once complete,
  ProgressDeadlineExceeded after progressDeadlineSeconds without progress).

Partitioning: like the ReplicaSet controller, it takes a `HashKeyRange`; its
Deployment informer then holds Deployments whose hashKey is in range, and its
ReplicaSet informer ReplicaSets whose Deployment owner's hashKey is.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import orjson

from arktos.api.errors import APIError
from arktos.client import object_key
from arktos.controllers._workloads import (
    INDEXERS,
    NAMESPACE_INDEX,
    ORPHAN_INDEX,
    OWNER_INDEX,
    HashKeyRange,
    SelectorCache,
    claim,
    controller_ref,
    make_controller_ref,
    namespace_key,
    now_rfc3339,
    orphan_index,
    parse_time,
    recheck_owner,
    same_place,
)
from arktos.controllers.base import Controller, ControllerContext, builtin, is_gone, is_terminating_refusal

__all__ = [
    "DESIRED_REPLICAS_ANNOTATION",
    "MAX_REPLICAS_ANNOTATION",
    "POD_TEMPLATE_HASH_LABEL",
    "REVISION_ANNOTATION",
    "REVISION_HISTORY_ANNOTATION",
    "DeploymentController",
    "HashKeyRange",
    "compute_template_hash",
    "resolve_fenceposts",
    "scaled_value",
    "templates_equal",
]

Obj = dict[str, Any]
DEPLOYMENTS = builtin("apps", "deployments")
REPLICASETS = builtin("apps", "replicasets")
PODS = builtin("", "pods")

POD_TEMPLATE_HASH_LABEL = "pod-template-hash"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
REVISION_HISTORY_ANNOTATION = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS_ANNOTATION = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS_ANNOTATION = "deployment.kubernetes.io/max-replicas"
# Annotations of the Deployment that are not copied to its ReplicaSets (and that rollback does not copy back).
SKIPPED_ANNOTATIONS = frozenset({
    "kubectl.kubernetes.io/last-applied-configuration", REVISION_ANNOTATION, REVISION_HISTORY_ANNOTATION,
    DESIRED_REPLICAS_ANNOTATION, MAX_REPLICAS_ANNOTATION, "deprecated.deployment.rollback.to",
})
MAX_REVISION_HISTORY_CHARS = 2000
NO_DEADLINE = 2**31 - 1

# Condition types and reasons (kubectl matches on some of them).
AVAILABLE, PROGRESSING, REPLICA_FAILURE = "Available", "Progressing", "ReplicaFailure"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
NEW_RS_CREATED = "NewReplicaSetCreated"
RS_UPDATED = "ReplicaSetUpdated"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED, RESUMED = "DeploymentPaused", "DeploymentResumed"
MIN_AVAILABLE, MIN_UNAVAILABLE = "MinimumReplicasAvailable", "MinimumReplicasUnavailable"
FOUND_NEW_RS = "FoundNewReplicaSet"

_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


# --------------------------------------------------------------------------- pure helpers


def _fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def compute_template_hash(template: Obj, collision_count: int | None = None) -> str:
    """The `pod-template-hash` of a pod template, as Kubernetes' ComputeHash shapes it.

    Kubernetes hashes Go's deep print of the template, which only Go can
    reproduce; what matters is that the hash is stable for equal templates
    and changes with them, so this hashes a canonical JSON encoding (sorted
    keys) instead.  The collision count is appended as 4 little-endian bytes
    and the decimal result is mapped onto the same consonant-and-digit
    alphabet, so names look like Kubernetes' (`web-7d4b9c8f5`).
    """
    data = orjson.dumps(_semantic(template), option=orjson.OPT_SORT_KEYS)
    if collision_count is not None:
        data += int(collision_count & 0xFFFFFFFF).to_bytes(4, "little")
    return "".join(_SAFE_ALPHABET[b % len(_SAFE_ALPHABET)] for b in str(_fnv32a(data)).encode())


def _semantic(value: Any) -> Any:
    """A JSON value with nulls and empty lists left out, as Go structs see it.

    Kubernetes compares templates after decoding them into Go structs, where
    `"creationTimestamp": null` (which kubectl writes back when it copies a
    ReplicaSet's template for `rollout undo`) and an absent field are the same
    thing, and so are an empty and a missing list.
    """
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if v is None or (isinstance(v, list) and not v):
                continue
            out[k] = _semantic(v)
        return out
    if isinstance(value, list):
        return [_semantic(v) for v in value]
    return value


def _without_hash(template: Any) -> Any:
    template = _semantic(template)
    if not isinstance(template, dict):
        return template
    labels = (template.get("metadata") or {}).get("labels")
    if not isinstance(labels, dict) or POD_TEMPLATE_HASH_LABEL not in labels:
        return template
    out = dict(template)
    out["metadata"] = {**template["metadata"],
                       "labels": {k: v for k, v in labels.items() if k != POD_TEMPLATE_HASH_LABEL}}
    if not out["metadata"]["labels"]:
        del out["metadata"]["labels"]
    return out


def templates_equal(a: Any, b: Any) -> bool:
    """Equal pod templates, the pod-template-hash label aside (Kubernetes' EqualIgnoreHash)."""
    return _without_hash(a) == _without_hash(b)


def scaled_value(value: Any, total: int, round_up: bool) -> int:
    """An int-or-percent (`maxSurge: 25%`) against `total`: percentages round up or down as asked."""
    if isinstance(value, bool) or value is None:
        return 0
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.endswith("%"):
        pct = int(text[:-1])
        return -(-pct * total // 100) if round_up else pct * total // 100
    return int(text)


def resolve_fenceposts(max_surge: Any, max_unavailable: Any, desired: int) -> tuple[int, int]:
    """(surge, unavailable) in pods; both zero would deadlock, so unavailability becomes 1."""
    surge = scaled_value(max_surge if max_surge is not None else 0, desired, True)
    unavailable = scaled_value(max_unavailable if max_unavailable is not None else 0, desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _replicas(obj: Obj | None) -> int:
    """spec.replicas (defaulted to 1 by the server)."""
    if obj is None:
        return 0
    return _int((obj.get("spec") or {}).get("replicas"), 1)


def _st(obj: Obj | None, name: str) -> int:
    if obj is None:
        return 0
    return _int((obj.get("status") or {}).get(name))


def _annotations(obj: Obj) -> dict[str, str]:
    """The object's annotations, created empty if it has none, for writing into."""
    meta = obj.setdefault("metadata", {})
    if not isinstance(meta.get("annotations"), dict):
        meta["annotations"] = {}
    return meta["annotations"]


def _revision(rs: Obj) -> int:
    try:
        return int(((rs.get("metadata") or {}).get("annotations") or {}).get(REVISION_ANNOTATION) or 0)
    except ValueError:
        return 0


def _is_rolling(d: Obj) -> bool:
    return ((d.get("spec") or {}).get("strategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"


def _rolling_params(d: Obj) -> tuple[Any, Any]:
    ru = (((d.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {})
    return ru.get("maxSurge", "25%"), ru.get("maxUnavailable", "25%")


def max_surge(d: Obj) -> int:
    if not _is_rolling(d):
        return 0
    surge, _ = resolve_fenceposts(*_rolling_params(d), _replicas(d))
    return surge


def max_unavailable(d: Obj) -> int:
    replicas = _replicas(d)
    if not _is_rolling(d) or replicas == 0:
        return 0
    _, unavailable = resolve_fenceposts(*_rolling_params(d), replicas)
    return min(unavailable, replicas)


def _by_creation(rss: list[Obj]) -> list[Obj]:
    return sorted(rss, key=lambda rs: (rs["metadata"].get("creationTimestamp") or "", rs["metadata"]["name"]))


def _active(rss: list[Obj]) -> list[Obj]:
    return [rs for rs in rss if _replicas(rs) > 0]


def _has_deadline(d: Obj) -> bool:
    deadline = (d.get("spec") or {}).get("progressDeadlineSeconds")
    return isinstance(deadline, int) and deadline != NO_DEADLINE


def _condition(status: Obj, ctype: str) -> Obj | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == ctype), None)


def _new_condition(ctype: str, status: str, reason: str, message: str) -> Obj:
    now = now_rfc3339()
    return {"type": ctype, "status": status, "lastUpdateTime": now, "lastTransitionTime": now, "reason": reason,
            "message": message}


def _set_condition(status: Obj, cond: Obj) -> None:
    """Kubernetes' SetDeploymentCondition: same status and reason is no change at all."""
    current = _condition(status, cond["type"])
    if current is not None and current.get("status") == cond["status"] and current.get("reason") == cond["reason"]:
        return
    if current is not None and current.get("status") == cond["status"]:
        cond["lastTransitionTime"] = current.get("lastTransitionTime", cond["lastTransitionTime"])
    status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != cond["type"]] + [cond]


def _remove_condition(status: Obj, ctype: str) -> None:
    status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != ctype]


def deployment_complete(d: Obj, status: Obj) -> bool:
    replicas = _replicas(d)
    return (_int(status.get("updatedReplicas")) == replicas and _int(status.get("replicas")) == replicas
            and _int(status.get("availableReplicas")) == replicas
            and _int(status.get("observedGeneration")) >= _int(d["metadata"].get("generation"), 1))


def _progressing(d: Obj, new: Obj) -> bool:
    old = d.get("status") or {}
    old_old = _int(old.get("replicas")) - _int(old.get("updatedReplicas"))
    new_old = _int(new.get("replicas")) - _int(new.get("updatedReplicas"))
    return (_int(new.get("updatedReplicas")) > _int(old.get("updatedReplicas")) or new_old < old_old
            or _int(new.get("readyReplicas")) > _int(old.get("readyReplicas"))
            or _int(new.get("availableReplicas")) > _int(old.get("availableReplicas")))


def _timed_out(d: Obj, status: Obj) -> bool:
    if not _has_deadline(d):
        return False
    cond = _condition(status, PROGRESSING)
    if cond is None or cond.get("reason") == NEW_RS_AVAILABLE:
        return False
    if cond.get("reason") == TIMED_OUT:
        return True
    since = parse_time(cond.get("lastUpdateTime"))
    return since is not None and since + d["spec"]["progressDeadlineSeconds"] < time.time()


def _set_replicas_annotations(rs: Obj, desired: int, maximum: int) -> bool:
    ann = _annotations(rs)
    changed = False
    for key, value in ((DESIRED_REPLICAS_ANNOTATION, str(desired)), (MAX_REPLICAS_ANNOTATION, str(maximum))):
        if ann.get(key) != value:
            ann[key] = value
            changed = True
    return changed


def _set_new_rs_annotations(d: Obj, rs: Obj, new_revision: int, exists: bool) -> bool:
    """Kubernetes' SetNewReplicaSetAnnotations: copy the Deployment's annotations, raise the revision."""
    ann = _annotations(rs)
    changed = False
    for key, value in ((d.get("metadata") or {}).get("annotations") or {}).items():
        if key in SKIPPED_ANNOTATIONS or ann.get(key) == value:
            continue
        ann[key] = value
        changed = True
    old_text = ann.get(REVISION_ANNOTATION, "")
    try:
        old = int(old_text) if old_text else 0
    except ValueError:
        return changed
    if old < new_revision:
        ann[REVISION_ANNOTATION] = str(new_revision)
        changed = True
        if old_text:
            # The ReplicaSet comes back (a rollback): remember the revisions it had.
            history = [h for h in (ann.get(REVISION_HISTORY_ANNOTATION) or "").split(",") if h]
            history.append(old_text)
            while len(",".join(history)) > MAX_REVISION_HISTORY_CHARS and len(history) > 1:
                history.pop(0)
            ann[REVISION_HISTORY_ANNOTATION] = ",".join(history)
    if not exists and _set_replicas_annotations(rs, _replicas(d), _replicas(d) + max_surge(d)):
        changed = True
    return changed


def _new_rs_replicas(d: Obj, all_rss: list[Obj], new_rs: Obj) -> int:
    """How big the new ReplicaSet may be now (Kubernetes' NewRSNewReplicas)."""
    if not _is_rolling(d):
        return _replicas(d)
    current = sum(_replicas(rs) for rs in all_rss)
    max_total = _replicas(d) + max_surge(d)
    if current >= max_total:
        return _replicas(new_rs)
    scale_up = min(max_total - current, _replicas(d) - _replicas(new_rs))
    return _replicas(new_rs) + max(scale_up, 0)


def _round_half_away(x: float) -> int:
    return int(x + 0.5) if x >= 0 else -int(-x + 0.5)


# --------------------------------------------------------------------------- the controller


class _Conflict(Exception):
    """A write lost to a newer version: the informer's event brings the key back."""


class DeploymentController(Controller):
    """Rolls every Deployment (in its hashKey range) out through its ReplicaSets."""

    name = "deployment"
    max_backoff = 10.0

    def __init__(self, ctx: ControllerContext, *, hash_range: HashKeyRange | None = None,
                 orphan_rescan: float = 60.0) -> None:
        super().__init__(ctx)
        self.hash_range = hash_range or ctx.options.extra.get("hash_range") or HashKeyRange()
        self.orphan_rescan = orphan_rescan
        self.selectors = SelectorCache()
        self._scanned: dict[str, float] = {}
        self._stored: dict[int, Obj] = {}

    def setup(self) -> None:
        f = self.ctx.informers
        self.deployments = f.informer(DEPLOYMENTS, field_selector=self.hash_range.selector(),
                                      indexers={NAMESPACE_INDEX: INDEXERS[NAMESPACE_INDEX]})
        self.rss = f.informer(REPLICASETS, field_selector=self.hash_range.owner_selector("Deployment"),
                              indexers={NAMESPACE_INDEX: INDEXERS[NAMESPACE_INDEX], OWNER_INDEX: INDEXERS[OWNER_INDEX],
                                        ORPHAN_INDEX: orphan_index})
        self.deployments.add_handler(on_add=self.enqueue, on_update=lambda _o, n: self.enqueue(n),
                                     on_delete=self._deployment_deleted)
        self.rss.add_handler(on_add=self._rs_added, on_update=self._rs_updated, on_delete=self._rs_deleted)

    # -- handlers ---------------------------------------------------------------------------

    def _deployment_deleted(self, d: Obj) -> None:
        self.selectors.forget(d)
        self._scanned.pop(d["metadata"].get("uid", ""), None)
        self.enqueue(d)

    def _owner_of(self, rs: Obj) -> Obj | None:
        ref = controller_ref(rs)
        if ref is None or ref.get("kind") != "Deployment" or not ref.get("name"):
            return None
        d = self.deployments.get("/".join(p for p in (namespace_key(rs), ref["name"]) if p))
        if d is None or d["metadata"].get("uid") != ref.get("uid"):
            return None
        return d

    def _matching(self, rs: Obj) -> list[Obj]:
        labels = (rs.get("metadata") or {}).get("labels") or {}
        return [d for d in self.deployments.by_index(NAMESPACE_INDEX, namespace_key(rs))
                if self.selectors.get(d).matches(labels)]

    def _rs_added(self, rs: Obj) -> None:
        d = self._owner_of(rs)
        if d is not None:
            self.enqueue(d)
        elif controller_ref(rs) is None:
            for d in self._matching(rs):
                self.enqueue(d)

    def _rs_updated(self, old: Obj, new: Obj) -> None:
        if old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion"):
            return
        old_ref, new_ref = controller_ref(old), controller_ref(new)
        if old_ref is not None and (new_ref is None or old_ref.get("uid") != new_ref.get("uid")):
            d = self._owner_of(old)
            if d is not None:
                self.enqueue(d)
        d = self._owner_of(new)
        if d is not None:
            self.enqueue(d)
            return
        labels_changed = (old["metadata"].get("labels") or {}) != (new["metadata"].get("labels") or {})
        if new_ref is None and (labels_changed or old_ref is not None):
            for d in self._matching(new):
                self.enqueue(d)

    def _rs_deleted(self, rs: Obj) -> None:
        d = self._owner_of(rs)
        if d is not None:
            self.enqueue(d)

    # -- sync -------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        cached = self.deployments.get(key)
        if cached is None or not self.hash_range.owns(cached):
            return
        d = copy.deepcopy(cached)
        # What the server holds, to write the status only when it changes (keyed by this sync's own copy:
        # workers sync different Deployments at the same time).
        self._stored[id(d)] = copy.deepcopy(cached.get("status") or {})
        try:
            await self._sync(key, d)
        except _Conflict as exc:
            self.log.debug("deployment %s: %s; syncing again when the cache catches up", key, exc)
            self.enqueue_after(key, 0.5)
        finally:
            self._stored.pop(id(d), None)

    async def _sync(self, key: str, d: Obj) -> None:
        rs_list = [copy.deepcopy(rs) for rs in await self._claim_rss(d)]
        if d["metadata"].get("deletionTimestamp"):
            new_rs, old_rss = await self._all_rss(d, rs_list, create=False)
            await self._sync_status(self._all(new_rs, old_rss), new_rs, d)
            return
        await self._paused_conditions(d)
        if (d.get("spec") or {}).get("paused"):
            await self._sync_scale(d, rs_list)
            return
        if await self._is_scaling_event(d, rs_list):
            await self._sync_scale(d, rs_list)
            return
        if _is_rolling(d):
            await self._rollout_rolling(key, d, rs_list)
        else:
            await self._rollout_recreate(key, d, rs_list)

    @staticmethod
    def _all(new_rs: Obj | None, old_rss: list[Obj]) -> list[Obj]:
        return [*old_rss, new_rs] if new_rs is not None else list(old_rss)

    async def _claim_rss(self, d: Obj) -> list[Obj]:
        uid = d["metadata"]["uid"]
        owned = [rs for rs in self.rss.by_index(OWNER_INDEX, uid) if same_place(rs, d)]
        orphans = self.rss.by_index(ORPHAN_INDEX, namespace_key(d))
        if not self.hash_range.full:
            orphans = orphans + await self._list_orphans(d)
        ref = make_controller_ref(d, "apps/v1", "Deployment")
        return await claim(self.client, d, ref, self.selectors.get(d), [*owned, *orphans], REPLICASETS,
                           lambda: recheck_owner(self.client, DEPLOYMENTS, d))

    async def _list_orphans(self, d: Obj) -> list[Obj]:
        uid = d["metadata"]["uid"]
        now = time.monotonic()
        last = self._scanned.get(uid)
        if last is not None and now - last < self.orphan_rescan:
            return []
        self._scanned[uid] = now
        selector = self.selectors.get(d)
        if selector.match_nothing:
            return []
        meta = d["metadata"]
        listed = await self.client.list(REPLICASETS, tenant=meta.get("tenant"), namespace=meta.get("namespace"),
                                        label_selector=str(selector) or None)
        return [rs for rs in listed["items"] if controller_ref(rs) is None]

    # -- writes -------------------------------------------------------------------------------

    async def _write(self, coro: Any) -> Obj | None:
        """Await a write; None when the object is gone, `_Conflict` when it moved on."""
        try:
            return await coro
        except APIError as exc:
            if is_gone(exc):
                return None
            if exc.code == 409:
                raise _Conflict(exc.message) from None
            raise

    async def _patch_deployment_revision(self, d: Obj, revision: int) -> None:
        ann = (d["metadata"].get("annotations") or {})
        if ann.get(REVISION_ANNOTATION) == str(revision):
            return
        meta = d["metadata"]
        result = await self._write(self.client.patch(
            DEPLOYMENTS, meta["name"], {"metadata": {"annotations": {REVISION_ANNOTATION: str(revision)}}},
            tenant=meta.get("tenant"), namespace=meta.get("namespace")))
        if result is not None:
            d["metadata"] = result["metadata"]

    async def _write_status(self, d: Obj, status: Obj) -> None:
        if status == self._stored.get(id(d)):
            return
        result = await self._write(self.client.update_status(DEPLOYMENTS, {**d, "status": status}))
        if result is not None:
            d["metadata"] = result["metadata"]
            d["status"] = result.get("status") or status
            self._stored[id(d)] = copy.deepcopy(d["status"])

    async def _scale_rs(self, rs: Obj, replicas: int, d: Obj) -> bool:
        """Set a ReplicaSet's size (and the annotations that say what it was sized for); whether the size changed."""
        replicas = max(replicas, 0)
        old = _replicas(rs)
        annotated = copy.deepcopy(rs)
        annotations_changed = _set_replicas_annotations(annotated, _replicas(d), _replicas(d) + max_surge(d))
        if old == replicas and not annotations_changed:
            return False
        meta = rs["metadata"]
        body = {"metadata": {"resourceVersion": meta.get("resourceVersion"),
                             "annotations": {DESIRED_REPLICAS_ANNOTATION: str(_replicas(d)),
                                             MAX_REPLICAS_ANNOTATION: str(_replicas(d) + max_surge(d))}},
                "spec": {"replicas": replicas}}
        result = await self._write(self.client.patch(REPLICASETS, meta["name"], body, tenant=meta.get("tenant"),
                                                     namespace=meta.get("namespace")))
        if result is None:
            return False
        rs.clear()
        rs.update(result)
        if old != replicas:
            direction = "up" if replicas > old else "down"
            self.ctx.events.normal(d, "ScalingReplicaSet", "Scaled %s replica set %s to %d from %d", direction,
                                   meta["name"], replicas, old)
            self.log.info("deployment %s: scaled %s replica set %s to %d from %d", object_key(d), direction,
                          meta["name"], replicas, old)
        return old != replicas

    # -- the new ReplicaSet ----------------------------------------------------------------------

    async def _all_rss(self, d: Obj, rs_list: list[Obj], *, create: bool) -> tuple[Obj | None, list[Obj]]:
        """(new ReplicaSet or None, old ones), revisions brought up to date (getAllReplicaSetsAndSyncRevision)."""
        template = (d.get("spec") or {}).get("template")
        new_rs = next((rs for rs in _by_creation(rs_list)
                       if templates_equal((rs.get("spec") or {}).get("template"), template)), None)
        old_rss = [rs for rs in rs_list if rs is not new_rs]
        new_rs = await self._new_rs(d, rs_list, old_rss, new_rs, create)
        return new_rs, old_rss

    async def _new_rs(self, d: Obj, rs_list: list[Obj], old_rss: list[Obj], existing: Obj | None,
                      create: bool) -> Obj | None:
        new_revision = max((_revision(rs) for rs in old_rss), default=0) + 1
        if existing is not None:
            annotated = copy.deepcopy(existing)
            changed = _set_new_rs_annotations(d, annotated, new_revision, exists=True)
            min_ready = _int((d.get("spec") or {}).get("minReadySeconds"))
            if changed or _int((annotated.get("spec") or {}).get("minReadySeconds")) != min_ready:
                annotated["spec"]["minReadySeconds"] = min_ready
                result = await self._write(self.client.update(REPLICASETS, annotated))
                if result is None:
                    return None
                existing.clear()
                existing.update(result)
            revision = _revision(existing)
            await self._patch_deployment_revision(d, revision)
            status = d.setdefault("status", {})
            if _has_deadline(d) and _condition(status, PROGRESSING) is None:
                _set_condition(status, _new_condition(PROGRESSING, "True", FOUND_NEW_RS,
                                                      f'Found new replica set "{existing["metadata"]["name"]}"'))
            return existing
        if not create:
            return None
        return await self._create_new_rs(d, rs_list, new_revision)

    async def _create_new_rs(self, d: Obj, rs_list: list[Obj], new_revision: int) -> Obj | None:
        spec = d.get("spec") or {}
        meta = d["metadata"]
        status = d.setdefault("status", {})
        collisions = status.get("collisionCount")
        template = copy.deepcopy(spec.get("template") or {})
        pod_hash = compute_template_hash(template, collisions)
        tmeta = template.setdefault("metadata", {})
        tmeta["labels"] = {**(tmeta.get("labels") or {}), POD_TEMPLATE_HASH_LABEL: pod_hash}
        selector = copy.deepcopy(spec.get("selector") or {})
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), POD_TEMPLATE_HASH_LABEL: pod_hash}
        rs: Obj = {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"{meta['name']}-{pod_hash}", "namespace": meta.get("namespace"),
                         "labels": dict(tmeta["labels"]),
                         "ownerReferences": [make_controller_ref(d, "apps/v1", "Deployment")]},
            "spec": {"replicas": 0, "minReadySeconds": _int(spec.get("minReadySeconds")), "selector": selector,
                     "template": template},
        }
        replicas = rs["spec"]["replicas"] = _new_rs_replicas(d, rs_list, rs)
        _set_new_rs_annotations(d, rs, new_revision, exists=False)
        try:
            created = await self.client.create(REPLICASETS, rs, tenant=meta.get("tenant"),
                                               namespace=meta.get("namespace"))
        except APIError as exc:
            if is_terminating_refusal(exc):
                return None
            if exc.code != 409:
                raise
            created = await self._existing_new_rs(d, rs["metadata"]["name"])
            if created is None:
                # A different ReplicaSet holds the name: change the hash and try again.
                status["collisionCount"] = _int(collisions) + 1
                self.log.warning("deployment %s: replica set name %s is taken (hash collision); collisionCount now %d",
                                 object_key(d), rs["metadata"]["name"], status["collisionCount"])
                await self._write_status(d, status)
                raise _Conflict("hash collision") from None
        else:
            self.log.info("deployment %s: created replica set %s (revision %d, %d replicas)", object_key(d),
                          created["metadata"]["name"], new_revision, replicas)
            if replicas > 0:
                self.ctx.events.normal(d, "ScalingReplicaSet", "Scaled up replica set %s to %d",
                                       created["metadata"]["name"], replicas)
        await self._patch_deployment_revision(d, _revision(created) or new_revision)
        if _has_deadline(d):
            _set_condition(status, _new_condition(PROGRESSING, "True", NEW_RS_CREATED,
                                                  f'Created new replica set "{created["metadata"]["name"]}"'))
        rs_list.append(created)
        return created

    async def _existing_new_rs(self, d: Obj, name: str) -> Obj | None:
        """The ReplicaSet that took our name, if it is ours with our template (our cache had not seen it yet)."""
        meta = d["metadata"]
        try:
            rs = await self.client.get(REPLICASETS, name, tenant=meta.get("tenant"), namespace=meta.get("namespace"))
        except APIError as exc:
            if is_gone(exc):
                raise _Conflict("replica set deleted while we created it") from None
            raise
        ref = controller_ref(rs)
        if ref is not None and ref.get("uid") == meta["uid"] and templates_equal(
                (rs.get("spec") or {}).get("template"), (d.get("spec") or {}).get("template")):
            return rs
        return None

    # -- scaling (also while paused) -------------------------------------------------------------

    async def _is_scaling_event(self, d: Obj, rs_list: list[Obj]) -> bool:
        new_rs, old_rss = await self._all_rss(d, rs_list, create=False)
        for rs in _active(self._all(new_rs, old_rss)):
            desired = ((rs["metadata"].get("annotations") or {}).get(DESIRED_REPLICAS_ANNOTATION))
            if desired is not None and desired != str(_replicas(d)):
                return True
        return False

    async def _sync_scale(self, d: Obj, rs_list: list[Obj]) -> None:
        new_rs, old_rss = await self._all_rss(d, rs_list, create=False)
        await self._scale(d, new_rs, old_rss)
        if (d.get("spec") or {}).get("paused"):
            await self._cleanup(old_rss, d)
        await self._sync_status(self._all(new_rs, old_rss), new_rs, d)

    async def _scale(self, d: Obj, new_rs: Obj | None, old_rss: list[Obj]) -> None:
        """Kubernetes' proportional scaling: a new `replicas` spread over the live ReplicaSets."""
        replicas = _replicas(d)
        active_or_latest = self._active_or_latest(new_rs, old_rss)
        if active_or_latest is not None:
            if _replicas(active_or_latest) != replicas:
                await self._scale_rs(active_or_latest, replicas, d)
            return
        if new_rs is not None and _replicas(new_rs) == replicas and _st(new_rs, "availableReplicas") == replicas \
                and ((new_rs["metadata"].get("annotations") or {}).get(DESIRED_REPLICAS_ANNOTATION) == str(replicas)):
            # Saturated: the new ReplicaSet carries everything, the old ones go.
            for rs in _active(old_rss):
                await self._scale_rs(rs, 0, d)
            return
        if not _is_rolling(d):
            return
        live = _active(self._all(new_rs, old_rss))
        allowed = replicas + max_surge(d) if replicas > 0 else 0
        to_add = allowed - sum(_replicas(rs) for rs in live)
        if to_add == 0:
            return
        # Bigger first; among equals the newer (when adding) or the older (when removing) first.
        def created(rs: Obj) -> str:
            return rs["metadata"].get("creationTimestamp") or ""

        if to_add > 0:
            live.sort(key=created, reverse=True)
            live.sort(key=_replicas, reverse=True)
        else:
            live.sort(key=created)
            live.sort(key=_replicas, reverse=True)
        added = 0
        sizes: dict[str, int] = {}
        for rs in live:
            proportion = self._proportion(rs, d, to_add, added)
            sizes[rs["metadata"]["name"]] = _replicas(rs) + proportion
            added += proportion
        if live:
            first = live[0]["metadata"]["name"]
            sizes[first] = max(sizes[first] + to_add - added, 0)
        for rs in live:
            await self._scale_rs(rs, sizes[rs["metadata"]["name"]], d)

    @staticmethod
    def _active_or_latest(new_rs: Obj | None, old_rss: list[Obj]) -> Obj | None:
        olds = sorted(old_rss, key=lambda rs: rs["metadata"].get("creationTimestamp") or "", reverse=True)
        live = _active([*olds, *([new_rs] if new_rs is not None else [])])
        if not live:
            if new_rs is not None:
                return new_rs
            return olds[0] if olds else None
        return live[0] if len(live) == 1 else None

    @staticmethod
    def _proportion(rs: Obj, d: Obj, to_add: int, added: int) -> int:
        if _replicas(rs) == 0 or to_add == 0 or to_add == added:
            return 0
        replicas = _replicas(d)
        if replicas == 0:
            fraction = -_replicas(rs)
        else:
            deployment_replicas = replicas + max_surge(d)
            try:
                annotated = int((rs["metadata"].get("annotations") or {}).get(MAX_REPLICAS_ANNOTATION) or "")
            except ValueError:
                annotated = _st(d, "replicas")
            if annotated <= 0:
                annotated = _st(d, "replicas") or deployment_replicas
            fraction = _round_half_away(_replicas(rs) * deployment_replicas / annotated) - _replicas(rs)
        allowed = to_add - added
        return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)

    # -- rollouts ----------------------------------------------------------------------------

    async def _rollout_rolling(self, key: str, d: Obj, rs_list: list[Obj]) -> None:
        new_rs, old_rss = await self._all_rss(d, rs_list, create=True)
        all_rss = self._all(new_rs, old_rss)
        if await self._reconcile_new(all_rss, new_rs, d):
            await self._sync_rollout_status(key, all_rss, new_rs, d)
            return
        if await self._reconcile_old(all_rss, _active(old_rss), new_rs, d):
            await self._sync_rollout_status(key, all_rss, new_rs, d)
            return
        if deployment_complete(d, d.get("status") or {}):
            await self._cleanup(old_rss, d)
        await self._sync_rollout_status(key, all_rss, new_rs, d)

    async def _reconcile_new(self, all_rss: list[Obj], new_rs: Obj | None, d: Obj) -> bool:
        if new_rs is None:
            return False
        replicas = _replicas(d)
        if _replicas(new_rs) == replicas:
            return False
        if _replicas(new_rs) > replicas:
            return await self._scale_rs(new_rs, replicas, d)
        return await self._scale_rs(new_rs, _new_rs_replicas(d, all_rss, new_rs), d)

    async def _reconcile_old(self, all_rss: list[Obj], old_rss: list[Obj], new_rs: Obj | None, d: Obj) -> bool:
        old_pods = sum(_replicas(rs) for rs in old_rss)
        if old_pods == 0:
            return False
        all_pods = sum(_replicas(rs) for rs in all_rss)
        min_available = _replicas(d) - max_unavailable(d)
        new_unavailable = max(_replicas(new_rs) - _st(new_rs, "availableReplicas"), 0) if new_rs is not None else 0
        max_scaled_down = all_pods - min_available - new_unavailable
        if max_scaled_down <= 0:
            return False
        cleaned = await self._cleanup_unhealthy(old_rss, d, max_scaled_down)
        scaled = await self._scale_down_old(all_rss, old_rss, d, max_scaled_down - cleaned)
        return cleaned + scaled > 0

    async def _cleanup_unhealthy(self, old_rss: list[Obj], d: Obj, max_cleanup: int) -> int:
        """Shrink old ReplicaSets by their unavailable pods first: that costs no availability."""
        total = 0
        for rs in _by_creation(old_rss):
            if total >= max_cleanup:
                break
            unhealthy = _replicas(rs) - _st(rs, "availableReplicas")
            if _replicas(rs) == 0 or unhealthy <= 0:
                continue
            n = min(max_cleanup - total, unhealthy)
            await self._scale_rs(rs, _replicas(rs) - n, d)
            total += n
        return total

    async def _scale_down_old(self, all_rss: list[Obj], old_rss: list[Obj], d: Obj, limit: int) -> int:
        min_available = _replicas(d) - max_unavailable(d)
        # A ReplicaSet's pods beyond its (already lowered) size are on their way out: never count them.
        available = sum(min(_st(rs, "availableReplicas"), _replicas(rs)) for rs in all_rss)
        if available <= min_available or limit <= 0:
            return 0
        to_remove = min(available - min_available, limit)
        total = 0
        for rs in _by_creation(old_rss):
            if total >= to_remove:
                break
            if _replicas(rs) == 0:
                continue
            n = min(_replicas(rs), to_remove - total)
            await self._scale_rs(rs, _replicas(rs) - n, d)
            total += n
        return total

    async def _rollout_recreate(self, key: str, d: Obj, rs_list: list[Obj]) -> None:
        new_rs, old_rss = await self._all_rss(d, rs_list, create=False)
        all_rss = self._all(new_rs, old_rss)
        scaled = False
        for rs in _active(old_rss):
            scaled = await self._scale_rs(rs, 0, d) or scaled
        if scaled:
            await self._sync_rollout_status(key, all_rss, new_rs, d)
            return
        if await self._old_pods_running(d, old_rss):
            await self._sync_rollout_status(key, all_rss, new_rs, d)
            self.enqueue_after(key, 1.0)  # pods going away do not touch the ReplicaSets' status: look again
            return
        if new_rs is None:
            new_rs, old_rss = await self._all_rss(d, rs_list, create=True)
            all_rss = self._all(new_rs, old_rss)
        if new_rs is not None and _replicas(new_rs) != _replicas(d):
            await self._scale_rs(new_rs, _replicas(d), d)
        if deployment_complete(d, d.get("status") or {}):
            await self._cleanup(old_rss, d)
        await self._sync_rollout_status(key, all_rss, new_rs, d)

    async def _old_pods_running(self, d: Obj, old_rss: list[Obj]) -> bool:
        """Whether any pod of an old ReplicaSet still exists and has not finished (terminating ones included)."""
        if any(_st(rs, "replicas") > 0 for rs in old_rss):
            return True
        uids = {rs["metadata"]["uid"] for rs in old_rss}
        if not uids:
            return False
        selector = self.selectors.get(d)
        meta = d["metadata"]
        listed = await self.client.list(PODS, tenant=meta.get("tenant"), namespace=meta.get("namespace"),
                                        label_selector=str(selector) or None)
        for pod in listed["items"]:
            ref = controller_ref(pod)
            if ref is None or ref.get("uid") not in uids:
                continue
            if (pod.get("status") or {}).get("phase") not in ("Failed", "Succeeded"):
                return True
        return False

    # -- history --------------------------------------------------------------------------------

    async def _cleanup(self, old_rss: list[Obj], d: Obj) -> None:
        """Delete the oldest revisions beyond revisionHistoryLimit, only those scaled to zero and settled."""
        limit = (d.get("spec") or {}).get("revisionHistoryLimit")
        if not isinstance(limit, int):
            return
        alive = [rs for rs in old_rss if not rs["metadata"].get("deletionTimestamp")]
        excess = len(alive) - limit
        if excess <= 0:
            return
        for rs in sorted(alive, key=lambda r: (_revision(r), r["metadata"].get("creationTimestamp") or ""))[:excess]:
            meta = rs["metadata"]
            if _st(rs, "replicas") != 0 or _replicas(rs) != 0 or (
                    _int(meta.get("generation"), 1) > _st(rs, "observedGeneration")):
                continue
            try:
                await self.client.delete(REPLICASETS, meta["name"], tenant=meta.get("tenant"),
                                         namespace=meta.get("namespace"), preconditions={"uid": meta["uid"]})
            except APIError as exc:
                if not is_gone(exc) and exc.code != 409:
                    raise
                continue
            self.log.info("deployment %s: deleted old replica set %s (revision %d; history limit %d)", object_key(d),
                          meta["name"], _revision(rs), limit)

    # -- status -----------------------------------------------------------------------------------

    def _calculate_status(self, all_rss: list[Obj], new_rs: Obj | None, d: Obj) -> Obj:
        available = sum(_st(rs, "availableReplicas") for rs in all_rss)
        total = sum(_replicas(rs) for rs in all_rss)
        old = d.get("status") or {}
        status: Obj = {
            "observedGeneration": _int(d["metadata"].get("generation"), 1),
            "replicas": sum(_st(rs, "replicas") for rs in all_rss),
            "updatedReplicas": _st(new_rs, "replicas"),
            "readyReplicas": sum(_st(rs, "readyReplicas") for rs in all_rss),
            "availableReplicas": available,
            "unavailableReplicas": max(total - available, 0),
        }
        if old.get("collisionCount") is not None:
            status["collisionCount"] = old["collisionCount"]
        status["conditions"] = copy.deepcopy(old.get("conditions") or [])
        if available >= _replicas(d) - max_unavailable(d):
            _set_condition(status, _new_condition(AVAILABLE, "True", MIN_AVAILABLE,
                                                  "Deployment has minimum availability."))
        else:
            _set_condition(status, _new_condition(AVAILABLE, "False", MIN_UNAVAILABLE,
                                                  "Deployment does not have minimum availability."))
        return status

    async def _sync_status(self, all_rss: list[Obj], new_rs: Obj | None, d: Obj) -> None:
        await self._write_status(d, self._calculate_status(all_rss, new_rs, d))

    async def _sync_rollout_status(self, key: str, all_rss: list[Obj], new_rs: Obj | None, d: Obj) -> None:
        status = self._calculate_status(all_rss, new_rs, d)
        if not _has_deadline(d):
            _remove_condition(status, PROGRESSING)
        current = _condition(status, PROGRESSING)
        complete = (_int(status.get("replicas")) == _int(status.get("updatedReplicas")) and current is not None
                    and current.get("reason") == NEW_RS_AVAILABLE)
        name = new_rs["metadata"]["name"] if new_rs is not None else ""
        if _has_deadline(d) and not complete:
            if deployment_complete(d, status):
                _set_condition(status, _new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE,
                                                      f'ReplicaSet "{name}" has successfully progressed.'))
            elif _progressing(d, status):
                cond = _new_condition(PROGRESSING, "True", RS_UPDATED, f'ReplicaSet "{name}" is progressing.')
                if current is not None:
                    if current.get("status") == "True":
                        cond["lastTransitionTime"] = current.get("lastTransitionTime", cond["lastTransitionTime"])
                    _remove_condition(status, PROGRESSING)
                _set_condition(status, cond)
            elif _timed_out(d, status):
                _set_condition(status, _new_condition(PROGRESSING, "False", TIMED_OUT,
                                                      f'ReplicaSet "{name}" has timed out progressing.'))
        # A ReplicaSet that cannot create or delete pods (quota, admission) says so on the Deployment too.
        failure = self._replica_failure(all_rss, new_rs)
        if failure is not None:
            _set_condition(status, failure)
        else:
            _remove_condition(status, REPLICA_FAILURE)
        if status == self._stored.get(id(d)):
            self._requeue_stuck(key, d, status)
            return
        await self._write_status(d, status)

    @staticmethod
    def _replica_failure(all_rss: list[Obj], new_rs: Obj | None) -> Obj | None:
        """The first ReplicaFailure condition of the new, then the old ReplicaSets, as a Deployment condition."""
        ordered = ([new_rs] if new_rs is not None else []) + [rs for rs in all_rss if rs is not new_rs]
        for rs in ordered:
            cond = _condition(rs.get("status") or {}, REPLICA_FAILURE)
            if cond is not None:
                stamp = cond.get("lastTransitionTime") or now_rfc3339()
                return {"type": REPLICA_FAILURE, "status": cond.get("status", "True"), "lastUpdateTime": stamp,
                        "lastTransitionTime": stamp, "reason": cond.get("reason", ""),
                        "message": cond.get("message", "")}
        return None

    def _requeue_stuck(self, key: str, d: Obj, status: Obj) -> None:
        """Come back when the progress deadline passes, or nothing would ever notice it did."""
        cond = _condition(status, PROGRESSING)
        if cond is None or not _has_deadline(d) or deployment_complete(d, status) or cond.get("reason") in (
                TIMED_OUT, NEW_RS_AVAILABLE):
            return
        since = parse_time(cond.get("lastUpdateTime"))
        if since is None:
            return
        after = since + d["spec"]["progressDeadlineSeconds"] - time.time()
        self.enqueue_after(key, max(after, 0.0) + 1.0)

    async def _paused_conditions(self, d: Obj) -> None:
        status = d.setdefault("status", {})
        cond = _condition(status, PROGRESSING)
        if cond is not None and cond.get("reason") == TIMED_OUT:
            return
        paused = bool((d.get("spec") or {}).get("paused"))
        shows_paused = cond is not None and cond.get("reason") == PAUSED
        if paused and not shows_paused:
            _set_condition(status, _new_condition(PROGRESSING, "Unknown", PAUSED, "Deployment is paused"))
        elif not paused and shows_paused:
            _set_condition(status, _new_condition(PROGRESSING, "Unknown", RESUMED, "Deployment is resumed"))
        else:
            return
        await self._write_status(d, copy.deepcopy(status))
