"""URL paths for a resource, with Arktos's tenant level.

Kept apart from the HTTP code so the rules are in one small place: a short
path (no `tenants/` segment) lets the server use the caller's own tenant,
which is what a tenant user's components want; an explicit tenant (or `all`,
for lists and watches across tenants) is what the system tenant's components
use; kinds outside tenants (Node, Tenant, ...) never get one.
"""

from __future__ import annotations

from arktos.api.registry import ResourceInfo


def _segment(value: str, what: str) -> str:
    if not value or "/" in value or value in (".", ".."):
        raise ValueError(f"invalid {what} {value!r} for a URL path")
    return value


def resource_path(
    info: ResourceInfo,
    *,
    tenant: str | None = None,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """The path of a collection, one object, or one object's subresource.

    `tenant` and `namespace` are ignored for kinds that do not live in them, so
    generic code (an informer over any kind) can pass them unconditionally.  A
    namespaced kind without a namespace addresses the collection across
    namespaces, which the server allows only for list, watch and
    deletecollection.
    """
    parts = [info.url_prefix]
    if info.scope.tenanted and tenant:
        parts.append("tenants/" + _segment(tenant, "tenant"))
    if info.scope.namespaced and namespace:
        parts.append("namespaces/" + _segment(namespace, "namespace"))
    elif info.scope.namespaced and name:
        raise ValueError(f"{info.plural} are namespaced: a namespace is needed to address {name!r}")
    parts.append(info.plural)
    if name:
        parts.append(_segment(name, "name"))
    if subresource:
        if not name:
            raise ValueError(f"subresource {subresource!r} needs an object name")
        parts.append(_segment(subresource, "subresource"))
    return "/".join(parts)
