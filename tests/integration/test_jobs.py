"""Jobs and CronJobs against a real API server, with the controllers and a hollow node agent in-process.

In-process so a test can make hollow containers exit (with the code it wants) and move the cron job
controller's clock.  Pods name their node in the template, so no scheduler is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from typing import Any

import pytest

from arktos.agent.agent import NodeAgent, NodeAgentOptions
from arktos.agent.runtimes.hollow import HollowRuntime
from arktos.api.errors import APIError
from arktos.api.resources import builtin_registry
from arktos.client import Client, ClusterConfig
from arktos.controllers.base import ControllerContext, ControllerOptions, InformerFactory
from arktos.controllers.cronjob import CronJobController
from arktos.controllers.discovery import Discovery
from arktos.controllers.garbagecollector import GarbageCollector
from arktos.controllers.job import JobController
from tests.conftest import eventually

pytestmark = pytest.mark.timeout(90)

REG = builtin_registry()
NAMESPACES = REG.get("", "v1", "namespaces")
PODS = REG.get("", "v1", "pods")
JOBS = REG.get("batch", "v1", "jobs")
CRONJOBS = REG.get("batch", "v1", "cronjobs")
EVENTS = REG.get("", "v1", "events")
Obj = dict[str, Any]


class Clock:
    def __init__(self) -> None:
        self.t = dt.datetime.now(dt.UTC).timestamp()

    def __call__(self) -> float:
        return self.t


async def run_controllers(client: Client, *classes, **extra):
    informers = InformerFactory(client)
    ctx = ControllerContext(client, informers, ControllerOptions(concurrent_workers=2, extra=extra),
                            Discovery(client))
    controllers = [cls(ctx) for cls in classes]
    for c in controllers:
        c.setup()
    await informers.start()
    await informers.wait_synced(__import__("logging").getLogger("test"))
    tasks = [asyncio.create_task(c.run()) for c in controllers]

    async def stop() -> None:
        for c in controllers:
            await c.shut_down(1.0)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await informers.stop()
        await ctx.close()

    return controllers, stop


def job_body(name: str, node: str, *, restart: str = "Never", **spec: Any) -> Obj:
    return {"metadata": {"name": name}, "spec": {**spec, "template": {"spec": {
        "nodeName": node, "restartPolicy": restart, "containers": [{"name": "c", "image": "busybox"}]}}}}


def condition(job: Obj, ctype: str) -> Obj | None:
    return next((c for c in (job.get("status") or {}).get("conditions") or []
                 if c["type"] == ctype and c["status"] == "True"), None)


async def test_jobs_run_to_completion_fail_on_backoff_and_deadline_and_expire(apiserver):
    run = uuid.uuid4().hex[:6]
    node, ns = f"jn-{run}", f"jobs-{run}"
    runtime = HollowRuntime("container", node_name=node)
    agent = NodeAgent(NodeAgentOptions(
        config=ClusterConfig.for_url(apiserver.url), node_name=node, runtimes=[runtime], cpu="4", memory="8Gi",
        lease_renew_interval=1, status_update_interval=1, sync_interval=1, relist_interval=0.1,
        backoff_initial=1, backoff_max=2))
    await agent.start()
    async with Client(apiserver.url, qps=1000, burst=1000) as client:
        _, stop = await run_controllers(client, JobController, GarbageCollector, job_pod_failure_backoff=0.2)
        try:
            await client.create(NAMESPACES, {"metadata": {"name": ns}})

            async def pods_of(job: str, phase: str | None = None) -> list[Obj]:
                items = (await client.list(PODS, namespace=ns, label_selector=f"job-name={job}"))["items"]
                return [p for p in items if not p["metadata"].get("deletionTimestamp")
                        and (phase is None or p.get("status", {}).get("phase") == phase)]

            async def exit_running(job: str, code: int, want: int) -> int:
                """Make every running container of the job's pods exit with `code`; how many did."""
                running = await pods_of(job, "Running")
                if len(running) < want:
                    return 0
                return sum(runtime.exit_container(p["metadata"]["uid"], exit_code=code) for p in running)

            # 1. completions 3, parallelism 2: two pods at a time, three successes, then Complete.
            await client.create(JOBS, job_body("ok", node, completions=3, parallelism=2), namespace=ns)
            job = await client.get(JOBS, "ok", namespace=ns)
            uid = job["metadata"]["uid"]
            assert job["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
            first = await eventually(lambda: exit_running("ok", 0, 2), 10, "two running pods of job ok")
            assert first == 2
            await eventually(lambda: exit_running("ok", 0, 1), 10, "the third pod of job ok")
            job = await eventually(lambda: _finished(client, ns, "ok", "Complete"), 10, "job ok Complete")
            st = job["status"]
            assert st["succeeded"] == 3 and "failed" not in st and st.get("active", 0) == 0
            assert st["completionTime"] and st["startTime"]
            assert condition(job, "Complete")["reason"] == "CompletionsReached"
            pods = await pods_of("ok", "Succeeded")
            assert len(pods) == 3
            for p in pods:
                (ref,) = p["metadata"]["ownerReferences"]
                assert ref == {"apiVersion": "batch/v1", "kind": "Job", "name": "ok", "uid": uid, "controller": True,
                               "blockOwnerDeletion": True, "hashKey": ref["hashKey"]}
                assert p["metadata"]["labels"]["batch.kubernetes.io/controller-uid"] == uid

            # 2. Every pod fails, backoffLimit 1: two failures and the job is Failed/BackoffLimitExceeded.
            await client.create(JOBS, job_body("bad", node, backoffLimit=1), namespace=ns)
            await eventually(lambda: exit_running("bad", 1, 1), 10, "the first pod of job bad")
            await eventually(lambda: exit_running("bad", 1, 1), 10, "the second pod of job bad")
            job = await eventually(lambda: _finished(client, ns, "bad", "Failed"), 10, "job bad Failed")
            assert condition(job, "Failed")["reason"] == "BackoffLimitExceeded"
            assert job["status"]["failed"] == 2 and "completionTime" not in job["status"]
            assert len(await pods_of("bad", "Failed")) == 2

            # 3. activeDeadlineSeconds: the running pod is killed and the job fails with DeadlineExceeded.
            await client.create(JOBS, job_body("slow", node, activeDeadlineSeconds=1), namespace=ns)
            job = await eventually(lambda: _finished(client, ns, "slow", "Failed"), 10, "job slow Failed")
            assert condition(job, "Failed")["reason"] == "DeadlineExceeded"
            await eventually(lambda: _none(pods_of("slow")), 10, "job slow's pod deleted")

            # 4. A work queue (parallelism 2, no completions): done once one succeeded and the other finished.
            await client.create(JOBS, job_body("queue", node, parallelism=2), namespace=ns)
            await eventually(lambda: exit_running("queue", 0, 2), 10, "two running pods of job queue")
            job = await eventually(lambda: _finished(client, ns, "queue", "Complete"), 10, "job queue Complete")
            assert job["status"]["succeeded"] == 2 and "completions" not in job["spec"]

            # 5. ttlSecondsAfterFinished 0: a finished job is deleted, and its pods with it (garbage collector).
            await client.create(JOBS, job_body("brief", node, ttlSecondsAfterFinished=0), namespace=ns)
            await eventually(lambda: exit_running("brief", 0, 1), 10, "the pod of job brief")
            await eventually(lambda: _gone(client, JOBS, "brief", ns), 10, "job brief deleted by its TTL")
            await eventually(lambda: _none(pods_of("brief")), 15, "job brief's pods collected")

            # 6. Deleting a job deletes its pods.
            await client.delete(JOBS, "ok", namespace=ns)
            await eventually(lambda: _none(pods_of("ok")), 15, "job ok's pods collected")

            # 7. Indexed: each pod has its index; completedIndexes lists them.
            await client.create(JOBS, job_body("idx", node, completions=2, parallelism=2,
                                               completionMode="Indexed"), namespace=ns)

            async def indexed_pods():
                ps = await pods_of("idx", "Running")
                return ps if len(ps) == 2 else None

            ps = await eventually(indexed_pods, 10, "two indexed pods")
            idx = sorted(p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] for p in ps)
            assert idx == ["0", "1"]
            assert {p["spec"]["hostname"] for p in ps} == {"idx-0", "idx-1"}
            for p in ps:
                runtime.exit_container(p["metadata"]["uid"], exit_code=0)
            job = await eventually(lambda: _finished(client, ns, "idx", "Complete"), 10, "job idx Complete")
            assert job["status"]["completedIndexes"] == "0-1"
            await client.delete(NAMESPACES, ns)
        finally:
            await stop()
            await agent.stop()
            with contextlib.suppress(APIError):
                await client.delete(REG.get("", "v1", "nodes"), node)


