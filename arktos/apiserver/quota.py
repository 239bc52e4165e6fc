"""Admission for ResourceQuota and LimitRange, as Kubernetes' plugins of those names.

LimitRanger: before validation, containers of a new pod without a request or limit get their
namespace's Container defaults (noted in the `kubernetes.io/limit-ranger` annotation); after it,
pods and claims outside their namespace's min/max/maxLimitRequestRatio are refused (403).

ResourceQuota: after validation, a new object's usage (`pods`, `count/<resource>.<group>`,
`requests.cpu`, ...; for an update of a service or claim, what it adds) is checked against every
quota of its namespace whose status the quota controller has filled (status.hard; a quota it has
not seen yet restricts nothing, as in Kubernetes), and charged to the quota's status.used with a
compare-and-swap on the quota's revision before the object is stored: of two racing creates only
one wins the swap, the other re-reads the quota and is checked again, so a limit can never be
overrun.  An object whose storage then fails (or an update retried after a lost race) leaves a
charge behind; the quota controller recomputes usage from what exists and gives it back.

Quotas and limit ranges are read from the watch cache (no etcd round trip for the many
namespaces without any); the swap itself is what guarantees freshness.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from arktos.api import errors
from arktos.api.quota import (
    POD_VALIDATION,
    add,
    apply_container_defaults,
    exceeded,
    format_list,
    object_usage,
    parse_list,
    pod_constraints,
    pretty,
    quota_limits_resource,
    quota_matches,
    validate_pod_limits,
    validate_pvc_limits,
)
from arktos.api.registry import ResourceInfo
from arktos.apiserver.cache import CacheManager
from arktos.apiserver.store import Ctx
from arktos.storage.etcd import EtcdStore, RevisionMismatch
from arktos.storage.keys import scope_prefix

log = logging.getLogger(__name__)

Obj = dict[str, Any]
LIMIT_RANGER_ANNOTATION = "kubernetes.io/limit-ranger"
MAX_CHARGE_ATTEMPTS = 100
# Kinds whose updates may use more (Kubernetes' evaluators that handle updates; pods only with in-place
# resize, which is not served here).
UPDATE_CHARGED = frozenset({"services", "persistentvolumeclaims"})


def _namespace(ctx: Ctx, obj: Obj | None) -> str:
    return ((obj or {}).get("metadata") or {}).get("namespace") or ctx.namespace


def _cached(caches: CacheManager, resource: str, tenant: str, namespace: str) -> list[tuple[str, Obj, int]]:
    """(key, object, revision) of a namespace's objects of `resource` in the watch cache."""
    cache = caches.caches.get(resource)
    if cache is None or not namespace:
        return []
    entries, _ = cache.select(scope_prefix(resource, tenant, namespace), None)
    return [(e.key, orjson.loads(e.raw), e.rv) for e in entries]


def _forbidden(info: ResourceInfo, obj: Obj, message: str) -> errors.APIError:
    name = (obj.get("metadata") or {}).get("name", "")
    return errors.forbidden_error(f'{info.plural} "{name}" is forbidden: {message}', info.plural, name, info.group)


def _aggregate(errs: list[str]) -> str:
    return errs[0] if len(errs) == 1 else "[" + ", ".join(errs) + "]"


class LimitRanger:
    """Mutating half: defaults for new pods' containers."""

    mutating = True

    def __init__(self, caches: CacheManager) -> None:
        self.caches = caches

    def ranges(self, ctx: Ctx, obj: Obj | None) -> list[Obj]:
        return [o for _, o, _ in _cached(self.caches, "limitranges", ctx.tenant, _namespace(ctx, obj))]

    async def __call__(self, op: str, info: ResourceInfo, ctx: Ctx, obj: Obj | None, old: Obj | None) -> None:
        if op != "CREATE" or info.group or info.kind != "Pod" or obj is None:
            return
        ranges = self.ranges(ctx, obj)
        if not ranges:
            return
        notes = apply_container_defaults(ranges, obj)
        if notes:
            meta = obj.setdefault("metadata", {})
            annotations = meta.get("annotations") if isinstance(meta.get("annotations"), dict) else {}
            annotations[LIMIT_RANGER_ANNOTATION] = "LimitRanger plugin set: " + "; ".join(notes)
            meta["annotations"] = annotations


class LimitRangeValidation(LimitRanger):
    """Validating half: min, max and maxLimitRequestRatio of pods (on create) and claims."""

    mutating = False

    async def __call__(self, op: str, info: ResourceInfo, ctx: Ctx, obj: Obj | None, old: Obj | None) -> None:
        if info.group or obj is None:
            return
        if info.kind == "Pod" and op == "CREATE":
            check = validate_pod_limits
        elif info.kind == "PersistentVolumeClaim" and (
                op == "CREATE" or (op == "UPDATE" and old is not None and old.get("spec") != obj.get("spec"))):
            check = validate_pvc_limits
        else:
            return
        ranges = self.ranges(ctx, obj)
        if ranges:
            errs = check(ranges, obj)
            if errs:
                raise _forbidden(info, obj, _aggregate(errs))


