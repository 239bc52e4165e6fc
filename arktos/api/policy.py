"""The default RBAC policy: what the API server creates at start, and each new tenant gets.

The contents are Kubernetes' bootstrap policy (plugin/pkg/auth/authorizer/
rbac/bootstrappolicy), reduced where Arktos runs fewer parts: one role for
the whole controller manager instead of one per controller, since our
controllers run as one identity.  Arktos places ClusterRoles and their
bindings inside tenants, and a binding only grants inside its tenant (the
system tenant's ClusterRoleBindings everywhere), hence two sets:

- `system_policy()`: the system tenant's roles for the operator, the control
  plane components and discovery, bound as Kubernetes binds them.  The
  `system:node` role exists but is bound to no one, as in Kubernetes since
  1.8: nodes are authorized by the node authorizer, which limits them to
  their own pods' secrets; binding the role would give every node every secret.
- `tenant_policy(tenant)`: what the tenant controller creates in a new
  tenant: the tenant administrator (user `admin`), the aggregated
  admin/edit/view roles (aggregation works within a tenant, so each tenant
  needs its own component roles) and discovery for the tenant's users.

The API server creates these with create-if-absent, so an operator's edits
survive restarts (the `autoupdate` annotation records the Kubernetes
convention; nothing reconciles yet).
"""

from __future__ import annotations

from typing import Any

from arktos.api.tenancy import SYSTEM_TENANT

RBAC_GROUP = "rbac.authorization.k8s.io"
RBAC_API_VERSION = f"{RBAC_GROUP}/v1"
AGGREGATE_TO = "rbac.authorization.k8s.io/aggregate-to-"
BOOTSTRAP_LABELS = {"kubernetes.io/bootstrapping": "rbac-defaults"}
AUTOUPDATE = {"rbac.authorization.kubernetes.io/autoupdate": "true"}
TENANT_ADMIN_ROLE = "system:tenant-admin"
TENANT_ADMIN_USER = "admin"

READ = ("get", "list", "watch")
WRITE = ("create", "delete", "deletecollection", "patch", "update")
READ_WRITE = READ + WRITE

LEGACY, APPS, COORDINATION, EVENTS = "", "apps", "coordination.k8s.io", "events.k8s.io"
AUTHN, AUTHZ = "authentication.k8s.io", "authorization.k8s.io"
ARKTOS_NETWORK = "arktos.futurewei.com"

Obj = dict[str, Any]


def rule(verbs: tuple[str, ...] | list[str], groups: tuple[str, ...] | list[str] = (LEGACY,),
         resources: tuple[str, ...] | list[str] = (), names: tuple[str, ...] = ()) -> Obj:
    out: Obj = {"verbs": list(verbs), "apiGroups": list(groups), "resources": list(resources)}
    if names:
        out["resourceNames"] = list(names)
    return out


def url_rule(verbs: tuple[str, ...] | list[str], urls: tuple[str, ...] | list[str]) -> Obj:
    return {"verbs": list(verbs), "nonResourceURLs": list(urls)}


def _meta(name: str, tenant: str, labels: dict[str, str] | None = None) -> Obj:
    return {
        "name": name,
        "tenant": tenant,
        "labels": {**BOOTSTRAP_LABELS, **(labels or {})},
        "annotations": dict(AUTOUPDATE),
    }


def cluster_role(name: str, tenant: str, rules: list[Obj], labels: dict[str, str] | None = None,
                 aggregate_from: list[str] | None = None) -> Obj:
    obj: Obj = {"apiVersion": RBAC_API_VERSION, "kind": "ClusterRole", "metadata": _meta(name, tenant, labels),
                "rules": rules}
    if aggregate_from:
        obj["aggregationRule"] = {"clusterRoleSelectors": [
            {"matchLabels": {AGGREGATE_TO + target: "true"}} for target in aggregate_from]}
    return obj


def cluster_role_binding(name: str, tenant: str, role: str, subjects: list[Obj]) -> Obj:
    return {"apiVersion": RBAC_API_VERSION, "kind": "ClusterRoleBinding", "metadata": _meta(name, tenant),
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role}, "subjects": subjects}


def user(name: str) -> Obj:
    return {"apiGroup": RBAC_GROUP, "kind": "User", "name": name}


def group(name: str) -> Obj:
    return {"apiGroup": RBAC_GROUP, "kind": "Group", "name": name}


