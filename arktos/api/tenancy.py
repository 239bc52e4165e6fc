"""Arktos's tenancy rules, in one place.

The system tenant is the operator's; `all` is reserved to mean "across
tenants" in list and watch paths; an empty tenant means "none".
"""

from __future__ import annotations

SYSTEM_TENANT = "system"
ALL_TENANTS = "all"


def is_system(tenant: str) -> bool:
    return tenant == SYSTEM_TENANT


def may_access(user_tenant: str, request_tenant: str) -> bool:
    """The isolation rule: only the system tenant acts outside its own tenant."""
    return user_tenant == SYSTEM_TENANT or (bool(user_tenant) and user_tenant == request_tenant)


TENANT_ORG_PREFIX = "tenant:"


def identity_from_names(
    common_names: list[str], organizations: list[str], organizational_units: list[str]
) -> tuple[str, tuple[str, ...], str]:
    """`(user, groups, tenant)` of a client certificate subject, by Arktos's rule.

    - An Organization `tenant:<t>` names the tenant; groups come from OU, and
      a second Organization is an error (it could not be told from a group).
    - Otherwise the tenant is the CN's part before the first `:` (so
      `system:admin` is in tenant `system`, a plain `alice` in none) and
      groups come from O.

    Stricter than Arktos where it was ambiguous: a `tenant:` Organization in
    any position triggers the tenant rule (so it never passes as a group), and
    several CNs, an empty CN or `tenant:a:b` are refused with ValueError.
    """
    if len(common_names) > 1:
        raise ValueError("certificate subject has more than one common name")
    cn = common_names[0] if common_names else ""
    if not cn:
        raise ValueError("certificate subject has no common name")
    if any(o.startswith(TENANT_ORG_PREFIX) for o in organizations):
        if len(organizations) > 1:
            raise ValueError("a certificate naming its tenant in O must have exactly one O")
        tenant = organizations[0][len(TENANT_ORG_PREFIX):]
        if ":" in tenant:
            raise ValueError(f"certificate names more than one tenant: {organizations[0]!r}")
        return cn, tuple(organizational_units), tenant
    tenant = cn.split(":", 1)[0] if ":" in cn else ""
    return cn, tuple(organizations), tenant


def dns_search_domains(namespace: str, tenant: str, cluster_domain: str = "cluster.local") -> list[str]:
    """The DNS search path of a pod in `namespace` of `tenant` (dnsPolicy ClusterFirst).

    Each tenant's Services are `<svc>.<ns>.svc.<tenant>.<cluster domain>` (see arktos.dns), so a pod's short
    names (`svc`, `svc.ns`) name its own tenant's; the node agent writes this path, the DNS server reads it.
    """
    zone = cluster_domain.strip(".")
    tenant = tenant or SYSTEM_TENANT
    return [f"{namespace}.svc.{tenant}.{zone}", f"svc.{tenant}.{zone}", f"{tenant}.{zone}"]
