"""HTTP handlers for resource requests: decode, call the generic store, encode.

The wire behaviour follows what kubectl and client libraries rely on:
status codes (201 on create, 202 when deletion waits on finalizers or a
grace period), Status bodies for every error, Table output on request,
chunked watch streams of newline-delimited JSON events.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from arktos.api import errors, patch, protobuf, structural
from arktos.api.fieldcheck import resolve, unknown_fields
from arktos.api.registry import ResourceInfo
from arktos.api.schemas import SCHEMAS
from arktos.api.selectors import parse_field_selector, parse_label_selector
from arktos.api.tables import table
from arktos.api.yamlio import load_yaml
from arktos.apiserver import metrics
from arktos.apiserver.cache import Entry, Filter
from arktos.apiserver.requestinfo import RequestInfo
from arktos.apiserver.store import Ctx, GenericStore, now_rfc3339
from arktos.storage.etcd import Compacted

Obj = dict[str, Any]
JSON = "application/json"
MAX_BODY = 3 * 1024 * 1024
DEFAULT_WATCH_TIMEOUT = 1800
MAX_WATCH_TIMEOUT = 7 * 24 * 3600
MAX_FIELD_MANAGER = 128
BOOKMARK_INTERVAL = 60.0

PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
    "application/apply-patch+json": "apply",
}


# -- encoding ---------------------------------------------------------------------


def json_response(body: Obj | bytes, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return web.Response(body=data, status=status, content_type=JSON, headers=headers)


def status_success(details: Obj | None = None, code: int = 200) -> Obj:
    body: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code}
    if details:
        body["details"] = details
    return body


def wants(request: web.Request) -> str:
    """Which representation the client asked for: "json", "table" or "meta"."""
    accept = request.headers.get("Accept", "")
    if not accept or accept == "*/*":
        return "json"
    json_ok = False
    for clause in accept.split(","):
        parts = [p.strip() for p in clause.split(";")]
        media = parts[0]
        params = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        as_ = params.get("as")
        if as_ == "Table" and params.get("g") == "meta.k8s.io":
            return "table"
        if as_ in ("PartialObjectMetadata", "PartialObjectMetadataList") and params.get("g") == "meta.k8s.io":
            return "meta"
        if not as_ and media in (JSON, "application/*", "*/*", "application/yaml"):
            json_ok = True
    if json_ok:
        return "json"
    raise errors.not_acceptable(
        f"only the following media types are accepted: {JSON}, {JSON};as=Table;v=v1;g=meta.k8s.io"
    )


async def read_body(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise errors.too_large(MAX_BODY)
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise errors.too_large(MAX_BODY) from None
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except Exception as exc:  # undecodable Content-Encoding, broken chunking: the client's fault
        raise errors.bad_request(f"the request body could not be read: {exc}") from None


def decode_object(data: bytes, content_type: str) -> Obj:
    media = content_type.split(";")[0].strip().lower()
    if media in ("", JSON, "application/octet-stream", "text/plain"):
        try:
            obj = orjson.loads(data) if data else None
        except orjson.JSONDecodeError as exc:
            raise errors.bad_request(f"the request body is not valid JSON: {exc}") from None
    elif media in ("application/yaml", "application/x-yaml", "text/yaml"):
        obj = load_yaml(data)
    elif media == protobuf.MEDIA_TYPE:
        # kubectl 1.32+ sends typed objects this way; decoded to the dict their JSON would be.
        obj = protobuf.decode(data)
    else:
        raise errors.unsupported_media_type(content_type)
    if not isinstance(obj, dict):
        raise errors.bad_request("the request body must be a JSON object")
    return obj


def encode_list(info: ResourceInfo, entries: list[Entry], revision: int, continue_token: str = "") -> bytes:
    """A List body from pre-encoded items: one join, no re-serialisation."""
    meta = b'{"resourceVersion":"' + str(revision).encode() + b'"'
    if continue_token:
        meta += b',"continue":"' + continue_token.encode() + b'"'
    head = (b'{"kind":"' + info.list_kind.encode() + b'","apiVersion":"' + info.api_version.encode()
            + b'","metadata":' + meta + b'},"items":[')
    parts = [head]
    for e in entries:
        parts.append(e.raw)
        parts.append(b",")
    if entries:
        parts.pop()
    parts.append(b"]}")
    return b"".join(parts)


def encode_continue(revision: int, prefix: str, next_key: str) -> str:
    """An opaque token: the list's revision and where the next page starts, relative to the
    list's own key prefix, so a token can never point outside what its caller may list."""
    return base64.urlsafe_b64encode(orjson.dumps({"rv": revision, "start": next_key[len(prefix):]})).decode()


