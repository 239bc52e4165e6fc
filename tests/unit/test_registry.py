"""The registry's tenant overlays: a tenant's custom kinds are that tenant's alone."""

from __future__ import annotations

from arktos.api.registry import Registry, ResourceInfo, Scope


def crd_info(owner: str = "", version: str = "v1") -> ResourceInfo:
    info = ResourceInfo("example.com", version, "Widget", "widgets", Scope.NAMESPACE)
    info.owner_tenant = owner
    return info


def test_tenant_kinds_resolve_only_in_their_tenant():
    reg = Registry()
    mine = crd_info("acme")
    reg.add(mine)
    assert reg.get("example.com", "v1", "widgets", "acme") is mine
    assert reg.get("example.com", "v1", "widgets", "other") is None
    assert reg.get("example.com", "v1", "widgets") is None
    assert "example.com" in reg.for_tenant("acme").groups()
    assert "example.com" not in reg.for_tenant("other").groups()
    assert "example.com" not in reg.groups()


def test_a_tenants_own_definition_wins_over_the_system_one_and_removal_is_exact():
    reg = Registry()
    shared, own = crd_info(), crd_info("acme")
    reg.add(shared)
    reg.add(own)
    assert reg.get("example.com", "v1", "widgets", "acme") is own
    assert reg.get("example.com", "v1", "widgets", "other") is shared
    view = reg.for_tenant("acme")
    assert view is reg.for_tenant("acme")  # cached until the registry changes
    reg.remove(own)
    assert reg.get("example.com", "v1", "widgets", "acme") is shared
    assert reg.for_tenant("acme") is reg
    reg.remove(shared)
    assert reg.get("example.com", "v1", "widgets", "acme") is None and reg.groups() == {}