def _events_rule() -> list[Obj]:
    return [rule(("create", "update", "patch"), (LEGACY, EVENTS), ("events",))]


# -- roles every tenant has -----------------------------------------------------------


def discovery_roles(tenant: str) -> list[Obj]:
    """What any signed-in user needs to run kubectl: discovery, version, health."""
    return [
        cluster_role("system:discovery", tenant, [url_rule(("get",), (
            "/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*",
            "/readyz", "/version", "/version/"))]),
        cluster_role("system:basic-user", tenant, [
            rule(("create",), (AUTHZ,), ("selfsubjectaccessreviews", "selfsubjectrulesreviews")),
            rule(("create",), (AUTHN,), ("selfsubjectreviews",))]),
        cluster_role("system:public-info-viewer", tenant, [url_rule(("get",), (
            "/healthz", "/livez", "/readyz", "/version", "/version/"))]),
    ]


def discovery_bindings(tenant: str) -> list[Obj]:
    authenticated = [group("system:authenticated")]
    return [
        cluster_role_binding("system:discovery", tenant, "system:discovery", authenticated),
        cluster_role_binding("system:basic-user", tenant, "system:basic-user", authenticated),
        cluster_role_binding("system:public-info-viewer", tenant, "system:public-info-viewer",
                             [group("system:authenticated"), group("system:unauthenticated")]),
    ]


def user_facing_roles(tenant: str) -> list[Obj]:
    """admin / edit / view (aggregated) and the component roles they gather, as in Kubernetes."""
    return [
        cluster_role("admin", tenant, [], aggregate_from=["admin"]),
        cluster_role("edit", tenant, [], labels={AGGREGATE_TO + "admin": "true"}, aggregate_from=["edit"]),
        cluster_role("view", tenant, [], labels={AGGREGATE_TO + "edit": "true"}, aggregate_from=["view"]),
        cluster_role("system:aggregate-to-admin", tenant, [
            rule(("create",), (AUTHZ,), ("localsubjectaccessreviews",)),
            rule(READ_WRITE, (RBAC_GROUP,), ("roles", "rolebindings")),
        ], labels={AGGREGATE_TO + "admin": "true"}),
        cluster_role("system:aggregate-to-edit", tenant, [
            # Read of escalating resources: secrets, attaching to and exec'ing into pods.
            rule(READ, (LEGACY,), ("pods/attach", "pods/proxy", "pods/exec", "pods/portforward", "secrets",
                                   "services/proxy")),
            rule(("impersonate",), (LEGACY,), ("serviceaccounts",)),
            rule(WRITE, (LEGACY,), ("pods", "pods/attach", "pods/proxy", "pods/exec", "pods/portforward",
                                    "pods/action")),
            rule(WRITE, (LEGACY,), ("replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts",
                                    "services", "services/proxy", "endpoints", "persistentvolumeclaims",
                                    "configmaps", "secrets", "actions")),
            rule(WRITE, (APPS,), ("statefulsets", "statefulsets/scale", "daemonsets", "deployments",
                                  "deployments/scale", "deployments/rollback", "replicasets",
                                  "replicasets/scale")),
            rule(WRITE, ("autoscaling",), ("horizontalpodautoscalers",)),
            rule(WRITE, ("batch",), ("jobs", "cronjobs")),
            rule(WRITE, ("policy",), ("poddisruptionbudgets",)),
            rule(WRITE, ("networking.k8s.io",), ("networkpolicies", "ingresses")),
        ], labels={AGGREGATE_TO + "edit": "true"}),
        cluster_role("system:aggregate-to-view", tenant, [
            rule(READ, (LEGACY,), ("pods", "replicationcontrollers", "replicationcontrollers/scale",
                                   "serviceaccounts", "services", "services/status", "endpoints",
                                   "persistentvolumeclaims", "persistentvolumeclaims/status", "configmaps",
                                   "actions", "actions/status")),
            rule(READ, (LEGACY,), ("limitranges", "resourcequotas", "bindings", "events", "pods/status",
                                   "resourcequotas/status", "namespaces/status", "replicationcontrollers/status",
                                   "pods/log")),
            # Reading namespaces through a RoleBinding means reading *that* namespace.
            rule(READ, (LEGACY,), ("namespaces",)),
            rule(READ, (APPS,), ("controllerrevisions", "statefulsets", "statefulsets/status", "statefulsets/scale",
                                 "daemonsets", "daemonsets/status", "deployments", "deployments/status",
                                 "deployments/scale", "replicasets", "replicasets/status", "replicasets/scale")),
            rule(READ, ("autoscaling",), ("horizontalpodautoscalers", "horizontalpodautoscalers/status")),
            rule(READ, ("batch",), ("jobs", "jobs/status", "cronjobs", "cronjobs/status")),
            rule(READ, ("policy",), ("poddisruptionbudgets", "poddisruptionbudgets/status")),
            rule(READ, ("networking.k8s.io",), ("networkpolicies", "ingresses", "ingresses/status")),
        ], labels={AGGREGATE_TO + "view": "true"}),
    ]


