"""Keeping an in-memory index in step with some of the API server's watch caches.

The authorizers decide on every request, so they cannot read storage or scan
objects: they keep their own indexes, fed by the watch cache.  A feed reads
the current entries once, then follows each resource cache's listeners.

The watch cache replaces its entry maps without telling listeners when it
reloads after an etcd compaction; a feed notices that (the `entries` dict or
the cache object itself is a different object) and replays everything, so an
index can never stay stale after a reload.  The check is a few identity
comparisons, cheap enough to run before every decision.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from arktos.apiserver.cache import CacheManager, Entry, Event, ResourceCache

# (etcd resource, new entry or None, old entry or None)
OnEvent = Callable[[str, "Entry | None", "Entry | None"], None]


class CacheFeed:
    """Feeds `on_event` from the caches of `resources`; `on_reset` empties the index before a replay."""

    def __init__(
        self, caches: CacheManager, resources: Iterable[str], on_event: OnEvent, on_reset: Callable[[], None]
    ) -> None:
        self.caches = caches
        self.resources = tuple(resources)
        self._on_event = on_event
        self._on_reset = on_reset
        # What we last replayed: per resource, the cache object and its entries dict.
        self._seen: dict[str, tuple[ResourceCache, dict[str, Entry]]] = {}
        self._listeners: dict[str, Callable[[Event], None]] = {}
        self.attached = False

    def sync(self) -> bool:
        """Attach (or re-attach after a reload); False while the caches are not started yet."""
        caches = self.caches.caches
        seen = self._seen
        for res in self.resources:
            cache = caches.get(res)
            if cache is None:
                return False
            got = seen.get(res)
            if got is None or got[0] is not cache or got[1] is not cache.entries:
                self._replay()
                return True
        return True

    def _replay(self) -> None:
        caches = self.caches.caches
        self._on_reset()
        for res in self.resources:
            cache = caches[res]
            old = self._seen.get(res)
            if old is not None and old[0] is not cache:
                listener = self._listeners.get(res)
                if listener in old[0].listeners:
                    old[0].listeners.remove(listener)
            listener = self._listeners.get(res)
            if listener is None:
                listener = self._listeners[res] = self._make_listener(res)
            if listener not in cache.listeners:
                cache.listeners.append(listener)
            self._seen[res] = (cache, cache.entries)
            for entry in list(cache.entries.values()):
                self._on_event(res, entry, None)
        self.attached = True

    def _make_listener(self, res: str) -> Callable[[Event], None]:
        on_event = self._on_event

        def listener(event: Event) -> None:
            on_event(res, event.new, event.old)

        return listener

    def detach(self) -> None:
        for res, (cache, _) in self._seen.items():
            listener = self._listeners.get(res)
            if listener in cache.listeners:
                cache.listeners.remove(listener)
        self._seen.clear()
        self.attached = False


def key_parts(key: str) -> list[str]:
    """`/registry/roles/t/ns/n` -> `["t", "ns", "n"]`: what follows the resource segment."""
    return key.split("/")[3:]


__all__ = ["CacheFeed", "key_parts"]
