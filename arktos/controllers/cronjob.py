"""The CronJob controller: create a Job at each scheduled time (Kubernetes' cronjob controller v2).

One sync of a CronJob:

1. Reconcile `status.active` with the Jobs it controls: finished ones leave
   the list (a successful one sets `lastSuccessfulTime`), running ones it
   controls but does not list join it, deleted ones leave it.
2. Nothing more while it is being deleted, suspended, or has a schedule or
   time zone that does not parse (a Warning event says why).
3. The most recent scheduled time in (lastScheduleTime or creation,
   now] (with `startingDeadlineSeconds`, no earlier than now minus it) is the
   one to run; older missed ones are skipped, as Kubernetes does.  Too late
   (past the starting deadline): a MissSchedule event.  Already run (its Job
   is active, or it is lastScheduleTime): nothing.
4. concurrencyPolicy: Forbid leaves it for later while a Job runs; Replace
   deletes the running Jobs first; Allow runs them side by side.
5. The Job is `<cronjob>-<scheduled time in minutes since the epoch>`, with
   the template's labels and annotations, the annotation
   `batch.kubernetes.io/cronjob-scheduled-timestamp` and a controller
   ownerReference; it joins `status.active` and sets `lastScheduleTime`.
6. Finished Jobs beyond `successfulJobsHistoryLimit` / `failedJobsHistoryLimit`
   are deleted, oldest first.
7. The key comes back at the next scheduled time.

Schedules are read in `spec.timeZone` (default UTC) by arktos.api.cron.  The
clock is injectable (`clock`, or `options.extra["clock"]`) so tests can move
time; keys are `tenant/namespace/name`.
"""

from __future__ import annotations

import copy
import datetime as dt
import time
from typing import Any

from arktos.api import cron
from arktos.api.errors import APIError
from arktos.controllers._workloads import (
    INDEXERS,
    NAMESPACE_INDEX,
    OWNER_INDEX,
    controller_ref,
    make_controller_ref,
    parse_time,
    same_place,
)
from arktos.controllers.base import Controller, ControllerContext, builtin, is_gone, is_terminating_refusal
from arktos.controllers.job import is_finished

__all__ = ["CronJobController", "job_name", "most_recent_schedule"]

Obj = dict[str, Any]
CRONJOBS = builtin("batch", "cronjobs")
JOBS = builtin("batch", "jobs")
SCHEDULED_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
MAX_MISSED = 100
UTC = dt.UTC


def job_name(cronjob_name: str, scheduled: dt.datetime) -> str:
    return f"{cronjob_name}-{int(scheduled.timestamp()) // 60}"


