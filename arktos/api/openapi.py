"""OpenAPI v3 documents the server publishes under /openapi/v3.

kubectl reads them for `explain`, and before `create`/`apply` it looks up the
PATCH operation of the object's kind to see whether the server understands
`fieldValidation` (if so it leaves schema validation to the server).  So every
served resource gets upstream-style operations on both the short paths and
Arktos's tenant paths, and every PATCH, PUT and POST lists `dryRun`,
`fieldManager` and `fieldValidation`.

Documents are big and requested on every kubectl invocation that misses its
cache, so they are built once per registry state and cached with their JSON
body and hash.  The cache key is a fingerprint of the resources of the group
version (including the identity of each custom schema dict), so adding or
removing a CRD version changes the affected document and the index without any
explicit invalidation.  A custom schema must therefore be replaced, not
mutated in place, when a CRD changes.
"""

from __future__ import annotations

import copy
import hashlib
import weakref
from dataclasses import dataclass
from typing import Any

import orjson

from arktos.api.registry import Registry, ResourceInfo, Scope
from arktos.api.schemas import REF_PREFIX, SCHEMAS, closure, refs_in

Schema = dict[str, Any]

META = "io.k8s.apimachinery.pkg.apis.meta.v1"
STATUS = f"{META}.Status"
DELETE_OPTIONS = f"{META}.DeleteOptions"
PATCH = f"{META}.Patch"
WATCH_EVENT = f"{META}.WatchEvent"
OBJECT_META = f"{META}.ObjectMeta"
LIST_META = f"{META}.ListMeta"
SCALE = "io.k8s.api.autoscaling.v1.Scale"
BINDING = "io.k8s.api.core.v1.Binding"
CUSTOM_ACTION = "io.arktos.api.core.v1.CustomAction"
TOKEN_REQUEST = "io.k8s.api.authentication.v1.TokenRequest"

PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)


# ---------------------------------------------------------------- names


def component_name(info: ResourceInfo) -> str:
    """The schema component of a resource's kind.

    Built-ins use their registered name; a custom resource without one gets
    Kubernetes's naming, the group reversed then version and kind
    (stable.example.com/v1 CronTab -> com.example.stable.v1.CronTab).
    """
    if info.schema_name:
        return info.schema_name
    reversed_group = ".".join(reversed(info.group.split("."))) if info.group else "io.k8s.api.core"
    return f"{reversed_group}.{info.version}.{info.kind}"


def _gvk(group: str, version: str, kind: str) -> dict[str, str]:
    return {"group": group, "kind": kind, "version": version}


def _ref(name: str) -> Schema:
    return {"$ref": REF_PREFIX + name}


def _string(description: str) -> Schema:
    return {"type": "string", "description": description}


def custom_components(info: ResourceInfo) -> dict[str, Schema]:
    """Kind and list components of a custom resource.

    The CRD's schema describes the object's own fields; apiVersion, kind and
    metadata are added here the way every served kind has them.  A resource
    with no schema gets one that accepts anything, since the server would.
    """
    name = component_name(info)
    if info.custom_schema is not None:
        schema: Schema = copy.deepcopy(info.custom_schema)
    else:
        schema = {"x-kubernetes-preserve-unknown-fields": True}
    schema.setdefault("type", "object")
    props = schema.setdefault("properties", {})
    props["apiVersion"] = _string("The versioned schema of this object (group/version).")
    props["kind"] = _string("The object's type in CamelCase.")
    props["metadata"] = {"allOf": [_ref(OBJECT_META)], "description": "Standard object metadata."}
    schema["x-kubernetes-group-version-kind"] = [_gvk(info.group, info.version, info.kind)]
    listing: Schema = {
        "type": "object",
        "description": f"A page of {info.kind} objects.",
        "properties": {
            "apiVersion": _string("The versioned schema of this list."),
            "kind": _string("The list's kind."),
            "metadata": {"allOf": [_ref(LIST_META)], "description": "Version and paging of the list."},
            "items": {"type": "array", "items": _ref(name), "description": f"The {info.kind} objects."},
        },
        "required": ["items"],
        "x-kubernetes-group-version-kind": [_gvk(info.group, info.version, info.list_kind)],
    }
    return {name: schema, name + "List": listing}


# ---------------------------------------------------------------- parameters


def _param(name: str, where: str, typ: str, description: str, required: bool = False) -> Schema:
    p: Schema = {"name": name, "in": where, "description": description,
                 "schema": {"type": typ, "uniqueItems": True}}
    if required:
        p["required"] = True
    return p


P_PRETTY = _param("pretty", "query", "string", "If 'true', indent the JSON output.")
P_DRY_RUN = _param("dryRun", "query", "string",
                   "All: check and admit the request but do not persist it.")
