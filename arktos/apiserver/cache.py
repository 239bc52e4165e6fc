"""The watch cache: one etcd watch feeds memory; lists and watches are served from it.

One etcd watch covers the whole `/registry/` key space, so the cache's
revision is etcd's revision and a consistent read is "wait until the cache has
caught up with the revision etcd reports", usually microseconds.  Each
resource keeps its objects as pre-encoded JSON (with resourceVersion set)
plus the few values selectors look at; a list is a filter and a byte join,
and a watch event is encoded once and shared by every watcher that receives
it.  Watchers of `spec.nodeName=X` (node agents) are indexed by that value,
so thousands of node watchers do not each look at every pod event.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import heapq
import logging
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from arktos.api.errors import APIError, gone, timeout
from arktos.api.registry import ResourceInfo
from arktos.storage.etcd import Compacted, EtcdStore, StorageError, WatchEvent
from arktos.storage.keys import ROOT, resource_prefix

log = logging.getLogger(__name__)

HISTORY = 20_000  # events kept per resource for watches that resume from a revision
WATCHER_BUFFER = 10_000  # frames a slow watcher may fall behind before it is closed
INDEXED_FIELDS = ("spec.nodeName",)
PROGRESS_RESOURCE = "_progress"  # keys API servers touch to move their watch forward; no kind lives here


class Entry:
    """One stored object as the cache keeps it."""

    __slots__ = ("fields", "hash_key", "key", "labels", "meta", "raw", "rv")

    def __init__(self, key: str, obj: dict[str, Any], rv: int, info: ResourceInfo) -> None:
        meta = obj.setdefault("metadata", {})
        meta["resourceVersion"] = str(rv)
        self.key = key
        self.rv = rv
        self.raw = orjson.dumps(obj)
        self.labels: dict[str, str] = meta.get("labels") or {}
        self.hash_key: int = meta.get("hashKey", 0)
        # What selectors need of the metadata, without keeping the whole object.
        self.meta = {
            "metadata": {
                "name": meta.get("name", ""),
                "namespace": meta.get("namespace", ""),
                "tenant": meta.get("tenant", ""),
                "hashKey": self.hash_key,
                "ownerReferences": [
                    {"kind": o.get("kind"), "hashKey": o.get("hashKey", 0)} for o in meta.get("ownerReferences") or ()
                ],
            }
        }
        fields = info.strategy.fields(obj) if info.strategy else {}
        fields["metadata.name"] = meta.get("name", "")
        fields["metadata.namespace"] = meta.get("namespace", "")
        fields["metadata.tenant"] = meta.get("tenant", "")
        self.fields = fields

    def with_rv(self, rv: int) -> bytes:
        """The object re-encoded at another resourceVersion (for DELETED events)."""
        obj = orjson.loads(self.raw)
        obj["metadata"]["resourceVersion"] = str(rv)
        return orjson.dumps(obj)


class Event:
    __slots__ = ("_frames", "new", "old", "rv")

    def __init__(self, rv: int, new: Entry | None, old: Entry | None) -> None:
        self.rv = rv
        self.new = new
        self.old = old
        self._frames: dict[str, bytes] = {}

    def frame(self, type_: str) -> bytes:
        """`{"type":...,"object":...}\\n`, encoded once however many watchers get it."""
        frame = self._frames.get(type_)
        if frame is None:
            if self.new is not None:
                body = self.new.raw
            else:
                assert self.old is not None
                body = self.old.with_rv(self.rv)
            frame = b'{"type":"' + type_.encode() + b'","object":' + body + b"}\n"
            self._frames[type_] = frame
        return frame


Filter = Callable[[Entry], bool]


class Watcher:
    """One client watch: a buffer of frames the HTTP handler drains."""

    __slots__ = ("_index", "buf", "cache", "closed", "filter", "limit", "overflowed", "prefix", "wake")

    def __init__(self, cache: ResourceCache, prefix: str, flt: Filter | None, index: tuple[str, str] | None) -> None:
        self.cache = cache
        self.prefix = prefix
        self.filter = flt
        self._index = index
        self.buf: deque[bytes] = deque()
        self.wake = asyncio.Event()
        self.closed = False
        self.overflowed = False
        self.limit = WATCHER_BUFFER  # raised by the size of the initial snapshot, which is no lag

    def matches(self, entry: Entry | None) -> bool:
        if entry is None or not entry.key.startswith(self.prefix):
            return False
        return self.filter is None or self.filter(entry)

    def send(self, event: Event) -> None:
        was = self.matches(event.old)
        now = self.matches(event.new)
        if now:
            type_ = "MODIFIED" if was else "ADDED"
        elif was:
            type_ = "DELETED"
        else:
            return
        self.push(event.frame(type_))

    def push(self, frame: bytes) -> None:
        if self.closed:
            return
        if len(self.buf) >= self.limit:
            self.overflowed = True
            self.close()
            return
        self.buf.append(frame)
        self.wake.set()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.wake.set()
            self.cache.remove_watcher(self)


class ResourceCache:
    def __init__(self, info: ResourceInfo) -> None:
        self.info = info
        self.prefix = resource_prefix(info.etcd_resource)
        self.entries: dict[str, Entry] = {}
        self._sorted: list[str] | None = None
        # Recent events in revision order; trimmed to HISTORY in amortized batches so a
        # resuming watcher finds its start by bisection.
        self.history: list[Event] = []
        self.window_start = 0  # watches may resume from any revision >= this
        self.watchers_all: set[Watcher] = set()
        self.watchers_by: dict[tuple[str, str], set[Watcher]] = {}
        # While a late-registered resource loads, its stream events wait here.
        self.pending: list[WatchEvent] | None = None
        # In-process observers (the CRD registrar) called with each event.
        self.listeners: list[Callable[[Event], None]] = []

    # -- loading and events -------------------------------------------------

    def load(self, kvs: Iterable[tuple[str, bytes, int]], revision: int) -> None:
        self.entries = {}
        for key, value, rv in kvs:
            entry = self._entry(key, value, rv)
            if entry is not None:
                self.entries[key] = entry
        self._sorted = None
        self.history.clear()
        self.window_start = revision

    def _entry(self, key: str, value: bytes, rv: int) -> Entry | None:
        try:
            obj = orjson.loads(value)
            if not isinstance(obj, dict) or not isinstance(obj.get("metadata"), dict):
                raise ValueError("not an object with metadata")
            return Entry(key, obj, rv, self.info)
        except Exception as exc:  # one bad value must never stop the cache for everyone
            log.error("unreadable object in etcd at %s (revision %d): %s; serving it as absent", key, rv, exc)
            return None

    def apply(self, ev: WatchEvent) -> None:
        old = self.entries.get(ev.key)
        if ev.type == "DELETE":
            if old is None:
                return
            del self.entries[ev.key]
            self._sorted = None
            event = Event(ev.revision, None, old)
        else:
            new = self._entry(ev.key, ev.value, ev.revision)
            if new is None:
                # Not an object we can serve: for every reader it is as if it were deleted.
                if old is not None:
                    self.apply(WatchEvent("DELETE", ev.key, b"", ev.revision))
                return
            if old is None:
                self._sorted = None
            self.entries[ev.key] = new
            event = Event(ev.revision, new, old)
        history = self.history
        history.append(event)
        if len(history) >= 2 * HISTORY:
            cut = len(history) - HISTORY
            while cut < len(history) and history[cut].rv == history[cut - 1].rv:
                cut += 1  # events of one revision stay or go together
            self.window_start = history[cut - 1].rv
            del history[:cut]
        self._dispatch(event)
        for listener in self.listeners:
            listener(event)

    def _dispatch(self, event: Event) -> None:
        for w in tuple(self.watchers_all):
            w.send(event)
        if not self.watchers_by:
            return
        targets: set[Watcher] = set()
        for entry in (event.new, event.old):
            if entry is None:
                continue
            for field in INDEXED_FIELDS:
                value = entry.fields.get(field)
                if value is not None:
                    targets.update(self.watchers_by.get((field, value), ()))
        for w in targets:
            w.send(event)

    # -- reads ----------------------------------------------------------------

    def sorted_keys(self) -> list[str]:
        if self._sorted is None:
            self._sorted = sorted(self.entries)
        return self._sorted

    def select(self, prefix: str, flt: Filter | None, start_key: str = "", limit: int = 0) -> tuple[list[Entry], str]:
        """Entries under `prefix` in key order from `start_key`; returns them and the next key, if any."""
        keys = self.sorted_keys()
        i = bisect.bisect_left(keys, max(prefix, start_key))
        out: list[Entry] = []
        entries = self.entries
        n = len(keys)
        while i < n:
            key = keys[i]
            if not key.startswith(prefix):
                break
            entry = entries[key]
            if flt is None or flt(entry):
                if limit and len(out) == limit:
                    return out, key
                out.append(entry)
            i += 1
        return out, ""

    # -- watchers -------------------------------------------------------------

    def add_watcher(self, prefix: str, flt: Filter | None, index: tuple[str, str] | None, since: int | None) -> Watcher:
        """Register a watcher; `since` None means "send the current state first".

        Runs without awaiting, so no event can slip between the replayed
        state and the live stream.
        """
        if since is not None and since < self.window_start:
            raise gone(f"too old resource version: {since} ({self.window_start})")
        w = Watcher(self, prefix, flt, index)
        if since is None:
            initial = self.select(prefix, flt)[0]
            w.limit += len(initial)
            for entry in initial:
                w.push(b'{"type":"ADDED","object":' + entry.raw + b"}\n")
        else:
            history = self.history
            for i in range(bisect.bisect_right(history, since, key=_rv), len(history)):
                w.send(history[i])
        if index is None:
            self.watchers_all.add(w)
        else:
            self.watchers_by.setdefault(index, set()).add(w)
        return w

    def remove_watcher(self, w: Watcher) -> None:
        if w._index is None:
            self.watchers_all.discard(w)
        else:
            group = self.watchers_by.get(w._index)
            if group is not None:
                group.discard(w)
                if not group:
                    del self.watchers_by[w._index]

    def close_watchers(self) -> None:
        for w in [*self.watchers_all, *(w for g in self.watchers_by.values() for w in g)]:
            w.close()



class CacheManager:
    """Owns the etcd watch and the per-resource caches it feeds."""

    def __init__(self, store: EtcdStore) -> None:
        self.store = store
        self.caches: dict[str, ResourceCache] = {}  # etcd resource -> cache
        self.revision = 0
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = 0
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()
        # Called after a reload from etcd (the watch fell behind compaction): in-process
        # observers that follow events must resynchronise from the entries.
        self.reload_listeners: list[Callable[[], None]] = []
        self._nudging: asyncio.Future[int] | None = None
        self._instance = uuid.uuid4().hex[:12]

    async def start(self, infos: Iterable[ResourceInfo]) -> None:
        for info in infos:
            self.caches[info.etcd_resource] = ResourceCache(info)
        await self._load_all()
        self._task = asyncio.create_task(self._run(), name="watch-cache")
        self.ready.set()

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        for cache in self.caches.values():
            cache.close_watchers()

    async def _load_all(self) -> None:
        revision = await self.store.current_revision()
        for cache in list(self.caches.values()):
            await self._load(cache, revision)
        self._advance(revision)
        for callback in self.reload_listeners:
            callback()

    async def _load(self, cache: ResourceCache, revision: int) -> None:
        kvs: list[tuple[str, bytes, int]] = []
        start = None
        while True:
            page, _, more = await self.store.list(cache.prefix, revision=revision, limit=1000, start_key=start)
            kvs.extend((kv.key, kv.value, kv.mod_revision) for kv in page)
            if not more:
                break
            start = page[-1].key + "\0"
        cache.load(kvs, revision)

    async def add_resource(self, info: ResourceInfo) -> ResourceCache:
        """Start caching a resource registered after start-up (a custom resource)."""
        existing = self.caches.get(info.etcd_resource)
        if existing is not None:
            if existing.info.custom_schema is None:
                raise ValueError(f"{info.etcd_resource} belongs to a built-in kind")
            existing.info = info
            return existing
        cache = ResourceCache(info)
        # Load at the revision the stream has reached; stream events that arrive
        # meanwhile are held and applied afterwards if they are newer.
        cache.pending = []
        self.caches[info.etcd_resource] = cache
        revision = self.revision
        try:
            await self._load(cache, revision)
        except BaseException:
            self.caches.pop(info.etcd_resource, None)
            raise
        held, cache.pending = cache.pending, None
        for ev in held:
            if ev.revision > revision:
                cache.apply(ev)
        return cache

    def remove_resource(self, info: ResourceInfo) -> None:
        cache = self.caches.get(info.etcd_resource)
        if cache is not None and cache.info.custom_schema is not None:  # built-ins stay, always
            del self.caches[info.etcd_resource]
            cache.close_watchers()

    def cache_for(self, info: ResourceInfo) -> ResourceCache:
        return self.caches[info.etcd_resource]

    async def _run(self) -> None:
        while True:
            try:
                async for batch in self.store.watch(ROOT, self.revision + 1):
                    for ev in batch:
                        cache = self.caches.get(_resource_of(ev.key))
                        if cache is None:
                            continue
                        if cache.pending is not None:
                            cache.pending.append(ev)
                        else:
                            cache.apply(ev)
                    self._advance(batch[-1].revision)
            except Compacted as exc:
                log.warning("watch cache fell behind etcd compaction (%s); reloading everything", exc)
                for cache in self.caches.values():
                    cache.close_watchers()
                await self._reload_forever()
            except StorageError as exc:
                log.warning("etcd watch interrupted: %s; retrying", exc)
                await asyncio.sleep(0.5)
            except Exception:
                log.exception("watch cache loop failed; restarting it")
                await asyncio.sleep(0.5)

    async def _reload_forever(self) -> None:
        while True:
            try:
                await self._load_all()
                return
            except StorageError as exc:
                log.warning("reloading the watch cache failed: %s", exc)
                await asyncio.sleep(1)

    def _advance(self, revision: int) -> None:
        if revision <= self.revision:
            return
        self.revision = revision
        while self._waiters and self._waiters[0][0] <= revision:
            _, _, fut = heapq.heappop(self._waiters)
            if not fut.done():
                fut.set_result(None)

    async def wait_for(self, revision: int, wait: float = 3.0) -> bool:
        """Wait until the cache has seen `revision`; False on timeout."""
        if self.revision >= revision:
            return True
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._seq += 1
        heapq.heappush(self._waiters, (revision, self._seq, fut))
        try:
            await asyncio.wait_for(fut, wait)
            return True
        except TimeoutError:
            return False  # the future stays in the heap, done, and is dropped when its turn comes

    async def wait_consistent(self, wait: float = 3.0) -> None:
        """Make the next cache read at least as new as a quorum read of etcd."""
        revision = await self.store.current_revision()
        if self.revision >= revision or await self.wait_for(revision, 0.05):
            return
        # etcd's revision moved but nothing under /registry/ did (a write elsewhere in a shared
        # etcd): the watch would never bring us there.  Touch a key of our own under /registry/
        # so it does, the way kube-apiserver asks etcd for a progress notification.
        await self._nudge()
        if not await self.wait_for(revision, wait):
            raise timeout(f"the watch cache did not reach revision {revision} within {wait:.0f}s")

    async def _nudge(self) -> None:
        if self._nudging is None or self._nudging.done():
            key = f"{ROOT}{PROGRESS_RESOURCE}/{self._instance}"
            self._nudging = asyncio.ensure_future(self.store.put(key, b"{}"))
        await asyncio.shield(self._nudging)


def _rv(event: Event) -> int:
    return event.rv


def _resource_of(key: str) -> str:
    """`/registry/pods/t/ns/p` -> `pods`; `/registry/example.com/widgets/...` -> `example.com/widgets`."""
    rest = key[len(ROOT):]
    first, _, tail = rest.partition("/")
    if "." in first:
        return first + "/" + tail.partition("/")[0]
    return first


__all__ = ["APIError", "CacheManager", "Entry", "ResourceCache", "Watcher"]
