"""Leader election through a coordination.k8s.io/v1 Lease, as client-go's leaderelection.

Only one instance of a singleton component (scheduler, controller manager)
acts at a time; the others wait, ready to take over.  The Lease records the
holder and when it last renewed; every write is a compare-and-swap on the
Lease's resourceVersion, so two candidates can never both win a round.

Clocks are not compared across machines: a lease counts as expired when its
record has not *changed* for leaseDurationSeconds of this process's own
monotonic time, as client-go does.  The leader steps down when it cannot
renew within `renew_deadline`, which is shorter than the lease duration, so
it stops acting before anyone else may start.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from arktos.api.errors import APIError
from arktos.client._kinds import builtin_info
from arktos.client._watch import TransportError
from arktos.client.rest import Client

__all__ = ["LEASES", "LeaderElector", "LeadershipLost"]

log = logging.getLogger("arktos.client.leader")
Obj = dict[str, Any]

LEASES = builtin_info("coordination.k8s.io", "leases")


class LeadershipLost(Exception):
    """The lease could not be renewed in time, or another candidate holds it now."""


def micro_time(at: datetime | None = None) -> str:
    """A MicroTime as Kubernetes writes it."""
    return (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def default_identity() -> str:
    """`hostname_uuid`, as kube-scheduler and kube-controller-manager name themselves."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