P_FIELD_MANAGER = _param("fieldManager", "query", "string",
                         "Name recorded as the owner of the fields this request sets.")
P_FIELD_VALIDATION = _param(
    "fieldValidation", "query", "string",
    "What to do with unknown or duplicate fields in the body: Ignore drops them, Warn drops them "
    "and returns a warning for each, Strict rejects the request.",
)
P_FORCE = _param("force", "query", "boolean",
                 "For apply patches: take over fields owned by other managers instead of failing.")
P_LIST = [
    _param("allowWatchBookmarks", "query", "boolean", "Ask for BOOKMARK events on a watch."),
    _param("continue", "query", "string", "Token from a previous page to fetch the next one."),
    _param("fieldSelector", "query", "string",
           "Select objects by fields, e.g. spec.nodeName=n1; Arktos also accepts hashKey ranges."),
    _param("labelSelector", "query", "string", "Select objects by labels, e.g. app=web,tier!=db."),
    _param("limit", "query", "integer", "Most objects to return in one page."),
    _param("resourceVersion", "query", "string", "Version to read at or to watch from."),
    _param("resourceVersionMatch", "query", "string", "Exact or NotOlderThan: how resourceVersion applies."),
    _param("sendInitialEvents", "query", "boolean", "Start a watch with ADDED events for existing objects."),
    _param("timeoutSeconds", "query", "integer", "End the call (list or watch) after this many seconds."),
    _param("watch", "query", "boolean", "Stream changes instead of returning a list."),
]
P_DELETE = [
    P_DRY_RUN,
    _param("gracePeriodSeconds", "query", "integer", "Seconds before deletion; 0 deletes at once."),
    _param("ignoreStoreReadErrorWithClusterBreakingPotential", "query", "boolean",
           "Delete an object that cannot be read from storage."),
    _param("orphanDependents", "query", "boolean", "Deprecated: use propagationPolicy."),
    _param("propagationPolicy", "query", "string", "Orphan, Background or Foreground."),
]
P_LOG = [
    _param("container", "query", "string", "Container to read; optional when the pod has one."),
    _param("follow", "query", "boolean", "Keep streaming new log lines."),
    _param("insecureSkipTLSVerifyBackend", "query", "boolean", "Skip verifying the node agent's certificate."),
    _param("limitBytes", "query", "integer", "Stop after this many bytes."),
    _param("previous", "query", "boolean", "Read the previous, terminated instance of the container."),
    _param("sinceSeconds", "query", "integer", "Only lines newer than this many seconds."),
    _param("stream", "query", "string", "All, Stdout or Stderr."),
    _param("tailLines", "query", "integer", "Only the last this many lines."),
    _param("timestamps", "query", "boolean", "Prefix each line with its timestamp."),
]
P_EXEC = [
    _param("command", "query", "string", "Command to run; repeat the parameter for each argument."),
    _param("container", "query", "string", "Container to run in."),
    _param("stderr", "query", "boolean", "Stream stderr."),
    _param("stdin", "query", "boolean", "Stream stdin."),
    _param("stdout", "query", "boolean", "Stream stdout."),
    _param("tty", "query", "boolean", "Allocate a terminal."),
]
P_ATTACH = [p for p in P_EXEC if p["name"] != "command"]
P_PORT_FORWARD = [_param("ports", "query", "integer", "Pod ports to forward to; repeat the parameter for each.")]
P_WRITE = [P_DRY_RUN, P_FIELD_MANAGER, P_FIELD_VALIDATION]


def _path_param(name: str, description: str) -> Schema:
    return _param(name, "path", "string", description, required=True)


# ---------------------------------------------------------------- operations


def _content(schema_name: str | None, *types: str) -> Schema:
    schema = _ref(schema_name) if schema_name else {"type": "string"}
    return {t: {"schema": schema} for t in types}


def _responses(schema_name: str | None, codes: tuple[str, ...], *types: str) -> Schema:
    types = types or ("application/json", "application/yaml")
    words = {"200": "OK", "201": "Created", "202": "Accepted"}
    out: Schema = {code: {"description": words[code], "content": _content(schema_name, *types)}
                   for code in codes}
    out["401"] = {"description": "Unauthorized"}
    return out


def _body(schema_name: str, *types: str) -> Schema:
    return {"content": _content(schema_name, *(types or ("*/*",))), "required": True}


@dataclass
class _Ctx:
    """What every operation of one resource shares."""

    info: ResourceInfo
    tag: str
    gv_camel: str
    kind_component: str
    custom: bool

    def gvk(self) -> dict[str, str]:
        return _gvk(self.info.group, self.info.version, self.info.kind)


