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
    # Custom resources defined in a tenant other than `system` exist for that tenant only.
    owner_tenant: str = ""

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
        if self.group in ("", "apps", "batch", "rbac.authorization.k8s.io", "coordination.k8s.io"):
            return self.plural
        return f"{self.group}/{self.plural}"

    @property
    def url_prefix(self) -> str:
        return "/api/v1" if not self.group else f"/apis/{self.group}/{self.version}"


class Registry:
    """All served resources, indexed the ways requests look them up.

    Built-in kinds and the system tenant's custom resources are global.  A
    custom resource defined inside another tenant lives in that tenant's
    overlay: only requests in that tenant resolve it, and only that tenant's
    discovery lists it (`for_tenant`).
    """

    def __init__(self) -> None:
        self._by_gvr: dict[tuple[str, str, str], ResourceInfo] = {}
        self._by_gvk: dict[tuple[str, str, str], ResourceInfo] = {}
        self._overlays: dict[str, Registry] = {}
        self._views: dict[str, tuple[int, Registry]] = {}
        self.version = 0  # bumped on every change, so cached views and documents know to rebuild

    def add(self, info: ResourceInfo) -> None:
        self.version += 1
        target = self._overlays.setdefault(info.owner_tenant, Registry()) if info.owner_tenant else self
        target._by_gvr[(info.group, info.version, info.plural)] = info
        target._by_gvk[(info.group, info.version, info.kind)] = info

    def remove(self, info: ResourceInfo) -> None:
        self.version += 1
        target = self._overlays.get(info.owner_tenant) if info.owner_tenant else self
        if target is None:
            return
        if target._by_gvr.get((info.group, info.version, info.plural)) is info:
            del target._by_gvr[(info.group, info.version, info.plural)]
        if target._by_gvk.get((info.group, info.version, info.kind)) is info:
            del target._by_gvk[(info.group, info.version, info.kind)]
        if target is not self and not target._by_gvr:
            del self._overlays[info.owner_tenant]

    def get(self, group: str, version: str, plural: str, tenant: str = "") -> ResourceInfo | None:
        if tenant and self._overlays:
            overlay = self._overlays.get(tenant)
            if overlay is not None:
                hit = overlay._by_gvr.get((group, version, plural))
                if hit is not None:
                    return hit
        return self._by_gvr.get((group, version, plural))

    def by_kind(self, group: str, version: str, kind: str) -> ResourceInfo | None:
        return self._by_gvk.get((group, version, kind))

    def by_api_version(self, api_version: str, kind: str) -> ResourceInfo | None:
        group, _, version = api_version.rpartition("/")
        return self._by_gvk.get((group, version, kind))

    def for_tenant(self, tenant: str) -> Registry:
        """What a tenant's users are served: the global kinds plus the tenant's own custom ones."""
        overlay = self._overlays.get(tenant)
        if overlay is None:
            return self
        cached = self._views.get(tenant)
        if cached is not None and cached[0] == self.version:
            return cached[1]
        view = Registry()
        for info in [*self._by_gvr.values(), *overlay._by_gvr.values()]:
            view._by_gvr[(info.group, info.version, info.plural)] = info
            view._by_gvk[(info.group, info.version, info.kind)] = info
        self._views[tenant] = (self.version, view)
        return view

    def groups(self) -> dict[str, list[str]]:
        """Group name -> served versions, in the order they were added (the preferred one first)."""
        out: dict[str, list[str]] = {}
        for group, version, _ in self._by_gvr:
            versions = out.setdefault(group, [])
            if version not in versions:
                versions.append(version)
        return out

    def in_group_version(self, group: str, version: str) -> list[ResourceInfo]:
        return [i for (g, v, _), i in self._by_gvr.items() if g == group and v == version]

    def __iter__(self) -> Iterator[ResourceInfo]:
        return iter(list(self._by_gvr.values()))
