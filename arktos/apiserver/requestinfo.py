"""Turning a URL into what the request is about.

Arktos adds `tenants/{t}/` before `namespaces/{ns}/` and keeps the upstream
"short paths" valid; a short path means "the caller's own tenant", which is
decided later, once the caller is known.  Ambiguous shapes are settled the way
Kubernetes settles `namespaces/{ns}/status`: a known subresource name in the
last position wins.
"""

from __future__ import annotations

from dataclasses import dataclass

from arktos.api.errors import APIError

TENANT_SUBRESOURCES = frozenset({"status", "finalize"})
NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})


@dataclass(slots=True)
class RequestInfo:
    group: str
    version: str
    resource: str
    verb: str
    tenant: str = ""  # from the path; "" means "the caller's tenant"
    namespace: str = ""
    name: str = ""
    subresource: str = ""
    path_tenant: bool = False  # whether the tenant came from the path


def _not_found(path: str) -> APIError:
    return APIError(404, "NotFound", f"the server could not find the requested resource ({path})")


def parse(method: str, path: str, watch_param: bool) -> RequestInfo:
    """Parse an `/api/...` or `/apis/...` resource path.

    Raises a 404 `APIError` for shapes that address no resource.
    """
    parts = [p for p in path.split("/") if p]
    if not parts:
        raise _not_found(path)
    if parts[0] == "api" and len(parts) >= 3:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[0] == "apis" and len(parts) >= 4:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        raise _not_found(path)

    watch = watch_param
    if rest[0] == "watch":
        watch, rest = True, rest[1:]
        if not rest:
            raise _not_found(path)

    tenant = namespace = ""
    path_tenant = False
    if rest[0] == "tenants":
        # /tenants, /tenants/{t}, /tenants/{t}/status|finalize address Tenant objects;
        # anything longer is inside tenant {t}.
        if len(rest) <= 2 or (len(rest) == 3 and rest[2] in TENANT_SUBRESOURCES and not group):
            if group:
                raise _not_found(path)
        else:
            tenant, path_tenant, rest = rest[1], True, rest[2:]
    if rest[0] == "namespaces" and len(rest) > 2 and not (
        len(rest) == 3 and rest[2] in NAMESPACE_SUBRESOURCES and not group
    ):
        namespace, rest = rest[1], rest[2:]

    if len(rest) > 3:
        raise _not_found(path)
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    for segment in (tenant, namespace, name, subresource):
        if segment in (".", "..") or "\\" in segment or "%" in segment:
            raise APIError(400, "BadRequest", f"invalid path segment {segment!r}")

    if method == "GET" or method == "HEAD":
        verb = "watch" if watch else ("get" if name else "list")
    elif method == "POST":
        verb = "create"
    elif method == "PUT":
        verb = "update"
    elif method == "PATCH":
        verb = "patch"
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        raise APIError(405, "MethodNotAllowed", f"method {method} is not supported")
    if watch and name:
        # /watch/namespaces/ns/pods/name: a watch of one object.
        verb = "watch"
    return RequestInfo(group, version, resource, verb, tenant, namespace, name, subresource, path_tenant)