def _op(ctx: _Ctx, op_id: str, action: str, description: str, responses: Schema,
        params: list[Schema] | None = None, body: Schema | None = None,
        gvk: dict[str, str] | None = None) -> Schema:
    op: Schema = {
        "tags": [ctx.tag],
        "description": description,
        "operationId": op_id,
        "responses": responses,
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk or ctx.gvk(),
    }
    if params:
        op["parameters"] = list(params)
    if body is not None:
        op["requestBody"] = body
    return op


def _patch_body(ctx: _Ctx) -> Schema:
    # Custom resources have no Go struct tags to merge by, so Kubernetes does
    # not accept strategic merge patches for them; neither do we advertise it.
    types = [t for t in PATCH_TYPES if not (ctx.custom and "strategic" in t)]
    return _body(PATCH, *types)


def _camel(text: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in text.replace("-", ".").split("."))


def _group_camel(group: str) -> str:
    if not group:
        return "Core"
    return _camel(group.removesuffix(".k8s.io"))


def _scope_variants(info: ResourceInfo) -> list[tuple[str, str, list[Schema]]]:
    """(path prefix inside the group version, operation-id infix, path parameters) per URL form."""
    ns = _path_param("namespace", "Namespace of the objects.")
    tenant = _path_param("tenant", "Arktos tenant that owns the objects.")
    if info.scope is Scope.NAMESPACE:
        return [
            ("namespaces/{namespace}/", "Namespaced", [ns]),
            ("tenants/{tenant}/namespaces/{namespace}/", "TenantNamespaced", [tenant, ns]),
        ]
    if info.scope is Scope.TENANT:
        return [("", "", []), ("tenants/{tenant}/", "Tenant", [tenant])]
    return [("", "", [])]


_SUBRESOURCE_KINDS: dict[str, tuple[str, str, str]] = {
    "scale": ("autoscaling", "v1", "Scale"),
    "binding": ("", "v1", "Binding"),
    "action": ("", "v1", "CustomAction"),
    "token": ("authentication.k8s.io", "v1", "TokenRequest"),
    "exec": ("", "v1", "PodExecOptions"),
    "attach": ("", "v1", "PodAttachOptions"),
    "portforward": ("", "v1", "PodPortForwardOptions"),
}


