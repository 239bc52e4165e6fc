"""The scheduler component: informers in, decisions, bindings, events and conditions out.

`Scheduler` is a start()/stop() component (`arktos scheduler` runs it under
`run_forever`).  It talks to servers only through `arktos.client`:

* pods: one informer on its tenant partition's API server, across all
  tenants (`tenants/all`), non-terminal pods only.  Pods with a node are
  counted in the node cache; pending pods whose `schedulerName` is ours are
  queued.
* nodes: one informer over the resource partitions' API servers (one list +
  watch per server into one store; node names are unique across them).  A
  single-partition cluster is the same code with one server.

The scheduling loop pops a pod, runs the framework over all nodes (numpy,
synchronous: no await between reading the cache and `assume`, so two
decisions can never both take the last slot of a node), assumes the pod on
the chosen node and hands the binding to a background task; at most
`bind_concurrency` bindings are in flight, which is also what paces the loop
when the API server is the bottleneck.  A pod that fits nowhere gets a
FailedScheduling event, the condition PodScheduled=False/Unschedulable
(written through the status subresource) and waits in the queue until the
cluster changes.

With leader election only the holder of the Lease `kube-system/kube-scheduler`
(system tenant) schedules; every term starts from fresh informers, as a new
leader must, and a lost lease stops the loop at once (bindings already sent
may still land, which is harmless: the server refuses a second binding).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from arktos.api.resources import BUILTIN
from arktos.api.tenancy import ALL_TENANTS, SYSTEM_TENANT
from arktos.client import (
    APIError,
    Client,
    ClusterConfig,
    EventRecorder,
    Informer,
    LeaderElector,
    LeadershipLost,
    TransportError,
    object_key,
)
from arktos.scheduler.framework import Framework, PodInfo
from arktos.scheduler.nodecache import NodeCache
from arktos.scheduler.plugins import default_filters, default_scores
from arktos.scheduler.queue import QueuedPod, SchedulingQueue

__all__ = ["DEFAULT_SCHEDULER_NAME", "Scheduler", "SchedulerOptions"]

log = logging.getLogger("arktos.scheduler")
Obj = dict[str, Any]

DEFAULT_SCHEDULER_NAME = "default-scheduler"
PODS = next(i for i in BUILTIN if i.group == "" and i.plural == "pods")
NODES = next(i for i in BUILTIN if i.group == "" and i.plural == "nodes")
TERMINAL = ("Succeeded", "Failed")
EVENT_QUEUE = 16384
YIELD_EVERY = 0.005  # seconds of uninterrupted scheduling before the loop lets the informers run


def default_identity() -> str:
    return f"{socket.gethostname()}_{uuid.uuid4()}"


@dataclass
class SchedulerOptions:
    """Where the pods and nodes are, and how to behave."""

    config: ClusterConfig  # the tenant partition: pods, bindings, events, the lease
    resource_providers: list[ClusterConfig] = field(default_factory=list)  # nodes; empty: `config`
    scheduler_name: str = DEFAULT_SCHEDULER_NAME
    leader_elect: bool = True
    lease_name: str = "kube-scheduler"
    lease_namespace: str = "kube-system"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    identity: str = field(default_factory=default_identity)
    qps: float = 5000.0
    burst: int = 10000
    bind_concurrency: int = 128
    score_weights: dict[str, float] = field(default_factory=dict)
    assumed_ttl: float = 30.0
    initial_backoff: float = 1.0
    max_backoff: float = 10.0
    unschedulable_timeout: float = 60.0
    stats_interval: float = 10.0


def _scheduling_relevant(old: Obj, new: Obj) -> bool:
    """Whether an update of a pending pod could change where it fits (status-only writes cannot)."""
    if old.get("spec") != new.get("spec"):
        return True
    om, nm = old.get("metadata") or {}, new.get("metadata") or {}
    return (om.get("uid") != nm.get("uid") or om.get("labels") != nm.get("labels")
            or om.get("annotations") != nm.get("annotations"))


def _pod_scheduled_condition(pod: Obj) -> Obj | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if isinstance(c, dict) and c.get("type") == "PodScheduled":
            return c
    return None


class Scheduler:
    """Schedules pending pods while (and only while) it holds the leader lease."""

    def __init__(self, options: SchedulerOptions) -> None:
        self.options = options
        self.client: Client | None = None
        self.rp_clients: list[Client] = []
        self.leading = asyncio.Event()
        self.synced = asyncio.Event()
        # The current term's state (None between terms).
        self.cache: NodeCache | None = None
        self.queue: SchedulingQueue | None = None
        self.framework: Framework | None = None
        self.pods: Informer | None = None
        self.nodes: Informer | None = None
        self.recorder: EventRecorder | None = None
        self._slots: asyncio.Semaphore | None = None
        self._binds: set[asyncio.Task] = set()
        self._status_writes: dict[str, asyncio.Task] = {}
        self._task: asyncio.Task | None = None
        self._stopping = False
        # Counters over the life of the process, for logs, tests and the benchmark.
        self.scheduled = 0
        self.bound = 0
        self.unschedulable = 0
        self.bind_errors = 0

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        o = self.options
        self.client = Client(o.config, component="scheduler", qps=o.qps, burst=o.burst,
                             max_connections=max(100, o.bind_concurrency + 16))
        self.rp_clients = [Client(c, component="scheduler", qps=o.qps, burst=o.burst)
                           for c in o.resource_providers] or [self.client]
        log.info("scheduler %s: pods from %s, nodes from %s, leader election %s", o.identity, o.config.server,
                 ", ".join(c.server for c in self.rp_clients), "on" if o.leader_elect else "off")
        self._task = asyncio.create_task(self._main(), name="scheduler")

    async def stop(self) -> None:
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for c in {id(c): c for c in [*self.rp_clients, *([self.client] if self.client else [])]}.values():
            await c.close()
        log.info("scheduler stopped: %d scheduled, %d bound, %d unschedulable attempts, %d binding errors",
                 self.scheduled, self.bound, self.unschedulable, self.bind_errors)

    async def wait(self) -> None:
        if self._task is not None:
            await self._task

    async def _main(self) -> None:
        """Campaign and lead, term after term; an unexpected failure ends the term, never the process."""
        assert self.client is not None
        o = self.options
        while not self._stopping:
            try:
                if not o.leader_elect:
                    await self._lead()
                    continue
                elector = LeaderElector(self.client, o.lease_name, namespace=o.lease_namespace, tenant=SYSTEM_TENANT,
                                        identity=o.identity, lease_duration=o.lease_duration,
                                        renew_deadline=o.renew_deadline, retry_period=o.retry_period)
                log.info("waiting to become leader of lease %s/%s/%s as %s", SYSTEM_TENANT, o.lease_namespace,
                         o.lease_name, o.identity)
                await elector.run(self._lead)
            except asyncio.CancelledError:
                raise
            except LeadershipLost:
                log.error("lost the leader lease %s/%s: scheduling stopped; campaigning again", o.lease_namespace,
                          o.lease_name)
            except Exception:
                log.exception("the scheduler failed; starting over in 5s")
                await asyncio.sleep(5.0)

    async def _lead(self) -> None:
        """One term: fresh cache, queue and informers; scheduling until cancelled."""
        assert self.client is not None
        o = self.options
        log.info("leading: starting informers")
        self.cache = NodeCache(assumed_ttl=o.assumed_ttl)
        self.queue = SchedulingQueue(o.initial_backoff, o.max_backoff, o.unschedulable_timeout)
        self.framework = Framework(default_filters(), default_scores(o.score_weights))
        # Room for a burst of bindings' events (10,000 pods at once): the recorder writes one at a time,
        # so under load the backlog drains after the burst instead of being dropped.
        self.recorder = EventRecorder(self.client, o.scheduler_name, queue_size=EVENT_QUEUE)
        self._slots = asyncio.Semaphore(o.bind_concurrency)
        self.pods = Informer(self.client, PODS, tenant=ALL_TENANTS,
                             field_selector="status.phase!=Succeeded,status.phase!=Failed", name="pods")
        self.nodes = Informer(self.rp_clients, NODES, name="nodes")
        self.pods.add_handler(self._on_pod_add, self._on_pod_update, self._on_pod_delete)
        self.nodes.add_handler(self._on_node_add, self._on_node_update, self._on_node_delete)
        tasks: list[asyncio.Task] = []
        self.leading.set()
        try:
            await self.nodes.start()
            await self.pods.start()
            await self.nodes.wait_synced()
            await self.pods.wait_synced()
            log.info("caches synced: %d nodes, %d pods pending", len(self.cache), len(self.queue))
            self.synced.set()
            tasks = [asyncio.create_task(self._loop(), name="scheduler-loop"),
                     asyncio.create_task(self._housekeeping(), name="scheduler-housekeeping")]
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                if t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
        finally:
            self.leading.clear()
            self.synced.clear()
            await asyncio.shield(self._teardown(tasks))

    async def _teardown(self, tasks: list[asyncio.Task]) -> None:
        pending = [*tasks, *self._binds, *self._status_writes.values()]
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._binds.clear()
        self._status_writes.clear()
        for inf in (self.pods, self.nodes):
            if inf is not None:
                await inf.stop()
        if self.recorder is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5.0):
                    await self.recorder.stop()
        log.info("term over: %d scheduled, %d bound so far", self.scheduled, self.bound)

    # -- informer handlers ---------------------------------------------------------------------

    def _on_node_add(self, node: Obj) -> None:
        assert self.cache is not None and self.queue is not None
        if self.cache.set_node(node):
            self.queue.move_all()

    def _on_node_update(self, old: Obj, new: Obj) -> None:
        if _node_view(old) != _node_view(new):  # heartbeats (most node updates) change nothing we read
            self._on_node_add(new)

    def _on_node_delete(self, node: Obj) -> None:
        assert self.cache is not None
        self.cache.remove_node((node.get("metadata") or {}).get("name") or "")

    def _on_pod_add(self, pod: Obj) -> None:
        self._on_pod_update(None, pod)

    def _on_pod_update(self, old: Obj | None, pod: Obj) -> None:
        assert self.cache is not None and self.queue is not None
        key = object_key(pod)
        spec = pod.get("spec") or {}
        if (pod.get("status") or {}).get("phase") in TERMINAL:
            self._on_pod_delete(pod)
            return
        node = spec.get("nodeName")
        if node:
            entry = self.cache.pods.get(key)
            if entry is not None and entry.node == node and old is not None and \
                    _same_resources(old.get("spec") or {}, spec):
                self.cache.set_pod(key, node, entry.requests, entry.owner)  # confirms an assumption, no re-parse
            else:
                info = PodInfo.from_pod(pod)
                self.cache.set_pod(key, node, info.requests, info.owner)
            self.queue.delete(key)
            return
        if (spec.get("schedulerName") or DEFAULT_SCHEDULER_NAME) != self.options.scheduler_name:
            return
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            self.queue.delete(key)
            return
        if self.cache.is_assumed(key):
            return  # ours, being bound: the informer has not seen the binding yet
        if old is None:
            self.queue.add(PodInfo.from_pod(pod))
        else:
            self.queue.update(key, pod, _scheduling_relevant(old, pod), PodInfo.from_pod)

    def _on_pod_delete(self, pod: Obj) -> None:
        assert self.cache is not None and self.queue is not None
        key = object_key(pod)
        self.queue.delete(key)
        if self.cache.remove_pod(key):
            self.queue.move_all()  # capacity freed

    # -- the loop ---------------------------------------------------------------------------------

    async def _loop(self) -> None:
        assert self.queue is not None and self._slots is not None
        queue, slots = self.queue, self._slots
        last_yield = time.monotonic()
        while True:
            await slots.acquire()
            qp = queue.pop_nowait()
            if qp is None:
                slots.release()
                qp = await queue.pop()
                await slots.acquire()
                last_yield = time.monotonic()
            try:
                started = self._schedule_one(qp)
            except Exception:
                # A bug or a pod this code cannot digest must not stop scheduling for everyone else.
                log.exception("scheduling %s failed; retrying it after a backoff", qp.info.key)
                queue.requeue_backoff(qp)
                started = False
            if not started:
                slots.release()
            now = time.monotonic()
            if now - last_yield > YIELD_EVERY:
                await asyncio.sleep(0)
                last_yield = time.monotonic()

    def _schedule_one(self, qp: QueuedPod) -> bool:
        """Decide for one pod; True when a binding was started (it keeps the slot)."""
        assert self.cache is not None and self.queue is not None and self.framework is not None
        info = qp.info
        if self.queue.pods.get(info.key) is not qp:
            return False  # deleted or replaced while waiting
        result = self.framework.schedule(info, self.cache)
        if result.node is None:
            self.unschedulable += 1
            self.queue.requeue_unschedulable(qp)
            # The first failure is news; the retries of a parked backlog would flood the log.
            log.log(logging.INFO if qp.attempts == 1 else logging.DEBUG, "%s unschedulable (attempt %d): %s",
                    info.key, qp.attempts, result.message)
            self._failed(info, result.message)
            return False
        self.scheduled += 1
        self.cache.assume(info.key, result.node, info.requests, info.owner)
        self.queue.done(info.key)
        task = asyncio.create_task(self._bind(qp, result.node))
        self._binds.add(task)
        task.add_done_callback(self._binds.discard)
        return True

    async def _bind(self, qp: QueuedPod, node: str) -> None:
        assert self.client is not None and self.cache is not None and self._slots is not None
        info = qp.info
        body = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": info.name, "uid": info.uid},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
        try:
            await self.client.create_subresource(PODS, info.name, "binding", body, tenant=info.tenant or None,
                                                 namespace=info.namespace)
        except (APIError, TransportError) as exc:
            self._bind_failed(qp, node, exc)
            return
        except asyncio.CancelledError:
            self.cache.forget(info.key)
            raise
        finally:
            self._slots.release()
        self.bound += 1
        self.cache.finish_binding(info.key)
        if self.recorder is not None:
            self.recorder.normal(info.pod, "Scheduled", "Successfully assigned %s/%s to %s", info.namespace,
                                 info.name, node)

    def _bind_failed(self, qp: QueuedPod, node: str, exc: Exception) -> None:
        assert self.cache is not None and self.queue is not None and self.pods is not None
        info = qp.info
        self.cache.forget(info.key)
        self.bind_errors += 1
        current = self.pods.get(info.key)
        if current is None or (current.get("spec") or {}).get("nodeName"):
            # Deleted, or bound by someone else: nothing to retry.
            log.info("binding %s to %s: %s (pod gone or bound elsewhere)", info.key, node, exc)
            return
        if (current.get("metadata") or {}).get("uid") != info.uid:
            # A new pod of that name; its events were skipped while the old one was assumed: queue it now.
            log.info("binding %s to %s: %s (the pod was replaced)", info.key, node, exc)
            self._on_pod_update(None, current)
            return
        log.warning("binding %s to %s failed: %s", info.key, node, exc)
        self.queue.requeue_backoff(qp)
        self.queue.move_all()  # the assumed capacity is free again
        self._failed(info, f"Binding rejected: {exc}", condition=False)

    # -- failure reporting ---------------------------------------------------------------------------

    def _failed(self, info: PodInfo, message: str, condition: bool = True) -> None:
        if self.recorder is not None:
            self.recorder.warning(info.pod, "FailedScheduling", message)
        if not condition:
            return
        current = _pod_scheduled_condition(info.pod)
        if current is not None and current.get("status") == "False" and current.get("reason") == "Unschedulable" \
                and current.get("message") == message:
            return
        if info.key in self._status_writes:
            return  # one write at a time per pod; the next attempt writes the newer message
        task = asyncio.create_task(self._write_condition(info, message))
        self._status_writes[info.key] = task
        task.add_done_callback(lambda _t, k=info.key: self._status_writes.pop(k, None))

    async def _write_condition(self, info: PodInfo, message: str) -> None:
        """PodScheduled=False/Unschedulable through the status subresource (a strategic merge keyed by type)."""
        assert self.client is not None
        cond = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
                "lastProbeTime": None,
                "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        try:
            await self.client.patch(PODS, info.name, {"status": {"conditions": [cond]}}, tenant=info.tenant or None,
                                    namespace=info.namespace, patch_type="strategic", subresource="status")
        except (APIError, TransportError) as exc:
            log.info("could not set PodScheduled=False on %s: %s", info.key, exc)

    # -- housekeeping -----------------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        assert self.queue is not None and self.cache is not None
        last_stats = time.monotonic()
        last_bound = self.bound
        while True:
            await asyncio.sleep(0.5)
            self.queue.flush()
            if self.cache.expire():
                self.queue.move_all()
            now = time.monotonic()
            if now - last_stats >= self.options.stats_interval:
                rate = (self.bound - last_bound) / (now - last_stats)
                if self.bound != last_bound or self.queue.counts["active"] or self.queue.counts["unschedulable"]:
                    c = self.queue.counts
                    log.info("bound %d pods (%.0f/s); queue: %d active, %d backoff, %d unschedulable; %d nodes",
                             self.bound, rate, c["active"], c["backoff"], c["unschedulable"], len(self.cache))
                last_stats, last_bound = now, self.bound


def _node_view(node: Obj) -> tuple:
    """What the scheduler reads of a node: labels, taints, cordon, resources and condition statuses."""
    meta, spec, status = node.get("metadata") or {}, node.get("spec") or {}, node.get("status") or {}
    conditions = [(c.get("type"), c.get("status")) for c in status.get("conditions") or [] if isinstance(c, dict)]
    return (meta.get("labels"), spec.get("taints"), spec.get("unschedulable"), status.get("allocatable"),
            status.get("capacity"), conditions)


def _same_resources(old_spec: Obj, new_spec: Obj) -> bool:
    """Whether two specs ask for the same resources (the binding only adds nodeName)."""
    return (old_spec.get("containers") == new_spec.get("containers")
            and old_spec.get("initContainers") == new_spec.get("initContainers")
            and old_spec.get("virtualMachine") == new_spec.get("virtualMachine")
            and old_spec.get("overhead") == new_spec.get("overhead"))

