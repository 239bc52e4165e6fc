"""What the cluster DNS answers: a pure function of the watched objects, the question and who asks.

`DnsState` holds the Services, Endpoints and pod IPs of every tenant (fed by
the informers in arktos.dns.server, or directly by tests); `answer()` turns one
query and the asking `Asker` into a response message, or `FORWARD` for names
outside the cluster's zones.  The names are those of CoreDNS's kubernetes
plugin with a tenant label (see arktos.dns for the design):

    <svc>.<ns>.svc.<tenant>.<zone>                 A/AAAA: the ClusterIP(s); headless: the ready endpoints
    <svc>.<ns>.svc.<zone>                          the same, in the asking pod's own tenant
    <host>.<svc>.<ns>.svc[.<tenant>].<zone>        one endpoint: its hostname, or its IP with dashes
    _<port>._<proto>.<svc>.<ns>.svc[.<tenant>].<zone>   SRV per named port (headless: per endpoint)
    <svc>.<ns>.svc[.<tenant>].<zone> SRV           SRV for every named port
    ExternalName services                          a CNAME to spec.externalName
    <reversed IP>.in-addr.arpa / ip6.arpa          PTR for ClusterIPs and endpoint IPs

Names of a tenant the asker may not see get what a name that does not exist
gets (NXDOMAIN with the SOA), so nothing tells one tenant about another.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from arktos.api.tenancy import SYSTEM_TENANT, dns_search_domains

__all__ = ["FORWARD", "Asker", "DnsConfig", "DnsState", "answer", "pod_search_domains"]

Obj = dict[str, Any]
Key = tuple[str, str, str]  # tenant, namespace, name

FORWARD = object()  # answer() result: not ours, ask the upstream resolvers
_A, _AAAA, _SRV, _PTR = dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.SRV, dns.rdatatype.PTR
_CNAME, _SOA, _NS, _ANY = dns.rdatatype.CNAME, dns.rdatatype.SOA, dns.rdatatype.NS, dns.rdatatype.ANY
_REVERSE = (dns.name.from_text("in-addr.arpa."), dns.name.from_text("ip6.arpa."))


@dataclass(frozen=True)
class Asker:
    """Who sent a query, as far as DNS is concerned.

    `tenant` is the tenant whose names the short forms (`<svc>.<ns>.svc.<zone>` and the search path) mean;
    `all_tenants` lets it read every tenant's explicit names (the host and the system tenant's pods)."""

    tenant: str
    all_tenants: bool = False

    def sees(self, tenant: str) -> bool:
        return self.all_tenants or tenant == self.tenant


HOST = Asker(SYSTEM_TENANT, all_tenants=True)


@dataclass(frozen=True)
class DnsConfig:
    zone: str = "cluster.local"
    ttl: int = 5  # CoreDNS's kubernetes plugin default
    # Reverse names of these ranges are ours alone (the service range): unknown ones are NXDOMAIN, not forwarded.
    authoritative_reverse: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "zone", self.zone.strip(".").lower())
        nets = tuple(ipaddress.ip_network(c, strict=False) for c in self.authoritative_reverse)
        object.__setattr__(self, "_nets", nets)

    @property
    def origin(self) -> dns.name.Name:
        return dns.name.from_text(self.zone + ".")

    def owns_reverse(self, ip: str) -> bool:
        addr = ipaddress.ip_address(ip)
        return any(addr.version == n.version and addr in n for n in self._nets)  # type: ignore[attr-defined]


pod_search_domains = dns_search_domains  # the node agent writes it, this server reads it


def _key(obj: Obj) -> Key:
    meta = obj.get("metadata") or {}
    return (meta.get("tenant") or SYSTEM_TENANT, meta.get("namespace") or "default", meta.get("name") or "")


def _ip(value: Any) -> str | None:
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        return None


def dashed(ip: str) -> str:
    """An endpoint's label when it has no hostname: 10-88-0-5 (CoreDNS's form; `:` becomes `-` for IPv6)."""
    return ip.replace(".", "-").replace(":", "-")


@dataclass
class _Endpoint:
    ip: str
    label: str  # hostname, or the dashed IP
    ports: tuple[tuple[str, str, int], ...]  # (name, protocol, port)


@dataclass
class DnsState:
    """The objects DNS answers from, kept by key; reverse (PTR) indexes are rebuilt lazily after a change."""

    services: dict[Key, Obj] = field(default_factory=dict)
    endpoints: dict[Key, Obj] = field(default_factory=dict)
    serial: int = 1  # the SOA serial: counts changes
    _namespaces: Counter = field(default_factory=Counter)  # (tenant, ns) -> services in it
    _tenants: Counter = field(default_factory=Counter)  # tenant -> services in it
    _pod_ips: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)  # pod key -> (tenant, ips)
    _ip_owners: dict[str, dict[str, str]] = field(default_factory=dict)  # ip -> pod key -> tenant
    _reverse: dict[str, list[tuple[str, str]]] | None = None  # ip -> [(tenant, name relative to svc.<t>)]

    # -- feeding -----------------------------------------------------------------------------------

    def put_service(self, svc: Obj) -> None:
        key = _key(svc)
        if key not in self.services:
            self._namespaces[key[:2]] += 1
            self._tenants[key[0]] += 1
        self.services[key] = svc
        self._changed()

    def delete_service(self, svc: Obj) -> None:
        key = _key(svc)
        if self.services.pop(key, None) is not None:
            for counter, k in ((self._namespaces, key[:2]), (self._tenants, key[0])):
                counter[k] -= 1
                if counter[k] <= 0:
                    del counter[k]
        self._changed()

    def put_endpoints(self, ep: Obj) -> None:
        self.endpoints[_key(ep)] = ep
        self._changed()

    def delete_endpoints(self, ep: Obj) -> None:
        self.endpoints.pop(_key(ep), None)
        self._changed()

    def put_pod(self, pod: Obj) -> None:
        """Remember which tenant a pod's IPs belong to (pods on the host's network and finished pods have none)."""
        meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
        key = "/".join(_key(pod)) + "/" + (meta.get("uid") or "")
        ips: list[str] = []
        if not spec.get("hostNetwork") and status.get("phase") not in ("Succeeded", "Failed"):
            for value in [status.get("podIP"), *((p or {}).get("ip") for p in status.get("podIPs") or [])]:
                ip = _ip(value) if value else None
                if ip and ip not in ips:
                    ips.append(ip)
        self._forget_pod(key)
        if ips:
            tenant = _key(pod)[0]
            self._pod_ips[key] = (tenant, tuple(ips))
            for ip in ips:
                self._ip_owners.setdefault(ip, {})[key] = tenant

    def delete_pod(self, pod: Obj) -> None:
        meta = pod.get("metadata") or {}
        self._forget_pod("/".join(_key(pod)) + "/" + (meta.get("uid") or ""))

    def _forget_pod(self, key: str) -> None:
        old = self._pod_ips.pop(key, None)
        for ip in old[1] if old else ():
            owners = self._ip_owners.get(ip) or {}
            owners.pop(key, None)
            if not owners:
                self._ip_owners.pop(ip, None)

    def _changed(self) -> None:
        self.serial += 1
        self._reverse = None

    # -- reading -----------------------------------------------------------------------------------

    def pod_tenant(self, ip: str) -> str | None:
        """The tenant of the pod with this IP; None for no pod, or pods of two tenants (an IP being reused)."""
        tenants = set((self._ip_owners.get(ip) or {}).values())
        return tenants.pop() if len(tenants) == 1 else None

    def has_tenant(self, tenant: str) -> bool:
        return self._tenants.get(tenant, 0) > 0

    def has_namespace(self, tenant: str, namespace: str) -> bool:
        return self._namespaces.get((tenant, namespace), 0) > 0

    def service_endpoints(self, key: Key, ready_only: bool = True) -> list[_Endpoint]:
        """The Endpoints' ready addresses, each with its ports, sorted by IP."""
        out: dict[str, _Endpoint] = {}
        for subset in (self.endpoints.get(key) or {}).get("subsets") or []:
            if not isinstance(subset, dict):
                continue
            ports = tuple((p.get("name") or "", p.get("protocol") or "TCP", p["port"])
                          for p in subset.get("ports") or [] if isinstance(p, dict) and isinstance(p.get("port"), int))
            addresses = list(subset.get("addresses") or [])
            if not ready_only:
                addresses += subset.get("notReadyAddresses") or []
            for addr in addresses:
                ip = _ip((addr or {}).get("ip"))
                if ip is None:
                    continue
                hostname = (addr.get("hostname") or "").lower()
                if ip in out:
                    out[ip].ports = tuple(sorted(set(out[ip].ports) | set(ports)))
                else:
                    out[ip] = _Endpoint(ip, hostname or dashed(ip), ports)
        return sorted(out.values(), key=lambda e: (ipaddress.ip_address(e.ip).version, ipaddress.ip_address(e.ip)))

    def reverse(self, ip: str) -> list[tuple[str, str]]:
        """(tenant, `<svc>.<ns>` or `<endpoint>.<svc>.<ns>`) for every ClusterIP or endpoint IP equal to `ip`."""
        if self._reverse is None:
            rev: dict[str, list[tuple[str, str]]] = {}
            for key, svc in self.services.items():
                for cip in _cluster_ips(svc):
                    rev.setdefault(cip, []).append((key[0], f"{key[2]}.{key[1]}"))
                for e in self.service_endpoints(key) if key in self.services else ():
                    rev.setdefault(e.ip, []).append((key[0], f"{e.label}.{key[2]}.{key[1]}"))
            self._reverse = rev
        return self._reverse.get(ip, [])