def _resource_paths(info: ResourceInfo, paths: dict[str, Schema], used: set[str]) -> None:
    base = info.url_prefix
    custom = info.custom_schema is not None or info.schema_name not in SCHEMAS
    ctx = _Ctx(info, f"{_group_camel(info.group)[:1].lower()}{_group_camel(info.group)[1:]}_{info.version}",
               _group_camel(info.group) + _camel(info.version), component_name(info), custom)
    kind = ctx.kind_component
    listing = kind + "List"
    verbs = set(info.verbs)
    plural = info.plural
    name_param = _path_param("name", f"Name of the {info.kind}.")

    def unique(op_id: str) -> str:
        n, candidate = 2, op_id
        while candidate in used:
            candidate, n = f"{op_id}{n}", n + 1
        used.add(candidate)
        return candidate

    def opid(verb: str, infix: str, suffix: str = "") -> str:
        return unique(f"{verb}{ctx.gv_camel}{infix}{info.kind}{suffix}")

    def list_op(infix: str, suffix: str, what: str) -> Schema:
        return _op(ctx, opid("list", infix, suffix), "list", f"list or watch {what}",
                   _responses(listing, ("200",), "application/json", "application/yaml",
                              "application/json;stream=watch"), P_LIST)

    def watch_op(infix: str, suffix: str, what: str, action: str) -> Schema:
        verb = "watch" if action == "watch" else "watchList"
        return _op(ctx, opid(verb, infix, suffix), action,
                   f"watch {what}; deprecated, use the watch parameter of a list",
                   _responses(WATCH_EVENT, ("200",), "application/json", "application/json;stream=watch"),
                   P_LIST)

    variants = _scope_variants(info)
    # Lists across every namespace, of the caller's tenant (short path) or a named tenant.
    if info.scope is Scope.NAMESPACE and "list" in verbs:
        tenant = _path_param("tenant", "Arktos tenant that owns the objects.")
        for prefix, infix, params in (("", "", []), ("tenants/{tenant}/", "Tenant", [tenant])):
            what = f"{info.kind} objects in every namespace"
            paths[f"{base}/{prefix}{plural}"] = {
                "get": list_op(infix, "ForAllNamespaces", what),
                "parameters": [*params, P_PRETTY],
            }
            if "watch" in verbs:
                paths[f"{base}/watch/{prefix}{plural}"] = {
                    "get": watch_op(infix, "ForAllNamespaces", what, "watchlist"),
                    "parameters": [*params, P_PRETTY],
                }

    for prefix, infix, params in variants:
        collection: Schema = {}
        if "list" in verbs:
            collection["get"] = list_op(infix, "", f"{info.kind} objects")
        if "create" in verbs:
            collection["post"] = _op(ctx, opid("create", infix), "post", f"create a {info.kind}",
                                     _responses(kind, ("200", "201", "202")), P_WRITE, _body(kind))
        if "deletecollection" in verbs:
            collection["delete"] = _op(
                ctx, opid("deletecollection", infix), "deletecollection",
                f"delete a collection of {info.kind} objects", _responses(STATUS, ("200",)),
                [*P_DELETE, *(p for p in P_LIST if p["name"] not in ("watch", "allowWatchBookmarks"))],
                _body(DELETE_OPTIONS) | {"required": False},
            )
        if collection:
            collection["parameters"] = [*params, P_PRETTY]
            paths[f"{base}/{prefix}{plural}"] = collection
        if "watch" in verbs:
            paths[f"{base}/watch/{prefix}{plural}"] = {
                "get": watch_op(infix, "", f"{info.kind} objects", "watchlist"),
                "parameters": [*params, P_PRETTY],
            }
            paths[f"{base}/watch/{prefix}{plural}/{{name}}"] = {
                "get": watch_op(infix, "", f"one {info.kind}", "watch"),
                "parameters": [name_param, *params, P_PRETTY],
            }

        item: Schema = {}
        if "get" in verbs:
            item["get"] = _op(ctx, opid("read", infix), "get", f"read the specified {info.kind}",
                              _responses(kind, ("200",)))
        if "update" in verbs:
            item["put"] = _op(ctx, opid("replace", infix), "put", f"replace the specified {info.kind}",
                              _responses(kind, ("200", "201")), P_WRITE, _body(kind))
        if "patch" in verbs:
            item["patch"] = _op(ctx, opid("patch", infix), "patch", f"partially update the specified {info.kind}",
                                _responses(kind, ("200", "201")), [*P_WRITE, P_FORCE], _patch_body(ctx))
        if "delete" in verbs:
            item["delete"] = _op(ctx, opid("delete", infix), "delete", f"delete the specified {info.kind}",
                                 _responses(kind, ("200", "202")), P_DELETE,
                                 _body(DELETE_OPTIONS) | {"required": False})
        if item:
            item["parameters"] = [name_param, *params, P_PRETTY]
            paths[f"{base}/{prefix}{plural}/{{name}}"] = item

        for sub in info.subresources:
            path_item = _subresource_ops(ctx, sub, infix, opid, verbs)
            if path_item:
                path_item["parameters"] = [name_param, *params, P_PRETTY]
                paths[f"{base}/{prefix}{plural}/{{name}}/{sub}"] = path_item