# -- the system tenant -------------------------------------------------------------------


def _node_rules() -> list[Obj]:
    """Kubernetes' system:node role (kept for reference and for operators; bound to no one)."""
    return [
        rule(("create",), (AUTHN,), ("tokenreviews",)),
        rule(("create",), (AUTHZ,), ("subjectaccessreviews", "localsubjectaccessreviews")),
        rule(READ, (LEGACY,), ("services",)),
        rule(("create", "get", "list", "watch"), (LEGACY,), ("nodes",)),
        rule(("update", "patch"), (LEGACY,), ("nodes/status",)),
        rule(("update", "patch"), (LEGACY,), ("nodes",)),
        rule(("create", "update", "patch"), (LEGACY,), ("events",)),
        rule(READ, (LEGACY,), ("pods",)),
        rule(("create", "delete"), (LEGACY,), ("pods",)),
        rule(("update", "patch"), (LEGACY,), ("pods/status",)),
        rule(("create",), (LEGACY,), ("pods/eviction",)),
        rule(("get",), (LEGACY,), ("secrets", "configmaps")),
        rule(("create",), (LEGACY,), ("serviceaccounts/token",)),  # projected token volumes (kube-api-access-*)
        rule(("get",), (LEGACY,), ("persistentvolumeclaims", "persistentvolumes")),
        rule(("get",), (LEGACY,), ("endpoints",)),
        rule(("get", "create", "update", "patch", "delete"), (COORDINATION,), ("leases",)),
        rule(("get", "list", "watch", "update", "patch"), (LEGACY,), ("actions", "actions/status")),
    ]


def _scheduler_rules() -> list[Obj]:
    return [
        *_events_rule(),
        # leader election
        rule(("create",), (COORDINATION,), ("leases",)),
        rule(("get", "update"), (COORDINATION,), ("leases",), names=("kube-scheduler",)),
        rule(("create",), (LEGACY,), ("endpoints",)),
        rule(("get", "update"), (LEGACY,), ("endpoints",), names=("kube-scheduler",)),
        # fundamental resources
        rule(READ, (LEGACY,), ("nodes",)),
        rule(("get", "list", "watch", "delete"), (LEGACY,), ("pods",)),
        rule(("create",), (LEGACY,), ("pods/binding", "bindings")),
        rule(("patch", "update"), (LEGACY,), ("pods/status",)),
        # things that select pods, and things pods use
        rule(READ, (LEGACY,), ("services", "replicationcontrollers")),
        rule(READ, (APPS, "extensions"), ("replicasets",)),
        rule(READ, (APPS,), ("statefulsets",)),
        rule(READ, ("policy",), ("poddisruptionbudgets",)),
        rule(READ, (LEGACY,), ("persistentvolumeclaims", "persistentvolumes")),
        # Arktos: the tenants whose pods it schedules
        rule(READ, (LEGACY,), ("tenants",)),
        rule(("create",), (AUTHN,), ("tokenreviews",)),
        rule(("create",), (AUTHZ,), ("subjectaccessreviews",)),
    ]


