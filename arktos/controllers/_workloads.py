"""What the workload controllers (replicaset, deployment, endpoints, node lifecycle) share.

* `HashKeyRange`: the slice of the hashKey space a controller instance owns
  (ARKTOS.md section 5).  A full range means "everything" and adds no field
  selector, so a single controller manager pays nothing for partitioning.
* Controller references: the one ownerReference with `controller: true`,
  resolved only within the dependent's own tenant and namespace, because an
  ownerReference never crosses a tenant (ARKTOS.md section 1).
* Adoption and release (`claim`): Kubernetes' ControllerRefManager.  A
  controller owns what its selector matches; it adopts matching orphans and
  lets go of what stopped matching.  Writes carry the resourceVersion the
  decision was made on, so a decision taken on a stale cache fails with 409
  instead of overwriting someone else's change.
* Pod state as the controllers read it: active, ready, available.
* Informer index names, so controllers that index the same informer the same
  way share one index (the factory shares informers by kind and selectors).
"""

from __future__ import annotations

import copy
import datetime
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from arktos.api.errors import APIError
from arktos.api.registry import ResourceInfo
from arktos.api.selectors import (
    HASHKEY_FIELD,
    HASHKEY_MAX,
    OWNER_HASHKEY_PREFIX,
    LabelSelector,
    label_selector_from_dict,
)
from arktos.client import Client, namespace_index, node_name_index, owner_uid_index
from arktos.controllers.base import is_gone

__all__ = [
    "INDEXERS",
    "NAMESPACE_INDEX",
    "NODE_INDEX",
    "ORPHAN_INDEX",
    "OWNER_INDEX",
    "HashKeyRange",
    "SelectorCache",
    "claim",
    "controller_ref",
    "is_pod_active",
    "is_pod_available",
    "is_pod_ready",
    "make_controller_ref",
    "namespace_key",
    "now_rfc3339",
    "orphan_index",
    "parse_time",
    "ready_since",
    "recheck_owner",
    "same_place",
    "selector_of",
]

Obj = dict[str, Any]

NAMESPACE_INDEX = "namespace"
OWNER_INDEX = "owner-uid"
ORPHAN_INDEX = "orphan-namespace"
NODE_INDEX = "node-name"
INDEXERS = {NAMESPACE_INDEX: namespace_index, OWNER_INDEX: owner_uid_index, NODE_INDEX: node_name_index}


# --------------------------------------------------------------------------- hashKey ranges


@dataclass(frozen=True, slots=True)
class HashKeyRange:
    """The hashKeys `(lower, upper]` a controller instance owns, as a ControllerInstance states them.

    The default is the whole space (lower -1, upper 2^63-1): every object,
    and no field selector at all.  A partitioned workload controller manager
    gives each instance `(previous instance's controllerKey, its own
    controllerKey]`; the instance's informers then ask the server for that
    slice only (`selector`), so adding instances adds no watch traffic.
    """

    lower: int = -1
    upper: int = HASHKEY_MAX

    def __post_init__(self) -> None:
        if self.lower >= self.upper:
            raise ValueError(f"empty hashKey range ({self.lower}, {self.upper}]")

    @classmethod
    def parse(cls, text: str) -> HashKeyRange:
        """`L:U` meaning (L, U]; either side may be empty for the type's limit."""
        lo, sep, hi = text.partition(":")
        if not sep:
            raise ValueError(f"a hashKey range is LOWER:UPPER (exclusive, inclusive), not {text!r}")
        return cls(int(lo) if lo.strip() else -1, int(hi) if hi.strip() else HASHKEY_MAX)

    @property
    def full(self) -> bool:
        return self.lower < 0 and self.upper >= HASHKEY_MAX

    def contains(self, hash_key: Any) -> bool:
        try:
            hk = int(hash_key or 0)
        except (TypeError, ValueError):
            hk = 0
        return self.lower < hk <= self.upper

    def owns(self, obj: Mapping[str, Any]) -> bool:
        return self.full or self.contains((obj.get("metadata") or {}).get("hashKey"))

    def selector(self, field: str = HASHKEY_FIELD) -> str | None:
        """The field selector for `field` (`metadata.hashkey` or an owner's), or None for the full range."""
        if self.full:
            return None
        return f"{field}=gt:{self.lower},{field}=lte:{self.upper}"

    def owner_selector(self, owner_kind: str) -> str | None:
        """Objects whose `owner_kind` owner falls in the range (a ReplicaSet's pods, a Deployment's ReplicaSets)."""
        return self.selector(OWNER_HASHKEY_PREFIX + owner_kind)

    def __str__(self) -> str:
        return "all" if self.full else f"({self.lower}, {self.upper}]"


