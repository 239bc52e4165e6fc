"""The scheduling queue: pending pods in order, with backoff, parked while nothing can help them.

Three places a pending pod can wait, as in upstream's PriorityQueue:

* active: ready to be tried, highest `spec.priority` first, then first come.
* backoff: tried and failed recently; goes back to active when its backoff
  (1 s doubling per attempt, capped) has passed.  Pods whose *binding*
  failed wait here too.
* unschedulable: no node fits and trying again cannot help until the cluster
  changes.  `move_all` (a node added or changed, a pod deleted, capacity
  freed) sends them to backoff or active; so does a timeout (60 s), as a
  safety net for changes the scheduler does not watch.

While a pod is being tried it is "in flight" and in none of them; an update
of it then only replaces the object the attempt will requeue.  An update that
changes what scheduling reads (spec, labels, annotations) reactivates a
parked pod at once; a status-only update (our own PodScheduled condition) does
not, or every failed attempt would trigger the next.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from arktos.scheduler.framework import PodInfo

__all__ = ["QueuedPod", "SchedulingQueue"]

Where = Literal["active", "backoff", "unschedulable", "inflight"]


@dataclass(slots=True)
class QueuedPod:
    info: PodInfo
    attempts: int = 0
    where: Where = "active"
    seq: int = 0  # this entry's ticket in whichever heap holds it (stale tickets are skipped)
    backoff_until: float = 0.0
    parked_at: float = 0.0
    move_seen: int = 0  # move_all generation when this attempt started


class SchedulingQueue:
    def __init__(self, initial_backoff: float = 1.0, max_backoff: float = 10.0,
                 unschedulable_timeout: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.unschedulable_timeout = unschedulable_timeout
        self.clock = clock
        self.pods: dict[str, QueuedPod] = {}
        self._active: list[tuple[int, int, str]] = []  # (-priority, seq, key)
        self._backoff: list[tuple[float, int, str]] = []  # (until, seq, key)
        self._parked: dict[str, QueuedPod] = {}  # the unschedulable ones, so a move costs what is parked
        self._seq = itertools.count()
        self._moves = 0
        self._wakeup = asyncio.Event()
        self.counts = {"active": 0, "backoff": 0, "unschedulable": 0, "inflight": 0}

    def __len__(self) -> int:
        return len(self.pods)

    def __contains__(self, key: object) -> bool:
        return key in self.pods

    def _set(self, qp: QueuedPod, where: Where) -> None:
        self.counts[qp.where] -= 1
        if qp.where == "unschedulable":
            self._parked.pop(qp.info.key, None)
        qp.where = where
        self.counts[where] += 1
        if where == "unschedulable":
            self._parked[qp.info.key] = qp

    def _to_active(self, qp: QueuedPod) -> None:
        self._set(qp, "active")
        qp.seq = next(self._seq)
        heapq.heappush(self._active, (-qp.info.priority, qp.seq, qp.info.key))
        self._wakeup.set()

    def _insert(self, qp: QueuedPod) -> None:
        """Track a pod the queue does not hold yet, as in flight, so `_to_active`/`_to_backoff` can place it."""
        qp.where = "inflight"
        self.pods[qp.info.key] = qp
        self.counts["inflight"] += 1

    def _to_backoff(self, qp: QueuedPod) -> None:
        if qp.backoff_until <= self.clock():
            self._to_active(qp)
            return
        self._set(qp, "backoff")
        qp.seq = next(self._seq)
        heapq.heappush(self._backoff, (qp.backoff_until, qp.seq, qp.info.key))

    def backoff_for(self, attempts: int) -> float:
        return min(self.max_backoff, self.initial_backoff * (2 ** max(0, attempts - 1)))

    # -- informer side -------------------------------------------------------------------------

    def add(self, info: PodInfo) -> None:
        """A new pending pod, or one seen again (relist): it goes to active unless already known."""
        qp = self.pods.get(info.key)
        if qp is not None:
            qp.info = info
            return
        qp = QueuedPod(info)
        self._insert(qp)
        self._to_active(qp)

    def update(self, key: str, pod: dict[str, Any], relevant: bool, parse: Callable[[dict], PodInfo]) -> None:
        """A pending pod changed; `relevant` when scheduling might now decide differently."""
        qp = self.pods.get(key)
        if qp is None:
            self.add(parse(pod))
            return
        if not relevant:
            qp.info.pod = pod
            return
        qp.info = parse(pod)
        if qp.where == "unschedulable":
            self._to_backoff(qp)  # active at once unless still backing off, as upstream

    def delete(self, key: str) -> QueuedPod | None:
        """Gone, bound elsewhere, or no longer ours: stale heap tickets are skipped later."""
        qp = self.pods.pop(key, None)
        if qp is not None:
            self.counts[qp.where] -= 1
            self._parked.pop(key, None)
        return qp

    def move_all(self) -> int:
        """The cluster changed in a way that may help parked pods: retry them (after their backoff)."""
        self._moves += 1
        parked = list(self._parked.values())
        for qp in parked:
            self._to_backoff(qp)
        return len(parked)

    # -- scheduler side ------------------------------------------------------------------------------

    def pop_nowait(self) -> QueuedPod | None:
        while self._active:
            _, seq, key = heapq.heappop(self._active)
            qp = self.pods.get(key)
            if qp is None or qp.where != "active" or qp.seq != seq:
                continue
            self._set(qp, "inflight")
            qp.attempts += 1
            qp.move_seen = self._moves
            return qp
        self._wakeup.clear()
        return None

    async def pop(self) -> QueuedPod:
        while True:
            qp = self.pop_nowait()
            if qp is not None:
                return qp
            await self._wakeup.wait()

    def done(self, key: str) -> None:
        """The attempt placed the pod (assumed): the queue lets go of it."""
        qp = self.pods.get(key)
        if qp is not None and qp.where == "inflight":
            self.delete(key)

    def requeue_unschedulable(self, qp: QueuedPod) -> None:
        """No node fits: park it, unless the cluster changed while it was tried (then back off only)."""
        if self.pods.get(qp.info.key) is not qp:
            return  # deleted (or replaced) meanwhile
        now = self.clock()
        qp.backoff_until = now + self.backoff_for(qp.attempts)
        if qp.move_seen != self._moves:
            self._to_backoff(qp)
            return
        self._set(qp, "unschedulable")
        qp.parked_at = now

    def requeue_backoff(self, qp: QueuedPod) -> None:
        """An error (the binding failed): try again after the backoff."""
        current = self.pods.get(qp.info.key)
        if current is None:
            self._insert(qp)
        elif current is not qp:
            return  # the informer brought a newer copy meanwhile; that one is queued already
        qp.backoff_until = self.clock() + self.backoff_for(qp.attempts)
        self._to_backoff(qp)

    def flush(self) -> None:
        """Backoffs that ended go to active; pods parked longer than the timeout are retried."""
        now = self.clock()
        while self._backoff and self._backoff[0][0] <= now:
            _, seq, key = heapq.heappop(self._backoff)
            qp = self.pods.get(key)
            if qp is not None and qp.where == "backoff" and qp.seq == seq:
                self._to_active(qp)
        stale = [qp for qp in self._parked.values() if now - qp.parked_at >= self.unschedulable_timeout]
        for qp in stale:
            self._to_backoff(qp)
