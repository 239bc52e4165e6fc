"""The resource registry: which kinds the API serves and how they are addressed.

Everything that routes, stores, documents or validates an object starts from a
`ResourceInfo`.  Built-in kinds are registered at import time by
`arktos.api.resources`; custom resources are added and removed at run time when
their CustomResourceDefinition is established or deleted, so the registry is an
object, not a module-level constant.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from arktos.api.strategy import Strategy


class Scope(enum.Enum):
    """Where an object lives.

    Arktos adds the tenant level between the cluster and namespaces: a
    tenant-scoped kind (Namespace, ClusterRole, PersistentVolume, ...) is what
    upstream Kubernetes calls cluster-scoped, but each tenant has its own set.
    """

    CLUSTER = "cluster"
    TENANT = "tenant"
    NAMESPACE = "namespace"

    @property
    def tenanted(self) -> bool:
        return self is not Scope.CLUSTER

    @property
    def namespaced(self) -> bool:
        return self is Scope.NAMESPACE


VERBS_ALL = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(eq=False)
class ResourceInfo:
    group: str
    version: str
    kind: str
    plural: str
    scope: Scope
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    # Subresources stored within the object ("status", "scale") or served by a
    # special handler ("binding", "action", "finalize").
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = VERBS_ALL
    # Set by arktos.api.resources (built-ins) or arktos.api.crd (custom resources).
    strategy: Strategy = field(default=None, repr=False)  # type: ignore[assignment]
    # The OpenAPI schema component name, e.g. "io.k8s.api.core.v1.Pod".
    schema_name: str = ""
    # Custom resources only: the CRD's structural schema for this version.
    custom_schema: dict | None = field(default=None, repr=False)
    # Custom resources only: the CRD version's additionalPrinterColumns.
    printer_columns: list[dict] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if not self.singular:
            self.singular = self.kind.lower()

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def api_version(self) -> str:
        return self.group_version

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def etcd_resource(self) -> str:
        """The first segment of the etcd key, as Kubernetes lays it out."""
        if self.group in ("", "apps", "rbac.authorization.k8s.io", "coordination.k8s.io"):
            return self.plural
        return f"{self.group}/{self.plural}"

    @property
    def url_prefix(self) -> str:
        return "/api/v1" if not self.group else f"/apis/{self.group}/{self.version}"


class Registry:
    """All served resources, indexed the ways requests look them up."""

    def __init__(self) -> None:
        self._by_gvr: dict[tuple[str, str, str], ResourceInfo] = {}
        self._by_gvk: dict[tuple[str, str, str], ResourceInfo] = {}
        self._group_versions: dict[str, list[str]] = {}

    def add(self, info: ResourceInfo) -> None:
        self._by_gvr[(info.group, info.version, info.plural)] = info
        self._by_gvk[(info.group, info.version, info.kind)] = info
        versions = self._group_versions.setdefault(info.group, [])
        if info.version not in versions:
            versions.append(info.version)

    def remove(self, info: ResourceInfo) -> None:
        self._by_gvr.pop((info.group, info.version, info.plural), None)
        self._by_gvk.pop((info.group, info.version, info.kind), None)
        if not any(i.group == info.group and i.version == info.version for i in self._by_gvr.values()):
            versions = self._group_versions.get(info.group, [])
            if info.version in versions:
                versions.remove(info.version)
            if not versions:
                self._group_versions.pop(info.group, None)

    def get(self, group: str, version: str, plural: str) -> ResourceInfo | None:
        return self._by_gvr.get((group, version, plural))

    def by_kind(self, group: str, version: str, kind: str) -> ResourceInfo | None:
        return self._by_gvk.get((group, version, kind))

    def by_api_version(self, api_version: str, kind: str) -> ResourceInfo | None:
        group, _, version = api_version.rpartition("/")
        return self._by_gvk.get((group, version, kind))

    def groups(self) -> dict[str, list[str]]:
        """Group name -> served versions, the preferred version first."""
        return {g: list(v) for g, v in self._group_versions.items()}

    def in_group_version(self, group: str, version: str) -> list[ResourceInfo]:
        return [i for (g, v, _), i in self._by_gvr.items() if g == group and v == version]

    def __iter__(self) -> Iterator[ResourceInfo]:
        return iter(list(self._by_gvr.values()))
