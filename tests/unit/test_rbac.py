"""RBAC over the watch cache: Kubernetes rule semantics inside Arktos tenants.

The index is fed the way the API server feeds it: objects go through the
real `ResourceCache.apply` (the watch cache's path for an etcd event), which
builds the `Entry` and calls the listeners.  Only etcd itself is absent.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from arktos.api.policy import system_policy, tenant_policy
from arktos.api.strategies import strategy_for
from arktos.apiserver.auth import Attributes, UserInfo
from arktos.apiserver.authz_union import UnionAuthorizer
from arktos.apiserver.cache import CacheManager
from arktos.apiserver.nodeauth import NodeAuthorizer
from arktos.apiserver.rbac import RBACAuthorizer
from arktos.storage.keys import object_key
from tests.unit._feed import Cluster

Obj = dict[str, Any]
RBAC = "rbac.authorization.k8s.io"
def meta(name: str, tenant: str, namespace: str = "", labels: dict[str, str] | None = None) -> Obj:
    m: Obj = {"name": name, "tenant": tenant}
    if namespace:
        m["namespace"] = namespace
    if labels:
        m["labels"] = labels
    return m


def rule(verbs: list[str], resources: list[str], groups: list[str] | None = None,
         names: list[str] | None = None) -> Obj:
    r: Obj = {"verbs": verbs, "apiGroups": groups if groups is not None else [""], "resources": resources}
    if names:
        r["resourceNames"] = names
    return r


def role(name: str, tenant: str, namespace: str, *rules: Obj) -> Obj:
    return {"kind": "Role", "metadata": meta(name, tenant, namespace), "rules": list(rules)}


def cluster_role(name: str, tenant: str, *rules: Obj, labels: dict[str, str] | None = None,
                 aggregate: list[dict[str, str]] | None = None) -> Obj:
    obj: Obj = {"kind": "ClusterRole", "metadata": meta(name, tenant, labels=labels), "rules": list(rules)}
    if aggregate is not None:
        obj["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": m} for m in aggregate]}
    return obj


def subject(kind: str, name: str, namespace: str = "") -> Obj:
    s: Obj = {"kind": kind, "name": name}
    if kind != "ServiceAccount":
        s["apiGroup"] = RBAC
    if namespace:
        s["namespace"] = namespace
    return s


def binding(name: str, tenant: str, namespace: str, ref_kind: str, ref_name: str, *subjects: Obj) -> Obj:
    kind = "RoleBinding" if namespace else "ClusterRoleBinding"
    return {"kind": kind, "metadata": meta(name, tenant, namespace),
            "roleRef": {"apiGroup": RBAC, "kind": ref_kind, "name": ref_name}, "subjects": list(subjects)}


def alice(tenant: str = "acme", *groups: str) -> UserInfo:
    return UserInfo("alice", tenant, ("system:authenticated", *groups))


def attrs(user: UserInfo, verb: str, resource: str, *, tenant: str = "acme", namespace: str = "", name: str = "",
          group: str = "", sub: str = "") -> Attributes:
    return Attributes(user, verb, tenant, namespace, group, "v1", resource, sub, name)


def url(user: UserInfo, path: str, verb: str = "get") -> Attributes:
    return Attributes(user, verb, "", "", "", "", "", "", "", resource_request=False, path=path)


@pytest.fixture
def cluster() -> Cluster:
    return Cluster("roles", "rolebindings", "clusterroles", "clusterrolebindings")


@pytest.fixture
def authz(cluster: Cluster) -> RBACAuthorizer:
    a = RBACAuthorizer(cluster.caches)
    assert a.start()
    return a


def allowed(a: RBACAuthorizer, at: Attributes) -> bool:
    ok, reason = a.decide(at)
    assert ok or reason, "a denial always says why"
    return ok


# --------------------------------------------------------------------------- rule semantics


def test_role_binding_grants_in_its_own_namespace_only(cluster: Cluster, authz: RBACAuthorizer) -> None:
    cluster.put(role("pod-reader", "acme", "dev", rule(["get", "list"], ["pods"])))
    cluster.put(binding("rb", "acme", "dev", "Role", "pod-reader", subject("User", "alice")))
    u = alice()
    assert allowed(authz, attrs(u, "get", "pods", namespace="dev", name="p"))
    assert allowed(authz, attrs(u, "list", "pods", namespace="dev"))
    assert not allowed(authz, attrs(u, "delete", "pods", namespace="dev", name="p"))
    assert not allowed(authz, attrs(u, "get", "pods", namespace="prod", name="p"))
    assert not allowed(authz, attrs(u, "list", "pods"))  # all namespaces: a RoleBinding is not enough
    assert not allowed(authz, attrs(u, "get", "secrets", namespace="dev", name="s"))
    assert not allowed(authz, attrs(UserInfo("bob", "acme"), "get", "pods", namespace="dev", name="p"))


def test_binding_to_a_missing_role_grants_nothing_until_the_role_appears(
        cluster: Cluster, authz: RBACAuthorizer) -> None:
    cluster.put(binding("rb", "acme", "dev", "Role", "later", subject("User", "alice")))
    at = attrs(alice(), "get", "pods", namespace="dev", name="p")
    assert not allowed(authz, at)
    cluster.put(role("later", "acme", "dev", rule(["get"], ["pods"])))
    assert allowed(authz, at)
    cluster.delete(role("later", "acme", "dev"))
    assert not allowed(authz, at)


def test_a_role_binding_cannot_use_a_role_of_another_namespace(cluster: Cluster, authz: RBACAuthorizer) -> None:
    cluster.put(role("r", "acme", "other", rule(["get"], ["pods"])))
    cluster.put(binding("rb", "acme", "dev", "Role", "r", subject("User", "alice")))
    assert not allowed(authz, attrs(alice(), "get", "pods", namespace="dev", name="p"))
    assert not allowed(authz, attrs(alice(), "get", "pods", namespace="other", name="p"))


def test_cluster_role_through_role_binding_is_limited_to_the_namespace(
        cluster: Cluster, authz: RBACAuthorizer) -> None:
    cluster.put(cluster_role("reader", "acme", rule(["get", "list", "watch"], ["pods", "services"])))
    cluster.put(binding("rb", "acme", "dev", "ClusterRole", "reader", subject("Group", "devs")))
    u = alice("acme", "devs")
    assert allowed(authz, attrs(u, "watch", "services", namespace="dev"))
    assert not allowed(authz, attrs(u, "watch", "services", namespace="prod"))
    assert not allowed(authz, attrs(alice(), "watch", "services", namespace="dev"))  # not in the group


def test_cluster_role_binding_grants_across_the_tenant(cluster: Cluster, authz: RBACAuthorizer) -> None:
    cluster.put(cluster_role("reader", "acme", rule(["list"], ["pods"])))
    cluster.put(binding("crb", "acme", "", "ClusterRole", "reader", subject("User", "alice")))
    assert allowed(authz, attrs(alice(), "list", "pods"))
    assert allowed(authz, attrs(alice(), "list", "pods", namespace="anything"))


def test_resource_names(cluster: Cluster, authz: RBACAuthorizer) -> None:
    cluster.put(role("one", "acme", "dev", rule(["get", "update", "list"], ["configmaps"], names=["settings"])))
    cluster.put(binding("rb", "acme", "dev", "Role", "one", subject("User", "alice")))
    u = alice()
    assert allowed(authz, attrs(u, "get", "configmaps", namespace="dev", name="settings"))
    assert allowed(authz, attrs(u, "update", "configmaps", namespace="dev", name="settings"))
    assert not allowed(authz, attrs(u, "get", "configmaps", namespace="dev", name="other"))
    assert not allowed(authz, attrs(u, "list", "configmaps", namespace="dev"))  # a list names nothing
    # A second rule without names widens it, whatever order the rules come in.
    cluster.put(role("one", "acme", "dev", rule(["get"], ["configmaps"], names=["settings"]),
                     rule(["get"], ["configmaps"])))
    assert allowed(authz, attrs(u, "get", "configmaps", namespace="dev", name="other"))


def test_subresources(cluster: Cluster, authz: RBACAuthorizer) -> None:
    cluster.put(role("r", "acme", "dev", rule(["update"], ["pods/status"]), rule(["get"], ["*/scale"], ["apps"])))
    cluster.put(binding("rb", "acme", "dev", "Role", "r", subject("User", "alice")))
    u = alice()
    assert allowed(authz, attrs(u, "update", "pods", namespace="dev", name="p", sub="status"))
    assert not allowed(authz, attrs(u, "update", "pods", namespace="dev", name="p"))  # not the main resource
    assert not allowed(authz, attrs(u, "update", "pods", namespace="dev", name="p", sub="binding"))
    assert allowed(authz, attrs(u, "get", "deployments", group="apps", namespace="dev", name="d", sub="scale"))
    assert allowed(authz, attrs(u, "get", "replicasets", group="apps", namespace="dev", name="r", sub="scale"))
    assert not allowed(authz, attrs(u, "get", "replicasets", group="apps", namespace="dev", name="r"))


def test_main_resource_does_not_grant_subresources(cluster: Cluster, authz: RBACAuthorizer) -> None:
    cluster.put(role("r", "acme", "dev", rule(["*"], ["pods"])))
    cluster.put(binding("rb", "acme", "dev", "Role", "r", subject("User", "alice")))
    assert allowed(authz, attrs(alice(), "delete", "pods", namespace="dev", name="p"))
    assert not allowed(authz, attrs(alice(), "create", "pods", namespace="dev", name="p", sub="exec"))


def test_wildcards(cluster: Cluster, authz: RBACAuthorizer) -> None:
    cluster.put(cluster_role("all-apps", "acme", rule(["*"], ["*"], ["apps"])))
    cluster.put(cluster_role("get-core", "acme", rule(["get"], ["*"])))
    cluster.put(binding("a", "acme", "", "ClusterRole", "all-apps", subject("User", "alice")))
    cluster.put(binding("b", "acme", "", "ClusterRole", "get-core", subject("User", "alice")))
    u = alice()
    assert allowed(authz, attrs(u, "deletecollection", "deployments", group="apps", namespace="x"))
    assert allowed(authz, attrs(u, "patch", "replicasets", group="apps", namespace="x", name="r", sub="scale"))
    assert allowed(authz, attrs(u, "get", "secrets", namespace="x", name="s"))
    assert allowed(authz, attrs(u, "get", "pods", namespace="x", name="p", sub="log"))
    assert not allowed(authz, attrs(u, "delete", "secrets", namespace="x", name="s"))
    assert not allowed(authz, attrs(u, "get", "leases", group="coordination.k8s.io", namespace="x", name="l"))


def test_service_account_subjects(cluster: Cluster, authz: RBACAuthorizer) -> None:
    cluster.put(role("r", "acme", "dev", rule(["get"], ["pods"])))
    # A RoleBinding's ServiceAccount without a namespace is in the binding's namespace.
    cluster.put(binding("rb", "acme", "dev", "Role", "r", subject("ServiceAccount", "builder")))
    cluster.put(cluster_role("lister", "acme", rule(["list"], ["pods"])))
    cluster.put(binding("crb", "acme", "", "ClusterRole", "lister", subject("ServiceAccount", "mon", "ops")))
    builder = UserInfo("system:serviceaccount:dev:builder", "acme", ("system:serviceaccounts",))
    mon = UserInfo("system:serviceaccount:ops:mon", "acme", ("system:serviceaccounts",))
    assert allowed(authz, attrs(builder, "get", "pods", namespace="dev", name="p"))
    assert not allowed(authz, attrs(mon, "get", "pods", namespace="dev", name="p"))
    assert allowed(authz, attrs(mon, "list", "pods"))
    other = UserInfo("system:serviceaccount:prod:builder", "acme", ("system:serviceaccounts",))
    assert not allowed(authz, attrs(other, "get", "pods", namespace="dev", name="p"))


def test_binding_changes_and_deletion_take_effect(cluster: Cluster, authz: RBACAuthorizer) -> None:
    cluster.put(cluster_role("reader", "acme", rule(["get"], ["pods"])))
    b = binding("crb", "acme", "", "ClusterRole", "reader", subject("User", "alice"))
    cluster.put(b)
    at = attrs(alice(), "get", "pods", namespace="x", name="p")
    assert allowed(authz, at)
    b2 = copy.deepcopy(b)
    b2["subjects"] = [subject("User", "bob")]
    cluster.put(b2)
    assert not allowed(authz, at)
    assert allowed(authz, attrs(UserInfo("bob", "acme"), "get", "pods", namespace="x", name="p"))
    cluster.delete(b2)
    assert not allowed(authz, attrs(UserInfo("bob", "acme"), "get", "pods", namespace="x", name="p"))


def test_namespace_object_through_a_role_binding(cluster: Cluster, authz: RBACAuthorizer) -> None:
    cluster.put(cluster_role("ns-reader", "acme", rule(["get"], ["namespaces"])))
    cluster.put(binding("rb", "acme", "dev", "ClusterRole", "ns-reader", subject("User", "alice")))
    assert allowed(authz, attrs(alice(), "get", "namespaces", name="dev"))
    assert not allowed(authz, attrs(alice(), "get", "namespaces", name="prod"))


def test_non_resource_urls(cluster: Cluster, authz: RBACAuthorizer) -> None:
    for obj in tenant_policy("acme"):
        cluster.put(obj)
    u = alice()
    assert allowed(authz, url(u, "/version"))
    assert allowed(authz, url(u, "/apis/apps/v1"))
    assert allowed(authz, url(u, "/openapi/v3/api/v1"))
    assert not allowed(authz, url(u, "/metrics"))
    assert not allowed(authz, url(u, "/version", verb="post"))


# --------------------------------------------------------------------------- aggregation


def test_aggregation_follows_labelled_roles(cluster: Cluster, authz: RBACAuthorizer) -> None:
    label = {"rbac.example.com/aggregate-to-monitoring": "true"}
    cluster.put(cluster_role("monitoring", "acme", aggregate=[label]))
    cluster.put(binding("crb", "acme", "", "ClusterRole", "monitoring", subject("User", "alice")))
    pods = attrs(alice(), "list", "pods")
    assert not allowed(authz, pods)
    piece = cluster_role("monitoring-pods", "acme", rule(["list"], ["pods"]), labels=label)
    cluster.put(piece)
    assert allowed(authz, pods)
    # Another tenant's role with the label is not part of it.
    cluster.put(cluster_role("monitoring-secrets", "other", rule(["list"], ["secrets"]), labels=label))
    assert not allowed(authz, attrs(alice(), "list", "secrets"))
    # Losing the label, or being deleted, drops the rules again.
    unlabelled = copy.deepcopy(piece)
    del unlabelled["metadata"]["labels"]
    cluster.put(unlabelled)
    assert not allowed(authz, pods)
    cluster.put(piece)
    assert allowed(authz, pods)
    cluster.delete(piece)
    assert not allowed(authz, pods)


def test_bootstrap_admin_edit_view_aggregate_transitively(cluster: Cluster, authz: RBACAuthorizer) -> None:
    for obj in tenant_policy("acme"):
        cluster.put(obj)
    for who, role_name in (("ann", "admin"), ("ed", "edit"), ("vi", "view")):
        cluster.put(binding(f"{who}-rb", "acme", "dev", "ClusterRole", role_name, subject("User", who)))
    ann, ed, vi = (UserInfo(n, "acme", ("system:authenticated",)) for n in ("ann", "ed", "vi"))
    view_pods = attrs(vi, "list", "pods", namespace="dev")
    assert allowed(authz, view_pods)
    assert not allowed(authz, attrs(vi, "create", "pods", namespace="dev"))
    assert not allowed(authz, attrs(vi, "get", "secrets", namespace="dev", name="s"))
    assert allowed(authz, attrs(ed, "create", "deployments", group="apps", namespace="dev"))
    assert allowed(authz, attrs(ed, "list", "pods", namespace="dev"))  # view, through edit
    assert not allowed(authz, attrs(ed, "create", "rolebindings", group=RBAC, namespace="dev"))
    assert allowed(authz, attrs(ann, "create", "rolebindings", group=RBAC, namespace="dev"))
    assert allowed(authz, attrs(ann, "get", "secrets", namespace="dev", name="s"))  # edit, through admin
    assert allowed(authz, attrs(ann, "watch", "pods", namespace="dev"))  # view, through edit, through admin
    assert not allowed(authz, attrs(ann, "list", "pods", namespace="prod"))


def test_aggregation_cycles_terminate(cluster: Cluster, authz: RBACAuthorizer) -> None:
    a = {"agg": "a"}
    b = {"agg": "b"}
    cluster.put(cluster_role("ra", "acme", labels=b, aggregate=[a]))
    cluster.put(cluster_role("rb", "acme", labels=a, aggregate=[b]))
    cluster.put(cluster_role("leaf", "acme", rule(["get"], ["pods"]), labels=a))
    cluster.put(binding("crb", "acme", "", "ClusterRole", "rb", subject("User", "alice")))
    assert allowed(authz, attrs(alice(), "get", "pods", namespace="x", name="p"))


# --------------------------------------------------------------------------- tenancy


def test_tenant_binding_never_grants_in_another_tenant(cluster: Cluster, authz: RBACAuthorizer) -> None:
    cluster.put(cluster_role("everything", "acme", rule(["*"], ["*"], ["*"])))
    cluster.put(binding("crb", "acme", "", "ClusterRole", "everything", subject("User", "alice"),
                        subject("Group", "system:masters")))
    u = alice("acme", "system:masters")
    assert allowed(authz, attrs(u, "delete", "secrets", namespace="x", name="s"))
    # The same user, or a same-named user of tenant beta, gets nothing in beta.
    assert not allowed(authz, attrs(u, "get", "secrets", tenant="beta", namespace="x", name="s"))
    assert not allowed(authz, attrs(alice("beta"), "get", "secrets", tenant="beta", namespace="x", name="s"))
    # Nor across tenants, nor on the kinds outside tenants.
    assert not allowed(authz, attrs(u, "list", "pods", tenant="all"))
    assert not allowed(authz, attrs(u, "get", "nodes", tenant="", name="n1"))
    assert not allowed(authz, attrs(u, "list", "tenants", tenant=""))
    ok, reason = authz.decide(attrs(u, "get", "secrets", tenant="beta", namespace="x", name="s"))
    assert not ok and "tenant" in reason


def test_acme_bindings_do_not_match_system_users(cluster: Cluster, authz: RBACAuthorizer) -> None:
    cluster.put(cluster_role("everything", "acme", rule(["*"], ["*"], ["*"])))
    cluster.put(binding("crb", "acme", "", "ClusterRole", "everything", subject("User", "admin")))
    assert allowed(authz, attrs(UserInfo("admin", "acme"), "get", "pods", namespace="x", name="p"))
    assert not allowed(authz, attrs(UserInfo("admin", "system"), "get", "pods", namespace="x", name="p"))


def test_system_cluster_admin_acts_everywhere(cluster: Cluster, authz: RBACAuthorizer) -> None:
    for obj in system_policy():
        cluster.put(obj)
    cluster.put(binding("ops", "system", "", "ClusterRole", "cluster-admin", subject("User", "ops")))
    ops = UserInfo("ops", "system", ("system:authenticated",))
    assert allowed(authz, attrs(ops, "delete", "secrets", tenant="acme", namespace="x", name="s"))
    assert allowed(authz, attrs(ops, "list", "pods", tenant="all"))
    assert allowed(authz, attrs(ops, "update", "nodes", tenant="", name="n1", sub="status"))
    assert allowed(authz, attrs(ops, "create", "tenants", tenant=""))
    assert allowed(authz, url(ops, "/metrics"))
    # The superuser group needs no binding at all.
    root = UserInfo("system:admin", "system", ("system:masters",))
    empty = RBACAuthorizer(Cluster("roles", "rolebindings", "clusterroles", "clusterrolebindings").caches)
    assert empty.start()
    assert allowed(empty, attrs(root, "delete", "tenants", tenant="", name="acme"))


def test_system_role_bindings_grant_only_in_the_system_tenant(cluster: Cluster, authz: RBACAuthorizer) -> None:
    cluster.put(cluster_role("reader", "system", rule(["get"], ["pods"])))
    cluster.put(binding("rb", "system", "kube-system", "ClusterRole", "reader", subject("User", "op")))
    op = UserInfo("op", "system")
    assert allowed(authz, attrs(op, "get", "pods", tenant="system", namespace="kube-system", name="p"))
    assert not allowed(authz, attrs(op, "get", "pods", tenant="acme", namespace="kube-system", name="p"))


def test_cross_tenant_list_needs_a_system_cluster_role_binding(cluster: Cluster, authz: RBACAuthorizer) -> None:
    cluster.put(cluster_role("lister", "system", rule(["list", "watch"], ["pods"])))
    cluster.put(binding("rb", "system", "default", "ClusterRole", "lister", subject("User", "op")))
    op = UserInfo("op", "system")
    assert not allowed(authz, attrs(op, "list", "pods", tenant="all"))
    cluster.put(binding("crb", "system", "", "ClusterRole", "lister", subject("User", "op")))
    assert allowed(authz, attrs(op, "list", "pods", tenant="all"))
    assert allowed(authz, attrs(op, "watch", "pods", tenant="acme", namespace="default"))


def test_only_system_tenant_masters_are_superusers(cluster: Cluster, authz: RBACAuthorizer) -> None:
    fake_root = UserInfo("system:admin", "acme", ("system:masters",))
    assert not allowed(authz, attrs(fake_root, "get", "nodes", tenant="", name="n1"))
    assert not allowed(authz, attrs(fake_root, "get", "pods", tenant="beta", namespace="x", name="p"))
    assert not allowed(authz, attrs(fake_root, "get", "pods", tenant="acme", namespace="x", name="p"))
    assert not allowed(authz, attrs(UserInfo("nobody", "", ("system:masters",)), "get", "nodes", tenant="",
                                    name="n1"))


def test_tenant_admin_policy(cluster: Cluster, authz: RBACAuthorizer) -> None:
    for obj in tenant_policy("acme"):
        cluster.put(obj)
    admin = UserInfo("admin", "acme", ("system:authenticated",))
    assert allowed(authz, attrs(admin, "create", "namespaces"))
    assert allowed(authz, attrs(admin, "delete", "clusterroles", group=RBAC, name="x"))
    assert not allowed(authz, attrs(admin, "get", "pods", tenant="beta", namespace="x", name="p"))
    assert not allowed(authz, attrs(admin, "get", "nodes", tenant="", name="n1"))
    assert not allowed(authz, url(admin, "/metrics"))


def test_a_reloaded_watch_cache_is_replayed(cluster: Cluster, authz: RBACAuthorizer) -> None:
    cluster.put(cluster_role("reader", "acme", rule(["get"], ["pods"])))
    cluster.put(binding("crb", "acme", "", "ClusterRole", "reader", subject("User", "alice")))
    at = attrs(alice(), "get", "pods", namespace="x", name="p")
    assert allowed(authz, at)
    # After an etcd compaction the cache reloads its entries without events.
    cache = cluster.caches.caches["clusterrolebindings"]
    cache.load([], 100)
    assert not allowed(authz, at)
    b = binding("crb", "acme", "", "ClusterRole", "reader", subject("User", "alice"))
    cache.load([(object_key("clusterrolebindings", "acme", "", "crb"), orjson.dumps(b), 101)], 101)
    assert allowed(authz, at)


def test_not_started_denies() -> None:
    authz = RBACAuthorizer(CacheManager(None))  # type: ignore[arg-type]
    ok, reason = authz.decide(attrs(alice(), "get", "pods", namespace="x", name="p"))
    assert not ok and reason


def test_bootstrap_policy_objects_are_valid() -> None:
    for obj in [*system_policy(), *tenant_policy("acme")]:
        s = strategy_for(RBAC, obj["kind"])
        obj = copy.deepcopy(obj)
        s.default(obj)
        errs = s.validate(obj)
        assert errs == [], (obj["metadata"]["name"], [e.message() for e in errs])
        assert obj["metadata"]["tenant"] in ("system", "acme")
    names = [o["metadata"]["name"] for o in system_policy() if o["kind"] == "ClusterRole"]
    assert len(names) == len(set(names))
    assert {"cluster-admin", "admin", "edit", "view", "system:node", "system:kube-scheduler",
            "system:kube-controller-manager", "system:discovery", "system:basic-user",
            "system:public-info-viewer"} <= set(names)
    node_binding = next(o for o in system_policy() if o["kind"] == "ClusterRoleBinding"
                        and o["metadata"]["name"] == "system:node")
    assert node_binding["subjects"] == []


def test_control_plane_roles(cluster: Cluster, authz: RBACAuthorizer) -> None:
    for obj in system_policy():
        cluster.put(obj)
    sched = UserInfo("system:kube-scheduler", "system", ("system:authenticated",))
    assert allowed(authz, attrs(sched, "create", "pods", tenant="acme", namespace="d", name="p", sub="binding"))
    assert allowed(authz, attrs(sched, "list", "pods", tenant="all"))
    assert allowed(authz, attrs(sched, "watch", "nodes", tenant=""))
    assert allowed(authz, attrs(sched, "update", "leases", group="coordination.k8s.io", tenant="system",
                                namespace="kube-system", name="kube-scheduler"))
    assert not allowed(authz, attrs(sched, "update", "leases", group="coordination.k8s.io", tenant="system",
                                    namespace="kube-system", name="kube-controller-manager"))
    assert not allowed(authz, attrs(sched, "get", "secrets", tenant="acme", namespace="d", name="s"))
    kcm = UserInfo("system:kube-controller-manager", "system", ("system:authenticated",))
    assert allowed(authz, attrs(kcm, "create", "replicasets", group="apps", tenant="acme", namespace="d"))
    assert allowed(authz, attrs(kcm, "create", "jobs", group="batch", tenant="acme", namespace="d"))
    assert not allowed(authz, attrs(kcm, "create", "cronjobs", group="batch", tenant="acme", namespace="d"))
    assert allowed(authz, attrs(kcm, "update", "tenants", tenant="", name="acme", sub="finalize"))
    assert allowed(authz, attrs(kcm, "create", "clusterrolebindings", group=RBAC, tenant="acme"))
    assert allowed(authz, attrs(kcm, "list", "controllerinstances", tenant=""))
    assert not allowed(authz, attrs(kcm, "create", "tenants", tenant=""))
    # Nodes get nothing from RBAC: the system:node binding has no subjects.
    node = UserInfo("system:node:n1", "system", ("system:nodes", "system:authenticated"))
    assert not allowed(authz, attrs(node, "get", "secrets", tenant="acme", namespace="d", name="s"))


# --------------------------------------------------------------------------- union


async def test_union_first_allow_wins() -> None:
    c = Cluster("roles", "rolebindings", "clusterroles", "clusterrolebindings", "pods", "actions")
    rbac, node = RBACAuthorizer(c.caches), NodeAuthorizer(c.caches)
    union = UnionAuthorizer([node, rbac])
    union.start()
    c.put(cluster_role("reader", "system", rule(["get"], ["services"])))
    c.put(binding("crb", "system", "", "ClusterRole", "reader", subject("Group", "system:nodes")))
    n1 = UserInfo("system:node:n1", "system", ("system:nodes",))
    assert (await union.authorize(attrs(n1, "get", "nodes", tenant="", name="n1")))[0]  # node authorizer
    assert (await union.authorize(attrs(n1, "get", "services", namespace="d", name="s")))[0]  # RBAC
    ok, reason = await union.authorize(attrs(n1, "get", "nodes", tenant="", name="n2"))
    assert not ok and "n2" in reason
    ok, reason = await union.authorize(attrs(n1, "delete", "deployments", group="apps", namespace="d", name="x"))
    assert not ok and reason == "no RBAC policy matched"


def test_group_grants_follow_each_binding(cluster: Cluster, authz: RBACAuthorizer) -> None:
    cluster.put(cluster_role("reader", "acme", rule(["get"], ["pods"])))
    for ns in ("a", "b", "c"):
        cluster.put(binding(f"rb-{ns}", "acme", ns, "ClusterRole", "reader", subject("Group", "devs")))
    u = alice("acme", "devs")
    assert all(allowed(authz, attrs(u, "get", "pods", namespace=ns, name="p")) for ns in "abc")
    cluster.delete(binding("rb-b", "acme", "b", "ClusterRole", "reader"))
    assert [allowed(authz, attrs(u, "get", "pods", namespace=ns, name="p")) for ns in "abc"] == [True, False, True]
    cluster.put(binding("rb-d", "acme", "d", "ClusterRole", "reader", subject("Group", "devs")))
    assert allowed(authz, attrs(u, "get", "pods", namespace="d", name="p"))
    cluster.put(cluster_role("reader", "acme", rule(["list"], ["pods"])))
    assert not allowed(authz, attrs(u, "get", "pods", namespace="d", name="p"))
    assert allowed(authz, attrs(u, "list", "pods", namespace="d"))


def test_incremental_index_matches_a_fresh_one(cluster: Cluster, authz: RBACAuthorizer) -> None:
    """Random changes, decisions in between: the piecewise-maintained index agrees with a rebuilt one."""
    import random

    rnd = random.Random(7)
    users, groups, nss = ["u1", "u2", "u3"], ["g1", "g2"], ["n1", "n2"]
    res = ["pods", "secrets", "pods/status"]
    labels = [{"agg": "x"}, {}]
    queries = [attrs(UserInfo(u, "acme", tuple(gs)), verb, r.split("/")[0], namespace=ns, name=nm,
                     sub=r.partition("/")[2])
               for u in users for gs in ([], ["g1"], ["g2", "g1"]) for verb in ("get", "list")
               for r in res for ns in ("", *nss) for nm in ("", "x")]

    def random_rules() -> list[Obj]:
        return [rule(rnd.sample(["get", "list", "*"], 1), rnd.sample([*res, "*"], 2),
                     names=rnd.choice([None, ["x"]])) for _ in range(rnd.randint(0, 2))]

    def random_subjects() -> list[Obj]:
        return [subject("User", u) for u in rnd.sample(users, rnd.randint(0, 2))] + \
               [subject("Group", g) for g in rnd.sample(groups, rnd.randint(0, 1))]

    granted = 0
    for step in range(400):
        # ClusterRole changes recompile everything: keep them rare so that the piecewise paths do the work.
        op = rnd.choice([1, 2, 6]) if step % 20 == 0 else rnd.choice([0, 0, 3, 3, 3, 4, 4, 5, 5, 5])
        if op == 0:
            cluster.put(role(f"r{rnd.randrange(2)}", "acme", rnd.choice(nss), *random_rules()))
        elif op == 1:
            cluster.put(cluster_role(f"c{rnd.randrange(3)}", "acme", *random_rules(), labels=rnd.choice(labels)))
        elif op == 2:
            cluster.put(cluster_role("agg", "acme", aggregate=[{"agg": "x"}]))
        elif op == 3:
            ns = rnd.choice(nss)
            kind, ref = rnd.choice([("Role", f"r{rnd.randrange(2)}"), ("ClusterRole", f"c{rnd.randrange(3)}"),
                                    ("ClusterRole", "agg")])
            cluster.put(binding(f"b{rnd.randrange(4)}", "acme", ns, kind, ref, *random_subjects()))
        elif op == 4:
            ref = rnd.choice([f"c{rnd.randrange(3)}", "agg"])
            cluster.put(binding(f"cb{rnd.randrange(3)}", "acme", "", "ClusterRole", ref, *random_subjects()))
        else:
            victim = cluster_role(f"c{rnd.randrange(3)}", "acme") if op == 6 else rnd.choice([
                role(f"r{rnd.randrange(2)}", "acme", rnd.choice(nss)),
                binding(f"b{rnd.randrange(4)}", "acme", rnd.choice(nss), "Role", "r0"),
                binding(f"cb{rnd.randrange(3)}", "acme", "", "ClusterRole", "c0")])
            cache, key = cluster._key(victim)
            if key in cache.entries:
                cluster.delete(victim)
        fresh = RBACAuthorizer(cluster.caches)
        assert fresh.start()
        for q in queries:
            decision = authz.decide(q)[0]
            assert decision == fresh.decide(q)[0], (step, q)
            granted += decision
        fresh.stop()
    assert 0 < granted < 400 * len(queries)


def test_system_public_grants_give_tenant_users_discovery_but_nothing_else(
        cluster: Cluster, authz: RBACAuthorizer) -> None:
    for obj in system_policy():
        cluster.put(obj)
    tenant_user = UserInfo("alice", "acme", ("system:authenticated",))
    assert allowed(authz, Attributes(tenant_user, "get", "", "", "", "", "", "", "", False, "/apis"))
    assert allowed(authz, Attributes(tenant_user, "get", "", "", "", "", "", "", "", False, "/version"))
    assert not allowed(authz, Attributes(tenant_user, "get", "", "", "", "", "", "", "", False, "/metrics"))
    # a system group a tenant user claims buys nothing from the system tenant
    claimed = UserInfo("mallory", "acme", ("system:authenticated", "system:masters"))
    assert not allowed(authz, Attributes(claimed, "get", "", "", "", "", "", "", "", False, "/metrics"))
    assert not allowed(authz, attrs(claimed, "list", "pods"))
