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
