"""The Job controller: run pods of a Job until enough of them succeed, or give up.

Kubernetes' semantics, because `kubectl wait --for=condition=complete` and
CronJobs rely on them:

* Pods are made from the template (`generateName: <job>-`) with a controller
  ownerReference (`blockOwnerDeletion`), so the garbage collector deletes them
  with the job.  At most `parallelism` run at once, and never more than the
  completions still missing; a work queue (completions unset) stops starting
  pods once one succeeded and completes when the rest finished.
* Succeeded and failed are counted from pod phases.  The counts never go down:
  a finished pod someone deleted stays counted (Kubernetes tracks it with a
  finalizer; the stored count is the floor here).  With restartPolicy
  OnFailure, container restarts of running pods count as failures too.
* `failed > backoffLimit` (or the restarts past it) fails the job with reason
  BackoffLimitExceeded; running longer than `activeDeadlineSeconds` fails it
  with DeadlineExceeded.  Either way its active pods are deleted.  After a
  failure the next pod waits an exponential back-off (`pod_failure_backoff`,
  doubling, at most six minutes), as kube-controller-manager does.
* Success: the Complete condition (reason CompletionsReached) and
  `completionTime`.  `suspend: true` deletes the active pods and sets the
  Suspended condition; resuming resets `startTime`.
* `ttlSecondsAfterFinished`: a finished job is deleted that long after it
  finished (its pods go with it, through the garbage collector).
* `completionMode: Indexed`: each pod gets an index (annotation and label
  `batch.kubernetes.io/job-completion-index`, env JOB_COMPLETION_INDEX,
  hostname `<job>-<index>`); the job completes when every index succeeded,
  listed in `status.completedIndexes`.

Keys are `tenant/namespace/name`, so any number of tenants share the workers.
"""

from __future__ import annotations

import copy
import time
from typing import Any

from arktos.api.errors import APIError
from arktos.client import object_key
from arktos.controllers._pods import create_pods, delete_pods
from arktos.controllers._workloads import (
    INDEXERS,
    NAMESPACE_INDEX,
    ORPHAN_INDEX,
    OWNER_INDEX,
    SelectorCache,
    claim,
    controller_ref,
    is_pod_ready,
    make_controller_ref,
    namespace_key,
    now_rfc3339,
    orphan_index,
    parse_time,
    recheck_owner,
    same_place,
)
from arktos.controllers.base import Controller, ControllerContext, builtin, is_gone
from arktos.controllers.replicaset import Expectations

__all__ = ["JobController", "is_finished", "job_condition"]

Obj = dict[str, Any]
JOBS = builtin("batch", "jobs")
PODS = builtin("", "pods")
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
DEFAULT_POD_FAILURE_BACKOFF = 10.0
MAX_POD_FAILURE_BACKOFF = 360.0
BURST = 500


def job_condition(job: Obj, ctype: str) -> Obj | None:
    for c in (job.get("status") or {}).get("conditions") or ():
        if isinstance(c, dict) and c.get("type") == ctype and c.get("status") == "True":
            return c
    return None


def is_finished(job: Obj) -> str | None:
    """"Complete" or "Failed" when the job has finished, else None."""
    for ctype in ("Complete", "Failed"):
        if job_condition(job, ctype) is not None:
            return ctype
    return None


def _int(value: Any, default: int | None = 0) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _phase(pod: Obj) -> str:
    return (pod.get("status") or {}).get("phase") or "Pending"


def _finished_at(pod: Obj) -> float | None:
    """When a finished pod's last container ended (or its status last changed)."""
    latest = None
    status = pod.get("status") or {}
    for cs in status.get("containerStatuses") or ():
        t = parse_time(((cs.get("state") or {}).get("terminated") or {}).get("finishedAt"))
        if t is not None and (latest is None or t > latest):
            latest = t
    if latest is None:
        for c in status.get("conditions") or ():
            t = parse_time(c.get("lastTransitionTime"))
            if t is not None and (latest is None or t > latest):
                latest = t
    return latest


def _restarts(pod: Obj) -> int:
    status = pod.get("status") or {}
    return sum(_int(cs.get("restartCount")) or 0
               for key in ("initContainerStatuses", "containerStatuses") for cs in status.get(key) or ())


def _index_of(pod: Obj) -> int | None:
    value = ((pod.get("metadata") or {}).get("annotations") or {}).get(INDEX_ANNOTATION)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def format_indexes(indexes: set[int]) -> str:
    """Kubernetes' interval form: "0-2,5"."""
    out: list[str] = []
    for i in sorted(indexes):
        if out and out[-1][1] == i - 1:
            out[-1] = (out[-1][0], i)
        else:
            out.append((i, i))
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in out)


