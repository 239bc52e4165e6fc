"""Per-kind strategies for the built-in kinds, and the helpers other parts reuse.

`attach_strategies` gives every built-in `ResourceInfo` its strategy.  Each
strategy also carries `name_validator`, the kind's rule for metadata.name,
which the generic store passes to `validate_object_meta` (Namespaces and
Tenants use DNS labels, Services DNS-1035 labels, RBAC objects path segments
such as "system:node", everything else DNS subdomains).

Helpers for other components (all pure):
- `pod_resource_requests`, `compute_qos_class` (scheduler, node agent),
- `apply_binding` (the binding subresource),
- `to_scale` / `apply_scale` (the scale subresource).
"""

from __future__ import annotations

from collections.abc import Callable

from arktos.api.registry import Registry
from arktos.api.strategies._base import KindStrategy
from arktos.api.strategies.apps import (
    ControllerRevisionStrategy,
    DaemonSetStrategy,
    DeploymentStrategy,
    ReplicaSetStrategy,
    StatefulSetStrategy,
    apply_scale,
    to_scale,
    validate_scale,
)
from arktos.api.strategies.arktos import ActionStrategy, ControllerInstanceStrategy, TenantStrategy
from arktos.api.strategies.batch import CronJobStrategy, JobStrategy
from arktos.api.strategies.core import (
    ConfigMapStrategy,
    EndpointsStrategy,
    EventStrategy,
    NamespaceStrategy,
    NodeStrategy,
    PersistentVolumeClaimStrategy,
    PersistentVolumeStrategy,
    SecretStrategy,
    ServiceAccountStrategy,
    ServiceStrategy,
)
from arktos.api.strategies.misc import CustomResourceDefinitionStrategy, LeaseStrategy
from arktos.api.strategies.pods import (
    PodStrategy,
    apply_binding,
    compute_qos_class,
    default_pod_spec,
    pod_resource_requests,
    validate_binding,
    validate_pod_spec,
)
from arktos.api.strategies.quota import LimitRangeStrategy, ResourceQuotaStrategy
from arktos.api.strategies.rbac import BindingStrategy, RoleStrategy
from arktos.api.strategy import Strategy

_RBAC = "rbac.authorization.k8s.io"

# (group, kind) -> a factory for that kind's strategy.
STRATEGY_FACTORIES: dict[tuple[str, str], Callable[[], Strategy]] = {
    ("", "Tenant"): TenantStrategy,
    ("", "Namespace"): NamespaceStrategy,
    ("", "Pod"): PodStrategy,
    ("", "Node"): NodeStrategy,
    ("", "Event"): EventStrategy,
    ("", "ConfigMap"): ConfigMapStrategy,
    ("", "Secret"): SecretStrategy,
    ("", "ServiceAccount"): ServiceAccountStrategy,
    ("", "Service"): ServiceStrategy,
    ("", "Endpoints"): EndpointsStrategy,
    ("", "PersistentVolume"): PersistentVolumeStrategy,
    ("", "PersistentVolumeClaim"): PersistentVolumeClaimStrategy,
    ("", "ResourceQuota"): ResourceQuotaStrategy,
    ("", "LimitRange"): LimitRangeStrategy,
    ("", "Action"): ActionStrategy,
    ("", "ControllerInstance"): ControllerInstanceStrategy,
    ("apps", "Deployment"): DeploymentStrategy,
    ("apps", "ReplicaSet"): ReplicaSetStrategy,
    ("apps", "DaemonSet"): DaemonSetStrategy,
    ("apps", "StatefulSet"): StatefulSetStrategy,
    ("apps", "ControllerRevision"): ControllerRevisionStrategy,
    ("batch", "Job"): JobStrategy,
    ("batch", "CronJob"): CronJobStrategy,
    ("coordination.k8s.io", "Lease"): LeaseStrategy,
    (_RBAC, "Role"): lambda: RoleStrategy(namespaced=True),
    (_RBAC, "ClusterRole"): lambda: RoleStrategy(namespaced=False),
    (_RBAC, "RoleBinding"): lambda: BindingStrategy(namespaced=True),
    (_RBAC, "ClusterRoleBinding"): lambda: BindingStrategy(namespaced=False),
    ("apiextensions.k8s.io", "CustomResourceDefinition"): CustomResourceDefinitionStrategy,
}


def strategy_for(group: str, kind: str) -> Strategy:
    """A fresh strategy for a built-in kind; a plain `KindStrategy` for kinds with no special rules."""
    factory = STRATEGY_FACTORIES.get((group, kind))
    return factory() if factory else KindStrategy()


def attach_strategies(registry: Registry) -> None:
    """Set `info.strategy` on every built-in kind in the registry.

    Custom resources (those with a `custom_schema`) keep the strategy the CRD
    machinery gave them.
    """
    from arktos.api.resources import BUILTIN

    builtin = {id(info) for info in BUILTIN}
    for info in registry:
        if id(info) in builtin or (info.custom_schema is None and info.strategy is None):
            info.strategy = strategy_for(info.group, info.kind)


__all__ = [
    "STRATEGY_FACTORIES",
    "KindStrategy",
    "apply_binding",
    "apply_scale",
    "attach_strategies",
    "compute_qos_class",
    "default_pod_spec",
    "pod_resource_requests",
    "strategy_for",
    "to_scale",
    "validate_binding",
    "validate_pod_spec",
    "validate_scale",
]
