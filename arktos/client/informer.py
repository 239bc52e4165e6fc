"""Informers: a local, always-current copy of a set of objects, with change callbacks.

An informer lists (in pages) and then watches from the list's
resourceVersion, as client-go's reflector does.  A broken connection resumes
the watch from the last resourceVersion seen (bookmarks keep it fresh on quiet
streams); a 410 Gone, or a server that is behind the version we hold, means
the history we need is gone, so it lists again and turns the difference into
the adds, updates and deletes the watch missed: the store and the handlers
end up exactly where an unbroken watch would have left them.

Scale-out (ARKTOS.md section 4): given several clients, one per tenant or
resource partition, it runs one list+watch per server into one store and
remembers where each object came from (`origin`), because a node agent must
write a pod's status back to the partition the pod came from.

The store changes first and handlers run afterwards, in order, from one
dispatcher task, so a slow handler never holds up the watch streams.
`has_synced()` turns true once the handlers have seen every server's initial
list.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from arktos.api.errors import APIError
from arktos.api.registry import ResourceInfo
from arktos.client._backoff import Backoff
from arktos.client._store import Change, IndexFunc, Store, diff, object_key
from arktos.client._watch import TransportError
from arktos.client.rest import Client

__all__ = ["Informer", "diff", "namespace_index", "node_name_index", "object_key", "owner_uid_index"]

Obj = dict[str, Any]
log = logging.getLogger("arktos.client.informer")

# Where each handler's events go; a handler may be a plain function or a coroutine function.
AddHandler = Callable[[Obj], Any]
UpdateHandler = Callable[[Obj, Obj], Any]
DeleteHandler = Callable[[Obj], Any]


def node_name_index(obj: Obj) -> list[str]:
    """Pods by `spec.nodeName` (unscheduled pods are not indexed)."""
    node = (obj.get("spec") or {}).get("nodeName")
    return [node] if node else []


def owner_uid_index(obj: Obj) -> list[str]:
    """Objects by the uid of each owner, for controllers that look up their children."""
    return [ref["uid"] for ref in (obj.get("metadata") or {}).get("ownerReferences") or [] if ref.get("uid")]


def namespace_index(obj: Obj) -> list[str]:
    """Objects by `tenant/namespace`."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    if not ns:
        return []
    return [f"{meta['tenant']}/{ns}" if meta.get("tenant") else ns]


@dataclass(slots=True)
class _Handler:
    on_add: AddHandler | None
    on_update: UpdateHandler | None
    on_delete: DeleteHandler | None


class _Synced:
    """A marker in the dispatch queue: server `source` has had its initial list delivered."""

    __slots__ = ("source",)

    def __init__(self, source: int) -> None:
        self.source = source


