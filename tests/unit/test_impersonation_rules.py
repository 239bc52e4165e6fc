"""Impersonation headers against the real RBAC and node authorizers (bootstrap policy), tenant-aware."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from multidict import CIMultiDict

from arktos.api.errors import APIError
from arktos.api.policy import system_policy, tenant_policy
from arktos.apiserver.auth import Attributes, UserInfo
from arktos.apiserver.authz_union import UnionAuthorizer
from arktos.apiserver.impersonation import impersonate, requested, split_service_account
from arktos.apiserver.nodeauth import NodeAuthorizer
from arktos.apiserver.rbac import RBACAuthorizer
from tests.unit._feed import Cluster

RBAC = "rbac.authorization.k8s.io"
ROOT = UserInfo("system:admin", "system", ("system:masters", "system:authenticated"))
A_ADMIN = UserInfo("admin", "acme", ("system:authenticated",))
A_DEV = UserInfo("dev", "acme", ("system:authenticated",))
NODE = UserInfo("system:node:n1", "system", ("system:nodes", "system:authenticated"))
HELPDESK = UserInfo("helpdesk", "system", ("system:authenticated",))


def obj(kind: str, name: str, tenant: str, namespace: str = "", **rest: Any) -> dict:
    meta = {"name": name, "tenant": tenant, **({"namespace": namespace} if namespace else {})}
    return {"kind": kind, "metadata": meta, **rest}


@pytest.fixture
def authz() -> UnionAuthorizer:
    cluster = Cluster("roles", "rolebindings", "clusterroles", "clusterrolebindings", "pods", "actions")
    for o in [*system_policy(), *tenant_policy("acme"), *tenant_policy("other")]:
        cluster.put(o)
    # dev edits `web` in acme (edit may impersonate service accounts there, as in Kubernetes)
    cluster.put(obj("RoleBinding", "dev-edit", "acme", "web", roleRef={"kind": "ClusterRole", "name": "edit"},
                    subjects=[{"kind": "User", "apiGroup": RBAC, "name": "dev"}]))
    # helpdesk (system tenant) may impersonate users and groups, but name no tenant
    cluster.put(obj("ClusterRole", "impersonator", "system", rules=[
        {"verbs": ["impersonate"], "apiGroups": [""], "resources": ["users", "groups"]}]))
    cluster.put(obj("ClusterRoleBinding", "helpdesk", "system", roleRef={"kind": "ClusterRole", "name": "impersonator"},
                    subjects=[{"kind": "User", "apiGroup": RBAC, "name": "helpdesk"}]))
    rbac, node = RBACAuthorizer(cluster.caches), NodeAuthorizer(cluster.caches)
    assert rbac.start() and node.start()
    return UnionAuthorizer([node, rbac])


def run(caller: UserInfo, authz, *headers: tuple[str, str]) -> UserInfo:
    return asyncio.run(impersonate(caller, CIMultiDict(headers), authz))


def fails(caller: UserInfo, authz, *headers: tuple[str, str]) -> APIError:
    with pytest.raises(APIError) as info:
        run(caller, authz, *headers)
    return info.value


def test_requested_only_for_impersonate_headers() -> None:
    assert requested(CIMultiDict([("impersonate-user", "bob")]))
    assert requested(CIMultiDict([("IMPERSONATE-EXTRA-scopes", "x")]))
    assert not requested(CIMultiDict([("Authorization", "Bearer x"), ("Accept", "*/*")]))


def test_superuser_is_anyone_and_groups_follow_kubernetes(authz) -> None:
    u = run(ROOT, authz, ("Impersonate-User", "bob"))
    assert (u.name, u.tenant, u.groups, u.uid, u.extra) == ("bob", "system", ("system:authenticated",), "", {})
    u = run(ROOT, authz, ("Impersonate-User", "bob"), ("Impersonate-Group", "g1"), ("Impersonate-Group", "g2"),
            ("Impersonate-Uid", "1234"), ("Impersonate-Extra-Scopes", "a"), ("Impersonate-Extra-scopes", "b"),
            ("Impersonate-Extra-Example.com%2FKey", "v"))
    assert u.groups == ("g1", "g2", "system:authenticated") and u.uid == "1234"
    assert u.extra == {"scopes": ["a", "b"], "example.com/key": ["v"]}
    assert run(ROOT, authz, ("Impersonate-User", "x"), ("Impersonate-Group", "system:unauthenticated")).groups == (
        "system:unauthenticated",)
    assert run(ROOT, authz, ("Impersonate-User", "system:anonymous")).groups == ("system:unauthenticated",)
    sa = run(ROOT, authz, ("Impersonate-User", "system:serviceaccount:web:builder"))
    assert sa.groups == ("system:serviceaccounts", "system:serviceaccounts:web", "system:authenticated")
    sa = run(ROOT, authz, ("Impersonate-User", "system:serviceaccount:web:builder"), ("Impersonate-Group", "g"))
    assert sa.groups == ("g", "system:authenticated")
    # The system admin names another tenant's user.
    other = run(ROOT, authz, ("Impersonate-User", "admin"), ("Impersonate-Extra-Arktos.io%2Ftenant", "acme"))
    assert (other.name, other.tenant, other.extra) == ("admin", "acme", {})


def test_bad_requests(authz) -> None:
    for headers in ([("Impersonate-Group", "g")], [("Impersonate-Uid", "1")], [("Impersonate-Extra-k", "v")],
                    [("Impersonate-User", ""), ("Impersonate-Group", "g")],
                    [("Impersonate-User", "a"), ("Impersonate-User", "b")],
                    [("Impersonate-User", "a"), ("Impersonate-Extra-arktos.io%2ftenant", "all")],
                    [("Impersonate-User", "a"), ("Impersonate-Extra-arktos.io%2ftenant", "")],
                    [("Impersonate-User", "a"), ("Impersonate-Extra-arktos.io%2ftenant", "acme"),
                     ("Impersonate-Extra-ARKTOS%2eIO%2FTENANT", "acme")]):
        err = fails(ROOT, authz, *headers)
        assert (err.code, err.reason) == (400, "BadRequest"), headers
    # An empty Impersonate-User alone, or an unknown Impersonate-* header: no impersonation at all.
    assert run(A_DEV, authz, ("Impersonate-User", "")) is A_DEV
    assert run(A_DEV, authz, ("Impersonate-Whatever", "x")) is A_DEV


def test_denials_speak_kubernetes(authz) -> None:
    err = fails(A_DEV, authz, ("Impersonate-User", "bob"))
    assert err.code == 403
    assert err.message.startswith('users "bob" is forbidden: User "dev" cannot impersonate resource "users" in API '
                                  'group "" at the cluster scope'), err.message
    err = fails(A_DEV, authz, ("Impersonate-User", "system:serviceaccount:prod:x"))
    assert err.message.startswith('serviceaccounts "x" is forbidden: User "dev" cannot impersonate resource '
                                  '"serviceaccounts" in API group "" in the namespace "prod"'), err.message
    err = fails(HELPDESK, authz, ("Impersonate-User", "bob"),
                ("Impersonate-Extra-scopes", "s"))
    assert err.message.startswith('userextras.authentication.k8s.io "s" is forbidden: User "helpdesk" cannot '
                                  'impersonate resource "userextras/scopes" in API group "authentication.k8s.io" '
                                  'at the cluster scope'), err.message


def test_service_accounts_need_the_serviceaccounts_permission(authz) -> None:
    # `edit` in `web` (Kubernetes' aggregate-to-edit) may impersonate web's service accounts, nobody else.
    sa = run(A_DEV, authz, ("Impersonate-User", "system:serviceaccount:web:builder"))
    assert (sa.name, sa.tenant) == ("system:serviceaccount:web:builder", "acme")
    assert fails(A_DEV, authz, ("Impersonate-User", "system:serviceaccount:kube-system:builder")).code == 403
    assert fails(A_DEV, authz, ("Impersonate-User", "system:serviceaccount:web:builder"),
                 ("Impersonate-Group", "system:masters")).code == 403
    # Not a service-account name (three parts): a user, which dev may not be.
    assert split_service_account("system:serviceaccount:web:a:b") is None
    assert fails(A_DEV, authz, ("Impersonate-User", "system:serviceaccount:web:a:b")).code == 403


def test_tenant_admin_stays_in_its_tenant(authz) -> None:
    u = run(A_ADMIN, authz, ("Impersonate-User", "dev"), ("Impersonate-Group", "g1"))
    assert (u.name, u.tenant) == ("dev", "acme")
    assert run(A_ADMIN, authz, ("Impersonate-User", "dev"), ("Impersonate-Extra-arktos.io%2Ftenant", "acme")).tenant \
        == "acme"
    messages = set()
    for spelling in ("arktos.io%2Ftenant", "Arktos.IO%2ftenant", "arktos%2Eio%2Ftenant", "arktos.io/tenant"):
        for target in ("system", "other", "no-such-tenant", "all", ""):  # 403 before any validation
            err = fails(A_ADMIN, authz, ("Impersonate-User", "admin"), (f"Impersonate-Extra-{spelling}", target))
            assert err.code == 403, (spelling, target)
            messages.add(err.message)
    assert len(messages) == 1, messages  # the same answer, whatever the tenant named
    # Superuser and system names are acme's own identities: impersonating them grants nothing outside acme.
    root_in_acme = run(A_ADMIN, authz, ("Impersonate-User", "system:admin"), ("Impersonate-Group", "system:masters"))
    node_in_acme = run(A_ADMIN, authz, ("Impersonate-User", "system:node:n1"), ("Impersonate-Group", "system:nodes"))
    for u in (root_in_acme, node_in_acme):
        assert u.tenant == "acme"
        for tenant, resource in (("system", "pods"), ("other", "secrets"), ("", "nodes"), ("", "tenants")):
            at = Attributes(u, "list", tenant, "", "", "v1", resource, "", "")
            assert not asyncio.run(authz.authorize(at))[0], (u.name, tenant, resource)


def test_a_tenant_user_without_rights_and_a_node_cannot_impersonate(authz) -> None:
    plain = UserInfo("plain", "acme", ("system:authenticated",))
    assert fails(plain, authz, ("Impersonate-User", "dev")).code == 403
    for who in ("bob", "system:admin", "system:serviceaccount:kube-system:default"):
        assert fails(NODE, authz, ("Impersonate-User", who)).code == 403
    # The node authorizer never grants it, whatever is asked.
    node = NodeAuthorizer.__new__(NodeAuthorizer)
    for resource, group in (("users", ""), ("serviceaccounts", ""), ("userextras", "authentication.k8s.io")):
        at = Attributes(NODE, "impersonate", "", "kube-system", group, "v1", resource, "", "x")
        assert node.decide(at)[0] is False
    # No tenant, no impersonation.
    assert fails(UserInfo("stray", "", ()), authz, ("Impersonate-User", "dev")).code == 403


def test_naming_a_tenant_needs_its_own_permission(authz) -> None:
    # helpdesk may impersonate users (the system tenant's grants reach every tenant) but may not name a tenant.
    assert run(HELPDESK, authz, ("Impersonate-User", "bob")).tenant == "system"
    err = fails(HELPDESK, authz, ("Impersonate-User", "admin"), ("Impersonate-Extra-arktos.io%2Ftenant", "acme"))
    assert err.code == 403 and 'resource "userextras/arktos.io/tenant"' in err.message
