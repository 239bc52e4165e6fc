"""The built-in kinds this API serves.

Names, groups, scopes, short names and subresources are the ones kubectl and
client libraries expect from Kubernetes, plus Arktos's additions (Tenant,
Action, ControllerInstance) and its tenant scope.
"""

from __future__ import annotations

from arktos.api.registry import Registry, ResourceInfo, Scope

C, T, N = Scope.CLUSTER, Scope.TENANT, Scope.NAMESPACE
RBAC = "rbac.authorization.k8s.io"
AUTHZ, AUTHN = "authorization.k8s.io", "authentication.k8s.io"


def _core(kind: str, plural: str, scope: Scope, **kw) -> ResourceInfo:
    return ResourceInfo("", "v1", kind, plural, scope, schema_name=f"io.k8s.api.core.v1.{kind}", **kw)


BUILTIN: list[ResourceInfo] = [
    # Arktos: tenants sit above namespaces and are cluster-scoped.
    ResourceInfo("", "v1", "Tenant", "tenants", C, subresources=("status", "finalize"),
                 schema_name="io.arktos.api.core.v1.Tenant"),
    _core("Namespace", "namespaces", T, short_names=("ns",), subresources=("status", "finalize")),
    _core("Pod", "pods", N, short_names=("po",), categories=("all",),
          subresources=("status", "binding", "action", "log", "exec", "attach", "portforward")),
    # The namespaced `bindings` resource: the older way to bind a pod (create only).
    _core("Binding", "bindings", N, verbs=("create",)),
    _core("Node", "nodes", C, short_names=("no",), subresources=("status",)),
    _core("Event", "events", N, short_names=("ev",)),
    _core("ConfigMap", "configmaps", N, short_names=("cm",)),
    _core("Secret", "secrets", N),
    _core("ServiceAccount", "serviceaccounts", N, short_names=("sa",), subresources=("token",)),
    _core("Service", "services", N, short_names=("svc",), categories=("all",), subresources=("status",)),
    _core("Endpoints", "endpoints", N, short_names=("ep",)),
    _core("PersistentVolume", "persistentvolumes", T, short_names=("pv",), subresources=("status",)),
    _core("PersistentVolumeClaim", "persistentvolumeclaims", N, short_names=("pvc",),
          subresources=("status",)),
    _core("ResourceQuota", "resourcequotas", N, short_names=("quota",), subresources=("status",)),
    _core("LimitRange", "limitranges", N, short_names=("limits",)),
    ResourceInfo("", "v1", "Action", "actions", N, subresources=("status",),
                 schema_name="io.arktos.api.core.v1.Action"),
    ResourceInfo("", "v1", "ControllerInstance", "controllerinstances", C,
                 schema_name="io.arktos.api.core.v1.ControllerInstance"),
    ResourceInfo("apps", "v1", "Deployment", "deployments", N, short_names=("deploy",),
                 categories=("all",), subresources=("status", "scale"),
                 schema_name="io.k8s.api.apps.v1.Deployment"),
    ResourceInfo("apps", "v1", "ReplicaSet", "replicasets", N, short_names=("rs",), categories=("all",),
                 subresources=("status", "scale"), schema_name="io.k8s.api.apps.v1.ReplicaSet"),
    ResourceInfo("apps", "v1", "DaemonSet", "daemonsets", N, short_names=("ds",), categories=("all",),
                 subresources=("status",), schema_name="io.k8s.api.apps.v1.DaemonSet"),
    ResourceInfo("apps", "v1", "StatefulSet", "statefulsets", N, short_names=("sts",), categories=("all",),
                 subresources=("status", "scale"), schema_name="io.k8s.api.apps.v1.StatefulSet"),
    ResourceInfo("apps", "v1", "ControllerRevision", "controllerrevisions", N,
                 schema_name="io.k8s.api.apps.v1.ControllerRevision"),
    ResourceInfo("batch", "v1", "Job", "jobs", N, categories=("all",), subresources=("status",),
                 schema_name="io.k8s.api.batch.v1.Job"),
    ResourceInfo("batch", "v1", "CronJob", "cronjobs", N, short_names=("cj",), categories=("all",),
                 subresources=("status",), schema_name="io.k8s.api.batch.v1.CronJob"),
    ResourceInfo("coordination.k8s.io", "v1", "Lease", "leases", N,
                 schema_name="io.k8s.api.coordination.v1.Lease"),
    ResourceInfo(RBAC, "v1", "Role", "roles", N, schema_name="io.k8s.api.rbac.v1.Role"),
    ResourceInfo(RBAC, "v1", "RoleBinding", "rolebindings", N, schema_name="io.k8s.api.rbac.v1.RoleBinding"),
    ResourceInfo(RBAC, "v1", "ClusterRole", "clusterroles", T, schema_name="io.k8s.api.rbac.v1.ClusterRole"),
    ResourceInfo(RBAC, "v1", "ClusterRoleBinding", "clusterrolebindings", T,
                 schema_name="io.k8s.api.rbac.v1.ClusterRoleBinding"),
    ResourceInfo("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", T,
                 short_names=("crd", "crds"), subresources=("status",),
                 schema_name="io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition"),
    # Reviews: create only, never stored; the answer comes back in the status (arktos.apiserver.reviews).
    # Tenant-scoped, so a short path means the caller's tenant, as for every other tenanted kind;
    # TokenReview is for the system tenant's components only, hence outside tenants.
    ResourceInfo(AUTHZ, "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", T, verbs=("create",),
                 schema_name="io.k8s.api.authorization.v1.SelfSubjectAccessReview"),
    ResourceInfo(AUTHZ, "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews", T, verbs=("create",),
                 schema_name="io.k8s.api.authorization.v1.SelfSubjectRulesReview"),
    ResourceInfo(AUTHZ, "v1", "SubjectAccessReview", "subjectaccessreviews", T, verbs=("create",),
                 schema_name="io.k8s.api.authorization.v1.SubjectAccessReview"),
    ResourceInfo(AUTHZ, "v1", "LocalSubjectAccessReview", "localsubjectaccessreviews", N, verbs=("create",),
                 schema_name="io.k8s.api.authorization.v1.LocalSubjectAccessReview"),
    ResourceInfo(AUTHN, "v1", "SelfSubjectReview", "selfsubjectreviews", T, verbs=("create",),
                 schema_name="io.k8s.api.authentication.v1.SelfSubjectReview"),
    ResourceInfo(AUTHN, "v1", "TokenReview", "tokenreviews", C, verbs=("create",),
                 schema_name="io.k8s.api.authentication.v1.TokenReview"),
]


def builtin_registry() -> Registry:
    """A registry holding every built-in kind with its strategy attached."""
    from arktos.api.strategies import attach_strategies

    registry = Registry()
    for info in BUILTIN:
        registry.add(info)
    attach_strategies(registry)
    return registry