def _cluster_ips(svc: Obj) -> list[str]:
    spec = svc.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return []
    values = spec.get("clusterIPs") or [spec.get("clusterIP")]
    return [ip for ip in (_ip(v) for v in values if v and v != "None") if ip]


def _headless(svc: Obj) -> bool:
    spec = svc.get("spec") or {}
    return spec.get("type") != "ExternalName" and spec.get("clusterIP") == "None"


# -- answering --------------------------------------------------------------------------------------


class _Reply:
    """What one reading of a name gives: records, or that the name is absent (NXDOMAIN)."""

    def __init__(self, exists: bool = True) -> None:
        self.exists = exists
        self.answer: list[dns.rrset.RRset] = []
        self.additional: list[dns.rrset.RRset] = []


def _absent() -> _Reply:
    return _Reply(exists=False)


def answer(state: DnsState, query: dns.message.Message, asker: Asker | None,
           config: DnsConfig | None = None) -> dns.message.Message | object:
    """The response to `query` from `asker` (None: a source we cannot place), or FORWARD.

    Names in the zone from an unplaced source are REFUSED; names outside the zone and reverse names
    that are not ours are FORWARD (the caller asks the upstream resolvers).
    """
    config = config or DnsConfig()
    response = dns.message.make_response(query, recursion_available=True)
    if query.opcode() != dns.opcode.QUERY:
        response.set_rcode(dns.rcode.NOTIMP)
        return response
    if len(query.question) != 1:
        response.set_rcode(dns.rcode.FORMERR)
        return response
    question = query.question[0]
    qname, qtype = question.name, question.rdtype
    origin = config.origin
    if question.rdclass != dns.rdataclass.IN:
        return FORWARD if not qname.is_subdomain(origin) else _refused(response)
    if any(qname.is_subdomain(z) for z in _REVERSE):
        return _reverse(state, response, qname, qtype, asker, config)
    if not qname.is_subdomain(origin):
        return FORWARD
    if asker is None:
        return _refused(response)
    response.flags |= dns.flags.AA
    labels = [lab.decode("ascii", "replace").lower() for lab in qname.relativize(origin).labels]
    if not labels or labels == ["@"]:
        reply = _apex(qname, qtype, config, state)
    else:
        reply = _absent()
        for tenant, rest, explicit in _readings(labels, asker):
            if not asker.sees(tenant):
                continue
            got = _lookup(state, config, qname, qtype, tenant, rest, explicit)
            if got.exists:
                reply = got
                break
    return _finish(response, reply, config, state)


