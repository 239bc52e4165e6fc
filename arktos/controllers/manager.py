"""The controller manager: one process that runs the controllers, one active copy per cluster.

`ControllerManager` is a start()/stop() component (`arktos controller-manager`
runs it under `run_forever`).  With leader election it campaigns for the
Lease `kube-system/arktos-controller-manager` in the system tenant, and only
the holder runs controllers; the others wait, ready to take over when the
holder stops renewing.  Each leadership term builds everything afresh (client
session aside): shared informers, the controllers and their queues, so a term
that ends (lease lost) leaves nothing half-running behind, and the next term
starts from a fresh list as any new leader must.

Losing the lease stops the controllers and campaigns again rather than
exiting the process (kube-controller-manager exits and relies on its
supervisor): the outcome is the same, and it does not depend on a restart
policy being configured.

Controllers plug in through `CONTROLLERS` (name -> `Controller` subclass);
`--controllers` picks them with kube-controller-manager's syntax: `*` for
all, a name to add one, `-name` to leave one out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from dataclasses import dataclass, field

from arktos.api.tenancy import SYSTEM_TENANT
from arktos.client import Client, ClusterConfig, LeaderElector, LeadershipLost, load_kubeconfig
from arktos.controllers.base import Controller, ControllerContext, ControllerOptions, InformerFactory, builtin
from arktos.controllers.cronjob import CronJobController
from arktos.controllers.daemonset import DaemonSetController
from arktos.controllers.deployment import DeploymentController
from arktos.controllers.discovery import Discovery
from arktos.controllers.endpoints import EndpointsController
from arktos.controllers.garbagecollector import GarbageCollector
from arktos.controllers.job import JobController
from arktos.controllers.namespace import NamespaceController
from arktos.controllers.nodelifecycle import NodeLifecycleController
from arktos.controllers.podgc import PodGCController
from arktos.controllers.replicaset import ReplicaSetController
from arktos.controllers.resourcequota import ResourceQuotaController
from arktos.controllers.rootcacert import RootCACertPublisher
from arktos.controllers.serviceaccount import ServiceAccountController
from arktos.controllers.statefulset import StatefulSetController
from arktos.controllers.tenant import TenantController
from arktos.controllers.token import TokenController

__all__ = ["CONTROLLERS", "ControllerManager", "ManagerOptions", "select_controllers"]

log = logging.getLogger("arktos.controllers.manager")

# Every controller this manager can run, in start order.
CONTROLLERS: dict[str, type[Controller]] = {
    c.name: c for c in (TenantController, NamespaceController, ServiceAccountController, TokenController,
                        RootCACertPublisher, ReplicaSetController, DeploymentController, DaemonSetController,
                        StatefulSetController, JobController, CronJobController, GarbageCollector,
                        NodeLifecycleController, PodGCController,
                        EndpointsController, ResourceQuotaController)
}
CRDS = builtin("apiextensions.k8s.io", "customresourcedefinitions")
SHUTDOWN_GRACE = 10.0  # seconds in-flight syncs get to finish on a clean stop


def select_controllers(spec: str, known: dict[str, type[Controller]] | None = None) -> list[str]:
    """Names chosen by a `--controllers` value: `*`, `name`, `-name`, comma-separated, in `known`'s order."""
    known = CONTROLLERS if known is None else known
    chosen: set[str] = set()
    excluded: set[str] = set()
    for item in (p.strip() for p in spec.split(",")):
        if not item:
            continue
        if item == "*":
            chosen |= set(known)
            continue
        name = item[1:] if item.startswith("-") else item
        if name not in known:
            raise ValueError(f"unknown controller {name!r}; known: {', '.join(known)}")
        (excluded if item.startswith("-") else chosen).add(name)
    return [n for n in known if n in chosen and n not in excluded]


def default_identity() -> str:
    return f"{socket.gethostname()}_{uuid.uuid4()}"


@dataclass
class ManagerOptions:
    """How to reach the API server, which controllers to run, and how to elect a leader."""

    config: ClusterConfig
    controllers: list[str] = field(default_factory=lambda: list(CONTROLLERS))
    controller_options: ControllerOptions = field(default_factory=ControllerOptions)
    leader_elect: bool = True
    lease_name: str = "arktos-controller-manager"
    lease_namespace: str = "kube-system"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    identity: str = field(default_factory=default_identity)
    qps: float = 200.0
    burst: int = 400

    @classmethod
    def from_kubeconfig(cls, path: str | None, **kw) -> ManagerOptions:
        return cls(config=load_kubeconfig(path), **kw)


