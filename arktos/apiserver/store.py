"""The generic store: every verb, once, for every kind.

What all kinds share lives here (metadata bookkeeping, optimistic
concurrency, graceful deletion and finalizers, reads from the watch cache);
what differs comes from the kind's `Strategy`.  Objects cross this layer as
dicts; the cache hands back pre-encoded bytes where a handler can send them
as they are.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from arktos.api import errors
from arktos.api.errors import APIError
from arktos.api.registry import ResourceInfo
from arktos.api.selectors import compute_hash_key
from arktos.api.strategy import drop_nulls
from arktos.api.tenancy import ALL_TENANTS
from arktos.api.validation import validate_object_meta, validate_object_meta_update
from arktos.apiserver.auth import UserInfo
from arktos.apiserver.cache import CacheManager, Entry, Filter, ResourceCache, Watcher
from arktos.storage.etcd import KV, EtcdStore, KeyExists, NotFound, RevisionMismatch
from arktos.storage.keys import object_key, scope_prefix

log = logging.getLogger(__name__)

Obj = dict[str, Any]
GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


_stamp: tuple[int, str] = (0, "")


def now_rfc3339() -> str:
    """The current second in RFC 3339; formatted once per second, not once per write."""
    global _stamp
    second = int(time.time())
    if _stamp[0] != second:
        _stamp = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return _stamp[1]


@dataclass(slots=True)
class Ctx:
    """Who asks, and in which tenant and namespace the request acts."""

    user: UserInfo
    tenant: str = ""
    namespace: str = ""
    dry_run: bool = False
    field_manager: str = ""
    warnings: list[str] = field(default_factory=list)


# An admission hook sees the operation, the new object (or None) and the old one.
Admission = Callable[[str, ResourceInfo, Ctx, Obj | None, Obj | None], Awaitable[None]]


class GenericStore:
    def __init__(self, info: ResourceInfo, etcd: EtcdStore, caches: CacheManager,
                 admission: list[Admission] | None = None) -> None:
        self.info = info
        self.etcd = etcd
        self.caches = caches
        self.admission = admission or []
        self.strategy = info.strategy

    # -- keys and decoding ---------------------------------------------------

    @property
    def cache(self) -> ResourceCache:
        return self.caches.cache_for(self.info)

    def key(self, ctx: Ctx, name: str) -> str:
        info = self.info
        tenant = ctx.tenant if info.scope.tenanted else ""
        namespace = ctx.namespace if info.scope.namespaced else ""
        return object_key(info.etcd_resource, tenant, namespace, name)

    def prefix(self, ctx: Ctx) -> str:
        info = self.info
        if not info.scope.tenanted or ctx.tenant == ALL_TENANTS:
            return scope_prefix(info.etcd_resource)
        return scope_prefix(info.etcd_resource, ctx.tenant, ctx.namespace if info.scope.namespaced else "")

    def scope_filter(self, ctx: Ctx, flt: Filter | None) -> Filter | None:
        """`tenants/all/namespaces/X`: a namespace across tenants is a filter, not a key prefix."""
        if ctx.tenant != ALL_TENANTS or not ctx.namespace or not self.info.scope.namespaced:
            return flt
        namespace = ctx.namespace
        if flt is None:
            return lambda e: e.fields["metadata.namespace"] == namespace
        return lambda e: e.fields["metadata.namespace"] == namespace and flt(e)

    def add_watcher(self, ctx: Ctx, flt: Filter | None, index: tuple[str, str] | None, since: int | None) -> Watcher:
        return self.cache.add_watcher(self.prefix(ctx), self.scope_filter(ctx, flt), index, since)

    def _cached(self, key: str) -> KV | None:
        """The watch cache's copy of a key as etcd would return it, or None."""
        cache = self.caches.caches.get(self.info.etcd_resource)
        entry = cache.entries.get(key) if cache is not None else None
        if entry is None:
            return None
        return KV(key, entry.raw, entry.rv, 0)

    @staticmethod
    def _decode(value: bytes, rv: int) -> Obj:
        obj = orjson.loads(value)
        obj["metadata"]["resourceVersion"] = str(rv)
        return obj

    @staticmethod
    def _encode(obj: Obj) -> bytes:
        """Stored form: the object without resourceVersion (etcd's mod_revision is that)."""
        meta = obj["metadata"]
        rv = meta.pop("resourceVersion", None)
        try:
            return orjson.dumps(obj)
        finally:
            if rv is not None:
                meta["resourceVersion"] = rv

    async def _admit(self, op: str, ctx: Ctx, obj: Obj | None, old: Obj | None, mutating: bool | None = None) -> None:
        """Run admission hooks: mutating ones (marked `mutating = True`) before validation,
        validating ones after it, as Kubernetes orders them; None runs both."""
        for hook in self.admission:
            if mutating is None or getattr(hook, "mutating", False) == mutating:
                await hook(op, self.info, ctx, obj, old)

    def _not_found(self, name: str) -> APIError:
        return errors.not_found(self.info.plural, name, self.info.group)

    def _invalid(self, name: str, errs: list) -> APIError:
        return errors.invalid_object(self.info.kind, name, errs, self.info.group)

    # -- reads ---------------------------------------------------------------

    async def get(self, ctx: Ctx, name: str) -> Obj:
        kv = await self.etcd.get(self.key(ctx, name))
        if kv is None:
            raise self._not_found(name)
        return self._decode(kv.value, kv.mod_revision)

    async def list_entries(
        self, ctx: Ctx, flt: Filter | None, *, resource_version: str = "", limit: int = 0, start_key: str = ""
    ) -> tuple[list[Entry], int, str]:
        """Matching entries from the cache: (entries, list revision, next key or "")."""
        if resource_version == "":
            await self.caches.wait_consistent()
        elif resource_version != "0":
            try:
                wanted = int(resource_version)
            except ValueError:
                raise errors.bad_request(f"invalid resourceVersion {resource_version!r}") from None
            if not await self.caches.wait_for(wanted):
                raise errors.timeout(f"Too large resource version: {wanted}, current: {self.caches.revision}")
        revision = self.caches.revision
        entries, next_key = self.cache.select(self.prefix(ctx), self.scope_filter(ctx, flt), start_key, limit)
        return entries, revision, next_key

    async def list_from_etcd(
        self, ctx: Ctx, flt: Filter | None, revision: int, start_key: str, limit: int
    ) -> tuple[list[Entry], str]:
        """A later page of a list whose snapshot the cache has moved past."""
        out: list[Entry] = []
        prefix = self.prefix(ctx)
        flt = self.scope_filter(ctx, flt)
        if start_key and not start_key.startswith(prefix):
            raise errors.bad_request("continue key is not valid: it does not belong to this list")
        start = start_key or prefix
        while True:
            page, _, more = await self.etcd.list(prefix, revision=revision, limit=max(limit, 500), start_key=start)
            for kv in page:
                entry = Entry(kv.key, orjson.loads(kv.value), kv.mod_revision, self.info)
                if flt is None or flt(entry):
                    if limit and len(out) == limit:
                        return out, kv.key
                    out.append(entry)
            if not more:
                return out, ""
            start = page[-1].key + "\0"

    # -- create --------------------------------------------------------------

    def _prepare_meta_for_create(self, ctx: Ctx, obj: Obj) -> Obj:
        info = self.info
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            meta = obj["metadata"] = {}
        if info.scope.namespaced:
            ns = meta.get("namespace") or ctx.namespace
            if ctx.namespace and ns != ctx.namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        if info.scope.tenanted:
            tenant = meta.get("tenant") or ctx.tenant
            if tenant != ctx.tenant:
                raise errors.bad_request(
                    "the tenant of the provided object does not match the tenant sent on the request"
                )
            meta["tenant"] = tenant
        else:
            meta.pop("tenant", None)
        if meta.get("resourceVersion"):
            raise errors.bad_request("resourceVersion should not be set on objects to be created")
        uid = str(uuid.uuid4())
        meta["uid"] = uid
        meta["hashKey"] = compute_hash_key(uid)
        meta["creationTimestamp"] = now_rfc3339()
        for key in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            meta.pop(key, None)
        refs = meta.get("ownerReferences")
        for ref in refs if isinstance(refs, list) else ():
            if isinstance(ref, dict) and isinstance(ref.get("uid"), str):
                ref["hashKey"] = compute_hash_key(ref["uid"])
        if self.strategy.tracks_generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        return meta

    async def create(self, ctx: Ctx, obj: Obj) -> Obj:
        info = self.info
        if info.custom_schema is None:
            drop_nulls(obj)
        obj["apiVersion"] = info.api_version
        obj["kind"] = info.kind
        meta = self._prepare_meta_for_create(ctx, obj)
        generate = not meta.get("name") and meta.get("generateName")
        if generate and not isinstance(generate, str):
            raise self._invalid("", [errors.invalid("metadata.generateName", generate, "must be a string")])
        if generate:
            meta["name"] = generate + "".join(random.choices(GENERATE_ALPHABET, k=5))
        self.strategy.prepare_for_create(obj)
        self.strategy.default(obj)
        await self._admit("CREATE", ctx, obj, None, mutating=True)
        errs = validate_object_meta(meta, namespaced=info.scope.namespaced, tenanted=info.scope.tenanted,
                                    name_validator=self.strategy.name_validator)
        errs += self.strategy.validate(obj)
        if errs:
            raise self._invalid(meta.get("name") or meta.get("generateName", ""), errs)
        # Validating admission last: it may reserve things (service IPs) for a valid object only.
        await self._admit("CREATE", ctx, obj, None, mutating=False)
        if ctx.dry_run:
            return obj
        for attempt in range(5):
            try:
                rev = await self.etcd.create(self.key(ctx, meta["name"]), self._encode(obj))
            except KeyExists:
                if generate and attempt < 4:
                    meta["name"] = generate + "".join(random.choices(GENERATE_ALPHABET, k=5))
                    continue
                raise errors.already_exists(info.plural, meta["name"], info.group) from None
            meta["resourceVersion"] = str(rev)
            return obj
        raise AssertionError("unreachable")

    # -- update and patch ----------------------------------------------------

    async def update(
        self,
        ctx: Ctx,
        name: str,
        mutate: Callable[[Obj], Obj | Awaitable[Obj]],
        *,
        subresource: str = "",
        create_missing: Callable[[], Obj] | None = None,
    ) -> tuple[Obj, bool]:
        """Read-modify-write with optimistic concurrency, as Kubernetes' GuaranteedUpdate.

        `mutate` turns the stored object into the wanted one.  A resourceVersion
        in the wanted object that differs from the stored one is a 409 (a client's
        precondition; a patch carries the stored one, so it never trips).  A write
        that loses a race is redone on the fresh object.  Returns (object, created).
        """
        info = self.info
        key = self.key(ctx, name)
        # First try from the watch cache's copy, as GuaranteedUpdate does: the compare-and-swap
        # on its revision catches staleness, and a lost swap hands back the current value.
        current = self._cached(key)
        fresh = current is None
        while True:
            if current is None:
                current = await self.etcd.get(key)
                fresh = True
            if current is None:
                if create_missing is None:
                    raise self._not_found(name)
                return await self.create(ctx, create_missing()), True
            kv = current
            old = self._decode(kv.value, kv.mod_revision)
            result = mutate(self._decode(kv.value, kv.mod_revision))
            new = await result if isinstance(result, Awaitable) else result
            if not isinstance(new, dict):
                raise errors.bad_request("the request body must be an object")
            if info.custom_schema is None:
                drop_nulls(new)
            new_meta = new.get("metadata")
            if not isinstance(new_meta, dict):
                new_meta = new["metadata"] = {}
            wanted_rv = new_meta.get("resourceVersion") or ""
            if wanted_rv and wanted_rv != str(kv.mod_revision):
                if not fresh:  # the cache may simply be behind the client: ask etcd
                    current = None
                    continue
                raise errors.conflict(info.plural, name, info.group)
            if new_meta.get("name", name) != name:
                raise errors.bad_request(
                    f"the name of the object ({new_meta.get('name')}) does not match the name on the URL ({name})"
                )
            new = self._prepare_update(ctx, new, old, subresource)
            if new == old:
                return old, False
            await self._admit("UPDATE", ctx, new, old)
            if ctx.dry_run:
                return new, False
            try:
                if new["metadata"].get("deletionTimestamp") and not self.strategy.deletion_held(new) and (
                        not self._graceful_pending(new)):
                    # The last finalizer went away from an object being deleted: it goes now.
                    rev, _ = await self.etcd.delete(key, kv.mod_revision)
                else:
                    rev = await self.etcd.update(key, self._encode(new), kv.mod_revision)
            except RevisionMismatch as exc:
                # Another writer won (or our copy was stale): redo the change on the value etcd
                # returned; a stale client precondition fails the check above next time.
                current, fresh = exc.current, True
                if current is None:
                    raise self._not_found(name) from None
                continue
            except NotFound:
                raise self._not_found(name) from None
            new["metadata"]["resourceVersion"] = str(rev)
            return new, False

    def _prepare_update(self, ctx: Ctx, new: Obj, old: Obj, subresource: str) -> Obj:
        info = self.info
        strategy = self.strategy
        new["apiVersion"] = info.api_version
        new["kind"] = info.kind
        if subresource == "status":
            new = strategy.prepare_for_status_update(new, old)
        else:
            meta = new["metadata"]
            old_meta = old["metadata"]
            # Server-owned metadata always comes from the stored object.
            for k in ("uid", "creationTimestamp", "hashKey", "deletionTimestamp", "deletionGracePeriodSeconds",
                      "generation"):
                if k in old_meta:
                    meta[k] = old_meta[k]
                else:
                    meta.pop(k, None)
            for k in ("namespace", "tenant"):
                if k in old_meta and not meta.get(k):
                    meta[k] = old_meta[k]
            refs = meta.get("ownerReferences")
            for ref in refs if isinstance(refs, list) else ():
                if isinstance(ref, dict) and isinstance(ref.get("uid"), str):
                    ref["hashKey"] = compute_hash_key(ref["uid"])
            if subresource in ("", "scale"):
                strategy.prepare_for_update(new, old)
        if subresource == "binding":
            # The binding handler sets nodeName, a condition and annotations, nothing a
            # client sent: the rest of the pod is the stored, already valid one.
            new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            return new
        strategy.default(new)
        errs = validate_object_meta_update(new["metadata"], old["metadata"])
        if not errs:
            errs = validate_object_meta(new["metadata"], namespaced=info.scope.namespaced,
                                        tenanted=info.scope.tenanted, name_validator=strategy.name_validator)
        errs += strategy.validate_update(new, old)
        if errs:
            raise self._invalid(old["metadata"]["name"], errs)
        meta = new["metadata"]
        meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        if strategy.tracks_generation and subresource != "status" and strategy.spec_changed(new, old):
            meta["generation"] = old["metadata"].get("generation", 1) + 1
        return new

    @staticmethod
    def _graceful_pending(obj: Obj) -> bool:
        """A pod in graceful deletion stays until its node agent confirms it stopped."""
        return bool(obj.get("kind") == "Pod" and obj["metadata"].get("deletionGracePeriodSeconds"))

    # -- delete --------------------------------------------------------------

    async def delete(self, ctx: Ctx, name: str, options: Obj) -> tuple[Obj, bool]:
        """Delete (or start deleting) an object; returns (object, deleted_now)."""
        info = self.info
        key = self.key(ctx, name)
        preconditions = options.get("preconditions") or {}
        grace = options.get("gracePeriodSeconds")
        policy = options.get("propagationPolicy")
        if not isinstance(preconditions, dict):
            raise errors.bad_request("DeleteOptions.preconditions must be an object")
        if grace is not None and (not isinstance(grace, int) or isinstance(grace, bool)):
            raise errors.bad_request("DeleteOptions.gracePeriodSeconds must be an integer")
        if options.get("orphanDependents") is True and not policy:
            policy = "Orphan"
        if policy not in (None, "Orphan", "Foreground", "Background"):
            raise errors.invalid_object("DeleteOptions", "", [errors.not_supported(
                "propagationPolicy", policy, ["Foreground", "Background", "Orphan"])], group="meta.k8s.io")
        while True:
            kv = await self.etcd.get(key)
            if kv is None:
                raise self._not_found(name)
            obj = self._decode(kv.value, kv.mod_revision)
            meta = obj["metadata"]
            if preconditions.get("uid") and preconditions["uid"] != meta.get("uid"):
                raise errors.conflict(info.plural, name, info.group,
                                      f"Precondition failed: UID in precondition: {preconditions['uid']}, "
                                      f"UID in object meta: {meta.get('uid')}")
            if preconditions.get("resourceVersion") and preconditions["resourceVersion"] != meta["resourceVersion"]:
                raise errors.conflict(info.plural, name, info.group,
                                      f"Precondition failed: ResourceVersion in precondition: "
                                      f"{preconditions['resourceVersion']}, ResourceVersion in object meta: "
                                      f"{meta['resourceVersion']}")
            await self._admit("DELETE", ctx, None, obj)
            finalizers = list(meta.get("finalizers") or [])
            if policy == "Orphan" and "orphan" not in finalizers:
                finalizers.append("orphan")
            elif policy == "Foreground" and "foregroundDeletion" not in finalizers:
                finalizers.append("foregroundDeletion")
            graceful = self._grace_period(obj, grace)
            held = bool(finalizers) or self.strategy.deletion_held(obj)
            write: Obj | None = None
            if meta.get("deletionTimestamp"):
                current = meta.get("deletionGracePeriodSeconds")
                if graceful or held:
                    if current is not None and graceful < current:
                        # Shortening a graceful deletion (a forced delete of a pod that
                        # finalizers still hold): record it so the pod goes once they are done.
                        write = obj
                        if graceful:
                            meta["deletionGracePeriodSeconds"] = graceful
                        else:
                            meta.pop("deletionGracePeriodSeconds")
                    else:
                        return obj, False  # already being deleted
            elif graceful or held:
                write = obj
                meta["deletionTimestamp"] = now_rfc3339()
                if graceful:
                    meta["deletionGracePeriodSeconds"] = graceful
                if finalizers:
                    meta["finalizers"] = finalizers
                if "generation" in meta and self.strategy.tracks_generation:
                    meta["generation"] += 1
                if self.info.kind in ("Namespace", "Tenant"):
                    obj.setdefault("status", {})["phase"] = "Terminating"
            if ctx.dry_run:
                return obj, write is None
            try:
                if write is not None:
                    rev = await self.etcd.update(key, self._encode(write), kv.mod_revision)
                else:
                    rev, _ = await self.etcd.delete(key, kv.mod_revision)
            except RevisionMismatch:
                continue  # changed under us: decide again on the fresh object
            except NotFound:
                raise self._not_found(name) from None
            meta["resourceVersion"] = str(rev)
            return obj, write is None

    def _grace_period(self, obj: Obj, requested: int | None) -> int:
        """Seconds of graceful deletion: only scheduled, still-running pods get any."""
        if obj.get("kind") != "Pod":
            return 0
        spec = obj.get("spec") or {}
        if not spec.get("nodeName"):
            return 0
        if (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return 0
        if requested is None:
            requested = spec.get("terminationGracePeriodSeconds", 30)
        return max(int(requested), 0)

    async def delete_collection(self, ctx: Ctx, flt: Filter | None, options: Obj) -> list[Obj]:
        entries, _, _ = await self.list_entries(ctx, flt)
        limit = asyncio.Semaphore(32)  # a big collection must not open thousands of etcd calls at once

        async def one(meta: Obj) -> Obj | None:
            async with limit:
                try:
                    return await self._delete_in(ctx, meta, options)
                except APIError as exc:
                    if exc.code == 404:
                        return None  # gone meanwhile: that is what we wanted
                    raise

        results = await asyncio.gather(*(one(e.meta["metadata"]) for e in entries))
        return [r for r in results if r is not None]

    async def _delete_in(self, ctx: Ctx, meta: Obj, options: Obj) -> Obj:
        sub = Ctx(ctx.user, meta.get("tenant", ctx.tenant), meta.get("namespace", ""), ctx.dry_run,
                  ctx.field_manager)
        obj, _ = await self.delete(sub, meta["name"], options)
        return obj
