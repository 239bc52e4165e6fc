"""Hollow nodes: N real node agents over the hollow runtime in one process and one event loop.

Each hollow node is a genuine `NodeAgent`: it registers its Node, renews its
Lease, reports its conditions, and drives the pods bound to it through the
same per-pod workers and status writes as a real node, so the control plane
sees exactly the traffic of N nodes.  Only the workload is fake (the hollow
runtime keeps a pod as a few dictionaries), as in Kubernetes' kubemark.

What would otherwise grow with N for no reason is shared: one connection pool
(one `Client`), and one pod watch and one action watch for all the nodes
instead of two per node; each node reads its own view of them, indexed by
`spec.nodeName`.  So a hollow node costs a few coroutines and dictionaries,
and the API server holds two watches however many nodes there are.

Registrations are paced (`start_concurrency` at a time) so a thousand nodes
do not open a thousand requests at once, and each node starts its heartbeat
loops when its own registration ends, which spreads the renewals over time.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from dataclasses import dataclass, field
from typing import Any

from arktos.agent.agent import NodeAgent, NodeAgentOptions, RuntimeContext, SharedParts, make_runtime
from arktos.api.registry import ResourceInfo
from arktos.api.resources import BUILTIN
from arktos.client import ALL_TENANTS, Client, ClusterConfig, Informer

__all__ = ["HOLLOW_LABEL", "HollowNodes", "HollowNodesOptions"]

Obj = dict[str, Any]
log = logging.getLogger("arktos.kubemark")

# Every hollow Node carries this label, so people and tests can tell them from real nodes (and keep
# real workloads off them with a selector, or put test workloads on them).
HOLLOW_LABEL = "arktos.io/hollow-node"
NODE_INDEX = "node"


def _info(group: str, plural: str) -> ResourceInfo:
    return next(i for i in BUILTIN if i.group == group and i.plural == plural)


PODS = _info("", "pods")
ACTIONS = _info("", "actions")


def _node_of(obj: Obj) -> str:
    return (obj.get("spec") or {}).get("nodeName") or ""


_pending: set[asyncio.Future[Any]] = set()  # handlers that returned a coroutine, kept until done


def _call(fn: Any, *args: Any) -> None:
    result = fn(*args)
    if inspect.isawaitable(result):
        task = asyncio.ensure_future(result)
        _pending.add(task)
        task.add_done_callback(_pending.discard)


class _NodeView:
    """One node's view of a shared informer: what an agent needs of its own informer (`PodSource`)."""

    def __init__(self, fanout: _Fanout, node: str) -> None:
        self.fanout = fanout
        self.node = node

    def add_handler(self, on_add: Any = None, on_update: Any = None, on_delete: Any = None) -> None:
        self.fanout.handlers.setdefault(self.node, []).append((on_add, on_update, on_delete))
        if on_add is not None:  # as Informer.add_handler after start: what is already known arrives as adds
            for obj in self.list():
                _call(on_add, obj)

    async def start(self) -> None:
        """The shared informer is started by its owner, once."""

    async def stop(self) -> None:
        self.fanout.handlers.pop(self.node, None)

    def get(self, key: str) -> Obj | None:
        obj = self.fanout.informer.get(key)
        return obj if obj is not None and _node_of(obj) == self.node else None

    def list(self) -> list[Obj]:
        return self.fanout.informer.by_index(NODE_INDEX, self.node)

    def has_synced(self) -> bool:
        return self.fanout.informer.has_synced()

    def origin(self, key_or_obj: str | Obj) -> Client | None:
        return self.fanout.informer.origin(key_or_obj)


class _Fanout:
    """Routes one informer's events to the handlers of the node each object names."""

    def __init__(self, informer: Informer) -> None:
        self.informer = informer
        self.handlers: dict[str, list[tuple[Any, Any, Any]]] = {}
        informer.add_indexer(NODE_INDEX, lambda o: [n] if (n := _node_of(o)) else [])
        informer.add_handler(on_add=self._add, on_update=self._update, on_delete=self._delete)

    def view(self, node: str) -> _NodeView:
        return _NodeView(self, node)

    def _add(self, obj: Obj) -> None:
        for on_add, _, _ in self.handlers.get(_node_of(obj), ()):
            if on_add is not None:
                _call(on_add, obj)

    def _update(self, old: Obj, new: Obj) -> None:
        before, after = _node_of(old), _node_of(new)
        for _, on_update, _ in self.handlers.get(after, ()):
            if on_update is not None:
                _call(on_update, old, new)
        if before and before != after:
            for _, _, on_delete in self.handlers.get(before, ()):
                if on_delete is not None:
                    _call(on_delete, old)

    def _delete(self, obj: Obj) -> None:
        for _, _, on_delete in self.handlers.get(_node_of(obj), ()):
            if on_delete is not None:
                _call(on_delete, obj)