def parse_indexes(text: Any) -> set[int]:
    found: set[int] = set()
    for part in (text or "").split(",") if isinstance(text, str) else ():
        a, _, b = part.partition("-")
        try:
            found.update(range(int(a), int(b or a) + 1))
        except ValueError:
            continue
    return found


class JobController(Controller):
    name = "job"
    max_backoff = 10.0

    def __init__(self, ctx: ControllerContext, *, clock=None) -> None:
        super().__init__(ctx)
        self.clock = clock or ctx.options.extra.get("clock") or time.time
        self.pod_failure_backoff = float(ctx.options.extra.get("job_pod_failure_backoff",
                                                               DEFAULT_POD_FAILURE_BACKOFF))
        self.expectations = Expectations()
        self.selectors = SelectorCache()

    # -- informers ----------------------------------------------------------------------

    def setup(self) -> None:
        f = self.ctx.informers
        self.jobs = f.informer(JOBS, indexers={NAMESPACE_INDEX: INDEXERS[NAMESPACE_INDEX]})
        self.pods = f.informer(PODS, indexers={NAMESPACE_INDEX: INDEXERS[NAMESPACE_INDEX],
                                               OWNER_INDEX: INDEXERS[OWNER_INDEX], ORPHAN_INDEX: orphan_index})
        self.jobs.add_handler(on_add=self.enqueue, on_update=lambda _o, n: self.enqueue(n), on_delete=self._job_deleted)
        self.pods.add_handler(on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted)

    def _job_deleted(self, job: Obj) -> None:
        self.expectations.delete(object_key(job))
        self.selectors.forget(job)

    def _owner_of(self, pod: Obj) -> Obj | None:
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != "Job" or not ref.get("name"):
            return None
        job = self.jobs.get("/".join(p for p in (namespace_key(pod), ref["name"]) if p))
        return job if job is not None and job["metadata"].get("uid") == ref.get("uid") else None

    def _pod_added(self, pod: Obj) -> None:
        if pod["metadata"].get("deletionTimestamp"):
            self._pod_deleted(pod)
            return
        job = self._owner_of(pod)
        if job is not None:
            self.expectations.creation_observed(object_key(job))
            self.enqueue(job)
        elif controller_ref(pod) is None:
            labels = pod["metadata"].get("labels") or {}
            for j in self.jobs.by_index(NAMESPACE_INDEX, namespace_key(pod)):
                if self.selectors.get(j).matches(labels):
                    self.enqueue(j)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion"):
            return
        if new["metadata"].get("deletionTimestamp") and not old["metadata"].get("deletionTimestamp"):
            self._pod_deleted(new)
            return
        job = self._owner_of(new)
        if job is not None:
            self.enqueue(job)
        elif controller_ref(new) is None:
            self._pod_added(new)

    def _pod_deleted(self, pod: Obj) -> None:
        job = self._owner_of(pod)
        if job is not None:
            self.expectations.deletion_observed(object_key(job), object_key(pod))
            self.enqueue(job)

    # -- sync ---------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        job = self.jobs.get(key)
        if job is None:
            self.expectations.delete(key)
            return
        if job["metadata"].get("deletionTimestamp"):
            return  # the garbage collector takes the pods
        now = self.clock()
        pods = await self._claim_pods(job)
        finished = is_finished(job)
        if finished is not None:
            # Pods still running after the end (killed on failure, extra after success) go.
            await self._delete_pods(job, key, [p for p in pods if _active(p)])
            await self._ttl(job, key, now)
            return
        spec, status = job.get("spec") or {}, dict(job.get("status") or {})
        active = [p for p in pods if _active(p)]
        succeeded_pods = [p for p in pods if _phase(p) == "Succeeded"]
        failed_pods = [p for p in pods if _phase(p) == "Failed"]
        succeeded = max(len(succeeded_pods), _int(status.get("succeeded")) or 0)
        failed = max(len(failed_pods), _int(status.get("failed")) or 0)
        indexed = spec.get("completionMode") == "Indexed"
        completed_indexes = parse_indexes(status.get("completedIndexes"))
        if indexed:
            completed_indexes |= {i for p in succeeded_pods if (i := _index_of(p)) is not None}
            succeeded = max(succeeded, len(completed_indexes))
        completions = _int(spec.get("completions"), None)
        parallelism = _int(spec.get("parallelism"), 1) or 0
        backoff_limit = _int(spec.get("backoffLimit"), 6) or 0
        conditions = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
        stamp = now_rfc3339()
        suspended = spec.get("suspend") is True
        new_status: Obj = {k: v for k, v in status.items() if k not in ("active", "ready", "terminating")}
        if not suspended and not status.get("startTime"):
            new_status["startTime"] = stamp

        failure: tuple[str, str] | None = None
        restarts = sum(_restarts(p) for p in active) if _pod_restart_policy(job) == "OnFailure" else 0
        if failed > backoff_limit or (restarts and failed + restarts > backoff_limit):
            failure = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
        deadline = _int(spec.get("activeDeadlineSeconds"), None)
        started = parse_time(new_status.get("startTime"))
        if failure is None and deadline is not None and started is not None and not suspended:
            left = started + deadline - now
            if left <= 0:
                failure = ("DeadlineExceeded", "Job was active longer than specified deadline")
            else:
                self.enqueue_after(key, left + 0.05)

        complete = False
        if failure is None:
            if indexed:
                complete = completions is not None and len(completed_indexes) >= completions
            elif completions is not None:
                complete = succeeded >= completions
            else:
                complete = succeeded > 0 and not active

        error: BaseException | None = None
        if failure is not None:
            await self._delete_pods(job, key, active)
            failed += len(active)  # killed pods count as failed, as in Kubernetes
            active = []
            conditions = _set_condition(conditions, "Failed", failure[0], failure[1], stamp)
            self.ctx.events.warning(job, failure[0], failure[1])
        elif complete:
            await self._delete_pods(job, key, active)
            active = []
            conditions = _set_condition(conditions, "Complete", "CompletionsReached",
                                        "Reached expected number of succeeded pods", stamp)
            new_status["completionTime"] = stamp
            self.ctx.events.normal(job, "Completed", "Job completed")
        elif suspended:
            await self._delete_pods(job, key, active)
            active = []
            if job_condition(job, "Suspended") is None:
                conditions = _set_condition(conditions, "Suspended", "JobSuspended", "Job suspended", stamp)
                self.ctx.events.normal(job, "Suspended", "Job suspended")
            new_status.pop("startTime", None)
        else:
            if job_condition(job, "Suspended") is not None:
                conditions = _set_condition(conditions, "Suspended", "JobResumed", "Job resumed", stamp,
                                            status="False")
                new_status["startTime"] = stamp
                self.ctx.events.normal(job, "Resumed", "Job resumed")
            if self.expectations.satisfied(key):
                try:
                    active = await self._manage(job, key, active, succeeded, failed, failed_pods, completions,
                                                parallelism, completed_indexes if indexed else None, now)
                except (APIError, OSError) as exc:
                    error = exc

        new_status["active"] = len(active)
        new_status["ready"] = sum(1 for p in active if is_pod_ready(p))
        new_status["succeeded"] = succeeded
        new_status["failed"] = failed
        if indexed:
            new_status["completedIndexes"] = format_indexes(completed_indexes)
        if conditions:
            new_status["conditions"] = conditions
        for k in ("active", "succeeded", "failed"):
            if not new_status[k]:
                new_status.pop(k)
        await self._write_status(job, key, new_status, status)
        if failure is not None or complete:
            await self._ttl({**job, "status": new_status}, key, now)
        if error is not None:
            raise error

    async def _claim_pods(self, job: Obj) -> list[Obj]:
        uid = job["metadata"]["uid"]
        owned = [p for p in self.pods.by_index(OWNER_INDEX, uid) if same_place(p, job)]
        orphans = self.pods.by_index(ORPHAN_INDEX, namespace_key(job))
        if not orphans:
            return owned
        ref = make_controller_ref(job, "batch/v1", "Job")
        return await claim(self.client, job, ref, self.selectors.get(job), [*owned, *orphans], PODS,
                           lambda: recheck_owner(self.client, JOBS, job))

    async def _manage(self, job: Obj, key: str, active: list[Obj], succeeded: int, failed: int,
                      failed_pods: list[Obj], completions: int | None, parallelism: int,
                      completed: set[int] | None, now: float) -> list[Obj]:
        """Start or stop pods toward the wanted number running; returns the active pods afterwards."""
        if completions is None:
            # A work queue: after one success, leave whatever runs running, and start nothing new.
            wanted = len(active) if succeeded > 0 else parallelism
        else:
            wanted = max(0, min(parallelism, completions - succeeded))
        if len(active) > wanted:
            # Too many (parallelism lowered): the newest go first.
            victims = sorted(active, key=lambda p: p["metadata"].get("creationTimestamp") or "",
                             reverse=True)[:len(active) - wanted]
            await self._delete_pods(job, key, victims)
            gone = {id(p) for p in victims}
            return [p for p in active if id(p) not in gone]
        if len(active) == wanted:
            return active
        if failed > 0:
            last = max((t for p in failed_pods if (t := _finished_at(p)) is not None), default=None)
            delay = min(self.pod_failure_backoff * 2 ** (min(failed, 16) - 1), MAX_POD_FAILURE_BACKOFF)
            if last is not None and now < last + delay:
                self.enqueue_after(key, last + delay - now + 0.05)
                return active
        indexes: list[int | None]
        n = min(wanted - len(active), BURST)
        if completed is not None:
            running = {i for p in active if (i := _index_of(p)) is not None}
            free = [i for i in range(completions or 0) if i not in completed and i not in running]
            indexes = list(free[:n])
        else:
            indexes = [None] * n
        await self._create_pods(job, key, indexes)
        return active

    def _pod_body(self, job: Obj, index: int | None) -> Obj:
        template = copy.deepcopy((job.get("spec") or {}).get("template") or {})
        meta = template.get("metadata") or {}
        name = job["metadata"]["name"]
        pod_meta: Obj = {"generateName": f"{name}-" if index is None else f"{name}-{index}-",
                         "ownerReferences": [make_controller_ref(job, "batch/v1", "Job")]}
        for k in ("labels", "annotations"):
            if meta.get(k):
                pod_meta[k] = dict(meta[k])
        spec = template.get("spec") or {}
        if index is not None:
            pod_meta.setdefault("annotations", {})[INDEX_ANNOTATION] = str(index)
            pod_meta.setdefault("labels", {})[INDEX_ANNOTATION] = str(index)
            spec.setdefault("hostname", f"{name}-{index}")
            for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
                env = c.setdefault("env", [])
                if not any(e.get("name") == "JOB_COMPLETION_INDEX" for e in env):
                    env.append({"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
                        "fieldPath": f"metadata.annotations['{INDEX_ANNOTATION}']"}}})
        return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": spec}

    async def _create_pods(self, job: Obj, key: str, indexes: list[int | None]) -> None:
        if await create_pods(self, job, key, [self._pod_body(job, i) for i in indexes]):
            self.log.info("job %s: created %d pods", key, len(indexes))

    async def _delete_pods(self, job: Obj, key: str, victims: list[Obj]) -> None:
        await delete_pods(self, job, key, victims)

    async def _write_status(self, job: Obj, key: str, new: Obj, old: Obj) -> None:
        if new == old:
            return
        try:
            await self.client.update_status(JOBS, {**job, "status": new})
        except APIError as exc:
            if is_gone(exc):
                return
            if exc.code != 409:
                raise
            self.enqueue_after(key, 0.1)  # our copy was stale: the newer version's event brings it back

    async def _ttl(self, job: Obj, key: str, now: float) -> None:
        """Delete a finished job `ttlSecondsAfterFinished` after it finished."""
        ttl = _int((job.get("spec") or {}).get("ttlSecondsAfterFinished"), None)
        if ttl is None:
            return
        cond = job_condition(job, "Complete") or job_condition(job, "Failed") or {}
        finished = parse_time((job.get("status") or {}).get("completionTime")) or parse_time(
            cond.get("lastTransitionTime")) or now
        left = finished + ttl - now
        if left > 0:
            self.enqueue_after(key, left + 0.05)
            return
        meta = job["metadata"]
        try:
            await self.client.delete(JOBS, meta["name"], tenant=meta.get("tenant"), namespace=meta.get("namespace"),
                                     propagation_policy="Background", preconditions={"uid": meta["uid"]})
        except APIError as exc:
            if not (is_gone(exc) or exc.code == 409):
                raise
            return
        self.log.info("job %s: deleted %ds after it finished (ttlSecondsAfterFinished)", key, ttl)


def _active(pod: Obj) -> bool:
    return not pod["metadata"].get("deletionTimestamp") and _phase(pod) not in ("Succeeded", "Failed")


def _pod_restart_policy(job: Obj) -> str:
    return (((job.get("spec") or {}).get("template") or {}).get("spec") or {}).get("restartPolicy") or ""


def _set_condition(conditions: list[Obj], ctype: str, reason: str, message: str, stamp: str,
                   status: str = "True") -> list[Obj]:
    out = [c for c in conditions if c.get("type") != ctype]
    old = next((c for c in conditions if c.get("type") == ctype), None)
    if old is not None and old.get("status") == status and old.get("reason") == reason:
        out.append(old)
    else:
        out.append({"type": ctype, "status": status, "lastProbeTime": stamp, "lastTransitionTime": stamp,
                    "reason": reason, "message": message})
    return out

