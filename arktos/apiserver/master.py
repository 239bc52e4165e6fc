"""The `kubernetes` Service: how pods find the API server (kube-apiserver's master endpoint reconciler).

The API server keeps the system tenant's `default/kubernetes` Service at the first address of the
service range (port 443, named `https`, to the secure port) and its Endpoints (the advertised address
and the secure port), and puts them back every `interval` if someone changes or deletes them.  Several
API servers share the Endpoints: each adds its own address (Kubernetes' lease reconciler also removes
the addresses of servers that died; here an address stays until an operator removes it).

Tenants: a pod of tenant T resolves `kubernetes.default.svc` in its own tenant's zone (arktos.dns), so
every tenant needs a `default/kubernetes` of its own.  Only one Service may hold the range's first address
(ClusterIPs are allocated cluster-wide), so the system tenant's has it and the tenant controller gives every
other tenant's an ordinary allocated ClusterIP, with Endpoints copied from the system tenant's: all of them
lead to the same API servers, where the token decides who the caller is and what it may do.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any

from arktos.api.errors import APIError
from arktos.storage.etcd import StorageError

log = logging.getLogger(__name__)

Obj = dict[str, Any]
NAME, NAMESPACE = "kubernetes", "default"
SERVICE_PORT = 443
LABELS = {"component": "apiserver", "provider": "kubernetes"}


def kubernetes_service(cluster_ip: str | None, secure_port: int) -> Obj:
    spec: Obj = {"type": "ClusterIP", "sessionAffinity": "None", "ports": [
        {"name": "https", "port": SERVICE_PORT, "protocol": "TCP", "targetPort": secure_port}]}
    if cluster_ip:
        spec["clusterIP"] = cluster_ip
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": NAME, "namespace": NAMESPACE,
                                                                "labels": dict(LABELS)}, "spec": spec}


def kubernetes_endpoints(addresses: list[str], secure_port: int) -> Obj:
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": NAME, "namespace": NAMESPACE},
            "subsets": [{"addresses": [{"ip": ip} for ip in addresses],
                         "ports": [{"name": "https", "port": secure_port, "protocol": "TCP"}]}]}


def default_advertise_address(bind_addresses: list[str]) -> str:
    """The first bind address that is a real one; for a wildcard, the address of the default route's interface
    (what kube-apiserver picks), else loopback."""
    for addr in bind_addresses:
        if addr not in ("0.0.0.0", "::", ""):
            return addr
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only asks the routing table
            return s.getsockname()[0]
    except OSError:
        return "127.0.0.1"


class MasterEndpoints:
    """Keeps system/default/kubernetes (Service and Endpoints) as this API server needs them."""

    def __init__(self, store: Callable[[str], Any], ctx: Any, cluster_ip: str, advertise_address: str,
                 secure_port: int, interval: float = 10.0) -> None:
        self.store = store  # plural -> GenericStore
        self.ctx = ctx
        self.cluster_ip = cluster_ip
        self.address = advertise_address
        self.port = secure_port
        self.interval = interval
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="master-endpoints")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()

    async def _loop(self) -> None:
        while True:
            try:
                await self.reconcile()
            except (APIError, StorageError) as exc:
                log.warning("keeping the kubernetes service failed (retrying): %s", exc)
            await asyncio.sleep(self.interval)

    async def reconcile(self) -> None:
        await self._service()
        await self._endpoints()

    async def _service(self) -> None:
        wanted = kubernetes_service(self.cluster_ip, self.port)

        def mutate(obj: Obj) -> Obj:
            spec = obj.setdefault("spec", {})
            if spec.get("ports") != wanted["spec"]["ports"] or spec.get("clusterIP") != self.cluster_ip:
                # The ClusterIP cannot change in place; a Service with another one is left as it is (logged).
                if spec.get("clusterIP") not in (None, self.cluster_ip):
                    log.warning("default/kubernetes has ClusterIP %s, not %s", spec.get("clusterIP"), self.cluster_ip)
                spec["ports"] = wanted["spec"]["ports"]
            return obj
        try:
            current = await self.store("services").get(self.ctx, NAME)
        except APIError as exc:
            if exc.code != 404:
                raise
            try:
                await self.store("services").create(self.ctx, wanted)
                log.info("created the kubernetes service at %s:%d", self.cluster_ip, SERVICE_PORT)
            except APIError as exc2:
                if exc2.code != 409:
                    raise
            return
        if (current.get("spec") or {}).get("ports") != wanted["spec"]["ports"]:
            await self.store("services").update(self.ctx, NAME, mutate)

    async def _endpoints(self) -> None:
        def mutate(obj: Obj) -> Obj:
            subsets = obj.get("subsets") or []
            ips = [a.get("ip") for s in subsets for a in s.get("addresses") or []]
            ports = [p.get("port") for s in subsets for p in s.get("ports") or []]
            if self.address not in ips or ports != [self.port]:
                keep = [ip for ip in ips if ip != self.address] if ports == [self.port] else []
                obj["subsets"] = kubernetes_endpoints([*keep, self.address], self.port)["subsets"]
            return obj
        try:
            current = await self.store("endpoints").get(self.ctx, NAME)
        except APIError as exc:
            if exc.code != 404:
                raise
            try:
                await self.store("endpoints").create(self.ctx, kubernetes_endpoints([self.address], self.port))
            except APIError as exc2:
                if exc2.code != 409:
                    raise
            return
        if mutate(_copy(current)) != current:
            await self.store("endpoints").update(self.ctx, NAME, mutate)


def _copy(obj: Obj) -> Obj:
    import copy

    return copy.deepcopy(obj)


__all__ = ["MasterEndpoints", "default_advertise_address", "kubernetes_endpoints",
           "kubernetes_service"]
