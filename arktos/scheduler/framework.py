"""The plugin framework: what a pod asks for, filter and score plugins, and one scheduling decision.

A decision runs every filter over *all* nodes at once (each returns a boolean
mask over the cache's rows), then every score over the nodes that passed
(each returns 0..100 per node), and takes the best weighted sum, breaking ties
at random so identical nodes share the load.  Filters that look only at node
properties (labels, taints, readiness, runtimes, the node name) are `static`:
their combined mask depends only on the pod's *shape* (the fields they read)
and on the node set, so it is computed once per shape and reused until any
node changes (`NodeCache.generation`).  Pods made from one template share a
shape, so for a ReplicaSet of 10,000 pods the static filters run once.

Only when no node fits does the framework ask each filter, in order, *why*
the nodes it rejected failed (each node is charged to the first filter that
rejected it, as upstream does), to build the FailedScheduling message:
"0/5 nodes are available: 3 Insufficient cpu, 2 node(s) had untolerated taint {dedicated: gpu}."
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from arktos.api.strategies import pod_resource_requests
from arktos.client import object_key
from arktos.scheduler.nodecache import NodeCache

__all__ = ["FilterPlugin", "Framework", "PodInfo", "ScheduleResult", "ScorePlugin", "controller_owner"]

Obj = dict[str, Any]


def controller_owner(meta: Obj) -> str:
    """The uid of the pod's controller (the owner reference with controller=true), or ""."""
    for ref in meta.get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller") and ref.get("uid"):
            return str(ref["uid"])
    return ""


@dataclass(slots=True)
class PodInfo:
    """What scheduling needs of a pod, parsed once when it is queued (quantities are slow to parse)."""

    key: str
    tenant: str
    namespace: str
    name: str
    uid: str
    pod: Obj
    requests: dict[str, int]
    is_vm: bool
    owner: str
    priority: int
    node_name: str
    node_selector: dict[str, str]
    required_terms: list[Obj] | None  # None: no required node affinity
    preferred_terms: list[Obj]
    tolerations: list[Obj]
    shape: bytes = b""  # what depends on node properties only (labels, taints, ...), as one hashable value

    @classmethod
    def from_pod(cls, pod: Obj) -> PodInfo:
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        affinity = ((spec.get("affinity") or {}).get("nodeAffinity") or {})
        required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
        terms = None if not isinstance(required, dict) else [
            t for t in required.get("nodeSelectorTerms") or [] if isinstance(t, dict)]
        preferred = [t for t in affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or []
                     if isinstance(t, dict)]
        selector = {str(k): str(v) for k, v in (spec.get("nodeSelector") or {}).items()}
        tolerations = [t for t in spec.get("tolerations") or [] if isinstance(t, dict)]
        is_vm = isinstance(spec.get("virtualMachine"), dict)
        node_name = str(spec.get("nodeName") or "")
        priority = spec.get("priority")
        info = cls(
            key=object_key(pod), tenant=str(meta.get("tenant") or ""), namespace=str(meta.get("namespace") or ""),
            name=str(meta.get("name") or ""), uid=str(meta.get("uid") or ""), pod=pod,
            requests=pod_resource_requests(pod), is_vm=is_vm, owner=controller_owner(meta),
            priority=priority if isinstance(priority, int) and not isinstance(priority, bool) else 0,
            node_name=node_name, node_selector=selector, required_terms=terms, preferred_terms=preferred,
            tolerations=tolerations,
        )
        info.shape = orjson.dumps([node_name, selector, terms, preferred, tolerations, is_vm],
                                  option=orjson.OPT_SORT_KEYS)
        return info


class FilterPlugin:
    """Says which nodes can run the pod.  Subclasses set `name`, `reason` and `static`."""

    name = "filter"
    reason = "node(s) were rejected"
    static = True  # reads only node properties, never pod placement

    def filter(self, pod: PodInfo, cache: NodeCache) -> np.ndarray:
        """A boolean mask over `cache.n` rows: True where the pod may go."""
        raise NotImplementedError

    def reasons(self, pod: PodInfo, cache: NodeCache, rows: np.ndarray) -> Counter[str]:
        """Why each of `rows` (which this filter rejected) failed: reason -> number of nodes."""
        return Counter({self.reason: len(rows)})


