"""A controller's work queue: keys, not events, with per-key exponential backoff.

Controllers reconcile *state*, so what they queue is the key of an object
(`tenant/namespace/name`), never the event that touched it: ten updates of a
namespace while it waits in the queue become one sync.  The rules are
client-go's workqueue rules, because they are what make level-triggered
controllers correct:

* a key is queued at most once (`add` while it waits is a no-op);
* a key is handed to at most one worker at a time: an `add` while it is
  being processed marks it dirty, and `done` queues it again, so the change
  that arrived during the sync is never lost and never races the sync;
* failures back off per key (`add_rate_limited`: base * 2**n up to a cap),
  so one broken object retries slowly while every other key flows, and
  `forget` resets the count after a success.
"""

from __future__ import annotations

import asyncio
import collections
import random

__all__ = ["QueueShutDown", "WorkQueue"]


class QueueShutDown(Exception):
    """`get` on a queue that is shutting down: the worker should return."""


class WorkQueue:
    """An asyncio work queue of string keys (see the module docstring)."""

    def __init__(self, name: str, *, base_delay: float = 0.05, max_delay: float = 30.0) -> None:
        self.name = name
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._queue: collections.deque[str] = collections.deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._failures: dict[str, int] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._wakeup = asyncio.Event()
        self._shutting_down = False
        # Counters for logs and tests.
        self.adds = 0
        self.retries = 0

    def __len__(self) -> int:
        """Keys waiting to be handed out (not those being processed or waiting on a timer)."""
        return len(self._queue)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def add(self, key: str) -> None:
        if self._shutting_down or key in self._dirty:
            return
        self.adds += 1
        self._dirty.add(key)
        if key in self._processing:
            return  # `done` queues it again
        self._queue.append(key)
        self._wakeup.set()

    def add_after(self, key: str, delay: float) -> None:
        """Queue `key` in `delay` seconds; an earlier pending timer for it wins."""
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        existing = self._timers.get(key)
        if existing is not None:
            if existing.when() <= loop.time() + delay:
                return
            existing.cancel()
        self._timers[key] = loop.call_later(delay, self._fire, key)

    def _fire(self, key: str) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def next_delay(self, key: str) -> float:
        """The backoff the key's next failure would wait (without counting one)."""
        n = self._failures.get(key, 0)
        delay = min(self.max_delay, self.base_delay * (2 ** min(n, 30)))
        # A little jitter so keys that failed together do not retry in lock step.
        return delay * (1.0 - 0.1 * random.random())

    def add_rate_limited(self, key: str, max_delay: float | None = None) -> float:
        """Queue `key` again after its exponential backoff (at most `max_delay`); returns the delay chosen."""
        delay = self.next_delay(key)
        if max_delay is not None:
            delay = max(0.0, min(delay, max_delay))
        self._failures[key] = self._failures.get(key, 0) + 1
        self.retries += 1
        self.add_after(key, delay)
        return delay

    def forget(self, key: str) -> None:
        """The key synced: its next failure starts the backoff from the beginning."""
        self._failures.pop(key, None)

    def num_requeues(self, key: str) -> int:
        return self._failures.get(key, 0)

    async def get(self) -> str:
        """The next key; the caller must call `done(key)` when finished with it."""
        while not self._queue:
            if self._shutting_down:
                raise QueueShutDown(self.name)
            self._wakeup.clear()
            await self._wakeup.wait()
        key = self._queue.popleft()
        self._dirty.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty and not self._shutting_down:
            self._queue.append(key)
            self._wakeup.set()

    def shut_down(self) -> None:
        """Stop handing out keys: waiting workers get `QueueShutDown`, pending retries are dropped."""
        self._shutting_down = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._queue.clear()
        self._dirty.clear()
        self._wakeup.set()

    def busy(self) -> int:
        """Keys being processed right now."""
        return len(self._processing)