@dataclass
class HollowNodesOptions:
    config: ClusterConfig
    count: int
    name_prefix: str = "hollow-node-"
    first_index: int = 1  # node names are name_prefix + index, index from first_index on
    runtimes: tuple[str, ...] = ("hollow",)
    cpu: str = "4"
    memory: str = "16Gi"
    max_pods: int = 110
    lease_duration: int = 40
    lease_renew_interval: float = 10.0
    # Conditions change only when a node does; Kubernetes reports them every 5 minutes when unchanged.
    status_update_interval: float = 60.0
    sync_interval: float = 30.0
    relist_interval: float = 5.0
    # Per node, as each kubemark hollow kubelet has its own client; the shared client paces all nodes
    # together at count times these.
    qps: float = 5.0
    burst: int = 10
    max_connections: int = 50
    start_concurrency: int = 50
    labels: dict[str, str] = field(default_factory=dict)

    def names(self) -> list[str]:
        return [f"{self.name_prefix}{i}" for i in range(self.first_index, self.first_index + self.count)]


class HollowNodes:
    """`count` hollow nodes sharing one client and one pod and action watch; start() and stop() as a component."""

    def __init__(self, options: HollowNodesOptions) -> None:
        if options.count < 1:
            raise ValueError("count must be at least 1")
        for name in options.runtimes:
            if not name.startswith("hollow"):
                raise ValueError(f"hollow nodes run the hollow runtimes only, not {name!r}")
        self.options = options
        self.client = Client(options.config, component="hollow-nodes", qps=options.qps * options.count,
                             burst=options.burst * options.count, max_connections=options.max_connections)
        self.pods = _Fanout(Informer(self.client, PODS, tenant=ALL_TENANTS, field_selector="spec.nodeName!=",
                                     name="pods"))
        self.actions = _Fanout(Informer(self.client, ACTIONS, tenant=ALL_TENANTS, name="actions"))
        shared = SharedParts(client=self.client, tenant_clients=[self.client], pods=self.pods.view,
                             actions=self.actions.view)
        labels = {**options.labels, HOLLOW_LABEL: "true"}
        self.agents: list[NodeAgent] = []
        for name in options.names():
            runtimes = [make_runtime(r, RuntimeContext(node_name=name)) for r in options.runtimes]
            self.agents.append(NodeAgent(NodeAgentOptions(
                config=options.config, node_name=name, runtimes=runtimes, cpu=options.cpu, memory=options.memory,
                max_pods=options.max_pods, lease_duration=options.lease_duration,
                lease_renew_interval=options.lease_renew_interval,
                status_update_interval=options.status_update_interval, sync_interval=options.sync_interval,
                relist_interval=options.relist_interval, qps=options.qps, burst=options.burst, labels=labels),
                shared=shared))
        self.started: list[NodeAgent] = []

    async def start(self) -> None:
        """Start the shared watches, then every node (paced); returns when all have registered."""
        await self.pods.informer.start()
        await self.actions.informer.start()
        await self.pods.informer.wait_synced()
        await self.actions.informer.wait_synced()
        gate = asyncio.Semaphore(self.options.start_concurrency)
        loop = asyncio.get_running_loop()
        began = loop.time()

        async def one(agent: NodeAgent) -> None:
            async with gate:
                await agent.start()
                self.started.append(agent)

        await asyncio.gather(*(one(a) for a in self.agents))
        log.info("%d hollow nodes registered in %.1fs (%s%d..%d)", len(self.agents), loop.time() - began,
                    self.options.name_prefix, self.options.first_index,
                    self.options.first_index + self.options.count - 1)

    async def stop(self) -> None:
        await asyncio.gather(*(a.stop() for a in self.started), return_exceptions=True)
        await self.pods.informer.stop()
        await self.actions.informer.stop()
        with contextlib.suppress(Exception):
            await self.client.close()