def _rfc3339(t: dt.datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def most_recent_schedule(cj: Obj, sched: cron.Schedule, tz: dt.tzinfo,
                         now: dt.datetime) -> tuple[dt.datetime | None, int]:
    """(the latest scheduled time not yet run and not past the starting deadline, how many were missed)."""
    spec, status, meta = cj.get("spec") or {}, cj.get("status") or {}, cj.get("metadata") or {}
    earliest = parse_time(status.get("lastScheduleTime")) or parse_time(meta.get("creationTimestamp"))
    if earliest is None:
        earliest = now.timestamp()
    deadline = spec.get("startingDeadlineSeconds")
    if isinstance(deadline, int) and not isinstance(deadline, bool):
        earliest = max(earliest, now.timestamp() - deadline)
    start = dt.datetime.fromtimestamp(earliest, UTC)
    if start > now:
        return None, 0
    # A schedule far behind (controller down for days) is not replayed: only the latest counts.
    times = sched.times_between(start, now, tz, limit=MAX_MISSED + 1)
    if len(times) <= MAX_MISSED:
        return (times[-1] if times else None), len(times)
    # Too many to walk one by one: look back from now in growing windows for the latest.
    for window in (3600, 86400, 31 * 86400, 366 * 86400):
        recent = sched.times_between(max(start, now - dt.timedelta(seconds=window)), now, tz)
        if recent:
            return recent[-1], MAX_MISSED + 1
    return times[-1], MAX_MISSED + 1


class CronJobController(Controller):
    name = "cronjob"
    max_backoff = 10.0

    def __init__(self, ctx: ControllerContext, *, clock=None) -> None:
        super().__init__(ctx)
        self.clock = clock or ctx.options.extra.get("clock") or time.time

    def setup(self) -> None:
        f = self.ctx.informers
        self.cronjobs = f.informer(CRONJOBS, indexers={NAMESPACE_INDEX: INDEXERS[NAMESPACE_INDEX]})
        self.jobs = f.informer(JOBS, indexers={OWNER_INDEX: INDEXERS[OWNER_INDEX]})
        self.cronjobs.add_handler(on_add=self.enqueue, on_update=lambda _o, n: self.enqueue(n))
        self.jobs.add_handler(on_add=self._job_changed, on_update=lambda _o, n: self._job_changed(n),
                              on_delete=self._job_changed)

    def _job_changed(self, job: Obj) -> None:
        ref = controller_ref(job)
        if ref is None or ref.get("kind") != "CronJob":
            return
        meta = job.get("metadata") or {}
        key = "/".join(p for p in (meta.get("tenant"), meta.get("namespace"), ref.get("name")) if p)
        cj = self.cronjobs.get(key)
        if cj is not None and cj["metadata"].get("uid") == ref.get("uid"):
            self.enqueue(key)

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock(), UTC)

    # -- sync ---------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        cj = self.cronjobs.get(key)
        if cj is None:
            return
        cj = copy.deepcopy(cj)
        status = cj.setdefault("status", {})
        old_status = copy.deepcopy(status)
        uid = cj["metadata"]["uid"]
        jobs = [j for j in self.jobs.by_index(OWNER_INDEX, uid)
                if same_place(j, cj) and (controller_ref(j) or {}).get("uid") == uid]
        await self._reconcile_active(cj, jobs)
        try:
            await self._run(cj, key, jobs)
        finally:
            if status != old_status:
                await self._write_status(cj, key)
        await self._clean_history(cj, jobs)

    async def _reconcile_active(self, cj: Obj, jobs: list[Obj]) -> None:
        status = cj["status"]
        by_uid = {j["metadata"]["uid"]: j for j in jobs}
        active: list[Obj] = []
        for ref in status.get("active") or []:
            job = by_uid.get(ref.get("uid"))
            if job is None:
                job = await self._get_job(cj, ref)  # just created, perhaps, and not in the informer yet
            if job is None:
                continue
            finished = is_finished(job)
            if finished is None:
                active.append(ref)
                continue
            self.ctx.events.normal(cj, "SawCompletedJob", "Saw completed job: %s, condition: %s",
                                   job["metadata"]["name"], finished)
            if finished == "Complete":
                done = (job.get("status") or {}).get("completionTime")
                last = status.get("lastSuccessfulTime")
                if done and (not last or (parse_time(done) or 0) > (parse_time(last) or 0)):
                    status["lastSuccessfulTime"] = done
        listed = {r.get("uid") for r in active}
        for job in jobs:
            if job["metadata"]["uid"] not in listed and is_finished(job) is None and not \
                    job["metadata"].get("deletionTimestamp"):
                active.append(self._ref(job))
        if active:
            status["active"] = active
        else:
            status.pop("active", None)

    async def _get_job(self, cj: Obj, ref: Obj) -> Obj | None:
        meta = cj["metadata"]
        try:
            job = await self.client.get(JOBS, ref.get("name") or "", tenant=meta.get("tenant"),
                                        namespace=meta.get("namespace"))
        except APIError as exc:
            if is_gone(exc):
                return None
            raise
        return job if job["metadata"].get("uid") == ref.get("uid") else None

    @staticmethod
    def _ref(job: Obj) -> Obj:
        meta = job["metadata"]
        ref = {"kind": "Job", "namespace": meta.get("namespace"), "name": meta["name"], "uid": meta["uid"],
               "apiVersion": "batch/v1", "resourceVersion": meta.get("resourceVersion")}
        if meta.get("tenant"):
            ref["tenant"] = meta["tenant"]
        return {k: v for k, v in ref.items() if v is not None}

    async def _run(self, cj: Obj, key: str, jobs: list[Obj]) -> None:
        spec, status = cj.get("spec") or {}, cj["status"]
        if cj["metadata"].get("deletionTimestamp") or spec.get("suspend") is True:
            return
        try:
            tz = cron.load_zone(spec.get("timeZone"))
        except cron.CronError as exc:
            self.ctx.events.warning(cj, "UnknownTimeZone", "invalid timeZone: %r: %s", spec.get("timeZone"), exc)
            return
        try:
            sched = cron.parse(spec.get("schedule") or "")
        except cron.CronError as exc:
            self.ctx.events.warning(cj, "UnparseableSchedule", "unparseable schedule: %r : %s",
                                    spec.get("schedule"), exc)
            return
        now = self.now()
        scheduled, missed = most_recent_schedule(cj, sched, tz, now)
        if missed > MAX_MISSED:
            self.ctx.events.warning(cj, "TooManyMissedTimes", "too many missed start times: %d. Set or decrease "
                                    ".spec.startingDeadlineSeconds or check clock skew", missed)
        self._requeue(key, sched, tz, now)
        if scheduled is None:
            return
        deadline = spec.get("startingDeadlineSeconds")
        if isinstance(deadline, int) and scheduled.timestamp() + deadline < now.timestamp():
            self.ctx.events.warning(cj, "MissSchedule", "Missed scheduled time to start a job: %s",
                                    _rfc3339(scheduled))
            return
        name = job_name(cj["metadata"]["name"], scheduled)
        last = parse_time(status.get("lastScheduleTime"))
        if any(r.get("name") == name for r in status.get("active") or ()) or (
                last is not None and int(last) == int(scheduled.timestamp())):
            return
        policy = spec.get("concurrencyPolicy") or "Allow"
        if policy == "Forbid" and status.get("active"):
            self.log.info("cronjob %s: not starting %s: a job is still running and concurrencyPolicy is Forbid",
                          key, name)
            self.ctx.events.normal(cj, "JobAlreadyActive", "Not starting job because prior execution is running "
                                   "and concurrency policy is Forbid")
            return
        if policy == "Replace":
            for ref in list(status.get("active") or ()):
                await self._delete_job(cj, ref.get("name"), ref.get("uid"))
                status["active"] = [r for r in status.get("active") or () if r.get("uid") != ref.get("uid")]
            if not status.get("active"):
                status.pop("active", None)
        job = self._job_body(cj, name, scheduled, tz)
        meta = cj["metadata"]
        try:
            created = await self.client.create(JOBS, job, tenant=meta.get("tenant"), namespace=meta.get("namespace"))
        except APIError as exc:
            if is_terminating_refusal(exc):
                return
            if exc.code == 409:  # AlreadyExists: made by an earlier sync whose status write was lost
                self.log.info("cronjob %s: job %s already exists", key, name)
                existing = next((j for j in jobs if j["metadata"]["name"] == name), None)
                if existing is not None:
                    status["lastScheduleTime"] = _rfc3339(scheduled)
                return
            self.ctx.events.warning(cj, "FailedCreate", "Error creating job: %s", exc.message)
            raise
        self.ctx.events.normal(cj, "SuccessfulCreate", "Created job %s", name)
        self.log.info("cronjob %s: created job %s for %s", key, name, _rfc3339(scheduled))
        status.setdefault("active", []).append(self._ref(created))
        status["lastScheduleTime"] = _rfc3339(scheduled)

    def _requeue(self, key: str, sched: cron.Schedule, tz: dt.tzinfo, now: dt.datetime) -> None:
        nxt = sched.next(now, tz)
        if nxt is not None:
            self.enqueue_after(key, max(0.0, (nxt - now).total_seconds()) + 0.1)

    @staticmethod
    def _job_body(cj: Obj, name: str, scheduled: dt.datetime, tz: dt.tzinfo) -> Obj:
        template = copy.deepcopy((cj.get("spec") or {}).get("jobTemplate") or {})
        tmeta = template.get("metadata") or {}
        meta: Obj = {"name": name, "ownerReferences": [make_controller_ref(cj, "batch/v1", "CronJob")]}
        if tmeta.get("labels"):
            meta["labels"] = dict(tmeta["labels"])
        annotations = dict(tmeta.get("annotations") or {})
        annotations[SCHEDULED_ANNOTATION] = scheduled.astimezone(tz).isoformat().replace("+00:00", "Z")
        meta["annotations"] = annotations
        return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": template.get("spec") or {}}

    async def _delete_job(self, cj: Obj, name: str | None, uid: str | None) -> None:
        if not name:
            return
        meta = cj["metadata"]
        try:
            await self.client.delete(JOBS, name, tenant=meta.get("tenant"), namespace=meta.get("namespace"),
                                     propagation_policy="Background",
                                     preconditions={"uid": uid} if uid else None)
        except APIError as exc:
            if not (is_gone(exc) or exc.code == 409):
                raise
            return
        self.ctx.events.normal(cj, "SuccessfulDelete", "Deleted job %s", name)

    async def _write_status(self, cj: Obj, key: str) -> None:
        try:
            await self.client.update_status(CRONJOBS, cj)
        except APIError as exc:
            if is_gone(exc):
                return
            if exc.code != 409:
                raise
            self.enqueue_after(key, 0.1)

    async def _clean_history(self, cj: Obj, jobs: list[Obj]) -> None:
        spec = cj.get("spec") or {}
        for outcome, field in (("Complete", "successfulJobsHistoryLimit"), ("Failed", "failedJobsHistoryLimit")):
            limit = spec.get(field)
            if not isinstance(limit, int) or isinstance(limit, bool):
                continue
            done = [j for j in jobs if is_finished(j) == outcome and not j["metadata"].get("deletionTimestamp")]
            if len(done) <= limit:
                continue

            def started(j: Obj) -> float:
                st = j.get("status") or {}
                return parse_time(st.get("startTime")) or parse_time(j["metadata"].get("creationTimestamp")) or 0.0

            done.sort(key=started)
            for j in done[:len(done) - limit]:
                await self._delete_job(cj, j["metadata"]["name"], j["metadata"]["uid"])
