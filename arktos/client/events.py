"""An event recorder: core/v1 Events about objects, as client-go's record package writes them.

Recording must never slow down or fail the caller (a scheduler binding pods,
a controller syncing), so `event()` only queues; one background task writes.
Repeats of the same event (same object, type, reason and message) become a
`count` increment and a new `lastTimestamp` on the existing Event instead of
a new object.  That is client-go's deduplication; its fuzzier "similar
events" aggregation is left out.

Deduplication alone still turns every repeat into a PATCH (an etcd write), so
a crash-looping pod or a flapping VM would keep etcd busy forever.  Hence
client-go's spam filter too: a token bucket per source and involved object
(25 events at once, then one per 5 minutes), applied before anything is
queued; what it refuses is dropped and counted in `spam_filtered`.  When the
queue is full, events are dropped (and counted), never waited for.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from arktos.api.errors import APIError
from arktos.client._kinds import builtin_info
from arktos.client._watch import TransportError
from arktos.client.rest import Client

__all__ = ["EVENTS", "EventRecorder"]

log = logging.getLogger("arktos.client.events")
Obj = dict[str, Any]

EVENTS = builtin_info("", "events")
NORMAL, WARNING = "Normal", "Warning"
# client-go's EventSourceObjectSpamFilter defaults: a burst of 25, then one event every 300 s.
SPAM_BURST = 25
SPAM_REFILL_SECONDS = 300.0


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def object_reference(obj: Obj) -> Obj:
    """An ObjectReference (with Arktos's tenant) to `obj`, or `obj` itself if it already is one."""
    if "metadata" not in obj:
        return {k: v for k, v in obj.items() if v}
    meta = obj.get("metadata") or {}
    ref = {
        "kind": obj.get("kind", ""),
        "apiVersion": obj.get("apiVersion", ""),
        "tenant": meta.get("tenant", ""),
        "namespace": meta.get("namespace", ""),
        "name": meta.get("name", ""),
        "uid": meta.get("uid", ""),
        "resourceVersion": meta.get("resourceVersion", ""),
    }
    return {k: v for k, v in ref.items() if v}


@dataclass(slots=True)
class _Recorded:
    name: str
    tenant: str | None
    namespace: str
    count: int


class EventRecorder:
    """Records Events for one component (`source.component`), on one host if it runs on a node."""

    def __init__(self, client: Client, component: str, host: str = "", *, queue_size: int = 1000,
                 cache_size: int = 4096, spam_burst: int = SPAM_BURST,
                 spam_refill_seconds: float = SPAM_REFILL_SECONDS) -> None:
        self.client = client
        self.component = component
        self.host = host
        self.dropped = 0
        self.spam_filtered = 0
        self._spam_burst = max(1, spam_burst)
        self._spam_refill = spam_refill_seconds
        self._buckets: collections.OrderedDict[tuple, list[float]] = collections.OrderedDict()  # [tokens, stamp]
        self._queue: asyncio.Queue[tuple[Obj, str, str, str, str]] = asyncio.Queue(queue_size)
        self._cache: collections.OrderedDict[tuple, _Recorded] = collections.OrderedDict()
        self._cache_size = cache_size
        self._task: asyncio.Task | None = None

    # -- recording ----------------------------------------------------------------

    def event(self, obj: Obj, type: str, reason: str, message: str, *args: Any) -> None:
        """Queue an event about `obj` (an object or an ObjectReference); `message % args` if args given."""
        if type not in (NORMAL, WARNING):
            raise ValueError(f"event type must be Normal or Warning, not {type!r}")
        if args:
            message = message % args
        ref = object_reference(obj)
        if not self._allow(ref):
            self.spam_filtered += 1
            if self.spam_filtered == 1 or self.spam_filtered % 1000 == 0:
                log.info("event spam filter: %d events dropped so far (latest: %s %s on %s/%s)", self.spam_filtered,
                         type, reason, ref.get("namespace", ""), ref.get("name", ""))
            return
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"events-{self.component}")
        try:
            self._queue.put_nowait((ref, type, reason, message, _now()))
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("event queue full: %d events dropped so far", self.dropped)

    def _allow(self, ref: Obj) -> bool:
        """client-go's spam filter: one token bucket per involved object (this recorder is one source)."""
        key = (ref.get("tenant", ""), ref.get("namespace", ""), ref.get("kind", ""), ref.get("name", ""),
               ref.get("uid", ""), ref.get("apiVersion", ""))
        now = time.monotonic()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = [float(self._spam_burst), now]
            if len(self._buckets) > self._cache_size:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            if self._spam_refill > 0:
                bucket[0] = min(float(self._spam_burst), bucket[0] + (now - bucket[1]) / self._spam_refill)
            bucket[1] = now
        if bucket[0] < 1.0:
            return False
        bucket[0] -= 1.0
        return True

    def normal(self, obj: Obj, reason: str, message: str, *args: Any) -> None:
        self.event(obj, NORMAL, reason, message, *args)

    def warning(self, obj: Obj, reason: str, message: str, *args: Any) -> None:
        self.event(obj, WARNING, reason, message, *args)

    # -- lifecycle ----------------------------------------------------------------

    async def flush(self) -> None:
        """Wait until everything queued so far is written (or given up on)."""
        if self._task is not None and not self._task.done():
            await self._queue.join()

    async def stop(self, timeout: float | None = None) -> None:
        """Write what is queued (for at most `timeout` seconds), then stop the writer.

        The writer stops either way: left running, it would write with a client its owner is
        about to close."""
        try:
            async with asyncio.timeout(timeout):
                await self.flush()
        except TimeoutError:
            log.warning("%d events not written within %.0fs of stopping: dropped", self._queue.qsize(), timeout)
        finally:
            task, self._task = self._task, None
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def __aenter__(self) -> EventRecorder:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    # -- writing ------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            ref, etype, reason, message, stamp = await self._queue.get()
            try:
                await self._write(ref, etype, reason, message, stamp)
            except asyncio.CancelledError:
                raise
            except (APIError, TransportError) as exc:
                log.warning("could not record event %s %s on %s/%s: %s", etype, reason, ref.get("namespace", ""),
                            ref.get("name", ""), exc)
            except Exception:
                log.exception("could not record event %s %s", etype, reason)
            finally:
                self._queue.task_done()

    async def _write(self, ref: Obj, etype: str, reason: str, message: str, stamp: str) -> None:
        key = (ref.get("tenant", ""), ref.get("namespace", ""), ref.get("kind", ""), ref.get("name", ""),
               ref.get("uid", ""), etype, reason, message)
        seen = self._cache.get(key)
        if seen is not None:
            self._cache.move_to_end(key)
            try:
                await self.client.patch(EVENTS, seen.name, {"count": seen.count + 1, "lastTimestamp": stamp},
                                        tenant=seen.tenant, namespace=seen.namespace)
                seen.count += 1
                return
            except APIError as exc:
                if exc.code != 404:
                    raise
                del self._cache[key]  # expired or deleted: start a new one
        namespace = ref.get("namespace") or "default"
        tenant = ref.get("tenant") or None
        name = f"{ref.get('name', 'unknown')}.{time.time_ns():x}"
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": ref, "reason": reason, "message": message, "type": etype,
            "source": {"component": self.component, **({"host": self.host} if self.host else {})},
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
            "reportingComponent": self.component, "reportingInstance": self.host or self.component,
        }
        await self.client.create(EVENTS, body, tenant=tenant, namespace=namespace)
        self._cache[key] = _Recorded(name, tenant, namespace, 1)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
