"""`arktos dns` against a real API server: real DNS queries (dnspython, UDP and TCP) to the server's port.

The server runs in this process (ports picked free) and watches the session's plain-HTTP API server.
Two tenants each get a pod whose status names a loopback address as its IP; queries are sent *from*
that address, so the server takes them for that pod's.  Every other loopback source counts as unknown
here (the server's local-address check is narrowed to 127.0.0.1, the "host").  A fake upstream answers
names outside the zone; a silent one makes the server answer SERVFAIL.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
import uuid

import dns.asyncquery
import dns.asyncresolver
import dns.message
import dns.rcode
import dns.resolver
import pytest

from arktos.api.resources import builtin_registry
from arktos.client import APIError, Client, ClusterConfig
from arktos.dns.records import DnsConfig, pod_search_domains
from arktos.dns.server import DnsOptions, DnsServer
from tests.conftest import eventually

pytestmark = pytest.mark.timeout(60)
REG = builtin_registry()
TENANTS, NAMESPACES = REG.get("", "v1", "tenants"), REG.get("", "v1", "namespaces")
PODS, SERVICES, ENDPOINTS = REG.get("", "v1", "pods"), REG.get("", "v1", "services"), REG.get("", "v1", "endpoints")


def loopback() -> str:
    return f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


class FakeUpstream(asyncio.DatagramProtocol):
    """Answers example.test with 192.0.2.99, NXDOMAIN to anything else (or never, when silent)."""

    def __init__(self, silent: bool = False) -> None:
        self.silent, self.seen = silent, 0

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.seen += 1
        if self.silent:
            return
        q = dns.message.from_wire(data)
        r = dns.message.make_response(q)
        if q.question[0].name == dns.name.from_text("example.test."):
            r.answer.append(dns.rrset.from_text(q.question[0].name, 30, "IN", "A", "192.0.2.99"))
        else:
            r.set_rcode(dns.rcode.NXDOMAIN)
        self.transport.sendto(r.to_wire(), addr)


async def upstream(silent: bool = False) -> tuple[asyncio.DatagramTransport, FakeUpstream]:
    loop = asyncio.get_running_loop()
    return await loop.create_datagram_endpoint(lambda: FakeUpstream(silent), local_addr=("127.0.0.1", 0))


async def start_dns(url: str | None, upstreams, **kw) -> DnsServer:
    server = DnsServer(DnsOptions(config=ClusterConfig.for_url(url) if url else None,
                                  dns=DnsConfig(authoritative_reverse=("10.0.0.0/24",)), bind_addresses=("127.0.0.1",),
                                  port=0, health_port=0, upstreams=tuple(upstreams), upstream_timeout=0.5, **kw))
    server.is_local = lambda ip: ip == "127.0.0.1"
    await server.start()
    return server


async def query(server: DnsServer, name: str, rdtype: str = "A", source: str = "127.0.0.1", tcp: bool = False):
    q = dns.message.make_query(name, rdtype)
    host, port = server.addresses[0]
    if tcp:
        return await dns.asyncquery.tcp(q, host, timeout=5, port=port, source=source)
    return await dns.asyncquery.udp(q, host, timeout=5, port=port, source=source)


async def resolve(server: DnsServer, name: str, source: str, search: list[str], rdtype: str = "A") -> list[str]:
    """What a pod with this search path gets (ndots:5, as the node agent sets it); [] for NXDOMAIN."""
    r = dns.asyncresolver.Resolver(configure=False)
    r.nameservers = [server.addresses[0][0]]
    r.port = server.addresses[0][1]
    r.search = [dns.name.from_text(s) for s in search]
    r.ndots = 5
    r.use_search_by_default = True
    try:
        got = await r.resolve(name, rdtype, source=source, lifetime=5)
    except dns.resolver.NXDOMAIN:
        return []
    return sorted(x.to_text() for x in got)


async def make_pod(client: Client, tenant: str, ip: str) -> str:
    name = f"p{uuid.uuid4().hex[:6]}"
    pod = await client.create(PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                                     "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
                              tenant=tenant, namespace="default")
    pod["status"] = {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}
    await client.update_status(PODS, pod, tenant=tenant, namespace="default")
    return name


@pytest.fixture
async def world(apiserver):
    client = Client(ClusterConfig.for_url(apiserver.url))
    suffix = uuid.uuid4().hex[:5]
    acme, beta = f"acme{suffix}", f"beta{suffix}"
    for t in (acme, beta):
        await client.create(TENANTS, {"apiVersion": "v1", "kind": "Tenant", "metadata": {"name": t}})
        for ns in ("default", "shop"):
            try:
                await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
                                    tenant=t)
            except APIError as exc:
                if exc.code != 409:  # a tenant controller elsewhere in the session may have made it
                    raise
    web = await client.create(SERVICES, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                                         "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}},
                              tenant=acme, namespace="default")
    await client.create(SERVICES, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                                   "spec": {"ports": [{"name": "http", "port": 80}]}}, tenant=acme, namespace="shop")
    await client.create(SERVICES, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"},
                                   "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}},
                        tenant=acme, namespace="shop")
    await client.create(ENDPOINTS, {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "db"}, "subsets": [
        {"addresses": [{"ip": "10.88.7.10", "hostname": "db-0"}, {"ip": "10.88.7.11"}],
         "notReadyAddresses": [{"ip": "10.88.7.12"}], "ports": [{"name": "pg", "port": 5432}]}]},
                        tenant=acme, namespace="shop")
    ips = {acme: loopback(), beta: loopback()}
    for t, ip in ips.items():
        await make_pod(client, t, ip)
    yield client, acme, beta, ips, web["spec"]["clusterIP"]
    for t in (acme, beta):
        await client.delete(TENANTS, t)
    await client.close()


async def test_pods_resolve_their_own_tenants_services_only(world, apiserver):
    client, acme, beta, ips, cluster_ip = world
    up_transport, fake = await upstream()
    server = await start_dns(apiserver.url, [up_transport.get_extra_info("sockname")], unknown_source_wait=1.0)
    try:
        me = ips[acme]
        search = pod_search_domains("default", acme)
        await eventually(lambda: resolve(server, "web", me, search), 10, "web resolving")
        assert await resolve(server, "web", me, search) == [cluster_ip]
        assert await resolve(server, "web.default", me, search) == [cluster_ip]
        assert await resolve(server, "web.default.svc.cluster.local", me, search) == [cluster_ip]
        assert len(await resolve(server, "web.shop", me, search)) == 1
        # Headless: the ready endpoints; one by its hostname; SRV over TCP with the addresses alongside.
        assert await resolve(server, "db.shop", me, search) == ["10.88.7.10", "10.88.7.11"]
        assert await resolve(server, "db-0.db.shop", me, search) == ["10.88.7.10"]
        r = await query(server, f"_pg._tcp.db.shop.svc.{acme}.cluster.local.", "SRV", me, tcp=True)
        assert sorted(x.to_text() for rr in r.answer for x in rr) == [
            f"0 100 5432 10-88-7-11.db.shop.svc.{acme}.cluster.local.",
            f"0 100 5432 db-0.db.shop.svc.{acme}.cluster.local."]
        assert {x.to_text() for rr in r.additional for x in rr} == {"10.88.7.10", "10.88.7.11"}
        # PTR of the ClusterIP.
        rev = dns.reversename.from_address(cluster_ip)
        r = await query(server, rev.to_text(), "PTR", me)
        assert [x.to_text() for rr in r.answer for x in rr] == [f"web.default.svc.{acme}.cluster.local."]

        # The other tenant: its search path finds nothing, nor do acme's full names or acme's ClusterIP.
        theirs = ips[beta]
        bsearch = pod_search_domains("default", beta)
        assert await resolve(server, "web", theirs, bsearch) == []
        assert await resolve(server, f"web.default.svc.{acme}.cluster.local", theirs, bsearch) == []
        r = await query(server, f"web.default.svc.{acme}.cluster.local.", "A", theirs)
        assert r.rcode() == dns.rcode.NXDOMAIN and r.authority
        r = await query(server, rev.to_text(), "PTR", theirs)
        assert r.rcode() == dns.rcode.NXDOMAIN
        # The host sees everyone's explicit names.
        r = await query(server, f"web.default.svc.{acme}.cluster.local.")
        assert [x.to_text() for rr in r.answer for x in rr] == [cluster_ip]

        # Outside the zone: forwarded (from a pod, through its search path, too).
        assert await resolve(server, "example.test", me, search) == ["192.0.2.99"]
        assert fake.seen >= 1

        # An unknown source is refused the zone ... unless it turns out to be a new pod, which gets its answer.
        stranger = loopback()
        r = await query(server, f"web.default.svc.{acme}.cluster.local.", "A", stranger)
        assert r.rcode() == dns.rcode.REFUSED
        newcomer = loopback()
        asked = asyncio.ensure_future(query(server, "web.default.svc.cluster.local.", "A", newcomer))
        await asyncio.sleep(0.2)
        await make_pod(client, acme, newcomer)
        r = await asked
        assert [x.to_text() for rr in r.answer for x in rr] == [cluster_ip]

        # Changes show: a deleted Service is gone.
        await client.delete(SERVICES, "web", tenant=acme, namespace="shop")

        async def gone():
            return await resolve(server, "web.shop", me, search) == []
        await eventually(gone, 10, "the deleted service gone")
    finally:
        await server.stop()
        up_transport.close()


async def test_ready_health_and_servfail_without_upstreams(apiserver):
    transport, silent = await upstream(silent=True)
    server = await start_dns(apiserver.url, [transport.get_extra_info("sockname")])
    try:
        host, port = server.health_address

        async def get(path: str) -> str:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            data = await reader.read()
            writer.close()
            return data.decode()
        assert " 200 " in await get("/health")
        await eventually(lambda: asyncio.sleep(0, server.ready()), 10, "ready")
        assert " 200 " in await get("/ready")
        # A silent upstream: SERVFAIL after the upstream timeout; once it is known down, at once.
        times = []
        for _ in range(3):
            started = time.monotonic()
            r = await query(server, "example.test.")
            times.append(time.monotonic() - started)
            assert r.rcode() == dns.rcode.SERVFAIL
        assert times[0] < 1.5 and times[-1] < 0.2, times
        assert silent.seen == 2
    finally:
        await server.stop()
        transport.close()
    # No upstream at all: SERVFAIL at once; and a port in use is an error that says where.
    server = await start_dns(None, [])
    try:
        started = time.monotonic()
        assert (await query(server, "example.test.")).rcode() == dns.rcode.SERVFAIL
        assert time.monotonic() - started < 0.2
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            taken = s.getsockname()[1]
            clash = DnsServer(DnsOptions(config=None, bind_addresses=("127.0.0.1",), port=taken, health_port=None))
            with pytest.raises(OSError, match=f"127.0.0.1:{taken}"):
                await clash.start()
    finally:
        await server.stop()
