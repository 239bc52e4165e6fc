"""The resource quota controller: each quota's status is what its namespace really uses.

As Kubernetes' resourcequota controller: status.hard is copied from spec.hard and status.used
recomputed from the objects that exist in the quota's namespace (pods that are not finished,
services, claims, config maps, secrets, replica sets, deployments, ... and `count/<resource>`),
when a quota changes, when an object of its namespace comes or goes (so a deletion frees quota),
and every `resource_quota_sync_period` seconds.  Usage counts only the quota's own tenant and
namespace (informer keys carry both).

The API server charges usage at admission before the object is stored, so for a moment a charge
exists for an object no informer has seen yet.  Writing a recomputed, lower figure then would
hand the same room out twice.  So increases are written at once, while a decrease is written
only when the quota's resourceVersion stayed the same for `resource_quota_decrease_grace`
seconds (no admission charged it meanwhile) and the recount after that wait still finds it:
by then every admitted object is in the informers.  The write itself is a compare-and-swap on
the resourceVersion, so a charge racing it wins and the controller recounts.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from arktos.api.errors import APIError
from arktos.api.quota import format_list, object_usage, parse_list, quota_matches
from arktos.controllers._workloads import INDEXERS, NAMESPACE_INDEX, namespace_key, parse_time
from arktos.controllers.base import Controller, builtin

__all__ = ["ResourceQuotaController"]

Obj = dict[str, Any]
QUOTAS = builtin("", "resourcequotas")
# What usage is counted from: (group, plural) of the built-in kinds a quota may limit.
COUNTED = [("", "pods"), ("", "services"), ("", "configmaps"), ("", "secrets"), ("", "persistentvolumeclaims"),
           ("", "serviceaccounts"), ("", "resourcequotas"), ("apps", "replicasets"), ("apps", "deployments"),
           ("batch", "jobs"), ("batch", "cronjobs")]


def _counts(group: str, plural: str, name: str) -> bool:
    """Whether usage name `name` may come from objects of (group, plural)."""
    if name.startswith("count/"):
        return name == (f"count/{plural}.{group}" if group else f"count/{plural}")
    if group:
        return False
    if plural == "pods":
        return name == "pods" or name in ("cpu", "memory", "ephemeral-storage") or (name.startswith(
            ("requests.", "limits.")) and name != "requests.storage")
    if plural == "persistentvolumeclaims":
        return name in ("persistentvolumeclaims", "requests.storage") or ".storageclass.storage.k8s.io/" in name
    if plural == "services":
        return name.startswith("services")
    return name == plural


def _pod_deleted_past_grace(pod: Obj, now: float) -> bool:
    meta = pod.get("metadata") or {}
    ts, grace = meta.get("deletionTimestamp"), meta.get("deletionGracePeriodSeconds")
    if not ts or grace is None:
        return False
    t = parse_time(ts)
    return t is not None and now > t.timestamp() + float(grace)


class ResourceQuotaController(Controller):
    name = "resourcequota"

    def setup(self) -> None:
        f = self.ctx.informers
        extra = self.options.extra
        self.resync = float(extra.get("resource_quota_sync_period", 30.0))
        self.grace = float(extra.get("resource_quota_decrease_grace", 1.0))
        self.quotas = f.informer(QUOTAS, indexers={NAMESPACE_INDEX: INDEXERS[NAMESPACE_INDEX]})
        self.sources = {}
        for group, plural in COUNTED:
            inf = self.quotas if plural == "resourcequotas" else f.informer(
                builtin(group, plural), indexers={NAMESPACE_INDEX: INDEXERS[NAMESPACE_INDEX]})
            self.sources[(group, plural)] = inf
            if plural != "resourcequotas":
                inf.add_handler(on_add=self._touch, on_update=self._changed, on_delete=self._touch)
        self.quotas.add_handler(on_add=self._quota_added, on_update=self._quota_changed, on_delete=self._touch)
        # quota key -> (resourceVersion last seen with a lower recount pending, when)
        self._decrease: dict[str, tuple[str, float]] = {}

    # -- events -------------------------------------------------------------------

    def _touch(self, obj: Obj) -> None:
        """Something in a namespace came or went: recount its quotas."""
        for key in self.quotas.store.index_keys(NAMESPACE_INDEX, namespace_key(obj)):
            self.enqueue(key)

    def _changed(self, old: Obj, new: Obj) -> None:
        # Pods change phase (finished pods stop counting) and claims grow; other updates leave
        # usage as it was unless their spec changed.
        if old.get("spec") != new.get("spec") or (old.get("status") or {}).get("phase") != (
                new.get("status") or {}).get("phase") or bool(old["metadata"].get("deletionTimestamp")) != bool(
                new["metadata"].get("deletionTimestamp")):
            self._touch(new)

    def _quota_added(self, quota: Obj) -> None:
        self.enqueue(quota)
        self._touch(quota)  # a new quota counts as an object of `count/resourcequotas`

    def _quota_changed(self, old: Obj, new: Obj) -> None:
        if old.get("spec") != new.get("spec") or (new.get("status") or {}).get("hard") != (
                new.get("spec") or {}).get("hard"):
            self.enqueue(new)

    async def started(self) -> None:
        for key in list(self.quotas.keys()):
            self.enqueue(key)
        self.enqueue_after("@resync", self.resync)

    # -- sync -----------------------------------------------------------------------

    def usage(self, quota: Obj) -> dict[str, Decimal]:
        """What the quota's namespace uses of each resource its spec limits."""
        hard = parse_list((quota.get("spec") or {}).get("hard"))
        used = {name: Decimal(0) for name in hard}
        ns = namespace_key(quota)
        now = time.time()
        for (group, plural), inf in self.sources.items():
            names = [n for n in hard if _counts(group, plural, n)]
            if not names:
                continue
            for obj in inf.by_index(NAMESPACE_INDEX, ns):
                if plural == "pods" and _pod_deleted_past_grace(obj, now):
                    continue
                if not quota_matches(quota, plural, group, obj):
                    continue
                amounts = object_usage(plural, group, obj)
                for n in names:
                    if n in amounts:
                        used[n] += amounts[n]
        return used

    async def sync(self, key: str) -> None:
        if key == "@resync":
            for k in list(self.quotas.keys()):
                self.enqueue(k)
            self.enqueue_after("@resync", self.resync)
            return
        quota = self.quotas.get(key)
        if quota is None:
            self._decrease.pop(key, None)
            return
        meta = quota["metadata"]
        rv = meta.get("resourceVersion", "")
        status = quota.get("status") or {}
        spec_hard = (quota.get("spec") or {}).get("hard") or {}
        counted = self.usage(quota)
        recorded = parse_list(status.get("used"))
        lower = [n for n, v in counted.items() if n in recorded and v < recorded[n]]
        if lower:
            seen = self._decrease.get(key)
            if seen is None or seen[0] != rv or time.monotonic() - seen[1] < self.grace:
                if seen is None or seen[0] != rv:
                    self._decrease[key] = (rv, time.monotonic())
                # Not yet: write the increases only, keep the higher figures, look again later.
                counted = {n: max(v, recorded.get(n, v)) for n, v in counted.items()}
                self.enqueue_after(key, self.grace)
            else:
                self._decrease.pop(key, None)
        else:
            self._decrease.pop(key, None)
        used = format_list(counted)
        hard = {k: spec_hard[k] for k in sorted(spec_hard)}
        if status.get("hard") == hard and status.get("used") == used:
            return
        body = {**quota, "status": {"hard": hard, "used": used}}
        try:
            new = await self.client.update_status(QUOTAS, body, tenant=meta.get("tenant") or None,
                                                  namespace=meta.get("namespace"), name=meta["name"])
        except APIError as exc:
            if exc.code == 404:
                return
            if exc.code == 409:  # charged meanwhile: count again from the newer quota
                self.enqueue_after(key, 0.05)
                return
            raise
        if key in self._decrease:
            # Our own write moved the resourceVersion: the wait for a stable quota starts from it.
            self._decrease[key] = (new["metadata"]["resourceVersion"], self._decrease[key][1])
        self.log.debug("quota %s: used %s (at %s)", key, used, datetime.now(UTC).isoformat())
