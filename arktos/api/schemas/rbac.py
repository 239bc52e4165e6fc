"""Role-based access control (rbac.authorization.k8s.io/v1).

In Arktos ClusterRoles and ClusterRoleBindings live inside a tenant and grant
nothing outside it; the shapes are the upstream ones.
"""

from __future__ import annotations

from arktos.api.schemas._dsl import Group
from arktos.api.schemas.meta import META

RBAC = "rbac.authorization.k8s.io"
r = Group("io.k8s.api.rbac.v1", (META,))

r.kind("Role", "A set of permissions within one namespace.", """
    rules []PolicyRule @atomic  Permissions granted.
""", group=RBAC, version="v1")
r.kind("ClusterRole", "A set of permissions over a whole tenant, or over namespaced kinds in every "
       "namespace of it.", """
    rules           []PolicyRule @atomic  Permissions granted.
    aggregationRule AggregationRule  Build rules from the ClusterRoles matching these selectors;
                                     the controller then overwrites rules.
""", group=RBAC, version="v1")
r.model("PolicyRule", "Verbs allowed on some resources or non-resource URLs.", """
    verbs           []string @req @atomic  Allowed verbs, e.g. get, list, watch; * for all.
    apiGroups       []string @atomic  API groups of the resources; "" is the core group, * all groups.
    resources       []string @atomic  Resources, e.g. pods or pods/log; * for all.
    resourceNames   []string @atomic  Restrict to these object names.
    nonResourceURLs []string @atomic  URL paths such as /healthz, for ClusterRoles only.
""")
r.model("AggregationRule", "Selectors of ClusterRoles whose rules are combined.", """
    clusterRoleSelectors []LabelSelector @atomic  A ClusterRole matching any selector contributes.
""")
r.kind("RoleBinding", "Grants a Role or ClusterRole to subjects within one namespace.", """
    subjects []Subject @atomic  Users, groups and service accounts granted the role.
    roleRef  RoleRef @req  The role granted; cannot change once set.
""", group=RBAC, version="v1")
r.kind("ClusterRoleBinding", "Grants a ClusterRole to subjects across the whole tenant.", """
    subjects []Subject @atomic  Users, groups and service accounts granted the role.
    roleRef  RoleRef @req  The ClusterRole granted; cannot change once set.
""", group=RBAC, version="v1")
r.model("Subject", "Who a binding applies to.", """
    kind      string @req  User, Group or ServiceAccount.
    apiGroup  string  rbac.authorization.k8s.io for users and groups, empty for service accounts.
    name      string @req  Name of the subject.
    namespace string  Namespace of a service account.
""", atomic=True)
r.model("RoleRef", "The role a binding grants.", """
    apiGroup string @req  rbac.authorization.k8s.io.
    kind     string @req  Role or ClusterRole.
    name     string @req  Name of the role.
""", atomic=True)