def _refused(response: dns.message.Message) -> dns.message.Message:
    response.set_rcode(dns.rcode.REFUSED)
    return response


def _readings(labels: list[str], asker: Asker) -> Iterable[tuple[str, list[str], bool]]:
    """(tenant, labels before `svc`, explicit?) for each way to read a name relative to the zone.

    `...svc.<tenant>` names a tenant; `...svc` alone means the asker's own.  A tenant called `svc` makes
    `x.svc.svc` readable both ways: the explicit reading is tried first.
    """
    if len(labels) >= 2 and labels[-2] == "svc":
        yield labels[-1], labels[:-2], True
    if labels[-1] == "svc":
        yield asker.tenant, labels[:-1], False
    if len(labels) == 1:
        yield labels[0], [], True  # the tenant's own apex


def _base(config: DnsConfig, tenant: str, explicit: bool) -> str:
    return f"svc.{tenant}.{config.zone}." if explicit else f"svc.{config.zone}."


def _lookup(state: DnsState, config: DnsConfig, qname: dns.name.Name, qtype: int, tenant: str, rest: list[str],
            explicit: bool) -> _Reply:
    base = _base(config, tenant, explicit)
    if not rest:  # <tenant>.<zone> or svc.<tenant>.<zone>: there when the tenant has services
        return _Reply() if state.has_tenant(tenant) else _absent()
    if len(rest) == 1:  # a namespace
        return _Reply() if state.has_namespace(tenant, rest[0]) else _absent()
    if len(rest) == 2:
        return _service(state, config, qname, qtype, (tenant, rest[1], rest[0]), base)
    if len(rest) == 3:
        return _endpoint(state, config, qname, qtype, (tenant, rest[2], rest[1]), rest[0])
    if len(rest) == 4 and rest[0].startswith("_") and rest[1].startswith("_"):
        return _srv(state, config, qname, qtype, (tenant, rest[3], rest[2]), base, rest[0][1:], rest[1][1:])
    return _absent()


