"""Creating and deleting the pods a controller owns, the way every Kubernetes workload controller does it.

What the ReplicaSet, Job and DaemonSet controllers share:

* Expectations first: the creations and deletions are counted in the
  controller's `Expectations` before any request, so the next sync does not
  act again on a cache that has not seen them yet; a request that fails is
  marked observed at once, since the informer will never see its pod.
* Slow start (the ReplicaSet's): batches of 1, 2, 4, ... so a quota or an
  admission refusal costs one request rather than hundreds.
* Events as Kubernetes writes them: SuccessfulCreate, FailedCreate,
  SuccessfulDelete.
* A namespace being deleted refuses creations; that ends the attempt quietly
  (there is nothing to create there any more).  Any other failure is raised,
  so the controller's queue retries with back-off.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from arktos.api.errors import APIError
from arktos.client import Client, object_key
from arktos.controllers.base import ControllerContext, builtin, is_gone, is_terminating_refusal

__all__ = ["create_pods", "delete_pods"]

Obj = dict[str, Any]
PODS = builtin("", "pods")


class _Expectations(Protocol):
    def expect_creations(self, key: str, n: int) -> None: ...
    def creation_observed(self, key: str) -> None: ...
    def expect_deletions(self, key: str, pod_keys: list[str]) -> None: ...
    def deletion_observed(self, key: str, pod_key: str) -> None: ...


class PodOwner(Protocol):
    """A controller that owns pods: what the helpers below use of it."""

    client: Client
    ctx: ControllerContext
    expectations: _Expectations


async def create_pods(ctl: PodOwner, owner: Obj, key: str, bodies: Sequence[Obj], *, slow_start: bool = False) -> int:
    """Create `bodies` in `owner`'s tenant and namespace; how many were made (see the module docstring)."""
    if not bodies:
        return 0
    ctl.expectations.expect_creations(key, len(bodies))
    meta = owner["metadata"]
    tenant, namespace = meta.get("tenant"), meta.get("namespace")
    created, sent, batch = 0, 0, 1 if slow_start else len(bodies)
    while sent < len(bodies):
        chunk = bodies[sent:sent + batch]
        sent += len(chunk)
        results = await asyncio.gather(*(ctl.client.create(PODS, body, tenant=tenant, namespace=namespace)
                                         for body in chunk), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        for pod in results:
            if not isinstance(pod, BaseException):
                created += 1
                ctl.ctx.events.normal(owner, "SuccessfulCreate", "Created pod: %s", pod["metadata"]["name"])
        if failures:
            for _ in range(len(failures) + len(bodies) - sent):  # the failed ones and the batches not sent
                ctl.expectations.creation_observed(key)
            first = failures[0]
            if isinstance(first, APIError) and (is_terminating_refusal(first) or is_gone(first)):
                return created  # the namespace is going away: nothing to create there
            if isinstance(first, APIError):
                ctl.ctx.events.warning(owner, "FailedCreate", "Error creating: %s", first.message)
            raise first
        batch *= 2
    return created


async def delete_pods(ctl: PodOwner, owner: Obj, key: str, victims: Sequence[Obj],
                      grace: Callable[[Obj], int | None] | None = None) -> int:
    """Delete `victims` (each with its UID as precondition, and `grace(pod)` as its grace period when
    given); how many went.  A pod already gone, or replaced by a new one of its name, counts as done."""
    if not victims:
        return 0
    ctl.expectations.expect_deletions(key, [object_key(p) for p in victims])

    async def one(pod: Obj) -> None:
        meta = pod["metadata"]
        try:
            await ctl.client.delete(PODS, meta["name"], tenant=meta.get("tenant"), namespace=meta.get("namespace"),
                                    preconditions={"uid": meta["uid"]},
                                    grace_period_seconds=grace(pod) if grace is not None else None)
        except APIError as exc:
            ctl.expectations.deletion_observed(key, object_key(pod))
            if is_gone(exc) or exc.code == 409:
                return
            raise
        ctl.ctx.events.normal(owner, "SuccessfulDelete", "Deleted pod: %s", meta["name"])

    results = await asyncio.gather(*(one(p) for p in victims), return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        raise failures[0]
    return len(victims)