def _controller_manager_rules() -> list[Obj]:
    """One role for every controller we run (Kubernetes has one per controller).

    The garbage collector, the namespace controller and the tenant controller
    delete and patch objects of every kind, informers read everything, and the
    node lifecycle controller updates nodes, so reads, updates and deletes are
    `*`; creates are listed kind by kind.
    """
    return [
        *_events_rule(),
        rule(READ, ("*",), ("*",)),
        rule(("update", "patch", "delete", "deletecollection"), ("*",), ("*",)),
        rule(("create",), (LEGACY,), (
            "pods", "pods/binding", "pods/eviction", "events", "serviceaccounts", "serviceaccounts/token", "secrets",
            "configmaps", "namespaces", "endpoints", "services", "persistentvolumes", "persistentvolumeclaims",
            "actions", "controllerinstances")),
        rule(("create",), (APPS,), ("replicasets", "deployments", "controllerrevisions")),
        rule(("create",), ("batch",), ("jobs",)),  # the cron job controller
        rule(("create",), (COORDINATION,), ("leases",)),
        # The tenant controller gives each new tenant its policy: creating roles it does not hold itself.
        rule(("create", "bind", "escalate"), (RBAC_GROUP,), ("roles", "rolebindings", "clusterroles",
                                                              "clusterrolebindings")),
        rule(("create",), (ARKTOS_NETWORK,), ("networks",)),
        rule(("create",), (AUTHN,), ("tokenreviews",)),
        rule(("create",), (AUTHZ,), ("subjectaccessreviews",)),
    ]


def system_policy() -> list[Obj]:
    """The system tenant's bootstrap roles and bindings, ClusterRoles first."""
    t = SYSTEM_TENANT
    roles = [
        cluster_role("cluster-admin", t, [rule(("*",), ("*",), ("*",)), url_rule(("*",), ("*",))]),
        *discovery_roles(t),
        *user_facing_roles(t),
        cluster_role("system:node", t, _node_rules()),
        # kube-proxy's role (arktos proxy runs as system:kube-proxy), as in Kubernetes' bootstrap policy.
        cluster_role("system:node-proxier", t, [
            rule(("list", "watch"), (LEGACY,), ("services", "endpoints")),
            rule(("get", "list", "watch"), (LEGACY,), ("nodes",)),
            rule(("list", "watch"), ("discovery.k8s.io",), ("endpointslices",)),
            *_events_rule(),
        ]),
        # The cluster DNS (arktos dns runs as system:kube-dns): Kubernetes' role, plus pods (a query's source
        # IP tells the asking pod's tenant) and namespaces, as CoreDNS's own ClusterRole has.
        cluster_role("system:kube-dns", t, [
            rule(("list", "watch"), (LEGACY,), ("services", "endpoints", "pods", "namespaces")),
        ]),
        cluster_role("system:kube-scheduler", t, _scheduler_rules()),
        cluster_role("system:kube-controller-manager", t, _controller_manager_rules()),
        cluster_role("system:monitoring", t, [url_rule(("get",), (
            "/metrics", "/livez", "/readyz", "/healthz", "/livez/*", "/readyz/*", "/healthz/*"))]),
    ]
    bindings = [
        cluster_role_binding("cluster-admin", t, "cluster-admin", [group("system:masters")]),
        *discovery_bindings(t),
        # Bound to no one: the node authorizer decides for nodes (see the module docstring).
        cluster_role_binding("system:node", t, "system:node", []),
        cluster_role_binding("system:node-proxier", t, "system:node-proxier", [user("system:kube-proxy")]),
        cluster_role_binding("system:kube-dns", t, "system:kube-dns", [user("system:kube-dns")]),
        cluster_role_binding("system:kube-scheduler", t, "system:kube-scheduler", [user("system:kube-scheduler")]),
        cluster_role_binding("system:kube-controller-manager", t, "system:kube-controller-manager",
                             [user("system:kube-controller-manager")]),
        cluster_role_binding("system:monitoring", t, "system:monitoring", [group("system:monitoring")]),
    ]
    return roles + bindings


def tenant_policy(tenant: str) -> list[Obj]:
    """What a new tenant starts with (the tenant controller creates it), ClusterRoles first."""
    roles = [
        # Everything inside the tenant: the isolation rule keeps it there, whatever the rules say.
        cluster_role(TENANT_ADMIN_ROLE, tenant, [rule(("*",), ("*",), ("*",))]),
        *discovery_roles(tenant),
        *user_facing_roles(tenant),
    ]
    bindings = [
        cluster_role_binding(TENANT_ADMIN_ROLE, tenant, TENANT_ADMIN_ROLE, [user(TENANT_ADMIN_USER)]),
        *discovery_bindings(tenant),
    ]
    return roles + bindings


def resource_of(obj: Obj) -> str:
    """The plural a policy object is created under ("clusterroles" or "clusterrolebindings")."""
    return {"ClusterRole": "clusterroles", "ClusterRoleBinding": "clusterrolebindings"}[obj["kind"]]


__all__ = ["TENANT_ADMIN_ROLE", "TENANT_ADMIN_USER", "resource_of", "system_policy", "tenant_policy"]