class ResourceQuotaAdmission:
    """Checks and charges quota on create (and on updates of services and claims)."""

    mutating = False

    def __init__(self, caches: CacheManager, etcd: EtcdStore) -> None:
        self.caches = caches
        self.etcd = etcd
        self.conflicts = 0  # lost swaps, for tests and metrics

    async def __call__(self, op: str, info: ResourceInfo, ctx: Ctx, obj: Obj | None, old: Obj | None) -> None:
        if obj is None or not info.scope.namespaced or op not in ("CREATE", "UPDATE"):
            return
        if op == "UPDATE" and (info.group or info.plural not in UPDATE_CHARGED or old is None):
            return
        quotas = _cached(self.caches, "resourcequotas", ctx.tenant, _namespace(ctx, obj))
        if not quotas:
            return
        usage = object_usage(info.plural, info.group, obj)
        if op == "UPDATE":
            # A service that becomes a NodePort or a claim that grows: only what is added is charged.
            before = object_usage(info.plural, info.group, old)
            usage = {k: v - before.get(k, 0) for k, v in usage.items() if v > before.get(k, 0)}
            if not usage:
                return
        charges: list[tuple[str, Obj, int, dict]] = []
        for key, quota, rv in sorted(quotas, key=lambda t: t[0]):
            requested = self._requested(info, obj, quota, usage)
            if requested:
                self._check(info, obj, quota, requested)
                charges.append((key, quota, rv, requested))
        if ctx.dry_run:
            return
        for key, quota, rv, requested in charges:
            await self._charge(info, obj, key, quota, rv, requested, usage)

    @staticmethod
    def _requested(info: ResourceInfo, obj: Obj, quota: Obj, usage: dict) -> dict:
        """What of `usage` the quota limits, after checking it may judge the object at all."""
        if not quota_matches(quota, info.plural, info.group, obj):
            return {}
        status = quota.get("status") or {}
        hard = parse_list(status.get("hard"))
        limited = [n for n in hard if quota_limits_resource(quota, n) and (
            n in usage or (info.plural == "pods" and not info.group and n in POD_VALIDATION))]
        if not limited:
            return {}
        name = quota["metadata"]["name"]
        if info.plural == "pods" and not info.group:
            problem = pod_constraints(limited, obj)
            if problem:
                raise _forbidden(info, obj, f"failed quota: {name}: {problem}")
        used = status.get("used") or {}
        unknown = sorted(n for n in limited if n not in used)
        if unknown:
            raise _forbidden(info, obj, f"status unknown for quota: {name}, resources: {','.join(unknown)}")
        return {n: usage[n] for n in limited if n in usage}

    @staticmethod
    def _check(info: ResourceInfo, obj: Obj, quota: Obj, requested: dict) -> None:
        status = quota.get("status") or {}
        hard, used = parse_list(status.get("hard")), parse_list(status.get("used"))
        over = exceeded(hard, used, requested)
        if over:
            raise _forbidden(info, obj, (
                f"exceeded quota: {quota['metadata']['name']}, "
                f"requested: {pretty({n: requested[n] for n in over})}, "
                f"used: {pretty({n: used.get(n, 0) for n in over})}, "
                f"limited: {pretty({n: hard[n] for n in over})}"))

    async def _charge(self, info: ResourceInfo, obj: Obj, key: str, quota: Obj, rv: int, requested: dict,
                      usage: dict) -> None:
        """Add `requested` to the quota's status.used, swapping on its revision; a lost swap re-reads
        the quota and checks again."""
        for _ in range(MAX_CHARGE_ATTEMPTS):
            status = quota.setdefault("status", {})
            status["used"] = {**(status.get("used") or {}),
                              **format_list(add(parse_list(status.get("used")), requested))}
            quota["metadata"].pop("resourceVersion", None)
            try:
                await self.etcd.update(key, orjson.dumps(quota), rv)
                return
            except RevisionMismatch as exc:
                self.conflicts += 1
                if exc.current is None:
                    return  # the quota was deleted meanwhile: nothing left to charge
                quota, rv = orjson.loads(exc.current.value), exc.current.mod_revision
            requested = self._requested(info, obj, quota, usage)
            if not requested:
                return
            self._check(info, obj, quota, requested)
        raise errors.conflict("resourcequotas", quota["metadata"]["name"],
                              why="too many concurrent changes to the quota; try again")


def quota_admission(caches: CacheManager, etcd: EtcdStore) -> list:
    """LimitRanger (both halves) and ResourceQuota, in Kubernetes' order."""
    return [LimitRanger(caches), LimitRangeValidation(caches), ResourceQuotaAdmission(caches, etcd)]
