"""The DNS server's loop: informers feed a DnsState; UDP and TCP listeners answer from it.

Three informers on the system tenant's `tenants/all` paths (Services,
Endpoints, Pods) keep `arktos.dns.records.DnsState` current; each query is
answered by `records.answer` for the asker its source IP names (a pod's tenant,
the host, or nobody), and what is not ours goes to the upstream resolvers.
/health answers 200 while the process runs (CoreDNS's health plugin), /ready
200 once the informers have synced (its ready plugin): `arktos up` waits on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.rcode

from arktos.api.resources import BUILTIN
from arktos.client import ALL_TENANTS, Client, ClusterConfig, Informer
from arktos.dns.records import FORWARD, HOST, Asker, DnsConfig, DnsState, answer

__all__ = ["DnsOptions", "DnsServer", "read_upstreams"]

log = logging.getLogger("arktos.dns")
_KINDS = {(i.group, i.plural): i for i in BUILTIN}
SERVICES, ENDPOINTS, PODS = _KINDS[("", "services")], _KINDS[("", "endpoints")], _KINDS[("", "pods")]
IP_FREEBIND = 15  # linux/in.h: bind to an address the host does not have yet (a pod bridge made later)
_DOWN_AFTER = 2  # consecutive failures before an upstream counts as down
_DOWN_FOR = 5.0  # seconds a down upstream is skipped before it is tried again


@dataclass
class DnsOptions:
    config: ClusterConfig | None  # None: no API server (tests feed the state themselves)
    dns: DnsConfig = field(default_factory=DnsConfig)
    bind_addresses: tuple[str, ...] = ("0.0.0.0",)
    port: int = 53
    health_host: str = "127.0.0.1"
    health_port: int | None = 8080  # CoreDNS's health port; 0: any free one; None: none
    resolv_conf: str = "/etc/resolv.conf"
    upstreams: tuple[tuple[str, int], ...] | None = None  # default: the resolv.conf's nameservers
    upstream_timeout: float = 2.0
    unknown_source_wait: float = 2.0  # how long a query from an unknown source waits for the pod informer
    sync_wait: float = 5.0  # how long a query waits for the first sync before SERVFAIL
    qps: float = 50.0
    burst: int = 100


def read_upstreams(path: str) -> list[tuple[str, int]]:
    """The `nameserver` lines of a resolv.conf, as (address, 53)."""
    out: list[tuple[str, int]] = []
    try:
        lines = open(path).read().splitlines()  # noqa: SIM115 (short read)
    except OSError:
        return out
    for line in lines:
        parts = line.split("#", 1)[0].split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            with contextlib.suppress(ValueError):
                out.append((str(ipaddress.ip_address(parts[1].split("%", 1)[0])), 53))
    return out


def is_local_address(ip: str) -> bool:
    """Whether `ip` is one of this host's own addresses (binding to it succeeds)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if addr.is_loopback:
        return True
    family = socket.AF_INET6 if addr.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.bind((ip, 0))
        except OSError:
            return False
    return True


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.server._spawn(self._answer(data, addr))

    async def _answer(self, data: bytes, addr: tuple[str, int]) -> None:
        wire = await self.server.handle(data, addr[0], tcp=False)
        if wire is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(wire, addr)


