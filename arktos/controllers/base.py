"""What every controller is made of: shared informers, a work queue, workers, and one `sync(key)`.

A controller subclasses `Controller`, names itself, registers its informers
and event handlers in `setup()` (handlers only turn events into keys), and
implements `sync(key)`: look at the current state of that key and make the
world match it.  The base class runs N workers over the queue and decides
what a sync's outcome means:

* it returns: the key is done (its backoff is forgotten);
* it raises `Pending`: the work is in progress and not an error (a namespace
  still emptying): the key comes back after its backoff, logged at INFO;
* it raises anything else: a failure, logged as a warning with the key, the
  attempt number and the reason, retried after its backoff; never dropped,
  because a dropped key is exactly how a tenant ends up stuck in
  Terminating.

Informers are shared through `InformerFactory`: two controllers watching
namespaces use one list+watch, as client-go's shared informer factory does.
The system-tenant controller manager lists and watches across tenants
(`tenants/all` paths), so that is the factory's default.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from arktos.api.errors import APIError
from arktos.api.registry import ResourceInfo
from arktos.api.resources import BUILTIN
from arktos.client import ALL_TENANTS, Client, EventRecorder, Informer, TransportError, object_key
from arktos.controllers.discovery import Discovery
from arktos.controllers.queue import QueueShutDown, WorkQueue

__all__ = [
    "Controller",
    "ControllerContext",
    "ControllerOptions",
    "InformerFactory",
    "Pending",
    "builtin",
    "is_gone",
    "is_terminating_refusal",
]

Obj = dict[str, Any]
IndexFunc = Callable[[Obj], Iterable[str]]

_BUILTIN = {(i.group, i.plural): i for i in BUILTIN}
PENDING_LOG_INTERVAL = 30.0


def builtin(group: str, plural: str) -> ResourceInfo:
    """The ResourceInfo of a built-in kind (its URL layout and scope)."""
    return _BUILTIN[(group, plural)]


class Pending(Exception):
    """Progress, not failure: come back to this key after its backoff (no later than `max_delay`).

    `blocker` says what the key waits for (default: the message); the log
    repeats at INFO only when it changes, so a message that counts seconds
    does not flood the log while nothing else changes.
    """

    def __init__(self, message: str, max_delay: float | None = None, blocker: str | None = None) -> None:
        super().__init__(message)
        self.max_delay = max_delay
        self.blocker = message if blocker is None else blocker


def is_gone(exc: BaseException) -> bool:
    return isinstance(exc, APIError) and exc.code == 404


def is_terminating_refusal(exc: BaseException) -> bool:
    """The server refused a create because the namespace or tenant is being deleted: nothing to do."""
    return isinstance(exc, APIError) and exc.code == 403 and "being terminated" in exc.message


@dataclass
class ControllerOptions:
    """Settings the controllers read (the command's flags)."""

    concurrent_workers: int = 5
    service_account_private_key_file: str | None = None
    service_account_issuer: str = "https://kubernetes.default.svc"
    root_ca_file: str | None = None
    tenant_deletion_grace_period: float = 60.0
    extra: dict[str, Any] = field(default_factory=dict)


class InformerFactory:
    """One informer per (kind, tenant, namespace, selectors), shared by every controller that asks."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._informers: dict[tuple, Informer] = {}
        self._started = False

    def informer(self, info: ResourceInfo, *, tenant: str | None = ALL_TENANTS, namespace: str | None = None,
                 label_selector: str | None = None, field_selector: str | None = None,
                 indexers: Mapping[str, IndexFunc] | None = None) -> Informer:
        key = (info.group, info.plural, tenant if info.scope.tenanted else None, namespace, label_selector,
               field_selector)
        inf = self._informers.get(key)
        if inf is None:
            if self._started:
                raise RuntimeError("informers must be requested before the factory starts")
            sel = ",".join(s for s in (label_selector, field_selector) if s)
            inf = Informer(self.client, info, tenant=tenant, namespace=namespace, label_selector=label_selector,
                           field_selector=field_selector, name=info.plural + (f"[{sel}]" if sel else ""))
            self._informers[key] = inf
        for name, fn in (indexers or {}).items():
            with contextlib.suppress(ValueError):  # another controller registered the same index: shared
                inf.add_indexer(name, fn)
        return inf

    def __iter__(self):
        return iter(list(self._informers.values()))

    async def start(self) -> None:
        self._started = True
        for inf in self._informers.values():
            await inf.start()

    async def wait_synced(self, log: logging.Logger, report_every: float = 10.0) -> None:
        """Wait until every informer has delivered its initial list, saying which ones still wait."""
        started = time.monotonic()
        while True:
            waiting = [inf.name for inf in self._informers.values() if not inf.has_synced()]
            if not waiting:
                log.info("caches synced in %.1fs: %s", time.monotonic() - started,
                         ", ".join(f"{inf.name}={len(inf.list())}" for inf in self._informers.values()))
                return
            try:
                await asyncio.wait_for(asyncio.gather(*(inf.wait_synced() for inf in self._informers.values())),
                                       report_every)
            except TimeoutError:
                log.warning("still waiting for caches to sync after %.0fs: %s", time.monotonic() - started,
                            ", ".join(waiting))

    async def stop(self) -> None:
        await asyncio.gather(*(inf.stop() for inf in self._informers.values()), return_exceptions=True)


@dataclass
class ControllerContext:
    """What a controller gets from the manager: the client, shared informers, options, helpers."""

    client: Client
    informers: InformerFactory
    options: ControllerOptions
    discovery: Discovery
    enabled: frozenset[str] = frozenset()  # the controllers running in this manager
    _recorder: EventRecorder | None = None

    @property
    def events(self) -> EventRecorder:
        """An event recorder for the controller manager, started on first use."""
        if self._recorder is None:
            self._recorder = EventRecorder(self.client, "arktos-controller-manager")
        return self._recorder

    async def close(self) -> None:
        if self._recorder is not None:
            try:
                await asyncio.wait_for(self._recorder.stop(), 5.0)
            except TimeoutError:
                logging.getLogger("arktos.controllers").warning("dropped unwritten events at shutdown")


class Controller:
    """Base class: subclasses set `name`, implement `setup()` and `sync(key)`.

    `max_backoff` caps the per-key retry delay: a controller whose pending
    work finishes on its own (namespace deletion) wants a short cap so it
    notices quickly; one that waits on people can afford a long one.
    """

    name: ClassVar[str] = ""
    max_backoff: ClassVar[float] = 30.0

    def __init__(self, ctx: ControllerContext) -> None:
        if not self.name:
            raise TypeError(f"{type(self).__name__} has no name")
        self.ctx = ctx
        self.client = ctx.client
        self.options = ctx.options
        self.log = logging.getLogger(f"arktos.controllers.{self.name}")
        self.queue = WorkQueue(self.name, max_delay=self.max_backoff)
        self.workers = max(1, ctx.options.concurrent_workers)
        self.synced = 0
        self.failed = 0
        self._workers: list[asyncio.Task] = []
        self._pending: dict[str, tuple[str, float]] = {}  # key -> (last blocker logged, when)

    # -- what subclasses provide -------------------------------------------------

    @classmethod
    def disabled_reason(cls, options: ControllerOptions) -> str | None:
        """Why this controller cannot run with these options (None: it can)."""
        return None

    def setup(self) -> None:
        """Ask the informer factory for informers and add handlers that enqueue keys."""
        raise NotImplementedError

    async def sync(self, key: str) -> None:
        """Make the world match the desired state of `key` (see the module docstring for outcomes)."""
        raise NotImplementedError

    async def started(self) -> None:
        """Runs once after the caches synced and before the workers start."""

    # -- helpers -------------------------------------------------------------------

    def enqueue(self, obj_or_key: Obj | str) -> None:
        self.queue.add(obj_or_key if isinstance(obj_or_key, str) else object_key(obj_or_key))

    def enqueue_after(self, key: str, delay: float) -> None:
        self.queue.add_after(key, delay)

    # -- running ----------------------------------------------------------------------

    async def run(self) -> None:
        """Run the workers until cancelled or the queue shuts down."""
        await self.started()
        self.log.info("started with %d workers", self.workers)
        self._workers = [asyncio.create_task(self._worker(i), name=f"{self.name}-worker-{i}")
                         for i in range(self.workers)]
        try:
            await asyncio.gather(*self._workers)
        finally:
            for w in self._workers:
                w.cancel()
            await asyncio.gather(*self._workers, return_exceptions=True)

    async def shut_down(self, timeout: float = 10.0) -> None:
        """Stop taking keys and give in-flight syncs `timeout` seconds to finish."""
        self.queue.shut_down()
        # Workers return on their own once their current key is done.
        _, running = await asyncio.wait(self._workers, timeout=timeout) if self._workers else (set(), set())
        if running:
            self.log.warning("%d syncs still running after %.0fs at shutdown; abandoning them", self.queue.busy(),
                             timeout)

    async def _worker(self, n: int) -> None:
        while True:
            try:
                key = await self.queue.get()
            except QueueShutDown:
                return
            try:
                await self._process(key)
            finally:
                self.queue.done(key)

    async def _process(self, key: str) -> None:
        started = time.monotonic()
        try:
            await self.sync(key)
        except asyncio.CancelledError:
            raise
        except Pending as p:
            delay = self.queue.add_rate_limited(key, p.max_delay)
            self._log_pending(key, str(p), p.blocker, delay)
            return
        except (APIError, TransportError) as exc:
            self.failed += 1
            attempt = self.queue.num_requeues(key) + 1
            delay = self.queue.add_rate_limited(key)
            what = f"{exc.code} {exc.reason}: {exc.message}" if isinstance(exc, APIError) else str(exc)
            self.log.warning("sync %s failed (attempt %d, retry in %.2fs): %s", key, attempt, delay, what)
            return
        except Exception:
            self.failed += 1
            attempt = self.queue.num_requeues(key) + 1
            delay = self.queue.add_rate_limited(key)
            self.log.exception("sync %s failed (attempt %d, retry in %.2fs)", key, attempt, delay)
            return
        self.synced += 1
        self.queue.forget(key)
        self._pending.pop(key, None)
        self.log.debug("synced %s in %.0f ms", key, (time.monotonic() - started) * 1000)

    def _log_pending(self, key: str, message: str, blocker: str, delay: float) -> None:
        """INFO when what blocks a key changes, or every 30 s while it does not; DEBUG in between."""
        now = time.monotonic()
        last = self._pending.get(key)
        if last is None or last[0] != blocker or now - last[1] >= PENDING_LOG_INTERVAL:
            self._pending[key] = (blocker, now)
            self.log.info("%s: %s (checking again in %.2fs)", key, message, delay)
        else:
            self.log.debug("%s: %s (checking again in %.2fs)", key, message, delay)