def _subresource_ops(ctx: _Ctx, sub: str, infix: str, opid: Any, verbs: set[str]) -> Schema:
    kind = ctx.kind_component
    title = sub[:1].upper() + sub[1:]
    what = f"{sub} of the specified {ctx.info.kind}"
    out: Schema = {}
    if sub not in ("binding", "action", "token", "log", "exec", "attach", "portforward", "finalize"):
        # status, scale and any other subresource that reads and writes (part of) the object.
        target, gvk = kind, None
        if sub == "scale":
            target, gvk = SCALE, _gvk(*_SUBRESOURCE_KINDS["scale"])
        if "get" in verbs:
            out["get"] = _op(ctx, opid("read", infix, title), "get", f"read {what}",
                             _responses(target, ("200",)), gvk=gvk)
        if "update" in verbs:
            out["put"] = _op(ctx, opid("replace", infix, title), "put", f"replace {what}",
                             _responses(target, ("200", "201")), P_WRITE, _body(target), gvk=gvk)
        if "patch" in verbs:
            out["patch"] = _op(ctx, opid("patch", infix, title), "patch", f"partially update {what}",
                               _responses(target, ("200", "201")), [*P_WRITE, P_FORCE], _patch_body(ctx),
                               gvk=gvk)
    elif sub == "binding":
        out["post"] = _op(ctx, opid("create", infix, title), "post", f"bind the {ctx.info.kind} to a node",
                          _responses(BINDING, ("200", "201", "202")), P_WRITE, _body(BINDING),
                          gvk=_gvk(*_SUBRESOURCE_KINDS["binding"]))
    elif sub == "action":
        out["post"] = _op(ctx, opid("create", infix, title), "post",
                          f"ask for an action (reboot, snapshot, restore) on the {ctx.info.kind}'s VM",
                          _responses(STATUS, ("200", "201", "202")), P_WRITE, _body(CUSTOM_ACTION),
                          gvk=_gvk(*_SUBRESOURCE_KINDS["action"]))
    elif sub == "token":
        out["post"] = _op(ctx, opid("create", infix, title), "post", f"create token of a {ctx.info.kind}",
                          _responses(TOKEN_REQUEST, ("200", "201", "202")), P_WRITE, _body(TOKEN_REQUEST),
                          gvk=_gvk(*_SUBRESOURCE_KINDS["token"]))
    elif sub == "log":
        out["get"] = _op(ctx, opid("read", infix, title), "get", f"read the log of the specified {ctx.info.kind}",
                         _responses(None, ("200",), "text/plain", "application/json"), P_LOG)
    elif sub in ("exec", "attach", "portforward"):
        doing, params = {"exec": ("run a command in a container", P_EXEC),
                         "attach": ("attach to the main process of a container", P_ATTACH),
                         "portforward": ("forward ports into", P_PORT_FORWARD)}[sub]
        for method in ("get", "post"):
            out[method] = _op(ctx, opid(f"connect{method.title()}", infix, title), "connect",
                              f"{doing} of the specified {ctx.info.kind}" if sub != "portforward"
                              else f"{doing} the specified {ctx.info.kind}",
                              _responses(None, ("200",), "*/*"), params,
                              gvk=_gvk(*_SUBRESOURCE_KINDS[sub]))
    elif sub == "finalize" and "update" in verbs:
        out["put"] = _op(ctx, opid("replace", infix, title), "put", f"replace finalize of the {ctx.info.kind}",
                         _responses(kind, ("200", "201")), P_WRITE, _body(kind))
    return out


# ---------------------------------------------------------------- documents


