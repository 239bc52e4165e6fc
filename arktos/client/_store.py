"""The informer's local cache: objects by key, secondary indexes, and where each came from.

Several servers (tenant or resource partitions) feed one store.  Each source
keeps its own map, and the store shows, per key, the object of the first
source that has it.  So a key that two partitions both hold (the `system`
tenant exists on every tenant partition) never lets one partition's delete
remove the other's object, and every change of the visible object is
reported as exactly one add, update or delete.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

Obj = dict[str, Any]
IndexFunc = Callable[[Obj], Iterable[str]]
Change = tuple[Obj | None, Obj | None]  # (old, new) of the visible object; None on one side for add/delete

log = logging.getLogger("arktos.client.informer")


def object_key(obj: Mapping[str, Any]) -> str:
    """`tenant/namespace/name`, leaving out the levels the object does not live in."""
    meta = obj.get("metadata") or {}
    return "/".join(p for p in (meta.get("tenant"), meta.get("namespace"), meta.get("name")) if p)


def _rv(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def diff(old: Mapping[str, Obj], new: Mapping[str, Obj]) -> tuple[list[Obj], list[tuple[Obj, Obj]], list[Obj]]:
    """What changed between two snapshots keyed alike: (added, updated as (old, new), deleted).

    An object counts as updated when its resourceVersion differs; a relist after
    410 Gone turns these into the events the watch could not deliver.
    """
    added = [obj for key, obj in new.items() if key not in old]
    updated = [(old[key], obj) for key, obj in new.items() if key in old and _rv(old[key]) != _rv(obj)]
    deleted = [obj for key, obj in old.items() if key not in new]
    return added, updated, deleted


class Store:
    def __init__(self, sources: int, indexers: Mapping[str, IndexFunc] | None = None) -> None:
        self._by_source: list[dict[str, Obj]] = [{} for _ in range(sources)]
        self._items: dict[str, Obj] = {}
        self._origin: dict[str, int] = {}
        self._indexers: dict[str, IndexFunc] = {}
        self._indices: dict[str, dict[str, set[str]]] = {}
        self._collisions: set[str] = set()
        for name, fn in (indexers or {}).items():
            self.add_indexer(name, fn)

    # -- reads ------------------------------------------------------------------

    def get(self, key: str) -> Obj | None:
        return self._items.get(key)

    def origin(self, key: str) -> int | None:
        return self._origin.get(key)

    def keys(self) -> list[str]:
        return list(self._items)

    def list(self) -> list[Obj]:
        return list(self._items.values())

    def source_items(self, source: int) -> dict[str, Obj]:
        return self._by_source[source]

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._items))

    def by_index(self, name: str, value: str) -> list[Obj]:
        keys = self._indices[name].get(value, ())
        return [self._items[k] for k in sorted(keys)]

    def index_keys(self, name: str, value: str) -> list[str]:
        return sorted(self._indices[name].get(value, ()))

    # -- indexes ------------------------------------------------------------------

    def add_indexer(self, name: str, fn: IndexFunc) -> None:
        if name in self._indexers:
            raise ValueError(f"indexer {name!r} already exists")
        self._indexers[name] = fn
        self._indices[name] = {}
        for key, obj in self._items.items():
            self._index_one(name, key, obj, add=True)

    def _index_one(self, name: str, key: str, obj: Obj, add: bool) -> None:
        try:
            values = list(self._indexers[name](obj))
        except Exception:
            log.exception("indexer %s failed on %s", name, key)
            return
        index = self._indices[name]
        for value in values:
            if add:
                index.setdefault(value, set()).add(key)
            else:
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]

    def _reindex(self, key: str, old: Obj | None, new: Obj | None) -> None:
        for name in self._indexers:
            if old is not None:
                self._index_one(name, key, old, add=False)
            if new is not None:
                self._index_one(name, key, new, add=True)

    # -- writes -----------------------------------------------------------------

    def _refresh(self, key: str) -> Change:
        """Recompute which source's object is visible under `key`; the visible change, if any."""
        old = self._items.get(key)
        new: Obj | None = None
        winner = None
        holders = 0
        for i, objs in enumerate(self._by_source):
            obj = objs.get(key)
            if obj is not None:
                holders += 1
                if new is None:
                    new, winner = obj, i
        if holders > 1 and key not in self._collisions:
            self._collisions.add(key)
            log.warning("%s exists on more than one server; showing the one from server %d", key, winner)
        if new is old:
            return None, None
        if new is None:
            del self._items[key]
            del self._origin[key]
        else:
            self._items[key] = new
            self._origin[key] = winner  # type: ignore[assignment]
        self._reindex(key, old, new)
        return old, new

    def upsert(self, source: int, obj: Obj) -> Change:
        key = object_key(obj)
        self._by_source[source][key] = obj
        return self._refresh(key)

    def remove(self, source: int, obj: Obj) -> Change:
        key = object_key(obj)
        if self._by_source[source].pop(key, None) is None:
            return None, None
        old, new = self._refresh(key)
        if old is not None and new is None:
            # Report the final state the server sent, not the last one we had.
            return obj, None
        return old, new

    def replace(self, source: int, objs: Iterable[Obj]) -> list[Change]:
        """Make `source` hold exactly `objs` (a fresh list); the visible changes it causes."""
        fresh = {object_key(o): o for o in objs}
        added, updated, deleted = diff(self._by_source[source], fresh)
        changes: list[Change] = []
        for obj in deleted:
            changes.append(self.remove(source, obj))
        for _, obj in updated:
            changes.append(self.upsert(source, obj))
        for obj in added:
            changes.append(self.upsert(source, obj))
        return [c for c in changes if c != (None, None)]