class DnsServer:
    def __init__(self, options: DnsOptions) -> None:
        self.options = options
        self.state = DnsState()
        self.client: Client | None = None
        self.informers: list[Informer] = []
        self._transports: list[asyncio.BaseTransport] = []
        self._servers: list[asyncio.AbstractServer] = []
        self._tasks: set[asyncio.Task] = set()
        self._pods_changed = asyncio.Event()
        self._synced = asyncio.Event()
        self._local: dict[str, tuple[bool, float]] = {}
        self._told: dict[str, float] = {}  # unknown sources lately logged
        self.is_local = is_local_address  # replaceable in tests, where every source is on loopback
        self._failures: dict[tuple[str, int], tuple[int, float]] = {}  # upstream -> (consecutive failures, at)
        self.upstreams: list[tuple[str, int]] = []
        self.addresses: list[tuple[str, int]] = []  # what the listeners are bound to
        self.health_address: tuple[str, int] | None = None
        self.counts: dict[str, int] = {"queries": 0, "forwarded": 0, "refused": 0, "servfail": 0}

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        o = self.options
        if o.config is not None:
            self.client = Client(o.config, component="dns", qps=o.qps, burst=o.burst)
            s = self.state
            for info, put, delete, wakes in ((SERVICES, s.put_service, s.delete_service, False),
                                             (ENDPOINTS, s.put_endpoints, s.delete_endpoints, False),
                                             (PODS, s.put_pod, s.delete_pod, True)):
                inf = Informer(self.client, info, tenant=ALL_TENANTS)
                inf.add_handler(on_add=self._handler(put, wakes), on_update=self._update_handler(put, wakes),
                                on_delete=self._handler(delete, wakes))
                self.informers.append(inf)
                await inf.start()
            self._spawn(self._wait_synced())
        else:
            self._synced.set()
        await self._listen()
        self.upstreams = self._choose_upstreams()
        if o.health_port is not None:
            srv = await asyncio.start_server(self._health, o.health_host, o.health_port)
            self._servers.append(srv)
            self.health_address = srv.sockets[0].getsockname()[:2]
        log.info("dns: zone %s on %s, upstreams %s, health %s", o.dns.zone,
                 ", ".join(f"{h}:{p}" for h, p in self.addresses),
                 ", ".join(f"{h}:{p}" for h, p in self.upstreams) or "none",
                 "{}:{}".format(*self.health_address) if self.health_address else "off")

    async def stop(self) -> None:
        for srv in self._servers:
            srv.close()
        for t in self._transports:
            t.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for inf in self.informers:
            await inf.stop()
        if self.client is not None:
            await self.client.close()

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        for host in self.options.bind_addresses:
            udp, tcp = self._bind(host, self.options.port)
            port = udp.getsockname()[1]
            transport, _ = await loop.create_datagram_endpoint(lambda: _Udp(self), sock=udp)
            self._transports.append(transport)
            self._servers.append(await asyncio.start_server(self._tcp, sock=tcp))
            self.addresses.append((host, port))

    @staticmethod
    def _bind(host: str, port: int) -> tuple[socket.socket, socket.socket]:
        """A UDP and a TCP socket on one port.  With port 0 the UDP socket picks it and TCP follows; that
        number may be taken for TCP, so a few picks are tried before giving up."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        for attempt in range(10 if port == 0 else 1):
            udp = socket.socket(family, socket.SOCK_DGRAM)
            tcp = socket.socket(family, socket.SOCK_STREAM)
            try:
                # TCP only: a UDP port shared through SO_REUSEADDR would split the queries between two servers.
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                for s in (udp, tcp):
                    if family == socket.AF_INET:
                        s.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
                    s.setblocking(False)
                udp.bind((host, port))
                tcp.bind((host, udp.getsockname()[1]))
                tcp.listen(128)
                return udp, tcp
            except OSError as exc:
                udp.close()
                tcp.close()
                if port == 0 and exc.errno == errno.EADDRINUSE and attempt < 9:
                    continue
                raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
        raise AssertionError("unreachable")

    def _choose_upstreams(self) -> list[tuple[str, int]]:
        o = self.options
        found = list(o.upstreams) if o.upstreams is not None else read_upstreams(o.resolv_conf)
        ours = {p for _, p in self.addresses}
        # Never ourselves: a resolv.conf naming this host on our own port would loop.
        return [(h, p) for h, p in found if not (p in ours and is_local_address(h))]

    # -- the informers -----------------------------------------------------------------------------

    def _handler(self, fn: Any, wakes: bool) -> Any:
        def handle(obj: dict[str, Any]) -> None:
            fn(obj)
            if wakes:
                self._wake_pod_waiters()
        return handle

    def _update_handler(self, fn: Any, wakes: bool) -> Any:
        single = self._handler(fn, wakes)
        return lambda _old, new: single(new)

    def _wake_pod_waiters(self) -> None:
        self._pods_changed.set()
        self._pods_changed = asyncio.Event()

    async def _wait_synced(self) -> None:
        for inf in self.informers:
            await inf.wait_synced()
        self._synced.set()
        log.info("dns: synced: %d services, %d endpoints", len(self.state.services), len(self.state.endpoints))

    def ready(self) -> bool:
        return self._synced.is_set() and bool(self.addresses)

    # -- answering ---------------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def asker(self, ip: str) -> Asker | None:
        """Who `ip` is: a pod's tenant (the system tenant's pods see all), the host, or None (unknown)."""
        ip = ip.split("%", 1)[0]
        if ip.startswith("::ffff:"):
            ip = ip[7:]
        tenant = self.state.pod_tenant(ip)
        if tenant is not None:
            return HOST if tenant == HOST.tenant else Asker(tenant)
        now = time.monotonic()
        known = self._local.get(ip)
        if known is None or now - known[1] > 10.0:
            known = self._local[ip] = (self.is_local(ip), now)
            if len(self._local) > 4096:
                self._local.clear()
        return HOST if known[0] else None

    async def handle(self, data: bytes, source: str, *, tcp: bool) -> bytes | None:
        """The wire answer to one query (None: not even a DNS header; dropped)."""
        self.counts["queries"] += 1
        try:
            query = dns.message.from_wire(data)
        except dns.message.ShortHeader:
            return None
        except Exception:  # a header we can read but a body we cannot: FORMERR, as servers do
            return _formerr(data)
        if query.flags & dns.flags.QR:
            return None  # a response: never answer those
        try:
            response = await self.respond(query, source)
        except Exception as exc:
            log.warning("dns: answering %s from %s failed: %s", query.question, source, exc)
            response = dns.message.make_response(query)
            response.set_rcode(dns.rcode.SERVFAIL)
        rcode = response.rcode()
        if rcode == dns.rcode.REFUSED:
            self.counts["refused"] += 1
        elif rcode == dns.rcode.SERVFAIL:
            self.counts["servfail"] += 1
        limit = 65535 if tcp else max(512, min(query.payload, 65535) if query.edns >= 0 else 512)
        return response.to_wire(max_size=limit, prefer_truncation=True)

    async def respond(self, query: dns.message.Message, source: str) -> dns.message.Message:
        o = self.options
        asker = self.asker(source)
        result = answer(self.state, query, asker, o.dns)
        if result is FORWARD:
            return await self.forward(query)
        if not self._synced.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._synced.wait(), o.sync_wait)
            if not self._synced.is_set():
                response = dns.message.make_response(query)
                response.set_rcode(dns.rcode.SERVFAIL)
                return response
            asker = self.asker(source)
            result = answer(self.state, query, asker, o.dns)
        deadline = time.monotonic() + o.unknown_source_wait
        while asker is None and time.monotonic() < deadline:
            # A pod whose IP the API does not show yet (its first query can beat its status): wait for it.
            changed = self._pods_changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), deadline - time.monotonic())
            asker = self.asker(source)
            if asker is not None:
                result = answer(self.state, query, asker, o.dns)
        if asker is None and time.monotonic() - self._told.get(source, -60.0) >= 60.0:  # once a minute a source
            self._told[source] = time.monotonic()
            if len(self._told) > 4096:
                self._told.clear()
            log.info("dns: refused %s from %s: not a pod this server knows, nor the host", query.question[0].name,
                     source)
        assert isinstance(result, dns.message.Message)
        return result

    async def forward(self, query: dns.message.Message) -> dns.message.Message:
        """Ask the upstream resolvers in turn; SERVFAIL when none answers (at once when all failed lately)."""
        o = self.options
        self.counts["forwarded"] += 1
        now = time.monotonic()
        candidates = [u for u in self.upstreams
                      if self._failures.get(u, (0, 0.0))[0] < _DOWN_AFTER or now - self._failures[u][1] > _DOWN_FOR]
        for host, port in candidates:
            try:
                response, _ = await dns.asyncquery.udp_with_fallback(query, host, timeout=o.upstream_timeout,
                                                                     port=port)
            except (dns.exception.DNSException, OSError, EOFError) as exc:
                count = self._failures.get((host, port), (0, 0.0))[0] + 1
                self._failures[(host, port)] = (count, time.monotonic())
                log.debug("dns: upstream %s:%d failed (%d in a row): %s", host, port, count, exc or type(exc).__name__)
                continue
            self._failures.pop((host, port), None)
            response.id = query.id
            return response
        response = dns.message.make_response(query, recursion_available=True)
        response.set_rcode(dns.rcode.SERVFAIL)
        return response

    async def _tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        source = writer.get_extra_info("peername")[0]
        try:
            while True:
                async with asyncio.timeout(10):  # idle connections go
                    size = struct.unpack("!H", await reader.readexactly(2))[0]
                    data = await reader.readexactly(size)
                wire = await self.handle(data, source, tcp=True)
                if wire is None:
                    break
                writer.write(struct.pack("!H", len(wire)) + wire)
                await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            writer.close()

    # -- health ------------------------------------------------------------------------------------

    async def _health(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = b""
        try:
            with contextlib.suppress(TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                async with asyncio.timeout(5):
                    head = await reader.readuntil(b"\r\n\r\n")
            line = head.split(b"\r\n", 1)[0].split()
            path = line[1].decode(errors="replace").split("?", 1)[0] if len(line) > 1 else "/"
            if path == "/health":
                ok, body = True, b"OK"
            elif path == "/ready":
                ok = self.ready()
                body = b"OK" if ok else b"not synced"
            else:
                ok, body = False, b"404 page not found"
            status = "200 OK" if ok else ("404 Not Found" if body.startswith(b"404") else "503 Service Unavailable")
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                         f"Connection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()


def _formerr(data: bytes) -> bytes | None:
    """FORMERR with the query's id, for a message whose header parses but whose body does not."""
    if len(data) < 12:
        return None
    flags = struct.unpack("!H", data[2:4])[0]
    if flags & 0x8000:
        return None
    out_flags = 0x8000 | (flags & 0x7900) | dns.rcode.FORMERR  # QR, the opcode and RD kept
    return data[:2] + struct.pack("!HHHHH", out_flags, 0, 0, 0, 0)