class ScorePlugin:
    """Ranks nodes 0..100; `weight` scales it in the sum.

    Scores come for *all* `cache.n` rows, and the framework ignores the
    infeasible ones: computing over contiguous whole columns is cheaper than
    gathering the feasible rows first.  A plugin that normalises (best node =
    100) does so over the `feasible` mask.  `state` is scratch space shared by
    the plugins for one decision (two plugins need the same fractions);
    `state["shape"]` lives as long as the pod's shape and the node set stay
    the same, for what depends on nothing else (label matches, taint tables).
    """

    name = "score"

    def __init__(self, weight: float = 1.0) -> None:
        self.weight = weight

    def score(self, pod: PodInfo, cache: NodeCache, feasible: np.ndarray, state: dict[str, Any]) -> np.ndarray | None:
        """Scores for every row; None when the plugin has no preference for this pod."""
        raise NotImplementedError


@dataclass(slots=True)
class ScheduleResult:
    node: str | None
    feasible: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    message: str = ""


class Framework:
    """Runs the filters and scores for one pod at a time over a `NodeCache`."""

    def __init__(self, filters: Sequence[FilterPlugin], scores: Sequence[ScorePlugin],
                 rng: random.Random | None = None, shape_cache_size: int = 4096) -> None:
        self.filters = list(filters)
        self.scores = [s for s in scores if s.weight]
        self.rng = rng or random.Random()
        self._static = [f for f in self.filters if f.static]
        self._dynamic = [f for f in self.filters if not f.static]
        self._shapes: dict[bytes, dict[str, Any]] = {}  # pod shape -> what is known of it for this node set
        self._shapes_generation = -1
        self._shape_cache_size = shape_cache_size

    def shape_memo(self, pod: PodInfo, cache: NodeCache) -> dict[str, Any]:
        """Scratch space for results that depend only on the pod's shape and the node set (not on placement)."""
        if self._shapes_generation != cache.generation:
            self._shapes.clear()
            self._shapes_generation = cache.generation
        memo = self._shapes.get(pod.shape)
        if memo is None:
            if len(self._shapes) >= self._shape_cache_size:
                self._shapes.clear()
            memo = self._shapes[pod.shape] = {}
        return memo

    def static_mask(self, pod: PodInfo, cache: NodeCache) -> np.ndarray:
        """The static filters' combined mask (with `valid`), cached per pod shape and node generation."""
        memo = self.shape_memo(pod, cache)
        mask = memo.get("static")
        if mask is None:
            mask = cache.valid[: cache.n].copy()
            for f in self._static:
                mask &= f.filter(pod, cache)
            memo["static"] = mask
        return mask

    def feasible(self, pod: PodInfo, cache: NodeCache) -> np.ndarray:
        """The mask of every node that passes all filters."""
        mask = self.static_mask(pod, cache)
        for f in self._dynamic:
            mask = mask & f.filter(pod, cache)
        return mask

    def schedule(self, pod: PodInfo, cache: NodeCache) -> ScheduleResult:
        mask = self.feasible(pod, cache)
        count = int(np.count_nonzero(mask))
        if count == 0:
            reasons = self.diagnose(pod, cache)
            return ScheduleResult(None, 0, reasons, failure_message(len(cache), reasons))
        if count == 1:
            return ScheduleResult(cache.names[int(np.argmax(mask))], 1)
        total: np.ndarray | None = None
        state: dict[str, Any] = {"shape": self.shape_memo(pod, cache)}
        for s in self.scores:
            values = s.score(pod, cache, mask, state)
            if values is None:
                continue
            if total is None:
                total = values * s.weight
            else:
                total += values * s.weight
        if total is None:
            best = np.flatnonzero(mask)
        else:
            total[~mask] = -np.inf
            best = np.flatnonzero(total >= total.max() - 1e-9)
        row = int(best[self.rng.randrange(best.size)]) if best.size > 1 else int(best[0])
        return ScheduleResult(cache.names[row], count)

    def diagnose(self, pod: PodInfo, cache: NodeCache) -> Counter[str]:
        """Each node charged to the first filter that rejects it, with that filter's reasons."""
        remaining = cache.valid[: cache.n].copy()
        reasons: Counter[str] = Counter()
        for f in self.filters:
            ok = f.filter(pod, cache)
            failed = np.flatnonzero(remaining & ~ok)
            if failed.size:
                reasons.update(f.reasons(pod, cache, failed))
            remaining &= ok
        return reasons


def failure_message(nodes: int, reasons: Counter[str]) -> str:
    """Upstream's FitError text; reasons by count, largest first."""
    if not reasons:
        return f"0/{nodes} nodes are available."
    parts = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
    return f"0/{nodes} nodes are available: " + ", ".join(f"{n} {r}" for r, n in parts) + "."