def _rrset(name: dns.name.Name | str, ttl: int, rdtype: int, values: Iterable[str]) -> dns.rrset.RRset:
    rrset = dns.rrset.RRset(dns.name.from_text(name) if isinstance(name, str) else name, dns.rdataclass.IN, rdtype)
    for v in values:
        rrset.add(dns.rdata.from_text(dns.rdataclass.IN, rdtype, v), ttl)
    return rrset


def _addresses(name: dns.name.Name | str, ttl: int, qtype: int, ips: Iterable[str]) -> list[dns.rrset.RRset]:
    """A or AAAA records (as `qtype` asks: ANY gives both) for those of `ips` of that family."""
    ips = list(ips)
    out = []
    for rdtype, version in ((_A, 4), (_AAAA, 6)):
        if qtype in (rdtype, _ANY):
            chosen = [ip for ip in ips if ipaddress.ip_address(ip).version == version]
            if chosen:
                out.append(_rrset(name, ttl, rdtype, chosen))
    return out


def _service(state: DnsState, config: DnsConfig, qname: dns.name.Name, qtype: int, key: Key, base: str) -> _Reply:
    svc = state.services.get(key)
    if svc is None:
        return _absent()
    reply, ttl, spec = _Reply(), config.ttl, svc.get("spec") or {}
    if spec.get("type") == "ExternalName":
        target = (spec.get("externalName") or "").strip(".")
        if target:
            reply.answer.append(_rrset(qname, ttl, _CNAME, [target + "."]))
        return reply
    headless = _headless(svc)
    endpoints = state.service_endpoints(key) if headless else []
    if qtype in (_A, _AAAA, _ANY):
        reply.answer += _addresses(qname, ttl, qtype, [e.ip for e in endpoints] if headless else _cluster_ips(svc))
    if qtype in (_SRV, _ANY):
        _add_srv(reply, state, config, qname, svc, key, base, endpoints, None, None)
    return reply


def _add_srv(reply: _Reply, state: DnsState, config: DnsConfig, qname: dns.name.Name, svc: Obj, key: Key,
             base: str, endpoints: list[_Endpoint], port_name: str | None, protocol: str | None) -> bool:
    """SRV records for the service's named ports (matching `port_name`/`protocol` when given); True if any port
    matched.  ClusterIP services point at their own name, headless ones at each endpoint's."""
    ttl, svc_name = config.ttl, f"{key[2]}.{key[1]}.{base}"
    srv: list[str] = []
    targets: dict[str, list[str]] = {}
    matched = False
    if _headless(svc):
        for e in endpoints:
            for name, proto, port in e.ports:
                if name and (port_name is None or (name == port_name and proto.lower() == protocol)):
                    matched = True
                    target = f"{e.label}.{svc_name}"
                    srv.append(f"0 100 {port} {target}")
                    targets.setdefault(target, []).append(e.ip)
    else:
        for p in (svc.get("spec") or {}).get("ports") or []:
            name, proto = (p or {}).get("name") or "", ((p or {}).get("protocol") or "TCP").lower()
            if name and isinstance(p.get("port"), int) and (port_name is None or (name == port_name
                                                                                  and proto == protocol)):
                matched = True
                srv.append(f"0 100 {p['port']} {svc_name}")
                targets[svc_name] = _cluster_ips(svc)
    if srv:
        reply.answer.append(_rrset(qname, ttl, _SRV, sorted(set(srv))))
        for target, ips in sorted(targets.items()):
            reply.additional += _addresses(target, ttl, _ANY, sorted(set(ips)))
    return matched


