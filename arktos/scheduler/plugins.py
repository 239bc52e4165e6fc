"""The default filter and score plugins, each vectorised over all nodes of a `NodeCache`.

Filters (in the order a rejected node is charged to them):

* `NodeReady`: the Ready condition is True (and the network is available).
* `NodeUnschedulable`: `spec.unschedulable` nodes, unless the pod tolerates
  `node.kubernetes.io/unschedulable:NoSchedule`.
* `NodeName`: `spec.nodeName` set before scheduling names the only node.
* `TaintToleration`: NoSchedule / NoExecute taints the pod does not tolerate.
* `NodeAffinity`: `nodeSelector` and required node affinity (matchExpressions
  In/NotIn/Exists/DoesNotExist/Gt/Lt, matchFields metadata.name).
* `Runtime`: a VM pod needs a VM-capable node, a container pod a
  container-capable one (labels in `arktos.scheduler.nodecache`).
* `NodeResourcesFit`: cpu, memory, pods, ephemeral storage and extended
  resources against allocatable minus what the placed and assumed pods request.

Scores (0..100 each, weighted): `LeastAllocated`, `BalancedAllocation`,
`OwnerSpread` (pods of one controller across nodes, and zones when nodes have
zone labels), `NodeAffinityPreferred`, `TaintPreferNoSchedule`.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from arktos.scheduler.framework import FilterPlugin, PodInfo, ScorePlugin
from arktos.scheduler.nodecache import (
    CPU,
    DEFAULT_MEMORY_REQUEST,
    DEFAULT_MILLI_CPU_REQUEST,
    HARD_EFFECTS,
    MEMORY,
    NodeCache,
    tolerates,
)

__all__ = [
    "BalancedAllocation",
    "LeastAllocated",
    "NodeAffinity",
    "NodeAffinityPreferred",
    "NodeName",
    "NodeReady",
    "NodeResourcesFit",
    "NodeUnschedulable",
    "OwnerSpread",
    "Runtime",
    "TaintPreferNoSchedule",
    "TaintToleration",
    "default_filters",
    "default_scores",
    "term_mask",
]

MAX_SCORE = 100.0
UNSCHEDULABLE_TAINT = ("node.kubernetes.io/unschedulable", "", "NoSchedule")


# -- filters -------------------------------------------------------------------------------------


class NodeReady(FilterPlugin):
    name = "NodeReady"
    reason = "node(s) were not ready"

    def filter(self, pod: PodInfo, cache: NodeCache) -> np.ndarray:
        return cache.ready[: cache.n]


class NodeUnschedulable(FilterPlugin):
    name = "NodeUnschedulable"
    reason = "node(s) were unschedulable"

    def filter(self, pod: PodInfo, cache: NodeCache) -> np.ndarray:
        if tolerates(pod.tolerations, UNSCHEDULABLE_TAINT):
            return np.ones(cache.n, bool)
        return ~cache.unschedulable[: cache.n]


class NodeName(FilterPlugin):
    name = "NodeName"
    reason = "node(s) didn't match the requested node name"

    def filter(self, pod: PodInfo, cache: NodeCache) -> np.ndarray:
        if not pod.node_name:
            return np.ones(cache.n, bool)
        mask = cache.name_mask("In", [pod.node_name])
        assert mask is not None
        return mask


def _untolerated(tolerations: list[dict], taints: tuple, effects: frozenset[str]) -> list[tuple[str, str, str]]:
    return [t for t in taints if t[2] in effects and not tolerates(tolerations, t)]


class TaintToleration(FilterPlugin):
    """Evaluated once per distinct taint set (signature), then spread to the rows by lookup."""

    name = "TaintToleration"

    def _table(self, pod: PodInfo, cache: NodeCache) -> np.ndarray:
        return np.array([not _untolerated(pod.tolerations, sig, HARD_EFFECTS) for sig in cache.signatures], bool)

    def filter(self, pod: PodInfo, cache: NodeCache) -> np.ndarray:
        return self._table(pod, cache)[cache.taint_sig[: cache.n]]

    def reasons(self, pod: PodInfo, cache: NodeCache, rows: np.ndarray) -> Counter[str]:
        out: Counter[str] = Counter()
        for sig, count in Counter(cache.taint_sig[rows].tolist()).items():
            bad = _untolerated(pod.tolerations, cache.signatures[sig], HARD_EFFECTS)
            key, value, _ = bad[0] if bad else ("", "", "")
            out[f"node(s) had untolerated taint {{{key}: {value}}}"] += count
        return out


def term_mask(cache: NodeCache, term: dict) -> np.ndarray:
    """Rows matching one NodeSelectorTerm: all its expressions and fields; an empty term matches nothing."""
    exprs = [e for e in term.get("matchExpressions") or [] if isinstance(e, dict)]
    fields = [e for e in term.get("matchFields") or [] if isinstance(e, dict)]
    if not exprs and not fields:
        return np.zeros(cache.n, bool)
    mask = np.ones(cache.n, bool)
    for e in exprs:
        m = cache.label_mask(str(e.get("key") or ""), str(e.get("operator") or ""),
                             [str(v) for v in e.get("values") or []])
        if m is None:
            return np.zeros(cache.n, bool)  # an invalid requirement matches nothing, as upstream
        mask &= m
    for e in fields:
        if e.get("key") != "metadata.name":
            return np.zeros(cache.n, bool)
        m = cache.name_mask(str(e.get("operator") or ""), [str(v) for v in e.get("values") or []])
        if m is None:
            return np.zeros(cache.n, bool)
        mask &= m
    return mask


class NodeAffinity(FilterPlugin):
    name = "NodeAffinity"
    reason = "node(s) didn't match Pod's node affinity/selector"

    def filter(self, pod: PodInfo, cache: NodeCache) -> np.ndarray:
        mask = np.ones(cache.n, bool)
        for key, value in pod.node_selector.items():
            m = cache.label_mask(key, "In", [value])
            assert m is not None
            mask &= m
        if pod.required_terms is not None:
            any_term = np.zeros(cache.n, bool)
            for term in pod.required_terms:
                any_term |= term_mask(cache, term)
            mask &= any_term
        return mask


class Runtime(FilterPlugin):
    name = "Runtime"

    def filter(self, pod: PodInfo, cache: NodeCache) -> np.ndarray:
        return (cache.runs_vms if pod.is_vm else cache.runs_containers)[: cache.n]

    def reasons(self, pod: PodInfo, cache: NodeCache, rows: np.ndarray) -> Counter[str]:
        return Counter({f"node(s) had no {'VM' if pod.is_vm else 'container'} runtime": len(rows)})


class NodeResourcesFit(FilterPlugin):
    """Requests of the pod against what is left; the only filter that depends on placement."""

    name = "NodeResourcesFit"
    static = False

    def filter(self, pod: PodInfo, cache: NodeCache) -> np.ndarray:
        mask: np.ndarray | None = None
        for res, amount in pod.requests.items():
            if amount <= 0:
                continue
            col = cache.column(res)
            fits = cache.free(col) >= amount
            mask = fits if mask is None else mask & fits
        return np.ones(cache.n, bool) if mask is None else mask

    def reasons(self, pod: PodInfo, cache: NodeCache, rows: np.ndarray) -> Counter[str]:
        out: Counter[str] = Counter()
        for res, amount in pod.requests.items():
            if amount <= 0:
                continue
            col = cache.column(res)
            short = int(np.count_nonzero(cache.alloc[col, rows] - cache.requested[col, rows] < amount))
            if short:
                out["Too many pods" if res == "pods" else f"Insufficient {res}"] += short
        return out


def default_filters() -> list[FilterPlugin]:
    return [NodeReady(), NodeUnschedulable(), NodeName(), TaintToleration(), NodeAffinity(), Runtime(),
            NodeResourcesFit()]


# -- scores ----------------------------------------------------------------------------------------


def _fractions(pod: PodInfo, cache: NodeCache, state: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """cpu and memory use after placing the pod, as fractions of allocatable (inf where none); once per decision."""
    found = state.get("fractions")
    if found is None:
        n = cache.n
        cpu = pod.requests.get("cpu", 0) or DEFAULT_MILLI_CPU_REQUEST
        mem = pod.requests.get("memory", 0) or DEFAULT_MEMORY_REQUEST
        found = state["fractions"] = ((cache.nonzero[CPU, :n] + cpu) * cache.inv_alloc[CPU, :n],
                                      (cache.nonzero[MEMORY, :n] + mem) * cache.inv_alloc[MEMORY, :n])
    return found


class LeastAllocated(ScorePlugin):
    """Prefer the emptiest nodes (cpu and memory weighted alike), which spreads load."""

    name = "LeastAllocated"

    def score(self, pod: PodInfo, cache: NodeCache, feasible: np.ndarray, state: dict[str, Any]) -> np.ndarray:
        cpu, mem = _fractions(pod, cache, state)
        out = np.clip(1.0 - cpu, 0.0, 1.0)
        out += np.clip(1.0 - mem, 0.0, 1.0)
        out *= MAX_SCORE / 2
        return out


class BalancedAllocation(ScorePlugin):
    """Prefer nodes whose cpu and memory use stay alike, so neither is stranded."""

    name = "BalancedAllocation"

    def score(self, pod: PodInfo, cache: NodeCache, feasible: np.ndarray, state: dict[str, Any]) -> np.ndarray:
        cpu, mem = _fractions(pod, cache, state)
        out = np.subtract(cpu, mem)
        np.abs(out, out=out)
        np.subtract(1.0, out, out=out)
        out *= MAX_SCORE
        out[(cpu >= 1.0) | (mem >= 1.0)] = 0.0  # also clears the NaN of inf - inf (a node with neither)
        return out


def _reverse_normalised(counts: np.ndarray, feasible: np.ndarray) -> np.ndarray:
    """100 for the fewest, 0 for the most (over the feasible rows); all 100 when nothing counts."""
    top = float(np.max(counts, where=feasible, initial=0.0))
    if top <= 0:
        return np.full(counts.shape, MAX_SCORE)
    return (top - counts) * (MAX_SCORE / top)


class OwnerSpread(ScorePlugin):
    """Fewest pods of the same controller first; with zone labels, zones count for 2/3 (as upstream)."""

    name = "OwnerSpread"
    ZONE_WEIGHT = 2.0 / 3.0

    def score(self, pod: PodInfo, cache: NodeCache, feasible: np.ndarray, state: dict[str, Any]) -> np.ndarray | None:
        if not pod.owner:
            return None
        counts = cache.owner_counts.get(pod.owner)
        if counts is None:
            return None
        n = cache.n
        per_node = counts[:n].astype(np.float64)
        node_score = _reverse_normalised(per_node, feasible)
        zones = cache.zone_column()
        if zones is None:
            return node_score
        zone_ids = zones.ids[:n]
        has_zone = (zone_ids >= 0) & feasible
        if not has_zone.any():
            return node_score
        per_zone = np.bincount(zone_ids[has_zone], weights=per_node[has_zone], minlength=len(zones.names))
        zone_counts = np.where(zone_ids >= 0, per_zone[np.maximum(zone_ids, 0)], 0.0)
        zone_score = _reverse_normalised(zone_counts, has_zone)
        mixed = node_score * (1 - self.ZONE_WEIGHT) + zone_score * self.ZONE_WEIGHT
        return np.where(zone_ids >= 0, mixed, node_score)


class NodeAffinityPreferred(ScorePlugin):
    """Sum of the weights of the preferred terms a node matches, scaled so the best node gets 100."""

    name = "NodeAffinityPreferred"

    def score(self, pod: PodInfo, cache: NodeCache, feasible: np.ndarray, state: dict[str, Any]) -> np.ndarray | None:
        if not pod.preferred_terms:
            return None
        memo = state["shape"]
        total = memo.get(self.name)
        if total is None:
            total = memo[self.name] = np.zeros(cache.n)
            for pref in pod.preferred_terms:
                weight = pref.get("weight")
                term = pref.get("preference")
                if not isinstance(weight, int) or not isinstance(term, dict) or weight == 0:
                    continue
                total += weight * term_mask(cache, term)
        top = float(np.max(total, where=feasible, initial=0.0))
        return None if top <= 0 else total * (MAX_SCORE / top)


class TaintPreferNoSchedule(ScorePlugin):
    """Fewer untolerated PreferNoSchedule taints first."""

    name = "TaintPreferNoSchedule"
    EFFECTS = frozenset({"PreferNoSchedule"})

    def score(self, pod: PodInfo, cache: NodeCache, feasible: np.ndarray, state: dict[str, Any]) -> np.ndarray | None:
        if len(cache.signatures) == 1:
            return None
        memo = state["shape"]
        counts = memo.get(self.name, False)
        if counts is False:
            prefer = [t for t in pod.tolerations if (t.get("effect") or "PreferNoSchedule") == "PreferNoSchedule"]
            table = np.array([len(_untolerated(prefer, sig, self.EFFECTS)) for sig in cache.signatures], np.float64)
            counts = memo[self.name] = table[cache.taint_sig[: cache.n]] if table.any() else None
        return None if counts is None else _reverse_normalised(counts, feasible)


def default_scores(weights: dict[str, float] | None = None) -> list[ScorePlugin]:
    """The score plugins with their weights (1 each unless `weights` says otherwise; 0 turns one off)."""
    weights = weights or {}
    plugins: list[type[ScorePlugin]] = [LeastAllocated, BalancedAllocation, OwnerSpread, NodeAffinityPreferred,
                                        TaintPreferNoSchedule]
    unknown = set(weights) - {p.name for p in plugins}
    if unknown:
        raise ValueError(f"unknown score plugin(s): {', '.join(sorted(unknown))}")
    return [p(weights.get(p.name, 1.0)) for p in plugins]
