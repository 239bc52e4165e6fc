"""The etcd key layout, as Arktos lays it out.

`/registry/{resource}/{tenant}/{namespace}/{name}` for namespaced kinds,
`/registry/{resource}/{tenant}/{name}` for tenant-scoped kinds and
`/registry/{resource}/{name}` for cluster-scoped ones.  Keeping the tenant
right after the resource makes "everything of tenant T" one prefix per
resource, which is what tenant deletion and tenant-partitioned caches need.
"""

from __future__ import annotations

ROOT = "/registry/"


def resource_prefix(resource: str) -> str:
    return f"{ROOT}{resource}/"


def object_key(resource: str, tenant: str, namespace: str, name: str) -> str:
    parts = [p for p in (tenant, namespace) if p]
    return f"{ROOT}{resource}/{'/'.join([*parts, name])}"


def scope_prefix(resource: str, tenant: str = "", namespace: str = "") -> str:
    """The prefix that holds every object of `resource` in a tenant (and namespace).

    An empty tenant means every tenant; an empty namespace every namespace.
    """
    prefix = resource_prefix(resource)
    if tenant:
        prefix += tenant + "/"
        if namespace:
            prefix += namespace + "/"
    return prefix


def prefix_end(prefix: str) -> str:
    """The exclusive end of the key range that starts with `prefix`."""
    # Every prefix we build ends in "/" (0x2f); the next code point, "0", ends the range.
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)