def _srv(state: DnsState, config: DnsConfig, qname: dns.name.Name, qtype: int, key: Key, base: str,
         port_name: str, protocol: str) -> _Reply:
    svc = state.services.get(key)
    if svc is None or (svc.get("spec") or {}).get("type") == "ExternalName":
        return _absent()
    endpoints = state.service_endpoints(key) if _headless(svc) else []
    probe = _Reply()
    if not _add_srv(probe, state, config, qname, svc, key, base, endpoints, port_name, protocol):
        return _absent()
    reply = _Reply()
    if qtype in (_SRV, _ANY):
        reply = probe
    return reply


def _endpoint(state: DnsState, config: DnsConfig, qname: dns.name.Name, qtype: int, key: Key,
              label: str) -> _Reply:
    if key not in state.services:
        return _absent()
    ips = [e.ip for e in state.service_endpoints(key) if e.label == label]
    if not ips:
        return _absent()
    reply = _Reply()
    reply.answer += _addresses(qname, config.ttl, qtype, ips)
    return reply


def _apex(qname: dns.name.Name, qtype: int, config: DnsConfig, state: DnsState) -> _Reply:
    reply = _Reply()
    if qtype in (_SOA, _ANY):
        reply.answer.append(_soa(config, state))
    if qtype in (_NS, _ANY):
        reply.answer.append(_rrset(qname, config.ttl, _NS, [f"ns.dns.{config.zone}."]))
    return reply


def _soa(config: DnsConfig, state: DnsState, owner: str | None = None) -> dns.rrset.RRset:
    # CoreDNS's SOA: refresh 7200, retry 1800, expire 86400, negative TTL = the record TTL.
    return _rrset(owner or f"{config.zone}.", config.ttl, _SOA,
                  [f"ns.dns.{config.zone}. hostmaster.{config.zone}. {state.serial % 2**32} 7200 1800 86400 "
                   f"{config.ttl}"])


def _finish(response: dns.message.Message, reply: _Reply, config: DnsConfig, state: DnsState,
            soa_owner: str | None = None) -> dns.message.Message:
    if not reply.exists:
        response.set_rcode(dns.rcode.NXDOMAIN)
    response.answer = list(reply.answer)
    response.additional = list(reply.additional)
    if not reply.answer:  # NXDOMAIN or no data of this type: the SOA says for how long
        response.authority = [_soa(config, state, soa_owner)]
    return response


def _reverse(state: DnsState, response: dns.message.Message, qname: dns.name.Name, qtype: int,
             asker: Asker | None, config: DnsConfig) -> dns.message.Message | object:
    import dns.reversename

    try:
        ip = str(ipaddress.ip_address(dns.reversename.to_address(qname)))
    except (dns.exception.SyntaxError, ValueError):
        return FORWARD  # a partial reverse name (a zone cut): not ours
    ours = config.owns_reverse(ip)
    found = [(t, rel) for t, rel in state.reverse(ip) if asker is not None and asker.sees(t)]
    if not found:
        if not ours:
            return FORWARD
        if asker is None:
            return _refused(response)
        response.flags |= dns.flags.AA
        return _finish(response, _absent(), config, state, soa_owner="in-addr.arpa." if ":" not in ip else "ip6.arpa.")
    response.flags |= dns.flags.AA
    reply = _Reply()
    if qtype in (_PTR, _ANY):
        reply.answer.append(_rrset(qname, config.ttl, _PTR,
                                   sorted({f"{rel}.svc.{t}.{config.zone}." for t, rel in found})))
    return _finish(response, reply, config, state, soa_owner="in-addr.arpa." if ":" not in ip else "ip6.arpa.")
