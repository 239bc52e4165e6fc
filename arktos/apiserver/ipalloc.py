"""Service cluster IPs and node ports, allocated through etcd.

Each allocated value is a key under `/registry/ranges/` created with a
create-if-absent transaction, so several API servers can allocate at once and
never hand out the same address.  Values are released when the watch cache
sees the Service go (after the deletion really happened), and a repair loop
frees reservations no Service holds (a create that failed after allocating),
as kube-apiserver's repair controllers do.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import orjson

from arktos.api import errors
from arktos.api.registry import ResourceInfo
from arktos.apiserver.cache import CacheManager, Event
from arktos.apiserver.store import Ctx
from arktos.storage.etcd import EtcdStore, KeyExists, NotFound, StorageError

log = logging.getLogger(__name__)

Obj = dict[str, Any]
REPAIR_GRACE = 60.0  # a reservation younger than this may belong to a create still in flight


class RangeAllocator:
    """A range of values (IPs or ports) reserved by etcd keys, probed at random.

    The range is kept as numbers, never materialised, so a /12 service range
    costs nothing at start-up and an allocation a few lookups.
    """

    def __init__(self, etcd: EtcdStore, prefix: str, first: int, size: int, render: Callable[[int], str]) -> None:
        self.etcd = etcd
        self.prefix = prefix
        self.first = first
        self.size = size
        self.render = render
        self.known_used: set[str] = set()

    async def load(self) -> None:
        self.known_used = {key[len(self.prefix):] for key in await self.etcd.keys(self.prefix)}

    async def reserve(self, value: str) -> bool:
        try:
            await self.etcd.create(self.prefix + value, orjson.dumps({"reserved": time.time()}))
        except KeyExists:
            self.known_used.add(value)
            return False
        self.known_used.add(value)
        return True

    async def allocate(self) -> str:
        for _ in range(64):
            value = self.render(self.first + random.randrange(self.size))
            if value not in self.known_used and await self.reserve(value):
                return value
        # Crowded (or our view is stale): sweep once from a random point.
        await self.load()
        start = random.randrange(self.size)
        for k in range(self.size):
            value = self.render(self.first + (start + k) % self.size)
            if value not in self.known_used and await self.reserve(value):
                return value
        raise errors.APIError(422, "Invalid", f"no free values left in {self.prefix.rstrip('/')}")

    async def release(self, value: str) -> None:
        with contextlib.suppress(NotFound):
            await self.etcd.delete(self.prefix + value)
        self.known_used.discard(value)


class ServiceAllocator:
    """Admission plugin + cache listener for Service cluster IPs and node ports."""

    def __init__(self, etcd: EtcdStore, caches: CacheManager, cidr: str, node_ports: tuple[int, int]) -> None:
        network = ipaddress.ip_network(cidr, strict=False)
        self.network = network
        first = int(network.network_address) + 1
        self.reserved_ip = str(ipaddress.ip_address(first))  # the `kubernetes` service's, as Kubernetes keeps it
        hosts = network.num_addresses - 2 if network.num_addresses > 2 else network.num_addresses
        version = network.version
        self.ips = RangeAllocator(etcd, "/registry/ranges/serviceips/", first + 1, max(hosts - 1, 1),
                                  lambda n: str(ipaddress.ip_address(n) if version == 4 else ipaddress.IPv6Address(n)))
        self.ports = RangeAllocator(etcd, "/registry/ranges/servicenodeports/", node_ports[0],
                                    node_ports[1] - node_ports[0] + 1, str)
        self.caches = caches
        self._task: asyncio.Task | None = None
        self._releases: set[asyncio.Task] = set()

    async def start(self) -> None:
        await self.ips.load()
        await self.ports.load()
        cache = self.caches.caches.get("services")
        if cache is not None:
            cache.listeners.append(self._on_event)
        self._task = asyncio.create_task(self._repair_loop(), name="service-range-repair")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()

    async def __call__(self, op: str, info: ResourceInfo, ctx: Ctx, obj: Obj | None, old: Obj | None) -> None:
        if info.kind != "Service" or info.group or ctx.dry_run or obj is None:
            return
        spec = obj.get("spec")
        if not isinstance(spec, dict) or spec.get("type") == "ExternalName":
            return
        ports = spec.get("ports") or []
        if not isinstance(ports, list) or not all(isinstance(p, dict) for p in ports) or any(
                not isinstance(p.get("nodePort", 0), int) or isinstance(p.get("nodePort"), bool) for p in ports):
            raise errors.invalid_object("Service", obj.get("metadata", {}).get("name", ""), [errors.invalid(
                "spec.ports", "<ports>", "must be a list of ports with integer node ports")])
        if op == "CREATE":
            await self._allocate_ip(spec, obj)
        if op in ("CREATE", "UPDATE") and spec.get("type") in ("NodePort", "LoadBalancer"):
            old_spec = (old or {}).get("spec") or {}
            old_ports = {p.get("nodePort") for p in old_spec.get("ports") or [] if isinstance(p, dict)}
            for port in ports:
                if port.get("nodePort") and port["nodePort"] in old_ports:
                    continue
                if port.get("nodePort"):
                    if not await self.ports.reserve(str(port["nodePort"])):
                        raise errors.invalid_object("Service", obj["metadata"].get("name", ""), [errors.invalid(
                            "spec.ports.nodePort", port["nodePort"], "provided port is already allocated")])
                else:
                    port["nodePort"] = int(await self.ports.allocate())

    async def _allocate_ip(self, spec: Obj, obj: Obj) -> None:
        wanted = spec.get("clusterIP")
        if wanted == "None":
            spec["clusterIPs"] = ["None"]
        elif wanted:
            try:
                addr = ipaddress.ip_address(wanted)
            except ValueError:
                raise errors.invalid_object("Service", "", [errors.invalid(
                    "spec.clusterIP", wanted, "must be a valid IP address")]) from None
            if addr not in self.network:
                raise errors.invalid_object("Service", "", [errors.invalid(
                    "spec.clusterIP", wanted, f"provided IP is not in the valid range: {self.network}")])
            meta = obj.get("metadata") or {}
            is_kubernetes = (meta.get("name"), meta.get("namespace"), meta.get("tenant")) == (
                "kubernetes", "default", "system")
            taken = (str(addr) == self.reserved_ip and not is_kubernetes) or (
                str(addr) != self.reserved_ip and not await self.ips.reserve(str(addr)))
            if taken:
                raise errors.invalid_object("Service", "", [errors.invalid(
                    "spec.clusterIP", wanted, "provided IP is already allocated")])
            spec["clusterIPs"] = [str(addr)]
        else:
            spec["clusterIP"] = await self.ips.allocate()
            spec["clusterIPs"] = [spec["clusterIP"]]
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")

    def _on_event(self, event: Event) -> None:
        if event.new is None and event.old is not None:
            spec = orjson.loads(event.old.raw).get("spec") or {}
            task = asyncio.get_running_loop().create_task(self._release(spec))
            self._releases.add(task)
            task.add_done_callback(self._releases.discard)

    async def _release(self, spec: Obj) -> None:
        try:
            ip = spec.get("clusterIP")
            if ip and ip not in ("None", self.reserved_ip):
                await self.ips.release(ip)
            for port in spec.get("ports") or []:
                if isinstance(port, dict) and port.get("nodePort"):
                    await self.ports.release(str(port["nodePort"]))
        except StorageError as exc:
            log.warning("releasing a deleted service's addresses failed (the repair loop will retry): %s", exc)

    async def _repair_loop(self, interval: float = 180.0) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.repair()
            except StorageError as exc:
                log.warning("service range repair failed: %s", exc)

    async def repair(self) -> int:
        """Free reservations that no Service holds; returns how many."""
        cache = self.caches.caches.get("services")
        if cache is None:
            return 0
        used_ips, used_ports = set(), set()
        for entry in cache.entries.values():
            spec = orjson.loads(entry.raw).get("spec") or {}
            used_ips.add(spec.get("clusterIP"))
            used_ports.update(str(p.get("nodePort")) for p in spec.get("ports") or [] if isinstance(p, dict))
        freed = 0
        for allocator, used in ((self.ips, used_ips), (self.ports, used_ports)):
            kvs, _, _ = await allocator.etcd.list(allocator.prefix)
            for kv in kvs:
                value = kv.key[len(allocator.prefix):]
                reserved = orjson.loads(kv.value).get("reserved", 0)
                if value not in used and time.time() - reserved > REPAIR_GRACE:
                    await allocator.release(value)
                    freed += 1
        if freed:
            log.info("freed %d service addresses/ports that no service held", freed)
        return freed