# --------------------------------------------------------------------------- metadata helpers


def namespace_key(obj: Mapping[str, Any]) -> str:
    """`tenant/namespace` (the value of NAMESPACE_INDEX)."""
    meta = obj.get("metadata") or {}
    return "/".join(p for p in (meta.get("tenant"), meta.get("namespace")) if p)


def same_place(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Same tenant and namespace: the only place an ownerReference may point to."""
    ma, mb = a.get("metadata") or {}, b.get("metadata") or {}
    return (ma.get("tenant") or "") == (mb.get("tenant") or "") and (
        (ma.get("namespace") or "") == (mb.get("namespace") or ""))


def controller_ref(obj: Mapping[str, Any]) -> Obj | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if isinstance(ref, dict) and ref.get("controller") is True:
            return ref
    return None


def orphan_index(obj: Obj) -> list[str]:
    """Objects without a controller, by `tenant/namespace`: the candidates for adoption."""
    return [] if controller_ref(obj) is not None else [namespace_key(obj)]


def make_controller_ref(owner: Mapping[str, Any], api_version: str, kind: str) -> Obj:
    meta = owner["metadata"]
    return {"apiVersion": api_version, "kind": kind, "name": meta["name"], "uid": meta["uid"],
            "controller": True, "blockOwnerDeletion": True}


class SelectorCache:
    """Compiled spec.selector per object uid (selectors of apps/v1 workloads never change)."""

    def __init__(self) -> None:
        self._cache: dict[str, LabelSelector] = {}

    def get(self, obj: Mapping[str, Any]) -> LabelSelector:
        uid = (obj.get("metadata") or {}).get("uid") or ""
        sel = self._cache.get(uid)
        if sel is None:
            sel = selector_of(obj)
            if uid:
                self._cache[uid] = sel
        return sel

    def forget(self, obj: Mapping[str, Any]) -> None:
        self._cache.pop((obj.get("metadata") or {}).get("uid") or "", None)


def selector_of(obj: Mapping[str, Any]) -> LabelSelector:
    """The object's spec.selector compiled; an invalid one selects nothing (never everything)."""
    try:
        return label_selector_from_dict((obj.get("spec") or {}).get("selector"))
    except APIError:
        return label_selector_from_dict(None)


# --------------------------------------------------------------------------- time


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> float | None:
    """An RFC 3339 timestamp as a POSIX time, or None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    if "." in text:  # Python reads at most 6 fractional digits
        head, _, rest = text.partition(".")
        digits = "".join(c for c in rest if c.isdigit())
        tz = rest[len(digits):]
        text = f"{head}.{digits[:6] or '0'}{tz}"
    try:
        stamp = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=datetime.UTC)
    return stamp.timestamp()


# --------------------------------------------------------------------------- pods


def is_pod_active(pod: Mapping[str, Any]) -> bool:
    """Counts toward a ReplicaSet's replicas: not finished and not being deleted."""
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def _ready_condition(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for cond in (pod.get("status") or {}).get("conditions") or ():
        if isinstance(cond, dict) and cond.get("type") == "Ready":
            return cond
    return None


def is_pod_ready(pod: Mapping[str, Any]) -> bool:
    cond = _ready_condition(pod)
    return cond is not None and cond.get("status") == "True"


def ready_since(pod: Mapping[str, Any]) -> float | None:
    cond = _ready_condition(pod)
    if cond is None or cond.get("status") != "True":
        return None
    return parse_time(cond.get("lastTransitionTime"))


def is_pod_available(pod: Mapping[str, Any], min_ready_seconds: int, now: float) -> bool:
    """Ready for at least `min_ready_seconds` (Kubernetes' IsPodAvailable)."""
    if not is_pod_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = ready_since(pod)
    return since is not None and since + min_ready_seconds <= now


# --------------------------------------------------------------------------- adoption and release


async def _patch_owner_refs(client: Client, info: ResourceInfo, obj: Obj, refs: list[Obj]) -> bool:
    """Set the object's ownerReferences, valid only on the version we decided on; False if it is gone."""
    meta = obj["metadata"]
    body = {"metadata": {"ownerReferences": refs, "resourceVersion": meta.get("resourceVersion")}}
    try:
        await client.patch(info, meta["name"], body, tenant=meta.get("tenant"), namespace=meta.get("namespace"))
    except APIError as exc:
        if is_gone(exc):
            return False
        raise
    return True


async def claim(
    client: Client,
    owner: Obj,
    owner_ref: Obj,
    selector: LabelSelector,
    candidates: Iterable[Obj],
    info: ResourceInfo,
    can_adopt: Callable[[], Awaitable[bool]],
) -> list[Obj]:
    """The candidates `owner` controls after adopting matching orphans and releasing what no longer matches.

    `candidates` are objects in the owner's tenant and namespace (its own and
    orphans).  Nothing is adopted or released while the owner is being
    deleted (the garbage collector is handling it); `can_adopt` re-reads the
    owner from the server before the first adoption, so a cache that missed
    its deletion cannot make it adopt (Kubernetes' RecheckDeletionTimestamp).
    """
    uid = owner["metadata"]["uid"]
    deleting = bool(owner["metadata"].get("deletionTimestamp"))
    claimed: list[Obj] = []
    adopt_checked: bool | None = None
    for obj in candidates:
        if not same_place(obj, owner):
            continue  # an ownerReference never reaches another tenant or namespace
        ref = controller_ref(obj)
        labels = (obj.get("metadata") or {}).get("labels") or {}
        if ref is not None:
            if ref.get("uid") != uid:
                continue  # someone else's
            if selector.matches(labels) or deleting:
                claimed.append(obj)
                continue
            if obj["metadata"].get("deletionTimestamp"):
                continue  # going anyway
            refs = [r for r in obj["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
            try:
                await _patch_owner_refs(client, info, obj, refs)
            except APIError as exc:
                if exc.code != 409:
                    raise  # 409: changed since we looked; its event brings us back
            continue
        if deleting or obj["metadata"].get("deletionTimestamp") or not selector.matches(labels):
            continue
        if adopt_checked is None:
            adopt_checked = await can_adopt()
        if not adopt_checked:
            continue
        refs = [*(obj["metadata"].get("ownerReferences") or []), copy.deepcopy(owner_ref)]
        try:
            if await _patch_owner_refs(client, info, obj, refs):
                adopted = copy.deepcopy(obj)
                adopted["metadata"]["ownerReferences"] = refs
                claimed.append(adopted)
        except APIError as exc:
            if exc.code != 409:
                raise
            # Changed since we looked (someone else adopted it, or it was relabelled): its event brings us back.
    return claimed


async def recheck_owner(client: Client, info: ResourceInfo, owner: Obj) -> bool:
    """The owner still exists on the server with the same uid and is not being deleted."""
    meta = owner["metadata"]
    try:
        fresh = await client.get(info, meta["name"], tenant=meta.get("tenant"), namespace=meta.get("namespace"))
    except APIError as exc:
        if is_gone(exc):
            return False
        raise
    fm = fresh.get("metadata") or {}
    return fm.get("uid") == meta.get("uid") and not fm.get("deletionTimestamp")
