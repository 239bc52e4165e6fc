"""A client-side token bucket, as client-go's `--kube-api-qps` / `--kube-api-burst`.

Every component has one so that a bug (a hot loop of updates) or a stampede
(thousands of hollow nodes starting at once) slows the caller down instead of
the API server.  Waiters reserve their token before sleeping, so concurrent
callers are served in arrival order and the rate holds under any concurrency.
"""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    """`qps` tokens a second, at most `burst` saved up; `qps <= 0` means no limit."""

    def __init__(self, qps: float, burst: int) -> None:
        self.qps = float(qps)
        self.burst = max(1, int(burst))
        self._tokens = float(self.burst)
        self._stamp = time.monotonic()

    @property
    def unlimited(self) -> bool:
        return self.qps <= 0

    def _reserve(self) -> float:
        """Take one token (possibly going into debt); return how long to wait for it."""
        now = time.monotonic()
        self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.qps)
        self._stamp = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    async def acquire(self) -> None:
        if self.qps <= 0:
            return
        delay = self._reserve()
        if delay <= 0:
            return
        try:
            await asyncio.sleep(delay)
        except asyncio.CancelledError:
            # The request will not be sent: give the reservation back.
            self._tokens = min(float(self.burst), self._tokens + 1.0)
            raise
