"""The proxy's loop: watch Services and Endpoints of every tenant, keep the iptables rules equal to them.

Two informers on the system tenant's `tenants/all` paths feed a "dirty" flag;
one sync task renders every rule (arktos.proxy.rules) and applies them in one
`iptables-restore` transaction, at most once per `min_sync_period` however
fast the changes come, and at least once per `sync_period` (a full resync,
which also re-reads which of our chains exist, re-checks the jumps from the
built-in chains, and repairs whatever someone else removed).  A failed sync is
retried as a full one.  /healthz (kube-proxy's port 10256) answers 200 while
the rules follow the API within a bound, 503 otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Any

import orjson

from arktos.api.resources import BUILTIN
from arktos.client import ALL_TENANTS, Client, ClusterConfig, Informer
from arktos.proxy import iptables
from arktos.proxy.rules import Options, render, service_ports

__all__ = ["Proxier", "ProxyOptions"]

log = logging.getLogger("arktos.proxy")
_KINDS = {(i.group, i.plural): i for i in BUILTIN}
SERVICES, ENDPOINTS = _KINDS[("", "services")], _KINDS[("", "endpoints")]


@dataclass
class ProxyOptions:
    config: ClusterConfig
    rules: Options
    sync_period: float = 30.0
    min_sync_period: float = 0.5
    healthz_host: str = "127.0.0.1"
    healthz_port: int = 10256  # 0: no health endpoint
    qps: float = 50.0
    burst: int = 100


class Proxier:
    def __init__(self, options: ProxyOptions) -> None:
        self.options = options
        self.client: Client | None = None
        self.services: Informer | None = None
        self.endpoints: Informer | None = None
        self._dirty = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._server: asyncio.AbstractServer | None = None
        self._chains: dict[str, set[str]] = {}
        self._need_full = True
        self._bridges: dict[str, list[str]] = {}
        self.last_sync = 0.0  # monotonic time of the last successful sync
        self.pending_since: float | None = None  # when the oldest change not yet applied came
        self.syncs = 0

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        o = self.options
        self.client = Client(o.config, component="proxy", qps=o.qps, burst=o.burst)
        self.services = Informer(self.client, SERVICES, tenant=ALL_TENANTS)
        self.endpoints = Informer(self.client, ENDPOINTS, tenant=ALL_TENANTS)
        for inf in (self.services, self.endpoints):
            inf.add_handler(on_add=self._changed, on_update=lambda _o, _n: self._changed(), on_delete=self._changed)
            await inf.start()
        if o.healthz_port:
            self._server = await asyncio.start_server(self._healthz, o.healthz_host, o.healthz_port)
        self._task = asyncio.create_task(self._run(), name="proxy-sync")
        log.info("proxy: services and endpoints of every tenant from %s, chains %s*, healthz %s", o.config.server,
                 o.rules.prefix, f"{o.healthz_host}:{o.healthz_port}" if o.healthz_port else "off")

    async def stop(self) -> None:
        """Stop watching; the rules stay, so traffic keeps flowing through a restart (`--cleanup` removes them)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._server is not None:
            self._server.close()
        for inf in (self.services, self.endpoints):
            if inf is not None:
                await inf.stop()
        if self.client is not None:
            await self.client.close()

    def _changed(self, *_: Any) -> None:
        if self.pending_since is None:
            self.pending_since = time.monotonic()
        self._dirty.set()

    # -- syncing -----------------------------------------------------------------------------------

    async def _run(self) -> None:
        assert self.services is not None and self.endpoints is not None
        await self.services.wait_synced()
        await self.endpoints.wait_synced()
        o = self.options
        last_full = 0.0
        while True:
            now = time.monotonic()
            full = self._need_full or now - last_full >= o.sync_period
            started = time.monotonic()
            self._dirty.clear()
            changes_from = self.pending_since
            self.pending_since = None
            try:
                # Snapshots taken here, on the loop that changes the stores; the thread only reads them.
                await asyncio.to_thread(self.sync, full, self.services.list(), self.endpoints.list())
            except Exception as exc:  # keep going: the next attempt is a full one
                log.warning("sync failed (retrying): %s", exc)
                self._need_full = True
                if self.pending_since is None:
                    self.pending_since = changes_from or time.monotonic()
                await asyncio.sleep(max(o.min_sync_period, 1.0))
                continue
            if full:
                last_full = started
            # At most one sync per min_sync_period, whatever the rate of changes.
            await asyncio.sleep(max(0.0, o.min_sync_period - (time.monotonic() - started)))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), timeout=max(0.0, o.sync_period - (time.monotonic()
                                                                                            - last_full)))

    def sync(self, full: bool, services: list[dict[str, Any]], endpoints: list[dict[str, Any]]) -> None:
        """Render and apply every rule for these Services and Endpoints (run in a thread: the tools block)."""
        started = time.monotonic()
        o = self.options
        if full:
            self._chains = iptables.our_chains(o.rules.prefix)
        self._bridges = iptables.local_bridges()
        subnets = tuple(sorted({s for nets in self._bridges.values() for s in nets}))
        rules = dataclasses.replace(o.rules, local_subnets=subnets)
        ports = service_ports(services, {self._key(e): e for e in endpoints})
        rendered = render(ports, rules, self._chains)
        iptables.restore(rendered.text)
        self._chains = rendered.chains
        if full:
            inserted = iptables.ensure_jumps(o.rules.prefix)
            if inserted:
                log.info("inserted %d jump rules into the built-in chains", inserted)
        if o.rules.localhost_nodeports:
            changed = iptables.set_route_localnet(sorted(self._bridges))
            if changed:
                log.info("route_localnet=1 on %s (node ports on 127.0.0.1)", ", ".join(changed))
        self._need_full = False
        self.syncs += 1
        self.last_sync = time.monotonic()
        with_eps = sum(1 for p in ports if p.endpoints)
        log.log(logging.INFO if full or self.syncs <= 1 else logging.DEBUG,
                "%s sync: %d service ports (%d with endpoints, %d endpoints) in %.0f ms",
                "full" if full else "partial", len(ports), with_eps, sum(len(p.endpoints) for p in ports),
                (time.monotonic() - started) * 1000)

    @staticmethod
    def _key(obj: dict[str, Any]) -> str:
        meta = obj.get("metadata") or {}
        return "/".join(p for p in (meta.get("tenant"), meta.get("namespace"), meta.get("name")) if p)

    # -- health ------------------------------------------------------------------------------------

    def healthy(self) -> bool:
        """Synced at least once, and no change has waited for the rules longer than allowed."""
        if not self.syncs:
            return False
        bound = max(2 * self.options.sync_period, 60.0)
        pending = self.pending_since
        return pending is None or time.monotonic() - pending < bound

    async def _healthz(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            with contextlib.suppress(TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                async with asyncio.timeout(5):
                    await reader.readuntil(b"\r\n\r\n")
            ok = self.healthy()
            body = orjson.dumps({"lastUpdated": time.time() - (time.monotonic() - self.last_sync)
                                 if self.syncs else None, "currentTime": time.time(), "healthy": ok,
                                 "syncs": self.syncs})
            head = (f"HTTP/1.1 {'200 OK' if ok else '503 Service Unavailable'}\r\nContent-Type: application/json"
                    f"\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
            writer.write(head + body)
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
