"""The scheduler's view of the cluster: every node as a row of numpy arrays, and the pods on them.

Why arrays: a scheduling decision looks at every node.  With 5,000 nodes a
Python loop over node objects costs milliseconds per pod; the same checks as
array expressions over columns (allocatable and requested per resource,
ready, unschedulable, runtimes, label values, taint sets) cost tens of
microseconds.  So a node is a row index, and each property a column:

* `alloc[r, row]` / `requested[r, row]`: int64 amounts per resource `r`
  (cpu in millicores, everything else in whole units, as
  `arktos.api.quantity.resource_amount` counts them).  `requested` holds the
  pods the informer has seen on the node *and* the pods this scheduler has
  assumed there but whose binding the informer has not shown yet.  Resource
  first, so that one resource over all nodes is contiguous memory.
* `nonzero[0:2, row]`: cpu and memory requested with upstream's defaults for
  pods that request nothing (100m, 200Mi), used by the scores only, so that
  a node full of best-effort pods does not look empty; `inv_alloc[0:2, row]`
  is 1 / allocatable cpu and memory (inf where there is none), so the scores
  multiply instead of dividing and never meet a zero.
* label columns: per label key an int32 array of value ids (-1 = absent), so
  `key In (a, b)`, `Exists`, `Gt` and friends become one table lookup per
  node (`table[ids + 1]`), whatever the number of distinct values.
* taints: nodes with the same taint set share a signature id, so tolerations
  are evaluated once per distinct taint set, not once per node.

Pods are kept by key with their node *name*, not row: a pod may arrive before
its node (or sit on a node of a resource partition we do not watch), and its
requests are added to the row when the node appears.

Assumed pods: when the scheduler picks a node it `assume`s the pod there at
once (so the next decision, microseconds later, already sees the node
fuller) and binds in the background.  The informer's view of the bound pod
`confirm`s it; a failed binding `forget`s it; a binding that succeeded but
never shows up in the informer expires after `assumed_ttl` seconds, so a lost
watch event cannot leak capacity forever.

Runtime labels (Arktos runs container and VM pods side by side; the node
agent advertises which runtimes it has):

* `arktos.io/runtime-container=true`: the node runs container pods.
* `arktos.io/runtime-vm=true`: the node runs VM pods.

A node that carries neither label is a plain (Kubernetes-style) node: it runs
containers and no VMs.  Once a node carries either label, the labels say it
all: `runtime-vm=true` alone makes a VM-only node.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from arktos.api.quantity import QuantityError, resource_amount

__all__ = [
    "DEFAULT_MAX_PODS",
    "DEFAULT_MEMORY_REQUEST",
    "DEFAULT_MILLI_CPU_REQUEST",
    "RUNTIME_CONTAINER_LABEL",
    "RUNTIME_VM_LABEL",
    "NodeCache",
    "Taint",
    "node_conditions_ready",
    "tolerates",
]

log = logging.getLogger("arktos.scheduler.cache")
Obj = dict[str, Any]

RUNTIME_CONTAINER_LABEL = "arktos.io/runtime-container"
RUNTIME_VM_LABEL = "arktos.io/runtime-vm"
ZONE_LABELS = ("topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone")
BASE_RESOURCES = ("cpu", "memory", "pods", "ephemeral-storage")
CPU, MEMORY, PODS = 0, 1, 2
# Upstream's non-zero defaults for scoring (pkg/scheduler/util/non_zero.go).
DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024
# A Node object without `pods` in its allocatable (a hand-made one) gets the kubelet's default --max-pods.
DEFAULT_MAX_PODS = 110
HARD_EFFECTS = frozenset({"NoSchedule", "NoExecute"})

Taint = tuple[str, str, str]  # (key, value, effect)


def tolerates(tolerations: Iterable[Mapping[str, Any]], taint: Taint) -> bool:
    """Whether any toleration tolerates `taint` (upstream's Toleration.ToleratesTaint)."""
    key, value, effect = taint
    for t in tolerations:
        t_effect = t.get("effect") or ""
        if t_effect and t_effect != effect:
            continue
        t_key = t.get("key") or ""
        if t_key and t_key != key:
            continue
        op = t.get("operator") or "Equal"
        if op == "Exists" or (op == "Equal" and str(t.get("value") or "") == value):
            return True
    return False


def node_conditions_ready(node: Obj) -> bool:
    """Ready=True and no NetworkUnavailable=True: what upstream's CheckNodeCondition demanded."""
    ready = False
    for c in (node.get("status") or {}).get("conditions") or []:
        if not isinstance(c, dict):
            continue
        if c.get("type") == "Ready":
            ready = c.get("status") == "True"
        elif c.get("type") == "NetworkUnavailable" and c.get("status") == "True":
            return False
    return ready


def _amounts(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    if isinstance(values, dict):
        for name, value in values.items():
            try:
                out[str(name)] = resource_amount(str(name), value)
            except QuantityError:
                continue
    return out


def _runtimes(labels: Mapping[str, str]) -> tuple[bool, bool]:
    """(runs containers, runs VMs) from the runtime labels; see the module docstring."""
    c, v = labels.get(RUNTIME_CONTAINER_LABEL), labels.get(RUNTIME_VM_LABEL)
    if c is None and v is None:
        return True, False
    return c == "true", v == "true"


@dataclass(slots=True)
class _LabelColumn:
    """One label key over all rows: value ids per row, and the id of each value seen."""

    ids: np.ndarray
    values: dict[str, int] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)
    _ints: np.ndarray | None = None

    def id_of(self, value: str) -> int:
        vid = self.values.get(value)
        if vid is None:
            vid = self.values[value] = len(self.names)
            self.names.append(value)
            self._ints = None
        return vid

    def ints(self) -> np.ndarray:
        """Each value as a number (NaN when not an integer), for Gt/Lt."""
        if self._ints is None or len(self._ints) != len(self.names):
            out = np.full(len(self.names), np.nan)
            for i, v in enumerate(self.names):
                with contextlib.suppress(ValueError):
                    out[i] = int(v)
            self._ints = out
        return self._ints


@dataclass(slots=True)
class PodEntry:
    """A pod the cache counts: where, how much, and whether it is only assumed so far."""

    node: str
    requests: dict[str, int]
    owner: str
    assumed: bool = False
    deadline: float | None = None  # for assumed pods whose binding finished: expire after this


class NodeCache:
    """Nodes as array rows plus the pods placed on them (see the module docstring)."""

    def __init__(self, capacity: int = 64, assumed_ttl: float = 30.0) -> None:
        self.assumed_ttl = assumed_ttl
        self.n = 0  # rows in use or freed; arrays hold at least this many
        self._cap = max(8, capacity)
        self.names: list[str | None] = []
        self.rows: dict[str, int] = {}
        self._free: list[int] = []
        self.resources: list[str] = list(BASE_RESOURCES)
        self.res_index: dict[str, int] = {r: i for i, r in enumerate(self.resources)}
        cap, nres = self._cap, len(self.resources)
        self.valid = np.zeros(cap, bool)
        self.alloc = np.zeros((nres, cap), np.int64)
        self.requested = np.zeros((nres, cap), np.int64)
        self.nonzero = np.zeros((2, cap), np.float64)
        self.inv_alloc = np.full((2, cap), np.inf)
        self.ready = np.zeros(cap, bool)
        self.unschedulable = np.zeros(cap, bool)
        self.runs_containers = np.zeros(cap, bool)
        self.runs_vms = np.zeros(cap, bool)
        self.taint_sig = np.zeros(cap, np.int32)
        self.signatures: list[tuple[Taint, ...]] = [()]  # id -> taint set; 0 is "no taints"
        self._sig_ids: dict[tuple[Taint, ...], int] = {(): 0}
        self.labels: dict[str, _LabelColumn] = {}
        self._node_labels: list[dict[str, str]] = []
        self.owner_counts: dict[str, np.ndarray] = {}
        self.pods: dict[str, PodEntry] = {}
        self.pods_by_node: dict[str, set[str]] = {}
        # Bumped when anything but pod accounting changes, so per-pod-shape results can be cached.
        self.generation = 0

    # -- rows -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.rows)

    def _grow(self, need: int) -> None:
        if need <= self._cap:
            return
        cap = max(need, self._cap * 2)

        def grown(a: np.ndarray, fill: Any = 0) -> np.ndarray:
            """The same array with the row axis (the last) `cap` long."""
            out = np.full((*a.shape[:-1], cap), fill, a.dtype)
            out[..., : a.shape[-1]] = a
            return out

        self.valid, self.alloc, self.requested = grown(self.valid), grown(self.alloc), grown(self.requested)
        self.nonzero, self.inv_alloc = grown(self.nonzero), grown(self.inv_alloc, np.inf)
        self.ready, self.unschedulable = grown(self.ready), grown(self.unschedulable)
        self.runs_containers, self.runs_vms = grown(self.runs_containers), grown(self.runs_vms)
        self.taint_sig = grown(self.taint_sig)
        for col in self.labels.values():
            col.ids = grown(col.ids, -1)
        for owner, counts in self.owner_counts.items():
            self.owner_counts[owner] = grown(counts)
        self._cap = cap

    def column(self, resource: str) -> int:
        """The column of a resource, added (and filled from the known pods) when first seen."""
        idx = self.res_index.get(resource)
        if idx is not None:
            return idx
        idx = len(self.resources)
        self.resources.append(resource)
        self.res_index[resource] = idx
        self.alloc = np.vstack([self.alloc, np.zeros((1, self._cap), np.int64)])
        self.requested = np.vstack([self.requested, np.zeros((1, self._cap), np.int64)])
        for entry in self.pods.values():
            amount = entry.requests.get(resource)
            row = self.rows.get(entry.node)
            if amount and row is not None:
                self.requested[idx, row] += amount
        return idx

    def label_column(self, key: str) -> _LabelColumn | None:
        return self.labels.get(key)

    def zone_column(self) -> _LabelColumn | None:
        for key in ZONE_LABELS:
            col = self.labels.get(key)
            if col is not None and col.names:
                return col
        return None

    # -- nodes ------------------------------------------------------------------------

    def set_node(self, node: Obj) -> bool:
        """Add or update a node; whether anything a pending pod cares about changed."""
        meta = node.get("metadata") or {}
        name = meta.get("name")
        if not name:
            return False
        spec = node.get("spec") or {}
        status = node.get("status") or {}
        labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
        alloc = _amounts(status.get("capacity"))
        alloc.update(_amounts(status.get("allocatable")))
        alloc.setdefault("pods", DEFAULT_MAX_PODS)
        taints = tuple(sorted(
            (str(t.get("key") or ""), str(t.get("value") or ""), str(t.get("effect") or ""))
            for t in spec.get("taints") or [] if isinstance(t, dict)))
        ready = node_conditions_ready(node)
        unschedulable = bool(spec.get("unschedulable"))
        containers, vms = _runtimes(labels)

        row = self.rows.get(name)
        added = row is None
        if row is None:
            row = self._free.pop() if self._free else self.n
            if row == self.n:
                self._grow(self.n + 1)
                self.n += 1
                self.names.append(name)
                self._node_labels.append({})
            else:
                self.names[row] = name
            self.rows[name] = row
            self.valid[row] = True
        changed = added
        # Resources: allocatable only; requests come from pods.
        old_alloc = self.alloc[:, row].copy()
        for res in alloc:
            self.column(res)
        self.alloc[:, row] = 0
        for res, amount in alloc.items():
            self.alloc[self.res_index[res], row] = amount
        if len(old_alloc) != self.alloc.shape[0] or not np.array_equal(old_alloc, self.alloc[:, row]):
            changed = True
            for i in (CPU, MEMORY):
                self.inv_alloc[i, row] = 1.0 / self.alloc[i, row] if self.alloc[i, row] > 0 else np.inf
        # Static properties: these invalidate cached per-pod-shape masks.
        sig = self._sig_ids.get(taints)
        if sig is None:
            sig = self._sig_ids[taints] = len(self.signatures)
            self.signatures.append(taints)
        static_changed = added or (
            self.ready[row] != ready or self.unschedulable[row] != unschedulable
            or self.runs_containers[row] != containers or self.runs_vms[row] != vms
            or self.taint_sig[row] != sig or self._node_labels[row] != labels)
        if static_changed:
            self.ready[row], self.unschedulable[row] = ready, unschedulable
            self.runs_containers[row], self.runs_vms[row] = containers, vms
            self.taint_sig[row] = sig
            self._set_labels(row, labels)
            self.generation += 1
            changed = True
        if added:
            for key in self.pods_by_node.get(name, ()):
                self._account(self.pods[key], row, +1)
        return changed

    def _set_labels(self, row: int, labels: dict[str, str]) -> None:
        old = self._node_labels[row]
        for key in old:
            if key not in labels:
                self.labels[key].ids[row] = -1
        for key, value in labels.items():
            col = self.labels.get(key)
            if col is None:
                col = self.labels[key] = _LabelColumn(np.full(self._cap, -1, np.int32))
            col.ids[row] = col.id_of(value)
        self._node_labels[row] = labels

    def remove_node(self, name: str) -> bool:
        row = self.rows.pop(name, None)
        if row is None:
            return False
        self.names[row] = None
        self.valid[row] = False
        self.alloc[:, row] = 0
        self.requested[:, row] = 0
        self.nonzero[:, row] = 0
        self.inv_alloc[:, row] = np.inf
        self.ready[row] = self.unschedulable[row] = self.runs_containers[row] = self.runs_vms[row] = False
        self.taint_sig[row] = 0
        self._set_labels(row, {})
        for counts in self.owner_counts.values():
            counts[row] = 0
        self._free.append(row)
        self.generation += 1
        return True

    def node_labels(self, row: int) -> dict[str, str]:
        return self._node_labels[row]

    # -- pods -------------------------------------------------------------------------

    def _account(self, entry: PodEntry, row: int, sign: int) -> None:
        for res, amount in entry.requests.items():
            if amount:
                self.requested[self.column(res), row] += sign * amount
        cpu, mem = entry.requests.get("cpu", 0), entry.requests.get("memory", 0)
        self.nonzero[CPU, row] += sign * (cpu or DEFAULT_MILLI_CPU_REQUEST)
        self.nonzero[MEMORY, row] += sign * (mem or DEFAULT_MEMORY_REQUEST)
        if entry.owner:
            counts = self.owner_counts.get(entry.owner)
            if counts is None:
                counts = self.owner_counts[entry.owner] = np.zeros(self._cap, np.int32)
            counts[row] += sign
            if sign < 0 and not counts.any():
                del self.owner_counts[entry.owner]

    def _place(self, key: str, entry: PodEntry) -> None:
        self.pods[key] = entry
        self.pods_by_node.setdefault(entry.node, set()).add(key)
        row = self.rows.get(entry.node)
        if row is not None:
            self._account(entry, row, +1)

    def _unplace(self, key: str) -> PodEntry | None:
        entry = self.pods.pop(key, None)
        if entry is None:
            return None
        keys = self.pods_by_node.get(entry.node)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self.pods_by_node[entry.node]
        row = self.rows.get(entry.node)
        if row is not None:
            self._account(entry, row, -1)
        return entry

    def assume(self, key: str, node: str, requests: dict[str, int], owner: str = "") -> None:
        """Count a pod on `node` from the moment the scheduler decides, before it is bound."""
        self._unplace(key)
        self._place(key, PodEntry(node, requests, owner, assumed=True))

    def finish_binding(self, key: str, now: float | None = None) -> None:
        """The binding went through: from now on the assumption expires if the informer never confirms it."""
        entry = self.pods.get(key)
        if entry is not None and entry.assumed:
            entry.deadline = (time.monotonic() if now is None else now) + self.assumed_ttl

    def forget(self, key: str) -> bool:
        """Drop an assumption (the binding failed); True when there was one."""
        entry = self.pods.get(key)
        if entry is None or not entry.assumed:
            return False
        self._unplace(key)
        return True

    def is_assumed(self, key: str) -> bool:
        entry = self.pods.get(key)
        return entry is not None and entry.assumed

    def set_pod(self, key: str, node: str, requests: dict[str, int], owner: str = "") -> None:
        """A pod the informer shows on `node` (confirms an assumption, or moves it if bound elsewhere)."""
        entry = self.pods.get(key)
        if entry is not None and entry.node == node and entry.requests == requests and entry.owner == owner:
            entry.assumed = False
            entry.deadline = None
            return
        self._unplace(key)
        self._place(key, PodEntry(node, requests, owner))

    def remove_pod(self, key: str) -> bool:
        return self._unplace(key) is not None

    def expire(self, now: float | None = None) -> list[str]:
        """Drop assumptions whose bound pod never showed up in time; their keys."""
        now = time.monotonic() if now is None else now
        gone = [k for k, e in self.pods.items() if e.assumed and e.deadline is not None and e.deadline < now]
        for key in gone:
            log.warning("assumed pod %s expired: its binding never showed up in the informer", key)
            self._unplace(key)
        return gone

    # -- vector helpers for the plugins -------------------------------------------------

    def label_mask(self, key: str, op: str, values: Iterable[str]) -> np.ndarray | None:
        """Rows whose label `key` satisfies a node-selector requirement; None when the requirement is invalid."""
        n = self.n
        col = self.labels.get(key)
        values = list(values)
        if op in ("In", "NotIn"):
            if not values:
                return None
            if col is None:
                return np.full(n, op == "NotIn")
            table = np.zeros(len(col.names) + 1, bool)
            for v in values:
                vid = col.values.get(v)
                if vid is not None:
                    table[vid + 1] = True
            hit = table[col.ids[:n] + 1]
            return hit if op == "In" else ~hit
        if op in ("Exists", "DoesNotExist"):
            if values:
                return None
            present = np.zeros(n, bool) if col is None else col.ids[:n] >= 0
            return present if op == "Exists" else ~present
        if op in ("Gt", "Lt"):
            if len(values) != 1:
                return None
            try:
                bound = int(values[0])
            except ValueError:
                return None
            if col is None:
                return np.zeros(n, bool)
            ints = col.ints()
            with np.errstate(invalid="ignore"):
                table = np.concatenate([[False], ints > bound if op == "Gt" else ints < bound])
            return table[col.ids[:n] + 1]
        return None

    def name_mask(self, op: str, values: Iterable[str]) -> np.ndarray | None:
        """matchFields on metadata.name (In / NotIn)."""
        if op not in ("In", "NotIn"):
            return None
        values = list(values)
        if not values:
            return None
        hit = np.zeros(self.n, bool)
        for v in values:
            row = self.rows.get(v)
            if row is not None:
                hit[row] = True
        return hit if op == "In" else ~hit

    def free(self, col: int) -> np.ndarray:
        n = self.n
        return self.alloc[col, :n] - self.requested[col, :n]
