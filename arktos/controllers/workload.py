"""The workload controller manager: replicaset and deployment controllers, active-active.

Every instance runs every chosen controller type, each over the hashKey range
its `PartitionMember` owns at the moment (ARKTOS.md section 5).  When the range
moves (an instance joined or died) the controller is rebuilt on the new range:
its informers' server-side field selectors are fixed at start, and relisting a
share of the workloads is cheap next to watching all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from arktos.client import Client
from arktos.controllers.base import Controller, ControllerContext, ControllerOptions, InformerFactory
from arktos.controllers.deployment import DeploymentController
from arktos.controllers.discovery import Discovery
from arktos.controllers.partition import EMPTY, PartitionMember, Range
from arktos.controllers.replicaset import HashKeyRange, ReplicaSetController

log = logging.getLogger("arktos.controllers.workload")

PARTITIONED: dict[str, type[Controller]] = {c.name: c for c in (ReplicaSetController, DeploymentController)}


class PartitionedController:
    """One controller type, rebuilt whenever its member's range changes."""

    def __init__(self, client: Client, cls: type[Controller], options: ControllerOptions,
                 member: PartitionMember) -> None:
        self.client = client
        self.cls = cls
        self.options = options
        self.member = member
        self.controller: Controller | None = None
        self._informers: InformerFactory | None = None
        self._ctx: ControllerContext | None = None
        self._task: asyncio.Task | None = None
        self._counter: asyncio.Task | None = None
        member.on_change.append(self.on_range)

    async def on_range(self, r: Range) -> None:
        await self._stop()
        if r != EMPTY:
            await self._start(HashKeyRange(r[0], r[1]))

    async def _start(self, hash_range: HashKeyRange) -> None:
        informers = InformerFactory(self.client)
        ctx = ControllerContext(self.client, informers, self.options, Discovery(self.client),
                                enabled=frozenset({self.cls.name}))
        controller = self.cls(ctx, hash_range=hash_range)  # type: ignore[call-arg]
        controller.setup()
        await informers.start()
        await informers.wait_synced(log)
        self._informers, self._ctx, self.controller = informers, ctx, controller
        self._task = asyncio.create_task(controller.run(), name=f"{self.cls.name}-{hash_range}")
        self._counter = asyncio.create_task(self._count(informers), name=f"{self.cls.name}-count")
        log.info("%s: serving hashKeys in (%d, %d]", self.cls.name, hash_range.lower, hash_range.upper)

    async def _count(self, informers: InformerFactory) -> None:
        """Keep the member's workloadNum at the number of primary objects in range."""
        primary = next(iter(informers))
        while True:
            self.member.workloads = len(primary.list())
            await asyncio.sleep(5)

    async def _stop(self) -> None:
        if self.controller is None:
            return
        await self.controller.shut_down(0.0)  # someone else may take the range right after this
        for task in (self._task, self._counter):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        assert self._informers is not None and self._ctx is not None
        await self._informers.stop()
        await self._ctx.close()
        self.controller = self._informers = self._ctx = self._task = self._counter = None


class WorkloadControllerManager:
    def __init__(self, client: Client, controllers: list[str], options: ControllerOptions, *,
                 instance_id: str | None = None, lease_duration: float = 15.0, period: float = 2.0) -> None:
        self.client = client
        self.members: list[PartitionMember] = []
        self.runners: list[PartitionedController] = []
        for name in controllers:
            member = PartitionMember(client, name, instance_id, lease_duration=lease_duration, period=period)
            self.members.append(member)
            self.runners.append(PartitionedController(client, PARTITIONED[name], options, member))

    async def start(self) -> None:
        for member in self.members:
            await member.start()

    async def stop(self) -> None:
        for member in self.members:
            await member.stop(release=True)  # leaves at once: the others take over without waiting
        await self.client.close()