class Informer:
    """List and watch one kind on one or more servers into a local store."""

    def __init__(
        self,
        clients: Client | Sequence[Client],
        info: ResourceInfo,
        *,
        tenant: str | None = None,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        indexers: dict[str, IndexFunc] | None = None,
        page_size: int = 500,
        watch_timeout: tuple[int, int] = (300, 600),
        backoff_cap: float = 5.0,
        name: str = "",
    ) -> None:
        self.clients: list[Client] = [clients] if isinstance(clients, Client) else list(clients)
        if not self.clients:
            raise ValueError("an informer needs at least one client")
        self.info = info
        self.tenant = tenant
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.page_size = page_size
        self.watch_timeout = watch_timeout
        self.backoff_cap = backoff_cap
        self.name = name or info.plural
        self.store = Store(len(self.clients), indexers)
        self._handlers: list[_Handler] = []
        self._queue: asyncio.Queue[tuple[Change, _Handler | None] | _Synced] = asyncio.Queue()
        self._tasks: list[asyncio.Task] = []
        self._synced = [False] * len(self.clients)
        self._delivered: set[int] = set()
        self._synced_event = asyncio.Event()
        self._resource_versions: list[str | None] = [None] * len(self.clients)
        self.lists = 0  # how many lists (initial and re-) have been done: for tests and metrics
        self._started = False

    # -- setup --------------------------------------------------------------------

    def add_handler(self, on_add: AddHandler | None = None, on_update: UpdateHandler | None = None,
                    on_delete: DeleteHandler | None = None) -> None:
        """Register callbacks; one added after start first gets an add for every object already known."""
        handler = _Handler(on_add, on_update, on_delete)
        self._handlers.append(handler)
        if self._started:
            for obj in self.store.list():
                self._queue.put_nowait(((None, obj), handler))

    def add_indexer(self, name: str, fn: IndexFunc) -> None:
        self.store.add_indexer(name, fn)

    # -- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._tasks.append(asyncio.create_task(self._dispatch(), name=f"informer-{self.name}-dispatch"))
        for i in range(len(self.clients)):
            self._tasks.append(asyncio.create_task(self._reflect(i), name=f"informer-{self.name}-{i}"))

    async def stop(self) -> None:
        """Stop every task of this informer and wait for them to end."""
        tasks, self._tasks = self._tasks, []
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def __aenter__(self) -> Informer:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    def has_synced(self) -> bool:
        return self._synced_event.is_set()

    async def wait_synced(self, timeout: float | None = None) -> None:
        """Wait until every server's initial list has reached the handlers (TimeoutError after `timeout`)."""
        async with asyncio.timeout(timeout):
            await self._synced_event.wait()

    # -- reads ----------------------------------------------------------------------

    def get(self, key: str) -> Obj | None:
        return self.store.get(key)

    def get_by(self, name: str, *, tenant: str | None = None, namespace: str | None = None) -> Obj | None:
        return self.store.get("/".join(p for p in (tenant, namespace, name) if p))

    def list(self) -> list[Obj]:
        return self.store.list()

    def keys(self) -> list[str]:
        return self.store.keys()

    def by_index(self, name: str, value: str) -> list[Obj]:
        return self.store.by_index(name, value)

    def origin(self, key_or_obj: str | Obj) -> Client | None:
        """The client of the server the object came from: where its writes must go."""
        key = key_or_obj if isinstance(key_or_obj, str) else object_key(key_or_obj)
        source = self.store.origin(key)
        return None if source is None else self.clients[source]

    def resource_version(self, source: int = 0) -> str | None:
        """The last resourceVersion seen from server `source`."""
        return self._resource_versions[source]

    # -- the reflector: one per server ------------------------------------------------

    async def _reflect(self, source: int) -> None:
        client = self.clients[source]
        backoff = Backoff(initial=0.1, cap=self.backoff_cap)
        rv: str | None = None
        last_gone = -10.0
        while True:
            try:
                if rv is None:
                    rv = await self._list(source)
                started = asyncio.get_running_loop().time()
                rv = await self._watch(source, rv)
                if asyncio.get_running_loop().time() - started < 1.0:
                    # A stream that ends at once (a server shutting down) must not become a hot loop.
                    await asyncio.sleep(backoff.next())
                else:
                    backoff.reset()
            except asyncio.CancelledError:
                raise
            except APIError as exc:
                if exc.code == 410 or (exc.code == 504 and "resource version" in exc.message.lower()):
                    # The history we need is gone, or this server knows nothing of our version
                    # (a different etcd behind the same address): start over from a fresh list.
                    log.info("%s on %s: %s; listing again", self.name, client.server, exc.message)
                    now = asyncio.get_running_loop().time()
                    if now - last_gone < 1.0:
                        await asyncio.sleep(backoff.next())  # gone again at once: pace the relists
                    last_gone = now
                    rv = None
                    continue
                delay = backoff.next()
                log.warning("%s on %s: %s %s: %s; retrying in %.1fs", self.name, client.server, exc.code,
                            exc.reason, exc.message, delay)
                await asyncio.sleep(delay)
            except TransportError as exc:
                delay = backoff.next()
                log.info("%s on %s: %s; retrying in %.1fs", self.name, client.server, exc, delay)
                await asyncio.sleep(delay)
            except Exception:
                delay = backoff.next()
                log.exception("%s on %s failed; retrying in %.1fs", self.name, client.server, delay)
                await asyncio.sleep(delay)

    async def _list(self, source: int) -> str:
        client = self.clients[source]
        items: list[Obj] = []
        rv = ""
        pages = client.list_pages(self.info, tenant=self.tenant, namespace=self.namespace,
                                  label_selector=self.label_selector, field_selector=self.field_selector,
                                  limit=self.page_size or None)
        async with contextlib.aclosing(pages):
            async for page in pages:
                if not rv:
                    rv = str(page["metadata"].get("resourceVersion") or "")
                items.extend(page["items"])
        self.lists += 1
        for change in self.store.replace(source, items):
            self._queue.put_nowait((change, None))
        self._resource_versions[source] = rv
        if not self._synced[source]:
            self._synced[source] = True
            self._queue.put_nowait(_Synced(source))
        return rv

    async def _watch(self, source: int, rv: str) -> str:
        """Follow one watch stream to its end; the resourceVersion to resume from."""
        client = self.clients[source]
        timeout = random.randint(*self.watch_timeout)
        async with client.watch(self.info, tenant=self.tenant, namespace=self.namespace,
                                label_selector=self.label_selector, field_selector=self.field_selector,
                                resource_version=rv, allow_bookmarks=True, timeout_seconds=timeout) as events:
            async for event in events:
                new_rv = event.resource_version
                if event.type == "ADDED" or event.type == "MODIFIED":
                    change = self.store.upsert(source, event.object)
                elif event.type == "DELETED":
                    change = self.store.remove(source, event.object)
                elif event.type == "BOOKMARK":
                    change = (None, None)
                else:
                    log.warning("%s: unexpected watch event type %r", self.name, event.type)
                    continue
                if new_rv:
                    rv = new_rv
                    self._resource_versions[source] = rv
                if change != (None, None):
                    self._queue.put_nowait((change, None))
        return rv

    # -- the dispatcher ------------------------------------------------------------------

    async def _dispatch(self) -> None:
        while True:
            item = await self._queue.get()
            if isinstance(item, _Synced):
                self._delivered.add(item.source)
                if len(self._delivered) == len(self.clients):
                    self._synced_event.set()
                continue
            (old, new), only = item
            for handler in [only] if only is not None else list(self._handlers):
                await self._call(handler, old, new)

    async def _call(self, handler: _Handler, old: Obj | None, new: Obj | None) -> None:
        if old is None and new is not None:
            fn, args = handler.on_add, (new,)
        elif old is not None and new is not None:
            fn, args = handler.on_update, (old, new)
        elif old is not None:
            fn, args = handler.on_delete, (old,)
        else:
            return
        if fn is None:
            return
        try:
            result = fn(*args)
            if inspect.isawaitable(result):
                await result
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: event handler %r failed", self.name, fn)