class LeaderElector:
    """Campaign for one Lease.

    Either `async with LeaderElector(...) as elector:` (waits until leading;
    if leadership is lost, the block is cancelled and `LeadershipLost` is
    raised from it), or `await elector.run(on_started, on_stopped)`.
    """

    def __init__(
        self,
        client: Client,
        name: str,
        *,
        namespace: str = "kube-system",
        tenant: str | None = None,
        identity: str | None = None,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        release_on_cancel: bool = True,
    ) -> None:
        if not lease_duration > renew_deadline > retry_period > 0:
            raise ValueError("need lease_duration > renew_deadline > retry_period > 0")
        self.client = client
        self.name = name
        self.namespace = namespace
        self.tenant = tenant
        self.identity = identity or default_identity()
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.release_on_cancel = release_on_cancel
        self.leader: str = ""  # the holder last observed, perhaps us
        self._lease: Obj | None = None
        self._observed: tuple[str, str, str] | None = None  # (holder, renewTime, resourceVersion)
        self._observed_at = 0.0
        self._leading = False
        self._renewer: asyncio.Task | None = None
        self._owner: asyncio.Task | None = None
        self._cancelled_owner = False
        self.lost = asyncio.Event()

    @property
    def is_leader(self) -> bool:
        return self._leading

    # -- one round ----------------------------------------------------------------

    def _observe(self, lease: Obj) -> None:
        spec = lease.get("spec") or {}
        record = (str(spec.get("holderIdentity") or ""), str(spec.get("renewTime") or ""),
                  str(lease["metadata"].get("resourceVersion") or ""))
        if record != self._observed:
            self._observed = record
            self._observed_at = time.monotonic()
        self._lease = lease
        self.leader = record[0]

    def _expired(self, spec: Obj) -> bool:
        duration = spec.get("leaseDurationSeconds") or self.lease_duration
        return time.monotonic() > self._observed_at + float(duration)

    async def try_acquire_or_renew(self) -> bool:
        """One round: take the lease if free or expired, renew it if ours. True when we hold it."""
        now = micro_time()
        try:
            lease = await self.client.get(LEASES, self.name, tenant=self.tenant, namespace=self.namespace)
        except APIError as exc:
            if exc.code != 404:
                raise
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": self._spec({}, now, taking=True)}
            try:
                created = await self.client.create(LEASES, body, tenant=self.tenant, namespace=self.namespace)
            except APIError as exc2:
                if exc2.code == 409:
                    return False
                raise
            self._observe(created)
            return True
        self._observe(lease)
        spec = lease.get("spec") or {}
        holder = str(spec.get("holderIdentity") or "")
        if holder and holder != self.identity and not self._expired(spec):
            return False
        lease["spec"] = self._spec(spec, now, taking=holder != self.identity)
        try:
            updated = await self.client.update(LEASES, lease, tenant=self.tenant, namespace=self.namespace)
        except APIError as exc:
            if exc.code == 409:
                return False
            raise
        self._observe(updated)
        return True

    def _spec(self, old: Obj, now: str, taking: bool) -> Obj:
        spec = dict(old)
        spec["holderIdentity"] = self.identity
        spec["leaseDurationSeconds"] = max(1, round(self.lease_duration))
        spec["renewTime"] = now
        if taking:
            spec["acquireTime"] = now
            spec["leaseTransitions"] = int(old.get("leaseTransitions") or 0) + (1 if old else 0)
        return spec

    async def _round(self) -> bool:
        try:
            return await self.try_acquire_or_renew()
        except (APIError, TransportError) as exc:
            log.warning("lease %s/%s: %s", self.namespace, self.name, exc)
            return False

    # -- campaigning -------------------------------------------------------------------

    async def acquire(self) -> None:
        """Wait until this candidate holds the lease, then keep renewing it in the background."""
        while True:
            if await self._round():
                break
            await asyncio.sleep(self.retry_period * (1.0 + 0.2 * random.random()))
        log.info("%s became leader of lease %s/%s", self.identity, self.namespace, self.name)
        self._leading = True
        self.lost.clear()
        self._renewer = asyncio.create_task(self._renew(), name=f"lease-renew-{self.name}")

    async def _renew(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(self.retry_period)
            deadline = last + self.renew_deadline
            renewed = False
            while not renewed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    async with asyncio.timeout(remaining):
                        renewed = await self._round()
                except TimeoutError:
                    break
                if not renewed:
                    if self.leader and self.leader != self.identity:
                        break  # someone else holds it now
                    await asyncio.sleep(min(self.retry_period, max(0.0, deadline - time.monotonic())))
            if not renewed:
                self._on_lost()
                return
            last = time.monotonic()

    def _on_lost(self) -> None:
        log.warning("%s lost lease %s/%s (holder now %r)", self.identity, self.namespace, self.name, self.leader)
        self._leading = False
        self.lost.set()
        if self._owner is not None and not self._owner.done():
            self._cancelled_owner = True
            self._owner.cancel()

    async def release(self) -> None:
        """Stop renewing and, if we hold the lease, hand it back so a successor need not wait for expiry."""
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
        if not self._leading:
            return
        self._leading = False
        lease = self._lease
        if not self.release_on_cancel or lease is None:
            return
        spec = dict(lease.get("spec") or {})
        if spec.get("holderIdentity") != self.identity:
            return
        spec.update(holderIdentity="", leaseDurationSeconds=1, renewTime=micro_time())
        lease = {**lease, "spec": spec}
        try:
            async with asyncio.timeout(self.retry_period):
                await self.client.update(LEASES, lease, tenant=self.tenant, namespace=self.namespace)
        except (APIError, TransportError, TimeoutError) as exc:
            log.warning("could not release lease %s/%s: %s", self.namespace, self.name, exc)

    async def abandon(self) -> None:
        """Stop renewing without releasing: what a crash looks like to the others (for tests and drills)."""
        self.release_on_cancel = False
        await self.release()

    async def __aenter__(self) -> LeaderElector:
        self._owner = asyncio.current_task()
        self._cancelled_owner = False
        await self.acquire()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        # Before any await: from here on a lost lease must not cancel the owner any more.
        owner, self._owner = self._owner, None
        cancelled_by_us, self._cancelled_owner = self._cancelled_owner, False
        await asyncio.shield(self.release())
        if cancelled_by_us and owner is not None:
            remaining = owner.uncancel()
            if exc_type is asyncio.CancelledError and remaining == 0:
                raise LeadershipLost(f"lost lease {self.namespace}/{self.name}") from exc

    async def run(self, on_started: Callable[[], Awaitable[Any] | Any],
                  on_stopped: Callable[[], Awaitable[Any] | Any] | None = None) -> Any:
        """Campaign, then run `on_started` while leading; its result, or `LeadershipLost`.

        `on_started` is cancelled if leadership is lost.  When it returns, the
        lease is released (with `release_on_cancel`) so a successor starts at
        once.  `on_stopped` runs after leadership ends, whichever way it ended.
        """
        acquired = False
        try:
            async with self:
                acquired = True
                result = on_started()
                if inspect.isawaitable(result):
                    result = await result
                return result
        finally:
            if acquired and on_stopped is not None:
                done = on_stopped()
                if inspect.isawaitable(done):
                    await done
