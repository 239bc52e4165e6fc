"""The pod garbage collector: pods nobody will ever finish, and finished pods beyond a limit.

As Kubernetes' podgc controller, every `interval` seconds over the shared caches:

- a pod bound to a Node that was deleted (its agent will never confirm the pod's
  deletion) is force-deleted once the node has been gone for `quarantine`
  seconds, which covers a node that is only being re-registered;
- when more than `threshold` pods have finished (Succeeded or Failed), the
  oldest finished ones are deleted down to the threshold (0 turns this off).

Pods of every tenant are collected (keys carry the tenant); a force deletion is
a delete with grace period 0 and the pod's UID as precondition, so a new pod of
the same name is never hit.

Unlike Kubernetes, a pod naming a node this manager never saw is left alone:
with scale-out, a tenant partition's pods run on the nodes of resource
partitions, which its own server does not hold.  Only a deletion this manager
watched makes a node's pods orphans.
"""

from __future__ import annotations

import time
from typing import Any

from arktos.api.errors import APIError
from arktos.controllers.base import Controller, builtin

__all__ = ["PodGCController"]

Obj = dict[str, Any]
PODS = builtin("", "pods")
NODES = builtin("", "nodes")
GC_KEY = "gc"


class PodGCController(Controller):
    name = "podgc"

    def setup(self) -> None:
        self.nodes = self.ctx.informers.informer(NODES)
        self.pods = self.ctx.informers.informer(PODS)
        extra = self.options.extra
        self.interval = float(extra.get("pod_gc_interval", 20.0))
        self.quarantine = float(extra.get("pod_gc_orphan_quarantine", 40.0))
        self.threshold = int(extra.get("terminated_pod_gc_threshold", 12500))
        self.workers = 1  # one scan at a time: it is a single key
        self._gone_since: dict[str, float] = {}  # node name -> when its deletion was seen
        self.deleted = 0
        self.nodes.add_handler(on_add=self._node_back, on_delete=self._node_gone)

    def _node_gone(self, node: Obj) -> None:
        self._gone_since[node["metadata"]["name"]] = time.monotonic()

    def _node_back(self, node: Obj) -> None:
        self._gone_since.pop(node["metadata"]["name"], None)

    async def started(self) -> None:
        self.enqueue(GC_KEY)

    async def sync(self, key: str) -> None:
        try:
            await self._collect()
        finally:
            self.enqueue_after(GC_KEY, self.interval)

    async def _collect(self) -> None:
        now = time.monotonic()
        pods = self.pods.list()
        for pod in pods:
            node = (pod.get("spec") or {}).get("nodeName")
            gone = self._gone_since.get(node) if node else None
            if gone is not None and now - gone >= self.quarantine and self.nodes.get(node) is None:
                await self._force_delete(pod, f"its node {node} was deleted")
        referenced = {(p.get("spec") or {}).get("nodeName") for p in pods}
        for node in [n for n, t in self._gone_since.items() if now - t >= self.quarantine and n not in referenced]:
            del self._gone_since[node]  # nothing of it is left to collect
        if self.threshold > 0:
            finished = [p for p in pods if (p.get("status") or {}).get("phase") in ("Succeeded", "Failed")
                        and not p["metadata"].get("deletionTimestamp")]
            excess = len(finished) - self.threshold
            if excess > 0:
                finished.sort(key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"]))
                for pod in finished[:excess]:
                    await self._force_delete(pod, f"more than {self.threshold} finished pods")

    async def _force_delete(self, pod: Obj, why: str) -> None:
        meta = pod["metadata"]
        try:
            await self.client.delete(PODS, meta["name"], tenant=meta.get("tenant") or None,
                                     namespace=meta.get("namespace"), grace_period_seconds=0,
                                     preconditions={"uid": meta.get("uid")})
        except APIError as exc:
            if exc.code in (404, 409):  # gone already, or a new pod of that name
                return
            raise
        self.deleted += 1
        self.log.info("deleted pod %s/%s/%s: %s", meta.get("tenant") or "system", meta.get("namespace"),
                      meta["name"], why)