def decode_continue(token: str, prefix: str) -> tuple[int, str]:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token.encode()))
        revision, start = int(data["rv"]), str(data["start"])
    except (binascii.Error, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise errors.bad_request("continue key is not valid: malformed token") from None
    if revision <= 0 or not start or "\0" in start:
        raise errors.bad_request("continue key is not valid: malformed token")
    return revision, prefix + start


def partial_meta(obj: Obj) -> Obj:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata", {})}


# -- query parameters -----------------------------------------------------------


def q_int(request: web.Request, name: str) -> int | None:
    value = request.query.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise errors.bad_request(f"invalid value for {name}: {value!r} is not an integer") from None


def field_names(info: ResourceInfo) -> set[str]:
    names = {"metadata.name", "metadata.namespace", "metadata.tenant"}
    if info.strategy is not None:
        names.update(info.strategy.field_names)
    return names


def build_filter(request: web.Request, info: ResourceInfo, name: str = "") -> tuple[Filter | None, tuple | None]:
    """The label/field selector filter and, when one applies, the watcher index key."""
    ls_text = request.query.get("labelSelector", "")
    fs_text = request.query.get("fieldSelector", "")
    if name:
        fs_text = f"metadata.name={name}" + (f",{fs_text}" if fs_text else "")
    ls = parse_label_selector(ls_text) if ls_text else None
    fs = parse_field_selector(fs_text, field_names(info)) if fs_text else None
    if ls is not None and ls.empty:
        ls = None
    index = None
    if fs is not None:
        node = fs.exact("spec.nodeName")
        if node is not None and "spec.nodeName" in field_names(info):
            index = ("spec.nodeName", node)
    if ls is None and fs is None:
        return None, index
    if fs is None:
        matches = ls.matches  # type: ignore[union-attr]
        return (lambda e: matches(e.labels)), index
    if ls is None:
        fmatch = fs.matches
        return (lambda e: fmatch(e.meta, e.fields)), index
    lmatch, fmatch = ls.matches, fs.matches
    return (lambda e: lmatch(e.labels) and fmatch(e.meta, e.fields)), index


def dry_run(request: web.Request) -> bool:
    values = request.query.getall("dryRun", [])
    for v in values:
        if v != "All":
            raise errors.bad_request(f"unsupported dryRun value {v!r}: only 'All' is supported")
    return bool(values)


def duplicate_fields(data: bytes) -> list[str]:
    """Keys that appear twice in one JSON object (orjson keeps the last one silently)."""
    found: list[str] = []

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                found.append(key)
            seen.add(key)
        return dict(pairs)

    try:
        json.loads(data, object_pairs_hook=pairs_hook)
    except ValueError:
        return []  # not JSON (YAML): the decoder already reported what it could
    return found


def check_fields(request: web.Request, info: ResourceInfo, obj: Obj, ctx: Ctx, raw: bytes | None = None) -> None:
    """fieldValidation: Strict rejects unknown and duplicate fields, Warn (the default) reports
    unknown ones.  Duplicates are looked for under Strict only: it costs a second parse."""
    mode = request.query.get("fieldValidation", "Warn")
    if mode not in ("Ignore", "Warn", "Strict"):
        raise errors.bad_request(f"fieldValidation must be one of Ignore, Warn, Strict, not {mode!r}")
    if mode == "Ignore":
        return
    if mode == "Strict" and raw is not None and raw.lstrip()[:1] == b"{":
        dupes = duplicate_fields(raw)
        if dupes:
            raise errors.bad_request("strict decoding error: " + ", ".join(f'duplicate field "{d}"' for d in dupes))
    if info.custom_schema is not None:
        # Exactly what the custom resource's structural schema will prune when it is stored.
        unknown = structural.prune(orjson.loads(orjson.dumps(obj)), info.custom_schema)
    elif info.schema_name in SCHEMAS:
        unknown = unknown_fields(obj, info.schema_name)
    else:
        return
    if not unknown:
        return
    if mode == "Strict":
        listed = ", ".join(f'unknown field "{f}"' for f in unknown)
        raise errors.bad_request(f"strict decoding error: {listed}")
    ctx.warnings.extend(f'unknown field "{f}"' for f in unknown)


def check_kind(info: ResourceInfo, obj: Obj, accept: tuple[str, ...] = ()) -> None:
    api_version = obj.get("apiVersion")
    kind = obj.get("kind")
    if api_version and api_version != info.api_version:
        raise errors.bad_request(
            f"the API version in the data ({api_version}) does not match the expected API version "
            f"({info.api_version})"
        )
    if kind and kind != info.kind and kind not in accept:
        raise errors.bad_request(f"the kind in the data ({kind}) does not match the expected kind ({info.kind})")


def apply_args(info: ResourceInfo, subresource: str) -> dict[str, Any]:
    """Field ownership scope: a main-resource write never owns the status of a kind with a status subresource."""
    ignore = ("status",) if info.strategy.status_subresource and not subresource else ()
    return {"subresource": subresource, "ignore_fields": ignore}


def managed_args(info: ResourceInfo, subresource: str) -> dict[str, Any]:
    schema = SCHEMAS.get(info.schema_name) if info.custom_schema is None else info.custom_schema
    return {"schema": schema, "resolve": resolve, **apply_args(info, subresource)}


def with_warnings(resp: web.StreamResponse, ctx: Ctx) -> web.StreamResponse:
    for w in ctx.warnings:
        resp.headers.add("Warning", '299 - "' + w.replace('"', '\\"') + '"')
    return resp


# -- the handler ------------------------------------------------------------------


class ResourceHandler:
    """Serves one request against one resource's generic store."""

    def __init__(self, stores: Callable[[ResourceInfo], GenericStore]) -> None:
        self.stores = stores
        self.pod_streams: Any = None  # arktos.apiserver.podstreams.PodStreams: pods/log and pods/exec
        self.reviews: Any = None  # arktos.apiserver.reviews.Reviews: access, rules, token and self reviews
        self.tokens: Any = None  # arktos.apiserver.tokenrequest.TokenIssuer: serviceaccounts/token, with a signing key

    async def handle(self, request: web.Request, ri: RequestInfo, info: ResourceInfo, ctx: Ctx) -> web.StreamResponse:
        store = self.stores(info)
        ctx.field_manager = request.query.get("fieldManager", "")
        sub = ri.subresource
        if sub and sub not in info.subresources:
            raise errors.APIError(404, "NotFound", f"the server could not find the requested resource "
                                                   f"({info.plural}/{sub})")
        verb = ri.verb
        if info.kind == "Binding" and not info.group:
            if verb != "create" or ri.name:
                raise errors.method_not_allowed("bindings only support POST to the collection")
            return await self.binding(request, self.stores(self._info(store, "pods")), ctx, ri)
        if verb not in info.verbs and not sub:
            raise errors.method_not_allowed(f"{verb} is not supported on {info.plural}")
        if self.reviews is not None and self.reviews.serves(info):
            return await self.reviews.create(request, info, ctx, ri.name)  # answered, never stored
        if sub == "binding":
            return await self.binding(request, store, ctx, ri)
        if sub == "action":
            return await self.action(request, store, ctx, ri)
        if sub == "token":
            return await self.token_request(request, store, ctx, ri)
        if sub == "scale":
            return await self.scale(request, store, ctx, ri)
        if sub == "finalize":
            return await self.finalize(request, store, ctx, ri)
        if sub in ("log", "exec", "attach", "portforward"):
            return await self.pod_stream(request, store, ctx, ri)
        if verb == "get":
            obj = await store.get(ctx, ri.name)
            return self.render_one(request, info, obj, ctx)
        if verb == "list":
            return await self.list(request, store, ctx)
        if verb == "watch":
            return await self.watch(request, store, ctx, ri.name)
        if verb == "create":
            if ri.name:
                raise errors.method_not_allowed(f"POST is not supported on a named {info.singular}")
            return await self.create(request, store, ctx)
        if verb == "update":
            return await self.update(request, store, ctx, ri)
        if verb == "patch":
            return await self.patch(request, store, ctx, ri)
        if verb == "delete":
            return await self.delete(request, store, ctx, ri)
        if verb == "deletecollection":
            return await self.delete_collection(request, store, ctx)
        raise errors.method_not_allowed(f"{verb} is not supported")

    def render_one(self, request: web.Request, info: ResourceInfo, obj: Obj, ctx: Ctx,
                   status: int = 200) -> web.StreamResponse:
        mode = wants(request)
        if mode == "table":
            body = table(info, [obj], include_object=request.query.get("includeObject", "Metadata"),
                         printer_columns=info.printer_columns,
                         now=datetime.now(UTC), list_meta={"resourceVersion": obj["metadata"].get("resourceVersion",
                                                                                                   "")})
            return with_warnings(json_response(body, status), ctx)
        if mode == "meta":
            return with_warnings(json_response(partial_meta(obj), status), ctx)
        return with_warnings(json_response(obj, status), ctx)

    # -- list and watch -------------------------------------------------------

    async def list(self, request: web.Request, store: GenericStore, ctx: Ctx) -> web.StreamResponse:
        info = store.info
        flt, _ = build_filter(request, info)
        limit = q_int(request, "limit") or 0
        if limit < 0:
            raise errors.bad_request("limit must not be negative")
        token = request.query.get("continue", "")
        rv = request.query.get("resourceVersion", "")
        if rv and not (rv.isdigit()):
            raise errors.bad_request(f"invalid resourceVersion {rv!r}: must be a non-negative integer")
        if token:
            if rv:
                raise errors.bad_request("specifying resource version is not allowed when using continue")
            revision, start = decode_continue(token, store.prefix(ctx))
            if store.caches.revision == revision:
                entries, _, next_key = await store.list_entries(ctx, flt, resource_version="0", limit=limit,
                                                                start_key=start)
            else:
                try:
                    entries, next_key = await store.list_from_etcd(ctx, flt, revision, start, limit)
                except Compacted:
                    raise errors.APIError(
                        410, "Expired", "The provided continue parameter is too old to display a consistent list "
                        "result. You can start a new list without the continue parameter."
                    ) from None
        else:
            entries, revision, next_key = await store.list_entries(ctx, flt, resource_version=rv, limit=limit)
        cont = encode_continue(revision, store.prefix(ctx), next_key) if next_key else ""
        mode = wants(request)
        if mode == "json":
            return json_response(encode_list(info, entries, revision, cont))
        objs = [orjson.loads(e.raw) for e in entries]
        list_meta: Obj = {"resourceVersion": str(revision)}
        if cont:
            list_meta["continue"] = cont
        if mode == "table":
            body = table(info, objs, include_object=request.query.get("includeObject", "Metadata"),
                         printer_columns=info.printer_columns,
                         now=datetime.now(UTC), list_meta=list_meta)
        else:
            body = {"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta,
                    "items": [partial_meta(o) for o in objs]}
        return json_response(body)

    async def watch(self, request: web.Request, store: GenericStore, ctx: Ctx, name: str = "") -> web.StreamResponse:
        info = store.info
        flt, index = build_filter(request, info, name)
        rv = request.query.get("resourceVersion", "")
        timeout_s = q_int(request, "timeoutSeconds")
        if timeout_s is None or timeout_s <= 0:
            timeout_s = DEFAULT_WATCH_TIMEOUT
        timeout_s = min(timeout_s, MAX_WATCH_TIMEOUT)
        bookmarks = request.query.get("allowWatchBookmarks") in ("true", "1")
        mode = wants(request)
        caches = store.caches
        since: int | None
        if rv in ("", "0"):
            if rv == "":
                await caches.wait_consistent()
            since = None
        else:
            try:
                since = int(rv)
            except ValueError:
                raise errors.bad_request(f"invalid resourceVersion {rv!r}") from None
            if not await caches.wait_for(since):
                raise errors.timeout(f"Too large resource version: {since}, current: {caches.revision}")
        watcher = store.add_watcher(ctx, flt, index, since)
        gauge = metrics.WATCHERS.labels(info.group, info.plural)
        sent_events = metrics.WATCH_EVENTS.labels(info.group, info.plural)
        sent_bytes = metrics.WATCH_EVENT_BYTES.labels(info.group, info.plural)
        client = request.headers.get("User-Agent", "unknown").split("/", 1)[0][:64] or "unknown"
        sent_to_client = metrics.WATCH_EVENTS_BY_CLIENT.labels(info.group, info.plural, client)
        gauge.inc()
        resp = web.StreamResponse(headers={"Content-Type": JSON, "Cache-Control": "no-cache"})
        resp.enable_chunked_encoding()
        try:
            await resp.prepare(request)
            deadline = time.monotonic() + timeout_s
            # A bookmark every interval, and one just before the deadline, so a client can
            # resume the next watch from the newest revision (as kube-apiserver does).
            next_bookmark = min(time.monotonic() + BOOKMARK_INTERVAL, deadline - 1.0)
            convert = (self._table_frame(info, request) if mode == "table"
                       else self._meta_frame if mode == "meta" else None)
            while True:
                if watcher.buf:
                    frames = list(watcher.buf)
                    watcher.buf.clear()
                    if convert is not None:
                        frames = [convert(f) for f in frames]
                    data = b"".join(frames)
                    await resp.write(data)
                    sent_events.inc(len(frames))
                    sent_to_client.inc(len(frames))
                    sent_bytes.inc(len(data))
                    continue
                if watcher.closed:
                    break
                now = time.monotonic()
                if now >= deadline:
                    break
                wait = deadline - now
                if bookmarks:
                    wait = min(wait, max(next_bookmark - now, 0))
                watcher.wake.clear()
                if not watcher.buf and not watcher.closed:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(wait):
                            await watcher.wake.wait()
                if bookmarks and time.monotonic() >= next_bookmark and not watcher.buf:
                    await resp.write(self._bookmark(info, caches.revision))
                    next_bookmark = time.monotonic() + BOOKMARK_INTERVAL
                    if next_bookmark > deadline:
                        next_bookmark = float("inf")
            if watcher.overflowed:
                err = errors.gone("the watch fell too far behind and was closed; watch again from your last "
                                  "resourceVersion")
                await resp.write(b'{"type":"ERROR","object":' + orjson.dumps(err.status()) + b"}\n")
            await resp.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            watcher.close()
            gauge.dec()
        return resp

    @staticmethod
    def _bookmark(info: ResourceInfo, revision: int) -> bytes:
        return orjson.dumps({"type": "BOOKMARK", "object": {
            "kind": info.kind, "apiVersion": info.api_version, "metadata": {"resourceVersion": str(revision)}}}) + b"\n"

    @staticmethod
    def _meta_frame(frame: bytes) -> bytes:
        event = orjson.loads(frame)
        if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
            event["object"] = partial_meta(event["object"])
        return orjson.dumps(event) + b"\n"

    @staticmethod
    def _table_frame(info: ResourceInfo, request: web.Request) -> Callable[[bytes], bytes]:
        include = request.query.get("includeObject", "Metadata")

        def convert(frame: bytes) -> bytes:
            event = orjson.loads(frame)
            obj = event["object"]
            if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                event["object"] = table(info, [obj], include_object=include, now=datetime.now(UTC),
                                        printer_columns=info.printer_columns,
                                        list_meta={"resourceVersion": obj["metadata"].get("resourceVersion", "")})
            return orjson.dumps(event) + b"\n"

        return convert

    # -- writes ---------------------------------------------------------------

    async def create(self, request: web.Request, store: GenericStore, ctx: Ctx) -> web.StreamResponse:
        data = await read_body(request)
        obj = decode_object(data, request.headers.get("Content-Type", ""))
        check_kind(store.info, obj)
        check_fields(request, store.info, obj, ctx, data)
        ctx.dry_run = dry_run(request)
        ctx.field_manager = request.query.get("fieldManager", "")
        obj = patch.update_managed_fields(None, obj, self._manager(request, ctx), "Update", now_rfc3339(),
                                          **managed_args(store.info, ""))
        created = await store.create(ctx, obj)
        return self.render_one(request, store.info, created, ctx, 201)

    @staticmethod
    def _manager(request: web.Request, ctx: Ctx) -> str:
        if ctx.field_manager:
            if len(ctx.field_manager) > MAX_FIELD_MANAGER:
                raise errors.invalid_object("PatchOptions", "", [errors.FieldError(
                    "fieldManager", "FieldValueTooLong", f"must have at most {MAX_FIELD_MANAGER} bytes")],
                    "meta.k8s.io")
            return ctx.field_manager
        agent = request.headers.get("User-Agent", "unknown")
        return agent.split("/", 1)[0] or "unknown"

    async def update(self, request: web.Request, store: GenericStore, ctx: Ctx, ri: RequestInfo) -> web.StreamResponse:
        info = store.info
        data = await read_body(request)
        body = decode_object(data, request.headers.get("Content-Type", ""))
        check_kind(info, body)
        check_fields(request, info, body, ctx, data)
        ctx.dry_run = dry_run(request)
        manager = self._manager(request, ctx)
        now = now_rfc3339()

        def mutate(old: Obj) -> Obj:
            return patch.update_managed_fields(old, body, manager, "Update", now, **managed_args(info, ri.subresource))

        obj, _ = await store.update(ctx, ri.name, mutate, subresource=ri.subresource)
        return self.render_one(request, info, obj, ctx)

    async def patch(self, request: web.Request, store: GenericStore, ctx: Ctx, ri: RequestInfo) -> web.StreamResponse:
        info = store.info
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        kind = PATCH_TYPES.get(content_type)
        if kind is None:
            raise errors.unsupported_media_type(content_type or "(none)")
        data = await read_body(request)
        ctx.dry_run = dry_run(request)
        manager = self._manager(request, ctx)
        now = now_rfc3339()
        schema = SCHEMAS.get(info.schema_name) if info.custom_schema is None else None
        if kind == "strategic" and info.custom_schema is not None:
            raise errors.unsupported_media_type(
                "strategic merge patch is not supported for custom resources; use a merge or JSON patch")
        if kind == "apply":
            applied = patch.parse_apply_body(data)
            check_kind(info, applied)
            check_fields(request, info, applied, ctx)
            if not manager or ctx.field_manager == "":
                manager = request.query.get("fieldManager", "")
                if not manager:
                    raise errors.bad_request("PATCH requests with apply content type require a fieldManager")
            force = request.query.get("force") in ("true", "1")
            if ri.subresource == "status":
                applied = {**applied}

            def apply_mutate(old: Obj) -> Obj:
                return patch.server_side_apply(old, applied, manager, force, schema, resolve, now,
                                               **apply_args(info, ri.subresource))

            def create_missing() -> Obj:
                return patch.server_side_apply(None, applied, manager, force, schema, resolve, now,
                                               **apply_args(info, ri.subresource))

            obj, created = await store.update(ctx, ri.name, apply_mutate, subresource=ri.subresource,
                                              create_missing=create_missing if not ri.subresource else None)
            return self.render_one(request, info, obj, ctx, 201 if created else 200)

        try:
            body = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise errors.bad_request(f"the patch is not valid JSON: {exc}") from None

        def mutate(old: Obj) -> Obj:
            if kind == "json":
                new = patch.json_patch(old, body)
            elif kind == "merge":
                new = patch.merge_patch(old, body)
            else:
                new = patch.strategic_merge_patch(old, body, schema, resolve)
            check_kind(info, new)
            check_fields(request, info, new, ctx)
            return patch.update_managed_fields(old, new, manager, "Update", now, **managed_args(info, ri.subresource))

        obj, _ = await store.update(ctx, ri.name, mutate, subresource=ri.subresource)
        return self.render_one(request, info, obj, ctx)

    async def delete_options(self, request: web.Request) -> Obj:
        data = await read_body(request) if request.can_read_body else b""
        options: Obj = decode_object(data, request.headers.get("Content-Type", "")) if data.strip() else {}
        grace = q_int(request, "gracePeriodSeconds")
        if grace is not None:
            options["gracePeriodSeconds"] = grace
        if "propagationPolicy" in request.query:
            options["propagationPolicy"] = request.query["propagationPolicy"]
        if "orphanDependents" in request.query:
            options["orphanDependents"] = request.query["orphanDependents"] == "true"
        if request.query.getall("dryRun", []):
            options["dryRun"] = ["All"]
        return options

    async def delete(self, request: web.Request, store: GenericStore, ctx: Ctx, ri: RequestInfo) -> web.StreamResponse:
        options = await self.delete_options(request)
        ctx.dry_run = bool(options.get("dryRun")) or dry_run(request)
        obj, deleted = await store.delete(ctx, ri.name, options)
        return self.render_one(request, store.info, obj, ctx, 200 if deleted else 202)

    async def delete_collection(self, request: web.Request, store: GenericStore, ctx: Ctx) -> web.StreamResponse:
        options = await self.delete_options(request)
        policy = options.get("propagationPolicy")
        if policy is not None and policy not in ("Orphan", "Foreground", "Background"):
            raise errors.invalid_object("DeleteOptions", "", [errors.not_supported(
                "propagationPolicy", policy, ["Foreground", "Background", "Orphan"])], group="meta.k8s.io")
        ctx.dry_run = bool(options.get("dryRun")) or dry_run(request)
        flt, _ = build_filter(request, store.info)
        items = await store.delete_collection(ctx, flt, options)
        info = store.info
        return json_response({"kind": info.list_kind, "apiVersion": info.api_version,
                              "metadata": {"resourceVersion": str(store.caches.revision)}, "items": items})

    # -- subresources with their own shape -----------------------------------

    async def scale(self, request: web.Request, store: GenericStore, ctx: Ctx, ri: RequestInfo) -> web.StreamResponse:
        from arktos.api.strategies import apply_scale, to_scale

        info = store.info
        if ri.verb == "get":
            return json_response(to_scale(await store.get(ctx, ri.name), info))
        if ri.verb not in ("update", "patch"):
            raise errors.method_not_allowed(f"{ri.verb} is not supported on {info.plural}/scale")
        data = await read_body(request)
        ctx.dry_run = dry_run(request)
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()

        def mutate(old: Obj) -> Obj:
            current = to_scale(old, info)
            if ri.verb == "update":
                scale = decode_object(data, content_type)
            else:
                kind = PATCH_TYPES.get(content_type)
                try:
                    body = orjson.loads(data) if kind != "apply" else patch.parse_apply_body(data)
                except orjson.JSONDecodeError as exc:
                    raise errors.bad_request(f"the patch is not valid JSON: {exc}") from None
                if kind == "json":
                    scale = patch.json_patch(current, body)
                elif kind in ("merge", "strategic", "apply"):
                    scale = patch.merge_patch(current, body)
                else:
                    raise errors.unsupported_media_type(content_type or "(none)")
            want_rv = (scale.get("metadata") or {}).get("resourceVersion")
            new = apply_scale(old, scale)
            if want_rv:
                new["metadata"]["resourceVersion"] = want_rv
            return new

        obj, _ = await store.update(ctx, ri.name, mutate, subresource="scale")
        return json_response(to_scale(obj, info))

    async def finalize(self, request: web.Request, store: GenericStore, ctx: Ctx,
                       ri: RequestInfo) -> web.StreamResponse:
        """PUT {namespace,tenant}/finalize: only spec.finalizers may change."""
        if ri.verb != "update":
            raise errors.method_not_allowed("finalize only supports PUT")
        body = decode_object(await read_body(request), request.headers.get("Content-Type", ""))
        spec = body.get("spec") or {}
        if not isinstance(spec, dict) or not isinstance(spec.get("finalizers") or [], list):
            raise errors.bad_request("spec.finalizers must be a list")
        if not isinstance(body.get("metadata") or {}, dict):
            raise errors.bad_request("metadata must be an object")
        finalizers = spec.get("finalizers") or []

        def mutate(old: Obj) -> Obj:
            old.setdefault("spec", {})["finalizers"] = finalizers
            want_rv = (body.get("metadata") or {}).get("resourceVersion")
            if want_rv:
                old["metadata"]["resourceVersion"] = want_rv
            # When nothing holds a deleted object any more, the store deletes it on this write.
            return old

        obj, _ = await store.update(ctx, ri.name, mutate, subresource="finalize")
        return self.render_one(request, store.info, obj, ctx)

    async def binding(self, request: web.Request, store: GenericStore, ctx: Ctx,
                      ri: RequestInfo) -> web.StreamResponse:
        """POST pods/{name}/binding: what a scheduler does to place a pod."""
        if ri.verb != "create":
            raise errors.method_not_allowed("binding only supports POST")
        body = decode_object(await read_body(request), request.headers.get("Content-Type", ""))
        for part in ("metadata", "target"):
            if body.get(part) is not None and not isinstance(body[part], dict):
                raise errors.bad_request(f"Binding.{part} must be an object")
        pod_name = ri.name or (body.get("metadata") or {}).get("name")
        if not isinstance(pod_name, str) or not pod_name:
            raise errors.invalid_object("Binding", "", [errors.required("metadata.name")])
        ri = RequestInfo(ri.group, ri.version, "pods", ri.verb, ri.tenant, ri.namespace, pod_name, "binding",
                         ri.path_tenant)
        target = body.get("target") or {}
        node = target.get("name")
        if not isinstance(node, str) or not node:
            raise errors.invalid_object("Binding", ri.name, [errors.required("target.name")])
        ctx.dry_run = dry_run(request)
        now = now_rfc3339()

        def mutate(old: Obj) -> Obj:
            spec = old.setdefault("spec", {})
            if old["metadata"].get("deletionTimestamp"):
                raise errors.conflict("pods", ri.name, "", "pod is being deleted, cannot be assigned to a host")
            if spec.get("nodeName"):
                raise errors.conflict("pods", ri.name, "",
                                      f"pod {ri.name} is already assigned to node \"{spec['nodeName']}\"")
            uid = (body.get("metadata") or {}).get("uid")
            if uid and uid != old["metadata"].get("uid"):
                raise errors.conflict("pods", ri.name, "", "the UID in the binding does not match the pod")
            spec["nodeName"] = node
            annotations = (body.get("metadata") or {}).get("annotations")
            if annotations:
                old["metadata"].setdefault("annotations", {}).update(annotations)
            status = old.setdefault("status", {})
            conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
            conditions.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                               "lastTransitionTime": now})
            status["conditions"] = conditions
            return old

        await store.update(ctx, ri.name, mutate, subresource="binding")
        return json_response(status_success(code=201), 201)

    async def token_request(self, request: web.Request, store: GenericStore, ctx: Ctx,
                            ri: RequestInfo) -> web.StreamResponse:
        """POST serviceaccounts/{name}/token: a bound service-account token (arktos.apiserver.tokenrequest)."""
        if ri.verb != "create":
            raise errors.method_not_allowed("token only supports POST")
        if self.tokens is None:
            raise errors.APIError(404, "NotFound", "the server could not find the requested resource "
                                                   "(serviceaccounts/token): no --service-account-signing-key-file")
        body = decode_object(await read_body(request), request.headers.get("Content-Type", ""))
        answer = await self.tokens.create(body, ctx, ri.name, store, self.stores(self._info(store, "pods")))
        return json_response(answer, 201)

    async def action(self, request: web.Request, store: GenericStore, ctx: Ctx,
                     ri: RequestInfo) -> web.StreamResponse:
        """POST pods/{name}/action: record a VM action for the pod's node agent (Arktos)."""
        if ri.verb != "create":
            raise errors.method_not_allowed("action only supports POST")
        body = decode_object(await read_body(request), request.headers.get("Content-Type", ""))
        operation = body.get("operation")
        ops = {"reboot": ("rebootAction", "rebootParams"), "snapshot": ("snapshotAction", "snapshotParams"),
               "restore": ("restoreAction", "restoreParams")}
        if operation not in ops:
            raise errors.invalid_object("CustomAction", ri.name, [errors.not_supported(
                "operation", operation, list(ops))])
        pod = await store.get(ctx, ri.name)
        spec_field, params_field = ops[operation]
        params = body.get(params_field) or {}
        if not isinstance(params, dict):
            raise errors.bad_request(f"{params_field} must be an object")
        # Refused here rather than failed later by the agent, so the caller hears why at once.
        required = {"snapshot": "snapshotName", "restore": "snapshotID"}.get(operation)
        if required and not (isinstance(params.get(required), str) and params[required]):
            raise errors.invalid_object("CustomAction", ri.name, [errors.required(
                f"{params_field}.{required}", f"a {operation} action needs {params_field}.{required}")])
        if not (pod.get("spec") or {}).get("virtualMachine"):
            raise errors.bad_request(f"pod {ri.name} is not a VM pod (it has no spec.virtualMachine): "
                                     f"{operation} and the other actions are for VM pods")
        if not (pod.get("spec") or {}).get("nodeName"):
            raise errors.conflict("pods", ri.name, "", f"pod {ri.name} is not scheduled to a node yet: "
                                  "no agent could act on it; retry when it runs")
        action = {
            "apiVersion": "v1",
            "kind": "Action",
            "metadata": {"name": f"{operation}-{int(time.time())}", "namespace": ctx.namespace,
                         "tenant": ctx.tenant},
            "spec": {"nodeName": (pod.get("spec") or {}).get("nodeName", ""), "podName": ri.name,
                     "podID": pod["metadata"].get("uid", ""), spec_field: params},
        }
        actions = self.stores(self._info(store, "actions"))
        ctx.dry_run = dry_run(request)
        created = await actions.create(ctx, action)
        name = created["metadata"]["name"]
        return json_response(status_success({"name": name, "kind": "actions"}, 201) | {
            "message": f"action {name} created for pod {ri.name}"}, 201)

    async def pod_stream(self, request: web.Request, store: GenericStore, ctx: Ctx,
                         ri: RequestInfo) -> web.StreamResponse:
        """GET pods/{name}/log, GET|POST pods/{name}/exec|attach|portforward: the pod comes from the caller's
        tenant, like any read, and the request goes on to the agent of its node."""
        if ri.subresource == "log" and ri.verb != "get":
            raise errors.method_not_allowed("log only supports GET")
        if ri.subresource in ("exec", "attach", "portforward") and ri.verb not in ("get", "create"):
            raise errors.method_not_allowed(f"{ri.subresource} only supports GET and POST")
        if self.pod_streams is None:
            raise errors.unavailable(f"this API server does not serve pods/{ri.subresource}")
        pod = await store.get(ctx, ri.name)
        if ri.subresource == "log":
            return await self.pod_streams.log(request, pod)
        if ri.subresource == "attach":
            return await self.pod_streams.attach(request, pod)
        if ri.subresource == "portforward":
            return await self.pod_streams.port_forward(request, pod)
        return await self.pod_streams.exec(request, pod)

    @staticmethod
    def _info(store: GenericStore, resource: str) -> ResourceInfo:
        cache = store.caches.caches.get(resource)
        if cache is None:
            raise errors.internal(f"the {resource} resource is not served")
        return cache.info
