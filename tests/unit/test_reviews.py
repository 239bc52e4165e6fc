"""Rules and access reviews over the RBAC index: what `kubectl auth can-i [--list]` is answered from."""

from __future__ import annotations

import asyncio

import pytest

from arktos.api.policy import system_policy, tenant_policy
from arktos.api.resources import builtin_registry
from arktos.apiserver.auth import UserInfo
from arktos.apiserver.authz_union import UnionAuthorizer
from arktos.apiserver.nodeauth import NodeAuthorizer
from arktos.apiserver.rbac import RBACAuthorizer
from arktos.apiserver.reviews import Reviews
from tests.unit._feed import Cluster
from tests.unit.test_rbac import binding, cluster_role, role, rule, subject


@pytest.fixture
def cluster() -> Cluster:
    c = Cluster("roles", "rolebindings", "clusterroles", "clusterrolebindings", "pods", "actions")
    for obj in [*system_policy(), *tenant_policy("acme"), *tenant_policy("other")]:
        c.put(obj)
    c.put(role("pod-reader", "acme", "dev", rule(["get", "list"], ["pods", "pods/log"])))
    c.put(binding("read", "acme", "dev", "Role", "pod-reader", subject("User", "alice")))
    c.put(cluster_role("all", "other", rule(["*"], ["*"], ["*"])))
    c.put(binding("alice-all", "other", "", "ClusterRole", "all", subject("User", "alice")))
    return c


@pytest.fixture
def union(cluster: Cluster) -> UnionAuthorizer:
    u = UnionAuthorizer([NodeAuthorizer(cluster.caches), RBACAuthorizer(cluster.caches)])
    u.start()
    return u


ALICE = UserInfo("alice", "acme", ("system:authenticated",))


def resources_of(answer) -> set[tuple[str, ...]]:
    return {(*r["resources"], "|", *r["verbs"]) for r in answer[0]}


def test_rules_follow_the_bindings_decide_consults(union: UnionAuthorizer) -> None:
    in_dev = union.rules_for(ALICE, "acme", "dev")
    assert ("pods", "pods/log", "|", "get", "list") in resources_of(in_dev)
    assert ("selfsubjectaccessreviews", "selfsubjectrulesreviews", "|", "create") in resources_of(in_dev)
    assert in_dev[2] is False and in_dev[3] == ""
    assert {"verbs": ["get"], "nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"]} in \
        in_dev[1]
    # Not in another namespace, and nothing at all in another tenant, whatever alice holds there.
    assert ("pods", "pods/log", "|", "get", "list") not in resources_of(union.rules_for(ALICE, "acme", "prod"))
    assert union.rules_for(ALICE, "other", "dev")[:2] == ([], [])


def test_superuser_nodes_and_system_users(union: UnionAuthorizer) -> None:
    root = UserInfo("root", "system", ("system:masters", "system:authenticated"))
    assert {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]} in union.rules_for(root, "acme", "dev")[0]
    node = UserInfo("system:node:n1", "system", ("system:nodes", "system:authenticated"))
    assert union.rules_for(node, "system", "default")[2] is True  # a node's permissions follow its pods
    sched = UserInfo("system:kube-scheduler", "system", ("system:authenticated",))
    got = resources_of(union.rules_for(sched, "acme", "dev"))
    assert ("pods/binding", "bindings", "|", "create") in got


def test_access_review_tenancy(union: UnionAuthorizer) -> None:
    reviews = Reviews(builtin_registry(), union, None)  # type: ignore[arg-type]

    def decide(user: UserInfo, **ra: str) -> dict:
        return asyncio.run(reviews.decide(user, ra, None, user.tenant))

    assert decide(ALICE, verb="get", resource="pods", subresource="log", namespace="dev")["allowed"] is True
    assert decide(ALICE, verb="get", resource="pods", namespace="prod") == {"allowed": False}
    # Another tenant: denied by the isolation rule, the same whether alice holds `*` there or the tenant is absent.
    there = decide(ALICE, verb="get", resource="pods", namespace="dev", tenant="other")
    nowhere = decide(ALICE, verb="get", resource="pods", namespace="dev", tenant="nowhere")
    assert there["denied"] is True and there["allowed"] is False
    assert there["reason"].replace("other", "X") == nowhere["reason"].replace("nowhere", "X")
    # Kinds outside tenants are judged outside tenants, as the request itself would be.
    assert decide(ALICE, verb="list", resource="nodes")["allowed"] is False
    root = UserInfo("root", "system", ("system:masters",))
    assert decide(root, verb="delete", resource="pods", namespace="dev", tenant="other")["allowed"] is True
