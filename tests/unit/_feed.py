"""Feeding authorizer indexes the way the API server does, without etcd.

A `CacheManager` whose resource caches receive objects through the real
`ResourceCache.apply` (the watch cache's path for an etcd event): it builds
the `Entry` and calls the listeners, exactly as in the server.
"""

from __future__ import annotations

from typing import Any

import orjson

from arktos.api.resources import builtin_registry
from arktos.apiserver.cache import CacheManager, ResourceCache
from arktos.storage.etcd import WatchEvent
from arktos.storage.keys import object_key

Obj = dict[str, Any]
REGISTRY = builtin_registry()
KINDS = {"Role": "roles", "RoleBinding": "rolebindings", "ClusterRole": "clusterroles",
         "ClusterRoleBinding": "clusterrolebindings", "Pod": "pods", "Action": "actions"}


class Cluster:
    """A CacheManager whose resource caches receive events as from the etcd watch."""

    def __init__(self, *plurals: str) -> None:
        self.caches = CacheManager(None)  # type: ignore[arg-type]  # no etcd: events are applied directly
        for plural in plurals:
            info = next(i for i in REGISTRY if i.plural == plural)
            self.caches.caches[info.etcd_resource] = ResourceCache(info)
        self.rev = 1

    def _key(self, obj: Obj) -> tuple[ResourceCache, str]:
        plural = KINDS[obj["kind"]]
        meta = obj["metadata"]
        return self.caches.caches[plural], object_key(plural, meta.get("tenant", ""), meta.get("namespace", ""),
                                                      meta["name"])

    def put(self, obj: Obj) -> None:
        cache, key = self._key(obj)
        self.rev += 1
        cache.apply(WatchEvent("PUT", key, orjson.dumps(obj), self.rev))

    def delete(self, obj: Obj) -> None:
        cache, key = self._key(obj)
        self.rev += 1
        cache.apply(WatchEvent("DELETE", key, b"", self.rev))