async def _finished(client: Client, ns: str, name: str, ctype: str) -> Obj | None:
    job = await client.get(JOBS, name, namespace=ns)
    return job if condition(job, ctype) else None


async def _gone(client: Client, info, name: str, ns: str) -> bool:
    try:
        await client.get(info, name, namespace=ns)
    except APIError as exc:
        return exc.code == 404
    return False


async def _none(coro) -> bool:
    return not await coro


def cronjob_body(name: str, schedule: str, **spec: Any) -> Obj:
    return {"metadata": {"name": name}, "spec": {"schedule": schedule, **spec, "jobTemplate": {
        "metadata": {"labels": {"from": name}},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "nodeName": "nowhere",
                                       "containers": [{"name": "c", "image": "busybox"}]}}}}}}


async def test_cronjob_controller_on_a_moving_clock(apiserver):
    """Only the cron job controller runs; the test finishes jobs by writing their status."""
    run = uuid.uuid4().hex[:6]
    ns = f"cron-{run}"
    clock = Clock()
    async with Client(apiserver.url, qps=1000, burst=1000) as client:
        (ctl,), stop = await run_controllers(client, CronJobController, clock=clock)
        try:
            await client.create(NAMESPACES, {"metadata": {"name": ns}})

            async def jobs(cj: str) -> list[Obj]:
                items = (await client.list(JOBS, namespace=ns, label_selector=f"from={cj}"))["items"]
                return sorted((j for j in items if not j["metadata"].get("deletionTimestamp")),
                              key=lambda j: j["metadata"]["name"])

            async def tick(minutes: float, *keys: str) -> None:
                clock.t += minutes * 60
                for k in keys:
                    ctl.enqueue(await client.get(CRONJOBS, k, namespace=ns))

            async def finish(job: Obj, ctype: str = "Complete") -> None:
                stamp = dt.datetime.fromtimestamp(clock.t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                status = {"startTime": stamp, "conditions": [{"type": ctype, "status": "True",
                                                              "lastTransitionTime": stamp}]}
                if ctype == "Complete":
                    status.update(completionTime=stamp, succeeded=1)
                else:
                    status["failed"] = 1
                await client.update_status(JOBS, {**job, "status": status}, namespace=ns)

            async def count(cj: str, n: int) -> list[Obj] | None:
                js = await jobs(cj)
                return js if len(js) == n else None

            # Allow, every 5 minutes, with a successful history of 2.
            await client.create(CRONJOBS, cronjob_body("every5", "*/5 * * * *", successfulJobsHistoryLimit=2),
                                namespace=ns)
            await asyncio.sleep(0.3)
            assert await jobs("every5") == []  # nothing is due at creation
            await tick(5, "every5")
            (j1,) = await eventually(lambda: count("every5", 1), 5, "the first job")

            async def scheduled_once():
                c = await client.get(CRONJOBS, "every5", namespace=ns)
                return c if c["status"].get("active") else None

            cj = await eventually(scheduled_once, 5, "every5's status")
            scheduled = dt.datetime.fromisoformat(cj["status"]["lastScheduleTime"].replace("Z", "+00:00"))
            assert scheduled.minute % 5 == 0 and j1["metadata"]["name"] == f"every5-{int(scheduled.timestamp()) // 60}"
            assert cj["status"]["active"][0]["name"] == j1["metadata"]["name"]
            ref = j1["metadata"]["ownerReferences"][0]
            assert (ref["kind"], ref["name"], ref["controller"], ref["blockOwnerDeletion"]) == (
                "CronJob", "every5", True, True)
            assert j1["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"] == (
                cj["status"]["lastScheduleTime"])
            assert j1["spec"]["backoffLimit"] == 6  # the Job got its own defaults
            # Allow: the next run starts while the first still runs.
            await tick(5, "every5")
            await eventually(lambda: count("every5", 2), 5, "a second job beside the first")
            # Finished jobs leave status.active; the oldest successful beyond the limit of 2 goes.
            for j in await jobs("every5"):
                await finish(j)

            async def settled():
                c = await client.get(CRONJOBS, "every5", namespace=ns)
                return c if not c["status"].get("active") and c["status"].get("lastSuccessfulTime") else None

            await eventually(settled, 5, "active emptied, lastSuccessfulTime set")
            await tick(5, "every5")
            js = await eventually(lambda: count("every5", 3), 5, "a third job")
            await finish(js[-1])
            js = await eventually(lambda: count("every5", 2), 5, "history trimmed to 2 successful jobs")
            assert j1["metadata"]["name"] not in [j["metadata"]["name"] for j in js]

            # Forbid: no second job while one runs; Replace: the running one is replaced.
            await client.create(CRONJOBS, cronjob_body("forbid", "*/5 * * * *", concurrencyPolicy="Forbid",
                                                       startingDeadlineSeconds=3600), namespace=ns)
            await client.create(CRONJOBS, cronjob_body("replace", "*/5 * * * *", concurrencyPolicy="Replace"),
                                namespace=ns)
            await tick(5, "forbid", "replace")
            (f1,) = await eventually(lambda: count("forbid", 1), 5, "forbid's first job")
            (r1,) = await eventually(lambda: count("replace", 1), 5, "replace's first job")
            await tick(5, "forbid", "replace")

            async def replaced():
                js = await jobs("replace")
                return js if [j["metadata"]["uid"] for j in js] != [r1["metadata"]["uid"]] and len(js) == 1 else None

            await eventually(replaced, 5, "replace's job replaced")
            await asyncio.sleep(0.3)
            assert [j["metadata"]["uid"] for j in await jobs("forbid")] == [f1["metadata"]["uid"]]
            evs = (await client.list(EVENTS, namespace=ns, field_selector="reason=JobAlreadyActive"))["items"]
            assert evs and evs[0]["involvedObject"]["name"] == "forbid"
            # Once the running job finished, the missed time (within the starting deadline) runs late.
            await finish(f1)
            await eventually(lambda: count("forbid", 2), 5, "forbid's late second job")

            # Suspended: nothing runs.  A time zone: the scheduled time is that zone's wall clock.
            await client.create(CRONJOBS, cronjob_body("asleep", "* * * * *", suspend=True), namespace=ns)
            await client.create(CRONJOBS, cronjob_body("tokyo", "0 9 * * *", timeZone="Asia/Tokyo"), namespace=ns)
            await tick(24 * 60, "asleep", "tokyo")
            (t1,) = await eventually(lambda: count("tokyo", 1), 5, "tokyo's job")
            stamp = t1["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"]
            assert stamp.endswith("T09:00:00+09:00"), stamp
            await asyncio.sleep(0.3)
            assert await jobs("asleep") == []
            await client.delete(NAMESPACES, ns)
        finally:
            await stop()