class ControllerManager:
    """Runs the chosen controllers while (and only while) it holds the leader lease."""

    def __init__(self, options: ManagerOptions) -> None:
        self.options = options
        self.client: Client | None = None
        self.running: dict[str, Controller] = {}  # the current term's controllers
        self.leading = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._elector: LeaderElector | None = None
        self._stopping = False

    def _enabled(self) -> list[type[Controller]]:
        out = []
        for name in self.options.controllers:
            cls = CONTROLLERS[name]
            reason = cls.disabled_reason(self.options.controller_options)
            if reason:
                log.warning("controller %s is disabled: %s", name, reason)
                continue
            out.append(cls)
        return out

    async def start(self) -> None:
        """Check the configuration and start campaigning (or running) in the background."""
        enabled = self._enabled()
        if not enabled:
            raise ValueError("no controllers to run")
        self.client = Client(self.options.config, component="controller-manager", qps=self.options.qps,
                             burst=self.options.burst)
        log.info("controller manager %s for %s: controllers %s, leader election %s", self.options.identity,
                 self.options.config.server, ", ".join(c.name for c in enabled),
                 "on" if self.options.leader_elect else "off")
        self._task = asyncio.create_task(self._main(enabled), name="controller-manager")

    async def stop(self) -> None:
        """Stop the controllers (in-flight syncs get a few seconds), release the lease, close the client."""
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.client is not None:
            await self.client.close()
        log.info("controller manager stopped")

    async def wait(self) -> None:
        """Until the manager's main task ends (it ends only on stop or a fatal error)."""
        if self._task is not None:
            await self._task

    async def _main(self, enabled: list[type[Controller]]) -> None:
        """Campaign and lead, term after term; an unexpected failure ends the term, never the process."""
        assert self.client is not None
        o = self.options
        while not self._stopping:
            try:
                if not o.leader_elect:
                    await self._lead(enabled)
                    continue
                self._elector = LeaderElector(
                    self.client, o.lease_name, namespace=o.lease_namespace, tenant=SYSTEM_TENANT,
                    identity=o.identity, lease_duration=o.lease_duration, renew_deadline=o.renew_deadline,
                    retry_period=o.retry_period)
                log.info("waiting to become leader of lease %s/%s/%s as %s", SYSTEM_TENANT, o.lease_namespace,
                         o.lease_name, o.identity)
                await self._elector.run(lambda: self._lead(enabled))
            except asyncio.CancelledError:
                raise
            except LeadershipLost:
                log.error("lost the leader lease %s/%s: controllers stopped; campaigning again", o.lease_namespace,
                          o.lease_name)
            except Exception:
                log.exception("the controllers failed; starting over in 5s")
                await asyncio.sleep(5.0)

    async def _lead(self, enabled: list[type[Controller]]) -> None:
        """One term: informers, controllers, workers; torn down when cancelled."""
        assert self.client is not None
        log.info("leading: starting controllers")
        informers = InformerFactory(self.client)
        discovery = Discovery(self.client)
        ctx = ControllerContext(self.client, informers, self.options.controller_options, discovery,
                                enabled=frozenset(cls.name for cls in enabled))
        controllers = [cls(ctx) for cls in enabled]
        for c in controllers:
            c.setup()
        # A new or changed CRD changes what "everything in a namespace" means.
        informers.informer(CRDS).add_handler(on_add=lambda _o: discovery.invalidate(),
                                             on_update=lambda _o, _n: discovery.invalidate(),
                                             on_delete=lambda _o: discovery.invalidate())
        tasks: list[asyncio.Task] = []
        self.leading.set()
        try:
            await informers.start()
            await informers.wait_synced(log)
            self.running = {c.name: c for c in controllers}
            tasks = [asyncio.create_task(c.run(), name=f"controller-{c.name}") for c in controllers]
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                if t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
        finally:
            self.leading.clear()
            # A clean stop still holds the lease (released after this), so in-flight syncs may finish;
            # a lost lease means someone else may be acting already: stop at once.
            grace = SHUTDOWN_GRACE if self._stopping else 0.0
            await asyncio.shield(self._teardown(controllers, tasks, informers, ctx, grace))

    async def _teardown(self, controllers: list[Controller], tasks: list[asyncio.Task],
                        informers: InformerFactory, ctx: ControllerContext, grace: float) -> None:
        await asyncio.gather(*(c.shut_down(grace) for c in controllers))
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await informers.stop()
        await ctx.close()
        self.running = {}
        for c in controllers:
            log.info("controller %s stopped: %d syncs, %d failures, %d retries", c.name, c.synced, c.failed,
                     c.queue.retries)
