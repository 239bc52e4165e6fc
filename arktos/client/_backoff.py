"""Exponential backoff with jitter, shared by request retries, informers and leader election.

Jitter matters more than the curve: after an API server restart every client
in the cluster reconnects, and without it they would all do so in lock step.
"""

from __future__ import annotations

import random


class Backoff:
    """Delays `initial * factor**n`, capped at `cap`, each shortened by a random share of up to `jitter`."""

    def __init__(self, initial: float = 0.2, cap: float = 5.0, factor: float = 2.0, jitter: float = 0.5) -> None:
        self.initial = initial
        self.cap = cap
        self.factor = factor
        self.jitter = jitter
        self.attempt = 0

    def next(self) -> float:
        base = min(self.cap, self.initial * self.factor ** self.attempt)
        self.attempt += 1
        return base * (1.0 - self.jitter * random.random())

    def reset(self) -> None:
        self.attempt = 0
