"""From Services and Endpoints to iptables rules: kube-proxy's iptables mode as a pure function.

`service_ports()` turns the Services and Endpoints of every tenant into one
`ServicePort` per (tenant, namespace, name, port); `render()` turns those into
the text `iptables-restore --noflush` applies in one transaction, every chain
of ours written whole (a chain declared in the input is flushed and refilled
atomically; chains we no longer want are flushed and deleted in the same
transaction).  Nothing here runs a command, so the rules are tested as text.

The chains, after kube-proxy's (P is the configurable prefix, `KUBE-` by default):

    nat  P-SERVICES      from PREROUTING and OUTPUT: ClusterIP:port -> P-SVC-*; local addresses -> P-NODEPORTS
         P-NODEPORTS     nodePort -> P-EXT-* (marks for masquerade, then P-SVC-*)
         P-SVC-*         one per service port: session affinity (recent), then a random endpoint (statistic)
         P-SEP-*         one per endpoint: mark what must be masqueraded, DNAT to ip:port
         P-MARK-MASQ     set the masquerade bit
         P-POSTROUTING   from POSTROUTING: masquerade marked packets
    filter P-SERVICES          from FORWARD and OUTPUT (new connections): REJECT ClusterIP ports without endpoints
         P-EXTERNAL-SERVICES from INPUT and FORWARD: REJECT nodePorts without endpoints
         P-FORWARD           from FORWARD: accept marked and established service traffic (a DROP policy stays out)
         P-FIREWALL          from INPUT and OUTPUT: drop martians to 127/8 (what route_localnet lets in)

Masquerading: pods on one bridge reach each other at layer 2, so when a pod's
connection to a ClusterIP is DNATed to a pod on the same bridge, the reply
would go straight back without passing the host's conntrack, and the client
would see it come from the wrong address unless br_netfilter is loaded.
Each endpoint's chain therefore marks for masquerade the traffic coming from
its own bridge subnet (`local_subnets`, the host's bridges; just the endpoint
itself, kube-proxy's hairpin rule, when it is on no local bridge), so the reply
returns through the host.  `--masquerade-all` and `--cluster-cidr` work as in
kube-proxy.  NodePort traffic is always masqueraded (traffic policy Cluster).

Tenancy: cluster IPs and node ports are allocated cluster-wide, so a Service
gets exactly its own ClusterIP and node ports.  What could reach further is
left out: `externalIPs` and load-balancer ingress addresses (anyone's address,
CVE-2020-8554), endpoint addresses that are loopback, link-local, multicast
or unspecified (an Endpoints object written by hand could otherwise send pod
traffic to the host's 127.0.0.1 services), and a second Service claiming an
IP:port or node port that another already holds (the oldest keeps it).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import ipaddress
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Options", "Rendered", "ServicePort", "chain_names", "jump_rules", "render", "service_ports"]

Obj = dict[str, Any]
log = logging.getLogger("arktos.proxy.rules")

MAX_CHAIN = 28  # iptables' limit on a chain name
PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}
DEFAULT_AFFINITY_TIMEOUT = 10800
MARTIAN_COMMENT = "block incoming localnet connections"


@dataclass(frozen=True)
class ServicePort:
    """One port of one Service, with its ready endpoints (ip, port)."""

    tenant: str
    namespace: str
    name: str
    port_name: str
    protocol: str  # tcp | udp | sctp
    cluster_ip: str
    port: int
    node_port: int | None = None
    affinity_timeout: int | None = None  # seconds of ClientIP session affinity, None for none
    endpoints: tuple[tuple[str, int], ...] = ()

    @property
    def key(self) -> str:
        """tenant/namespace/name:port, what comments and chain hashes name."""
        who = "/".join(p for p in (self.tenant, self.namespace, self.name) if p)
        return f"{who}:{self.port_name}" if self.port_name else who


@dataclass(frozen=True)
class Options:
    prefix: str = "KUBE-"
    masquerade_bit: int = 14
    masquerade_all: bool = False
    cluster_cidr: str | None = None
    localhost_nodeports: bool = True
    local_subnets: tuple[str, ...] = ()  # the host's pod bridges' subnets

    @property
    def mark(self) -> str:
        bit = 1 << self.masquerade_bit
        return f"{bit:#x}/{bit:#x}"


@dataclass
class Rendered:
    text: str
    chains: dict[str, set[str]] = field(default_factory=dict)  # table -> our chains in it


def _special(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_unspecified


def _ipv4(value: Any) -> str | None:
    """A plain IPv4 address a rule may name, or None (IPv6, special or not an address)."""
    try:
        ip = ipaddress.ip_address(str(value))
    except ValueError:
        return None
    if ip.version != 4 or _special(ip):
        return None
    return str(ip)


def _object_key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return "/".join(p for p in (meta.get("tenant"), meta.get("namespace"), meta.get("name")) if p)


def _endpoints_for(port_name: str, protocol: str, endpoints: Obj | None) -> tuple[tuple[str, int], ...]:
    out: set[tuple[str, int]] = set()
    for subset in (endpoints or {}).get("subsets") or []:
        if not isinstance(subset, dict):
            continue
        target = None
        for p in subset.get("ports") or []:
            if (isinstance(p, dict) and (p.get("name") or "") == port_name
                    and (p.get("protocol") or "TCP") == protocol and isinstance(p.get("port"), int)):
                target = p["port"]
        if target is None or not 0 < target < 65536:
            continue
        for addr in subset.get("addresses") or []:  # ready ones only; notReadyAddresses get no traffic
            ip = _ipv4((addr or {}).get("ip"))
            if ip is not None:
                out.add((ip, target))
    return tuple(sorted(out, key=lambda e: (ipaddress.ip_address(e[0]), e[1])))


def service_ports(services: Iterable[Obj], endpoints: Mapping[str, Obj]) -> list[ServicePort]:
    """Every proxied port of `services`; `endpoints` maps tenant/namespace/name to the Endpoints object.

    A Service and its Endpoints pair up only under the same key, so one tenant's Endpoints never feed
    another tenant's Service.  Headless and ExternalName Services, IPv6 and ports of unknown protocols are
    not proxied.  When two Services claim the same ClusterIP:port/protocol or node port (the allocator
    never allows it; a restored backup might), the one created first keeps it.
    """
    def age(svc: Obj) -> tuple[str, str]:
        return ((svc.get("metadata") or {}).get("creationTimestamp") or "", _object_key(svc))

    out: list[ServicePort] = []
    taken_ips: dict[tuple[str, int, str], str] = {}
    taken_node_ports: dict[tuple[int, str], str] = {}
    for svc in sorted(services, key=age):
        meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
        if spec.get("type") == "ExternalName" or meta.get("deletionTimestamp"):
            continue
        cluster_ip = _ipv4(spec.get("clusterIP"))
        if cluster_ip is None:
            continue  # headless ("None"), unset, IPv6 or nonsense
        affinity = None
        if spec.get("sessionAffinity") == "ClientIP":
            timeout = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}).get("timeoutSeconds")
            affinity = timeout if isinstance(timeout, int) and timeout > 0 else DEFAULT_AFFINITY_TIMEOUT
        node_ports_wanted = spec.get("type") in ("NodePort", "LoadBalancer")
        ep = endpoints.get(_object_key(svc))
        for p in spec.get("ports") or []:
            if not isinstance(p, dict):
                continue
            protocol, port = p.get("protocol") or "TCP", p.get("port")
            if protocol not in PROTOCOLS or not isinstance(port, int) or not 0 < port < 65536:
                continue
            sp = ServicePort(
                tenant=meta.get("tenant") or "", namespace=meta.get("namespace") or "", name=meta.get("name") or "",
                port_name=p.get("name") or "", protocol=PROTOCOLS[protocol], cluster_ip=cluster_ip, port=port,
                affinity_timeout=affinity, endpoints=_endpoints_for(p.get("name") or "", protocol, ep))
            holder = taken_ips.setdefault((cluster_ip, port, sp.protocol), sp.key)
            if holder != sp.key:
                log.warning("%s: %s:%d/%s is already %s's; not proxied", sp.key, cluster_ip, port, sp.protocol,
                            holder)
                continue
            node_port = p.get("nodePort")
            if node_ports_wanted and isinstance(node_port, int) and 0 < node_port < 65536:
                owner = taken_node_ports.setdefault((node_port, sp.protocol), sp.key)
                if owner == sp.key:
                    sp = dataclasses.replace(sp, node_port=node_port)
                else:
                    log.warning("%s: node port %d/%s is already %s's; not proxied", sp.key, node_port,
                                sp.protocol, owner)
            out.append(sp)
    return out


def _hash(text: str, length: int) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:length]


def chain_names(prefix: str) -> dict[str, str]:
    """The fixed chains of a prefix (SERVICES, NODEPORTS, ...), by short name."""
    return {n: prefix + n for n in ("SERVICES", "NODEPORTS", "POSTROUTING", "MARK-MASQ", "EXTERNAL-SERVICES",
                                    "FORWARD", "FIREWALL")}


def _svc_chain(prefix: str, kind: str, sp: ServicePort) -> str:
    head = f"{prefix}{kind}-"
    return head + _hash(f"{sp.key}/{sp.protocol}", min(16, MAX_CHAIN - len(head)))


def _sep_chain(prefix: str, sp: ServicePort, ep: tuple[str, int]) -> str:
    head = f"{prefix}SEP-"
    return head + _hash(f"{sp.key}/{sp.protocol}/{ep[0]}:{ep[1]}", min(16, MAX_CHAIN - len(head)))


def _comment(text: str) -> str:
    return '-m comment --comment "' + text.replace('"', "'").replace("\\", "/")[:250] + '"'


def _proto(sp: ServicePort) -> str:
    return f"-p {sp.protocol} -m {sp.protocol}"


def render(ports: Iterable[ServicePort], options: Options, existing: Mapping[str, Iterable[str]] = ()) -> Rendered:
    """The iptables-restore input for `ports`; `existing` (table -> chain names) are chains of ours already
    there, and those no longer wanted are deleted in the same transaction."""
    prefix = options.prefix
    if not 0 < len(prefix) <= 11:
        raise ValueError(f"chain prefix {prefix!r}: want 1 to 11 characters")
    c = chain_names(prefix)
    mark = options.mark
    subnets = [ipaddress.ip_network(s, strict=False) for s in options.local_subnets]
    ports = sorted(ports, key=lambda sp: (sp.key, sp.protocol, sp.port))

    nat: dict[str, list[str]] = {c["SERVICES"]: [], c["NODEPORTS"]: [], c["POSTROUTING"]: [], c["MARK-MASQ"]: []}
    flt: dict[str, list[str]] = {c["SERVICES"]: [], c["EXTERNAL-SERVICES"]: [], c["FORWARD"]: [], c["FIREWALL"]: []}

    nat[c["MARK-MASQ"]].append(f"-j MARK --or-mark {1 << options.masquerade_bit:#x}")
    post = nat[c["POSTROUTING"]]
    post.append(f"-m mark ! --mark {mark} -j RETURN")
    post.append(f"-j MARK --xor-mark {1 << options.masquerade_bit:#x}")  # not masqueraded twice on a re-traversal
    post.append(_comment("arktos service traffic requiring SNAT") + " -j MASQUERADE --random-fully")
    fwd = flt[c["FORWARD"]]
    fwd.append(_comment("arktos forwarding rules") + f" -m mark --mark {mark} -j ACCEPT")
    fwd.append(_comment("arktos forwarding conntrack rule") + " -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
    if options.localhost_nodeports:
        flt[c["FIREWALL"]].append(_comment(MARTIAN_COMMENT) + " -d 127.0.0.0/8 ! -s 127.0.0.0/8"
                              " -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP")

    services = nat[c["SERVICES"]]
    for sp in ports:
        dest = f"-d {sp.cluster_ip}/32 {_proto(sp)} --dport {sp.port}"
        if not sp.endpoints:
            flt[c["SERVICES"]].append(f"{_comment(sp.key + ' has no endpoints')} {dest} "
                                      "-j REJECT --reject-with icmp-port-unreachable")
            if sp.node_port:
                flt[c["EXTERNAL-SERVICES"]].append(
                    f"{_comment(sp.key + ' has no endpoints')} -m addrtype --dst-type LOCAL {_proto(sp)} "
                    f"--dport {sp.node_port} -j REJECT --reject-with icmp-port-unreachable")
            continue
        svc = _svc_chain(prefix, "SVC", sp)
        services.append(f"{_comment(sp.key + ' cluster IP')} {dest} -j {svc}")
        rules = nat[svc] = []
        if options.masquerade_all:
            rules.append(f"{_comment(sp.key + ' cluster IP')} {dest} -j {c['MARK-MASQ']}")
        elif options.cluster_cidr:
            rules.append(f"{_comment(sp.key + ' cluster IP')} ! -s {options.cluster_cidr} {dest} "
                         f"-j {c['MARK-MASQ']}")
        if sp.node_port:
            ext = _svc_chain(prefix, "EXT", sp)
            nat[c["NODEPORTS"]].append(f"{_comment(sp.key)} {_proto(sp)} --dport {sp.node_port} -j {ext}")
            nat[ext] = [f"{_comment('masquerade traffic for ' + sp.key + ' external destinations')} "
                        f"-j {c['MARK-MASQ']}", f"-j {svc}"]
        seps = [(_sep_chain(prefix, sp, ep), ep) for ep in sp.endpoints]
        if sp.affinity_timeout:
            for sep, ep in seps:
                rules.append(f"{_comment(f'{sp.key} -> {ep[0]}:{ep[1]}')} -m recent --name {sep} --rcheck "
                             f"--seconds {sp.affinity_timeout} --reap -j {sep}")
        for i, (sep, ep) in enumerate(seps):
            chance = "" if i == len(seps) - 1 else \
                f" -m statistic --mode random --probability {1.0 / (len(seps) - i):.11f}"
            rules.append(f"{_comment(f'{sp.key} -> {ep[0]}:{ep[1]}')}{chance} -j {sep}")
            ip = ipaddress.ip_address(ep[0])
            source = next((str(n) for n in subnets if ip in n), f"{ep[0]}/32")
            sep_rules = nat[sep] = [f"{_comment(sp.key)} -s {source} -j {c['MARK-MASQ']}"]
            if sp.affinity_timeout:
                sep_rules.append(f"{_comment(sp.key)} {_proto(sp)} -m recent --name {sep} --set "
                                 f"-j DNAT --to-destination {ep[0]}:{ep[1]}")
            else:
                sep_rules.append(f"{_comment(sp.key)} {_proto(sp)} -j DNAT --to-destination {ep[0]}:{ep[1]}")
    local = "-m addrtype --dst-type LOCAL" + ("" if options.localhost_nodeports else " ! -d 127.0.0.0/8")
    services.append(f"{_comment('arktos service nodeports; NOTE: this must be the last rule in this chain')} "
                    f"{local} -j {c['NODEPORTS']}")

    lines: list[str] = []
    chains: dict[str, set[str]] = {}
    for table, wanted in (("nat", nat), ("filter", flt)):
        stale = sorted(set(existing.get(table, ()) if existing else ()) - set(wanted))
        lines.append(f"*{table}")
        lines.extend(f":{name} - [0:0]" for name in [*wanted, *stale])
        for name, rules in wanted.items():
            lines.extend(f"-A {name} {rule}" for rule in rules)
        lines.extend(f"-X {name}" for name in stale)
        lines.append("COMMIT")
        chains[table] = set(wanted)
    return Rendered("\n".join(lines) + "\n", chains)


def jump_rules(prefix: str) -> list[tuple[str, str, str]]:
    """(table, built-in chain, rule spec) of the jumps into our chains, as `iptables -I` takes them."""
    c = chain_names(prefix)
    new = "-m conntrack --ctstate NEW"
    out = [
        ("nat", "PREROUTING", f"-j {c['SERVICES']}"),
        ("nat", "OUTPUT", f"-j {c['SERVICES']}"),
        ("nat", "POSTROUTING", f"-j {c['POSTROUTING']}"),
        ("filter", "FORWARD", f"{new} -j {c['SERVICES']}"),
        ("filter", "OUTPUT", f"{new} -j {c['SERVICES']}"),
        ("filter", "INPUT", f"{new} -j {c['EXTERNAL-SERVICES']}"),
        ("filter", "FORWARD", f"{new} -j {c['EXTERNAL-SERVICES']}"),
        ("filter", "FORWARD", f"-j {c['FORWARD']}"),
        ("filter", "INPUT", f"-j {c['FIREWALL']}"),
        ("filter", "OUTPUT", f"-j {c['FIREWALL']}"),
    ]
    return [(t, ch, f"{_comment('arktos ' + prefix + ' service proxy')} {spec}") for t, ch, spec in out]