def _document(paths: dict[str, Schema], schemas: dict[str, Schema], title: str) -> Schema:
    return {
        "openapi": "3.0.0",
        "info": {"title": "Arktos", "version": "v1", "description": title},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _discovery_op(op_id: str, tag: str, schema_name: str, description: str) -> Schema:
    return {"get": {"tags": [tag], "description": description, "operationId": op_id,
                    "responses": _responses(schema_name, ("200",))}}


def _build_group_version(registry: Registry, group: str, version: str) -> Schema:
    infos = sorted(registry.in_group_version(group, version), key=lambda i: i.plural)
    paths: dict[str, Schema] = {}
    used: set[str] = set()
    table: dict[str, Schema] = SCHEMAS
    extra: dict[str, Schema] = {}
    for info in infos:
        if info.custom_schema is not None or component_name(info) not in SCHEMAS:
            extra.update(custom_components(info))
        _resource_paths(info, paths, used)
    if extra:
        table = {**SCHEMAS, **extra}
    prefix = "/api/v1" if not group else f"/apis/{group}/{version}"
    gv_camel = _group_camel(group) + _camel(version)
    tag = f"{gv_camel[:1].lower()}{gv_camel[1:]}"
    paths[prefix + "/"] = _discovery_op(f"get{gv_camel}APIResources", tag, f"{META}.APIResourceList",
                                        "get the resources this group version serves")
    wanted = {STATUS, DELETE_OPTIONS, PATCH, WATCH_EVENT, f"{META}.APIResourceList"}
    for info in infos:
        wanted.add(component_name(info))
        wanted.add(component_name(info) + "List")
    wanted |= refs_in(paths)
    names = closure(wanted, table)
    schemas = {n: table[n] for n in sorted(names)}
    return _document(paths, schemas, f"{group or 'core'}/{version}")


def _build_root(kind: str) -> Schema:
    if kind == "api":
        paths = {"/api/": _discovery_op("getCoreAPIVersions", "core", f"{META}.APIVersions",
                                        "get the versions of the core API")}
        wanted = {f"{META}.APIVersions"}
    else:
        paths = {"/apis/": _discovery_op("getAPIVersions", "apis", f"{META}.APIGroupList",
                                         "get the API groups and their versions")}
        wanted = {f"{META}.APIGroupList"}
    names = closure(wanted)
    return _document(paths, {n: SCHEMAS[n] for n in sorted(names)}, kind)


def _build_group(group: str) -> Schema:
    camel = _group_camel(group)
    tag = camel[:1].lower() + camel[1:]
    paths = {f"/apis/{group}/": _discovery_op(f"get{camel}APIGroup", tag, f"{META}.APIGroup",
                                              "get information about the group")}
    names = closure({f"{META}.APIGroup"})
    return _document(paths, {n: SCHEMAS[n] for n in sorted(names)}, group)


# ---------------------------------------------------------------- cache and public API


@dataclass
class _Entry:
    key: tuple[Any, ...]
    doc: Schema
    body: bytes
    hash: str
    # Strong references to the custom schema dicts whose ids are in `key`,
    # so an id cannot be reused by a new dict while the entry is alive.
    keep: tuple[Any, ...]


_CACHE: weakref.WeakKeyDictionary[Registry, dict[str, _Entry]] = weakref.WeakKeyDictionary()


def document_hash(body: bytes) -> str:
    """The content hash used in ?hash= (sha512, upper-case hex, as Kubernetes does)."""
    return hashlib.sha512(body).hexdigest().upper()


def _serialize(doc: Schema) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


def _gv_key(registry: Registry, group: str, version: str) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    infos = registry.in_group_version(group, version)
    key = tuple(sorted(
        (i.plural, i.kind, i.scope.value, i.subresources, i.verbs, i.schema_name,
         id(i.custom_schema) if i.custom_schema is not None else 0)
        for i in infos
    ))
    return key, tuple(i.custom_schema for i in infos if i.custom_schema is not None)


def _split(path: str) -> tuple[str, str, str] | None:
    """Classify an index path: ("gv", group, version), ("root", "api"|"apis", ""), ("group", g, "")."""
    parts = path.strip("/").split("/")
    if parts == ["api"]:
        return ("root", "api", "")
    if parts == ["apis"]:
        return ("root", "apis", "")
    if len(parts) == 2 and parts[0] == "api":
        return ("gv", "", parts[1])
    if len(parts) == 2 and parts[0] == "apis":
        return ("group", parts[1], "")
    if len(parts) == 3 and parts[0] == "apis":
        return ("gv", parts[1], parts[2])
    return None


def _entry(registry: Registry, path: str) -> _Entry | None:
    what = _split(path)
    if what is None:
        return None
    form, group, version = what
    groups = registry.groups()
    if form == "gv" and version not in groups.get(group, []):
        return None
    if form == "group" and (not group or group not in groups):
        return None
    path = path.strip("/")
    keep: tuple[Any, ...] = ()
    key: tuple[Any, ...] = (form, group, version)
    if form == "gv":
        gv_key, keep = _gv_key(registry, group, version)
        key = (*key, gv_key)
    per_registry = _CACHE.setdefault(registry, {})
    hit = per_registry.get(path)
    if hit is not None and hit.key == key:
        return hit
    if form == "gv":
        doc = _build_group_version(registry, group, version)
    elif form == "root":
        doc = _build_root(group)
    else:
        doc = _build_group(group)
    body = _serialize(doc)
    entry = _Entry(key, doc, body, document_hash(body), keep)
    per_registry[path] = entry
    return entry


def index_paths(registry: Registry) -> list[str]:
    """Every path the index lists: api, apis, api/v1, apis/<g>, apis/<g>/<v>."""
    out = ["api", "apis"]
    for group, versions in sorted(registry.groups().items()):
        if group:
            out.append(f"apis/{group}")
        for version in versions:
            out.append(f"api/{version}" if not group else f"apis/{group}/{version}")
    return out


def v3_index(registry: Registry) -> Schema:
    """The body of GET /openapi/v3: each document's URL with its content hash."""
    paths: dict[str, Schema] = {}
    for path in index_paths(registry):
        entry = _entry(registry, path)
        if entry is not None:
            paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={entry.hash}"}
    return {"paths": paths}


def v3_document(registry: Registry, group: str, version: str) -> Schema:
    """The OpenAPI 3.0 document of one group version (cached: treat it as read-only).

    Raises KeyError when the group version is not served.
    """
    entry = _entry(registry, f"api/{version}" if not group else f"apis/{group}/{version}")
    if entry is None:
        raise KeyError(f"{group}/{version}" if group else version)
    return entry.doc


def v3_path_document(registry: Registry, path: str) -> Schema | None:
    """The document for an index path such as "api/v1", "apis/apps/v1", "api" or "apis"; None if unknown."""
    entry = _entry(registry, path)
    return entry.doc if entry is not None else None


def v3_path_body(registry: Registry, path: str) -> tuple[bytes, str] | None:
    """Serialized JSON and hash of an index path's document, for the HTTP handler.

    The bytes are cached alongside the document, so serving a document costs
    no serialization; compare the hash with the request's ?hash= to decide
    between an immutable-cacheable answer and a redirect to the current one.
    """
    entry = _entry(registry, path)
    return (entry.body, entry.hash) if entry is not None else None


# ---------------------------------------------------------------- OpenAPI v2 (for kubectl <= 1.28)
#
# kubectl 1.27 and 1.28 download /openapi/v2 before `create`, `apply` and
# `explain`, and only in protobuf form (gnostic's openapi_v2.Document); without
# it they stop with "the server could not find the requested resource".  They
# still take fieldValidation support from the v3 documents, so the v2 document
# mainly has to parse, carry each kind's GVK for `explain`, and keep the
# patch-strategy extensions that their client-side apply reads.  It is derived
# from the same components as v3, with refs rewritten to #/definitions/.

V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
# What the answer says it is: Go's mime parser rejects the '@' of the name
# clients ask for, so servers answer with the dotted spelling.
V2_PROTOBUF_RESPONSE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"


def _to_v2(node: Any) -> Any:
    if isinstance(node, list):
        return [_to_v2(v) for v in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    all_of = node.get("allOf")
    if all_of and len(all_of) == 1 and "$ref" in all_of[0] and "properties" not in node:
        # Swagger 2.0 tolerates siblings of $ref, and kubectl's v2 reader
        # understands $ref but not allOf.
        del node["allOf"]
        node["$ref"] = all_of[0]["$ref"]
    if isinstance(node.get("$ref"), str):
        node["$ref"] = node["$ref"].replace(REF_PREFIX, "#/definitions/")
    if "oneOf" in node:
        # Quantity and IntOrString: v2 has no unions; Kubernetes publishes them as strings.
        del node["oneOf"]
        node.setdefault("type", "string")
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: _to_v2(sub) for name, sub in value.items()}
        elif key.startswith("x-"):
            out[key] = value
        else:
            out[key] = _to_v2(value)
    return out


def _v2_key(registry: Registry) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    keys: list[Any] = []
    keep: list[Any] = []
    for group, versions in sorted(registry.groups().items()):
        for version in versions:
            key, kept = _gv_key(registry, group, version)
            keys.append((group, version, key))
            keep.extend(kept)
    return tuple(keys), tuple(keep)


def _build_v2(registry: Registry) -> Schema:
    table: dict[str, Schema] = dict(SCHEMAS)
    paths: dict[str, Schema] = {}
    for info in sorted(registry, key=lambda i: (i.group, i.version, i.plural)):
        if info.custom_schema is not None or component_name(info) not in SCHEMAS:
            table.update(custom_components(info))
        if "patch" not in info.verbs:
            continue
        # Only what kubectl's v2 fieldValidation probe looks at: the PATCH
        # operation of each kind and its query parameters.
        middle = "namespaces/{namespace}/" if info.scope is Scope.NAMESPACE else ""
        params = [{"name": p["name"], "in": "query", "type": p["schema"]["type"], "uniqueItems": True,
                   "description": p["description"]} for p in (*P_WRITE, P_FORCE)]
        paths[f"{info.url_prefix}/{middle}{info.plural}/{{name}}"] = {"patch": {
            "operationId": f"patch{_group_camel(info.group)}{_camel(info.version)}{info.kind}",
            "consumes": list(PATCH_TYPES),
            "produces": ["application/json"],
            "parameters": params,
            "responses": {"200": {"description": "OK", "schema": {"$ref": "#/definitions/" + component_name(info)}}},
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": _gvk(info.group, info.version, info.kind),
        }}
    return {
        "swagger": "2.0",
        "info": {"title": "Arktos", "version": "v1"},
        "paths": paths,
        "definitions": {name: _to_v2(table[name]) for name in sorted(table)},
    }


# Protobuf encoding of gnostic's openapi_v2 messages, by field number.  Only
# the fields the document above uses are written.

def _pb_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _pb_len(num: int, payload: bytes) -> bytes:
    return _pb_varint(num << 3 | 2) + _pb_varint(len(payload)) + payload


def _pb_str(num: int, value: str | None) -> bytes:
    return _pb_len(num, value.encode()) if value else b""


def _pb_bool(num: int, value: bool) -> bytes:
    return _pb_varint(num << 3) + (b"\x01" if value else b"\x00")


def _pb_any(value: Any) -> bytes:
    # openapi_v2.Any{yaml=2}: Kubernetes stores extension values as YAML text;
    # JSON is valid YAML, so the JSON form is used.
    return _pb_str(2, orjson.dumps(value).decode())


def _pb_extensions(num: int, node: dict[str, Any]) -> bytes:
    return b"".join(
        _pb_len(num, _pb_str(1, key) + _pb_len(2, _pb_any(value)))
        for key, value in node.items() if key.startswith("x-")
    )


def _pb_schema(s: Schema) -> bytes:
    out = bytearray()
    out += _pb_str(1, s.get("$ref"))
    out += _pb_str(2, s.get("format"))
    out += _pb_str(4, s.get("description"))
    for name in s.get("required", ()):
        out += _pb_len(19, name.encode())
    for value in s.get("enum", ()):
        out += _pb_len(20, _pb_any(value))
    extra = s.get("additionalProperties")
    if isinstance(extra, dict):
        out += _pb_len(21, _pb_len(1, _pb_schema(extra)))
    elif isinstance(extra, bool):
        out += _pb_len(21, _pb_bool(2, extra))
    if isinstance(s.get("type"), str):
        out += _pb_len(22, _pb_len(1, s["type"].encode()))
    if isinstance(s.get("items"), dict):
        out += _pb_len(23, _pb_len(1, _pb_schema(s["items"])))
    if isinstance(s.get("properties"), dict):
        out += _pb_len(25, b"".join(
            _pb_len(1, _pb_str(1, name) + _pb_len(2, _pb_schema(sub))) for name, sub in s["properties"].items()
        ))
    out += _pb_extensions(31, s)
    return bytes(out)


def _pb_operation(op: Schema) -> bytes:
    out = bytearray()
    out += _pb_str(5, op.get("operationId"))
    for media in op.get("produces", ()):
        out += _pb_len(6, media.encode())
    for media in op.get("consumes", ()):
        out += _pb_len(7, media.encode())
    for p in op.get("parameters", ()):
        query = (_pb_str(2, p["in"]) + _pb_str(3, p.get("description")) + _pb_str(4, p["name"])
                 + _pb_str(6, p.get("type")) + (_pb_bool(20, True) if p.get("uniqueItems") else b""))
        # ParametersItem{parameter=1} -> Parameter{non_body_parameter=2}
        #   -> NonBodyParameter{query_parameter_sub_schema=3}
        out += _pb_len(8, _pb_len(1, _pb_len(2, _pb_len(3, query))))
    codes = b""
    for code, resp in op.get("responses", {}).items():
        response = _pb_str(1, resp.get("description"))
        if "schema" in resp:
            response += _pb_len(2, _pb_len(1, _pb_schema(resp["schema"])))
        codes += _pb_len(1, _pb_str(1, code) + _pb_len(2, _pb_len(1, response)))
    out += _pb_len(9, codes)
    out += _pb_extensions(13, op)
    return bytes(out)


_PATH_METHODS = {"get": 2, "put": 3, "post": 4, "delete": 5, "patch": 8}


def _pb_document(doc: Schema) -> bytes:
    info = doc["info"]
    out = bytearray()
    out += _pb_str(1, doc["swagger"])
    out += _pb_len(2, _pb_str(1, info.get("title")) + _pb_str(2, info.get("version")))
    items = b""
    for path, item in doc["paths"].items():
        body = b"".join(_pb_len(num, _pb_operation(item[m])) for m, num in _PATH_METHODS.items() if m in item)
        items += _pb_len(2, _pb_str(1, path) + _pb_len(2, body))
    out += _pb_len(8, items)
    out += _pb_len(9, b"".join(
        _pb_len(1, _pb_str(1, name) + _pb_len(2, _pb_schema(schema))) for name, schema in doc["definitions"].items()
    ))
    return bytes(out)


@dataclass
class _V2Entry:
    key: tuple[Any, ...]
    doc: Schema
    json: bytes
    protobuf: bytes
    etag: str
    keep: tuple[Any, ...]


_V2_CACHE: weakref.WeakKeyDictionary[Registry, _V2Entry] = weakref.WeakKeyDictionary()


def _v2_entry(registry: Registry) -> _V2Entry:
    key, keep = _v2_key(registry)
    hit = _V2_CACHE.get(registry)
    if hit is not None and hit.key == key:
        return hit
    doc = _build_v2(registry)
    body = _serialize(doc)
    entry = _V2Entry(key, doc, body, _pb_document(doc), '"' + document_hash(body)[:32] + '"', keep)
    _V2_CACHE[registry] = entry
    return entry


def v2_document(registry: Registry) -> Schema:
    """The Swagger 2.0 document (definitions of every kind, PATCH operations); read-only."""
    return _v2_entry(registry).doc


def v2_body(registry: Registry, accept: str = "") -> tuple[bytes, str, str]:
    """(body, content type, ETag) for GET /openapi/v2.

    Protobuf when `accept` asks for it (kubectl always does), JSON otherwise.
    Both forms are cached with the document.
    """
    entry = _v2_entry(registry)
    if "protobuf" in accept:
        return entry.protobuf, V2_PROTOBUF_RESPONSE, entry.etag
    return entry.json, "application/json", entry.etag
