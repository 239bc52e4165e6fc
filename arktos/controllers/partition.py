"""Active-active partitioning of a controller type by hashKey range (ARKTOS.md section 5).

Every running instance of a partitioned controller (replicaset, deployment)
is a member: it keeps a Lease alive (`kube-system/ci-{type}-{id}` in the
system tenant) and a ControllerInstance `{type}-{id}` that publishes the range
it currently works on, `(lower, controllerKey]` of 0..2^63-1.  The ranges the
members *should* own are the even split of the space over the live members in
name order; what each *does* own moves toward that in two steps, so that no
hashKey is ever handled by two members at once:

* giving up part of a range happens at once (stop first, then publish);
* taking a range happens only once no other live member publishes any of it.

A member whose Lease expires is dead: any member deletes its
ControllerInstance, which frees its range for the others.  Controllers are
told the effective range through `on_change` and restrict their informers to
it with server-side field selectors, so more members never mean more traffic
per member.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from arktos.api.errors import APIError
from arktos.api.tenancy import SYSTEM_TENANT
from arktos.client import Client
from arktos.controllers.base import builtin

log = logging.getLogger(__name__)

Obj = dict[str, Any]
HASH_MAX = 2**63 - 1
LOWER_ANNOTATION = "arktos.io/controller-key-lower"
INSTANCES = builtin("", "controllerinstances")
LEASES = builtin("coordination.k8s.io", "leases")
LEASE_NAMESPACE = "kube-system"

Range = tuple[int, int]  # (lower exclusive, upper inclusive]; lower == upper is empty
EMPTY: Range = (0, 0)


def split(names: list[str]) -> dict[str, Range]:
    """The even split of the hashKey space over `names`, in name order."""
    ordered = sorted(names)
    n = len(ordered)
    out: dict[str, Range] = {}
    for i, name in enumerate(ordered):
        lower = -1 if i == 0 else HASH_MAX * i // n
        upper = HASH_MAX if i == n - 1 else HASH_MAX * (i + 1) // n
        out[name] = (lower, upper)
    return out


def intersect(a: Range, b: Range) -> Range:
    lower, upper = max(a[0], b[0]), min(a[1], b[1])
    return (lower, upper) if lower < upper else EMPTY


def overlaps(a: Range, b: Range) -> bool:
    return intersect(a, b) != EMPTY


def selector(field: str, r: Range) -> str:
    """A field selector for the hashKeys in `r` (e.g. `metadata.hashkey` or an owner's)."""
    if r == EMPTY:
        return f"{field}=gt:0,{field}=lte:0"  # matches nothing: the range is empty
    return f"{field}=gt:{r[0]},{field}=lte:{r[1]}"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _age(stamp: str | None) -> float:
    if not stamp:
        return float("inf")
    try:
        when = datetime.strptime(stamp[:26].rstrip("Z"), "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=UTC)
    except ValueError:
        when = datetime.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    return (datetime.now(UTC) - when).total_seconds()


class PartitionMember:
    """One instance's membership: its Lease, its ControllerInstance, and its effective range."""

    def __init__(self, client: Client, controller_type: str, instance_id: str | None = None, *,
                 lease_duration: float = 15.0, period: float = 2.0) -> None:
        self.client = client
        self.type = controller_type
        self.id = instance_id or uuid.uuid4().hex[:8]
        self.name = f"{controller_type}-{self.id}"
        self.lease_name = f"ci-{self.name}"
        self.lease_duration = lease_duration
        self.period = period
        self.range: Range = EMPTY
        self.desired: Range = EMPTY
        self.workloads = 0
        self.on_change: list[Callable[[Range], Awaitable[None] | None]] = []
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._renewed = 0.0  # monotonic time of the last successful lease renewal

    async def start(self) -> None:
        await self.step()
        self._task = asyncio.create_task(self._run(), name=f"partition-{self.name}")

    async def stop(self, release: bool = True) -> None:
        """Stop serving; with `release` the instance leaves at once, without it it just stops renewing."""
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self.range != EMPTY:
            await self._apply(EMPTY)
        if release:
            for info, name in ((INSTANCES, self.name), (LEASES, self.lease_name)):
                with contextlib.suppress(APIError):
                    await self.client.delete(info, name, tenant=SYSTEM_TENANT,
                                             namespace=LEASE_NAMESPACE if info is LEASES else None)

    def poke(self) -> None:
        """Re-evaluate soon (a watch saw a member come or go)."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.period)
            self._wake.clear()
            try:
                await self.step()
            except Exception as exc:  # the next round retries; one failed call must not end membership
                log.warning("partition %s: %s", self.name, exc)
                if self.range != EMPTY and time.monotonic() - self._renewed > self.lease_duration * 2 / 3:
                    # Fence ourselves before our lease can expire: the others take over then.
                    log.warning("partition %s: cannot renew membership; stopping work on %s", self.name,
                                self.range)
                    await self._apply(EMPTY)

    async def step(self) -> None:
        """One round: renew, look at the members, move the effective range toward the fair one."""
        await self._renew_lease()
        live, published = await self._members()
        self.desired = split([*live, self.name])[self.name]
        keep = intersect(self.range, self.desired)
        others = [r for name, r in published.items() if name != self.name]
        if self.desired != self.range and not any(overlaps(self.desired, r) for r in others):
            new = self.desired  # nobody else works on any of it: take it all
        else:
            new = keep  # shrink now; grow once the others have let go
        if new != self.range:
            # Serve the new range before publishing it: shrinking, we stop first and others may
            # take the rest once they read it; growing, nobody else publishes any of it.
            await self._apply(new)
        await self._publish(new)

    async def _apply(self, new: Range) -> None:
        old, self.range = self.range, new
        log.info("partition %s: range %s -> %s (fair share %s)", self.name, old, new, self.desired)
        for callback in self.on_change:
            result = callback(new)
            if asyncio.iscoroutine(result):
                await result

    async def _renew_lease(self) -> None:
        now = _now()
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.lease_name, "namespace": LEASE_NAMESPACE, "tenant": SYSTEM_TENANT},
                "spec": {"holderIdentity": self.name, "leaseDurationSeconds": int(self.lease_duration),
                         "renewTime": now}}
        started = time.monotonic()
        try:
            await self.client.patch(LEASES, self.lease_name, {"spec": body["spec"]}, tenant=SYSTEM_TENANT,
                                    namespace=LEASE_NAMESPACE)
        except APIError as exc:
            if exc.code != 404:
                raise
            body["spec"]["acquireTime"] = now
            await self.client.create(LEASES, body, tenant=SYSTEM_TENANT, namespace=LEASE_NAMESPACE)
        self._renewed = started

    async def _members(self) -> tuple[list[str], dict[str, Range]]:
        """Live member names and every live member's published range; the dead are removed."""
        instances = (await self.client.list(INSTANCES, field_selector=f"controllerType={self.type}"))["items"]
        leases = {lease["metadata"]["name"]: lease for lease in (await self.client.list(
            LEASES, tenant=SYSTEM_TENANT, namespace=LEASE_NAMESPACE))["items"]}
        live: list[str] = []
        published: dict[str, Range] = {}
        for ci in instances:
            name = ci["metadata"]["name"]
            lease = leases.get(f"ci-{name}")
            spec = (lease or {}).get("spec") or {}
            if name != self.name and _age(spec.get("renewTime")) > spec.get("leaseDurationSeconds",
                                                                             self.lease_duration):
                log.warning("partition %s: member %s stopped renewing; removing it so its range moves on",
                            self.name, name)
                with contextlib.suppress(APIError):
                    await self.client.delete(INSTANCES, name)
                continue
            live.append(name)
            lower = int((ci["metadata"].get("annotations") or {}).get(LOWER_ANNOTATION, 0))
            published[name] = (lower, int(ci.get("controllerKey", 0)))
        return [n for n in live if n != self.name], published

    async def _publish(self, r: Range) -> None:
        body: Obj = {"apiVersion": "v1", "kind": "ControllerInstance",
                     "metadata": {"name": self.name, "annotations": {LOWER_ANNOTATION: str(r[0])}},
                     "controllerType": self.type, "controllerKey": r[1], "workloadNum": self.workloads,
                     "isLocked": r != self.desired}
        try:
            await self.client.patch(INSTANCES, self.name, {k: v for k, v in body.items() if k != "apiVersion"})
        except APIError as exc:
            if exc.code != 404:
                raise
            await self.client.create(INSTANCES, body)
